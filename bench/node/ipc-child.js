'use strict';
// ipc-child.js: bench/ipc-child.c for Node.js and Bun, run by fork(). It
// sends {ready: true}, echoes every message with a seq member, and on
// {mode: 'stream', count, size} sends count messages {seq, data} in
// batches of about 64 KiB, with a send callback on each batch's last
// message and at most about 256 KiB queued.
const BATCH_BYTES = 64 * 1024;
const QUEUE_BYTES = 256 * 1024;

function stream(count, size) {
  const data = 'hello'.repeat(Math.ceil(size / 5)).slice(0, size);
  const lineBytes = size + 32;
  const batch = Math.max(1, Math.floor(BATCH_BYTES / lineBytes));
  const window = Math.max(2, Math.floor(QUEUE_BYTES / (batch * lineBytes)));
  let next = 0;
  let batchesInFlight = 0;

  function onBatchSent(error) {
    if (error) throw error;
    batchesInFlight--;
    sendBatches();
  }

  function sendBatches() {
    while (batchesInFlight < window && next < count) {
      const end = Math.min(count, next + batch);
      for (; next < end; next++) {
        if (next + 1 === end) process.send({ seq: next, data }, onBatchSent);
        else process.send({ seq: next, data });
      }
      batchesInFlight++;
    }
  }

  sendBatches();
}

process.on('message', (message) => {
  if (message.mode === 'stream') stream(message.count, message.size);
  else process.send(message);
});
process.send({ ready: true });
