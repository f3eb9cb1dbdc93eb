'use strict';
// capture.js BYTES: bench/capture.c for Node.js and Bun. Reads the stdout
// of `head -c BYTES /dev/zero` through child.stdout's 'data' events; stdin
// is ignored and stderr inherited, as in the C program. Prints the same
// line.
const { spawn } = require('node:child_process');

const bytes = Number(process.argv[2]);
if (!(bytes > 0)) {
  console.error('usage: capture.js BYTES');
  process.exit(1);
}

const start = performance.now();
const child = spawn('/usr/bin/head', ['-c', String(bytes), '/dev/zero'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let received = 0;
child.stdout.on('data', (chunk) => {
  received += chunk.length;
});
child.stdout.on('end', () => {
  const seconds = (performance.now() - start) / 1000;
  if (received !== bytes) {
    console.error(`capture.js: read ${received} bytes, expected ${bytes}`);
    process.exit(1);
  }
  console.log(`mb_per_s=${(bytes / seconds / 1e6).toFixed(1)} ` +
              `bytes=${bytes} seconds=${seconds.toFixed(3)}`);
});
