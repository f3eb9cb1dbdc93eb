// A Node.js child for the IPC tests: sends back every message and every
// internal message it receives, then exits when the channel disconnects.
// With the arguments "burst N", it sends N numbered messages and exits as
// soon as the last one is written, before the parent has read them. With
// "notify", each echo is followed by the internal message
// {"cmd":"NODE_TEST_ECHOED"}. With "count N", it sends N small numbered
// messages and exits once the last is written. With "sleep MS", it blocks
// for MS milliseconds before it starts echoing, so it reads nothing then.
// With "stdin", it blocks until a byte arrives on stdin (or stdin ends)
// before it starts echoing, so the parent decides when it reads.
'use strict';

const mode = process.argv[2];

if (mode === 'count') {
  const count = Number(process.argv[3]);
  for (let seq = 0; seq < count - 1; seq++) process.send({ seq, data: 'hello' });
  process.send({ seq: count - 1, data: 'hello' }, () => process.exit(0));
} else if (mode === 'burst') {
  const count = Number(process.argv[3]);
  for (let seq = 0; seq < count - 1; seq++) process.send({ seq, data: 'x'.repeat(4096) });
  process.send({ seq: count - 1, data: 'x'.repeat(4096) }, () => process.exit(0));
} else {
  if (mode === 'stdin') {
    try {
      require('node:fs').readSync(0, Buffer.alloc(1));
    } catch (error) {
      if (error.code !== 'EOF') throw error;
    }
  }
  if (mode === 'sleep') {
    const until = Date.now() + Number(process.argv[3]);
    while (Date.now() < until);
  }
  process.on('message', (message) => {
    process.send(message);
    if (mode === 'notify') process.send({ cmd: 'NODE_TEST_ECHOED' });
  });
  process.on('internalMessage', (message) => {
    if (typeof message.cmd === 'string' && message.cmd.startsWith('NODE_T'))
      process.send({ internal: message });
  });
  process.send({ ready: true, cmd: 'NODE_TEST_READY' });
}
