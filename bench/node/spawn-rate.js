'use strict';
// spawn-rate.js SECONDS IN_FLIGHT BALLAST_BYTES: bench/spawn-rate.c for
// Node.js and Bun, with child_process.spawn('/bin/true') and stdio
// 'ignore'. The ballast is a Buffer filled with ones, so that its pages are
// written. Prints the same line as the C program.
const { spawn } = require('node:child_process');

const [seconds, inFlightMax, ballastBytes] = process.argv.slice(2).map(Number);
if (!(seconds > 0) || !(inFlightMax > 0) || !(ballastBytes >= 0)) {
  console.error('usage: spawn-rate.js SECONDS IN_FLIGHT BALLAST_BYTES');
  process.exit(1);
}
const ballast = ballastBytes > 0 ? Buffer.alloc(ballastBytes, 1) : null;

const start = performance.now();
const deadline = start + seconds * 1000;
let inFlight = 0;
let exited = 0;
let lastExit = start;

function startChildren() {
  while (inFlight < inFlightMax && performance.now() < deadline) {
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    child.on('error', (error) => {
      console.error(`spawn-rate.js: ${error.message}`);
      process.exit(1);
    });
    child.on('exit', () => {
      inFlight--;
      exited++;
      lastExit = performance.now();
      startChildren();
    });
    inFlight++;
  }
  if (inFlight === 0) {
    const elapsed = (lastExit - start) / 1000;
    console.log(`spawns_per_s=${(exited / elapsed).toFixed(1)} ` +
                `spawns=${exited} seconds=${elapsed.toFixed(3)} ` +
                `ballast=${ballast ? ballast.length : 0}`);
  }
}

startChildren();
