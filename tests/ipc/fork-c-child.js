// A Node.js parent for the IPC tests: spawns the C program named by argv[2]
// (echo-worker) with an 'ipc' slot, sends it a list of messages, checks
// that each comes back as Node would print it, then disconnects and
// reports on stdout.
'use strict';

const { spawn } = require('node:child_process');

const messages = [
  'hello', 42, -0.5, 1e21, null, true, [1, 'x', { a: [] }],
  { seq: 1, data: 'ünï€😀\u2028\u2029\n"\\' },
  { big: 'x'.repeat(1 << 20) },
];
const child = spawn(process.argv[2], [], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
const received = [];

child.on('message', (message) => {
  received.push(message);
  if (received.length < messages.length) return;
  const same = messages.every((m, i) => JSON.stringify(m) === JSON.stringify(received[i]));
  console.log(same ? 'echo ok' : 'echo mismatch');
  child.disconnect();
});
child.on('exit', (code, signal) => console.log(`exit ${code} ${signal}`));
for (const m of messages) child.send(m);
