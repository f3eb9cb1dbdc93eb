'use strict';
// ipc-parent.js throughput|pingpong COUNT SIZE: bench/ipc-parent.c for
// Node.js and Bun. It forks ipc-child.js with the same runtime (fork()
// runs process.execPath) and prints the same lines as the C program.
const { fork } = require('node:child_process');
const path = require('node:path');

const [mode, countText, sizeText] = process.argv.slice(2);
const count = Number(countText);
const size = Number(sizeText);
if ((mode !== 'throughput' && mode !== 'pingpong') || !(count > 0) ||
    !(size >= 0)) {
  console.error('usage: ipc-parent.js throughput|pingpong COUNT SIZE');
  process.exit(1);
}

// Bytes of the lines {"seq":i,"data":TEXT} for i from 0 to count - 1,
// newlines included, as bench_stream_bytes() counts them.
function streamBytes() {
  let bytes = count * (size + 19);
  for (let start = 0, limit = 10, digits = 1; start < count;
       start = limit, limit *= 10, digits++) {
    bytes += (Math.min(limit, count) - start) * digits;
  }
  return bytes;
}

function quantile(sorted, q) {
  const rank = Math.ceil(q * sorted.length);
  return sorted[rank === 0 ? 0 : rank - 1];
}

const child = fork(path.join(__dirname, 'ipc-child.js'));
let received = 0;
let start = 0;
let sentAt = 0;
const rtts = mode === 'pingpong' ? new Float64Array(count) : null;

function sendPing() {
  sentAt = performance.now();
  child.send({ seq: received, data: 'hello' });
}

function finish() {
  if (mode === 'pingpong') {
    const warmup = Math.min(Math.floor(count / 10), 1000);
    const counted = rtts.slice(warmup).sort();
    console.log(`rtt_median_us=${(quantile(counted, 0.5) * 1000).toFixed(2)} ` +
                `rtt_p99_us=${(quantile(counted, 0.99) * 1000).toFixed(2)} ` +
                `round_trips=${counted.length}`);
  } else {
    const seconds = (performance.now() - start) / 1000;
    console.log(`msgs_per_s=${(count / seconds).toFixed(1)} ` +
                `mb_per_s=${(streamBytes() / seconds / 1e6).toFixed(1)} ` +
                `seconds=${seconds.toFixed(3)}`);
  }
  child.disconnect();
}

child.on('message', (message) => {
  if (message.ready) {
    if (mode === 'pingpong') {
      sendPing();
    } else {
      start = performance.now();
      child.send({ mode: 'stream', count, size });
    }
    return;
  }
  if (message.seq !== received) {
    console.error(`ipc-parent.js: message ${received} arrived out of order`);
    process.exit(1);
  }
  if (mode === 'pingpong') rtts[received] = performance.now() - sentAt;
  received++;
  if (received < count) {
    if (mode === 'pingpong') sendPing();
    return;
  }
  finish();
});
child.on('exit', (code) => {
  if (received < count) {
    console.error(`ipc-parent.js: the child ended after ${received} of ` +
                  `${count} messages (exit code ${code})`);
    process.exit(1);
  }
});
