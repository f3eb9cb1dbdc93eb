'use strict';
// idle-memory.js COUNT: bench/idle-memory.c for Node.js and Bun. Starts
// COUNT `sleep 600` children with the default stdio (three pipes, nobody
// reading), reads process.memoryUsage().rss before and once every child
// has emitted 'spawn', then kills them with SIGKILL and waits for each
// 'close'. One child is started and reaped first, as in the C program.
const { spawn } = require('node:child_process');

const count = Number(process.argv[2]);
if (!(count > 0)) {
  console.error('usage: idle-memory.js COUNT');
  process.exit(1);
}

function fail(error) {
  console.error(`idle-memory.js: ${error.message}`);
  process.exit(1);
}

function measure() {
  const children = [];
  let started = 0;
  let closed = 0;
  let rssAfter = 0;
  const rssBefore = process.memoryUsage().rss;

  for (let i = 0; i < count; i++) {
    const child = spawn('sleep', ['600']);
    child.on('error', fail);
    child.on('spawn', () => {
      if (++started < count) return;
      rssAfter = process.memoryUsage().rss;
      for (const c of children) c.kill('SIGKILL');
    });
    child.on('close', () => {
      if (++closed < count) return;
      const kib = (rssAfter - rssBefore) / 1024 / count;
      console.log(`kib_per_child=${kib.toFixed(2)} children=${count}`);
    });
    children.push(child);
  }
}

spawn('/bin/true').on('error', fail).on('close', measure);
