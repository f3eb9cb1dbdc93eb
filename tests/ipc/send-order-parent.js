// A Node.js parent for the send callback tests: spawns the C program named
// by argv[2] (cp-send-order) with an 'ipc' slot at descriptor 3, and gives
// it at descriptor 4 the write end of a pipe. This process gets that write
// end as its own descriptor 4 and the read end as its stdin, both from the
// test that starts it.
//
// It reads nothing from the channel until the child has written
// {"sent":N,"padBytes":B,"before":K} to that pipe and closed it:
// fs.readSync() on stdin blocks without running the event loop, so the
// channel is not read while it waits. Then, by argv[3]:
//
//   read        reads every message, checks that the seq members run from
//               0 to N-1 and that every pad is B bytes long, then
//               disconnects.
//   disconnect  disconnects without reading a message.
//   kill        prints {"parent":{"go":<what the pipe held>}} and kills
//               itself with SIGKILL. The child, which inherited this
//               process's stdout, prints its report there itself.
//
// In read and disconnect modes it waits for the child to exit, prints one
// line {"parent":{...},"helper":<the child's report>,"helperExit":code,
// "helperSignal":signal}, and exits with status 0 when the checks of its
// mode passed and the child exited with status 0, otherwise with status 1
// and the reason on stderr.
'use strict';

const fs = require('node:fs');
const { spawn } = require('node:child_process');

const GO_READ_FD = 0;
const GO_WRITE_FD = 4;

const mode = process.argv[3];
if (!['read', 'disconnect', 'kill'].includes(mode)) {
  console.error(`send-order-parent: invalid mode ${JSON.stringify(mode)}, expected read, disconnect or kill`);
  process.exit(2);
}

const child = spawn(process.argv[2], [], {
  // In kill mode the child outlives this process, so its stdout must not
  // be a pipe that this process reads.
  stdio: ['ignore', mode === 'kill' ? 'inherit' : 'pipe', 'inherit', 'ipc', GO_WRITE_FD],
});
// The child has the only write end left, so its close ends the read.
fs.closeSync(GO_WRITE_FD);

// Blocks until the child closes its end: the channel stays unread.
function readGo() {
  const chunks = [];
  const buffer = Buffer.alloc(256);
  for (;;) {
    const n = fs.readSync(GO_READ_FD, buffer);
    if (n === 0) break;
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString();
}

// Checks the messages as they arrive, then the child's report once it
// has exited, and prints the summary line.
function watchChild(go, problems) {
  let received = 0;
  let outOfOrder = 0;
  let badPads = 0;
  let helperOutput = '';

  if (mode === 'read' && go !== null) {
    child.on('message', (message) => {
      if (message.seq !== received) outOfOrder++;
      if (typeof message.pad !== 'string' || message.pad.length !== go.padBytes) badPads++;
      received++;
      if (received === go.sent) child.disconnect();
    });
  } else {
    child.disconnect();
  }

  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text) => { helperOutput += text; });

  // Node v20 emits no 'close' for a child it disconnected, so the report
  // is complete once stdout has ended and the child has exited.
  let exitCode;
  let exitSignal;
  let pending = 2;
  const finish = () => {
    if (--pending > 0) return;
    let helper = null;
    try {
      helper = JSON.parse(helperOutput).helper;
    } catch {
      problems.push(`the child printed ${JSON.stringify(helperOutput)}, expected its report`);
    }
    if (mode === 'read' && go !== null) {
      if (received !== go.sent) problems.push(`${received} messages arrived, ${go.sent} were sent`);
      if (outOfOrder !== 0) problems.push(`${outOfOrder} messages arrived out of order`);
      if (badPads !== 0) problems.push(`${badPads} messages have a pad that is not ${go.padBytes} bytes long`);
    }
    if (exitCode !== 0) problems.push(`the child exited with ${exitCode} ${exitSignal}`);

    const parent = { mode, go, received, outOfOrder, badPads };
    console.log(JSON.stringify({ parent, helper, helperExit: exitCode, helperSignal: exitSignal }));
    for (const problem of problems) console.error(`send-order-parent: ${problem}`);
    process.exitCode = problems.length === 0 ? 0 : 1;
  };
  child.stdout.on('end', finish);
  child.on('exit', (code, signal) => {
    exitCode = code;
    exitSignal = signal;
    finish();
  });
}

function main() {
  const goText = readGo();
  const problems = [];
  let go = null;

  try {
    go = JSON.parse(goText);
  } catch {
    problems.push(`the child wrote ${JSON.stringify(goText)} to the pipe, expected {"sent":N,...}`);
  }
  if (mode === 'kill') {
    fs.writeSync(1, `${JSON.stringify({ parent: { go } })}\n`);
    process.kill(process.pid, 'SIGKILL');
    return;
  }
  watchChild(go, problems);
}

main();
