// The Node.js child of examples/fork-node.c. It is started by a C parent
// with cp_fork() and talks to it over the IPC channel, as it would to a
// Node.js parent that called child_process.fork():
//
// - it announces itself with an internal message ({cmd: 'NODE_...'}),
//   which the parent receives as INTERNAL_MESSAGE, then with a plain one;
// - it replies to every message {seq, value} with what it found in the
//   value, measured the way JavaScript measures it, and the value itself;
// - when the parent disconnects, it prints one line and exits, because the
//   channel was the last thing keeping its event loop alive.
//
// It prints nothing else: the parent prints what happens.
'use strict';

if (typeof process.send !== 'function') {
  console.error('worker.js: no IPC channel; run it through fork-node');
  process.exit(2);
}

let received = 0;

// Describes a value as JavaScript represents it, so that the C parent can
// check that nothing changed on the way.
function describe(value) {
  if (typeof value === 'string') {
    return {
      type: 'string',
      utf16Units: value.length,
      codePoints: [...value].length,
      utf8Bytes: Buffer.byteLength(value, 'utf8'),
    };
  }
  if (Array.isArray(value)) return { type: 'array', length: value.length };
  if (value === null) return { type: 'null' };
  if (typeof value === 'object') return { type: 'object', keys: Object.keys(value) };
  return { type: typeof value };
}

// Messages with a seq get a reply. The parent's last message has none,
// because it disconnects right after sending it, and a send to a
// disconnected parent would fail.
process.on('message', (message) => {
  received++;
  if (message.seq === undefined) return;
  process.send({ seq: message.seq, seen: describe(message.value), echo: message.value });
});

process.on('disconnect', () => {
  console.log(`node prints  'disconnect' after ${received} messages; process.connected ` +
              `is ${process.connected}, and nothing else keeps node's loop alive`);
});

// Node routes any object whose cmd starts with NODE_ to 'internalMessage',
// on either side. Node's documentation reserves the prefix for Node's own
// messages, and this script uses it only to show that routing.
process.send({ cmd: 'NODE_EXAMPLE_READY', pid: process.pid });
process.send({ hello: 'from Node.js', version: process.version, pid: process.pid });
