// A Node.js parent for the handle tests: spawns the C program named by
// argv[3] (cp-handle-serve) with an 'ipc' slot and sends it one handle,
// chosen by argv[2]:
//
//   serve   a net.Server listening on 127.0.0.1; once the child serves on
//           it, this process closes its own copy and connects 5 times,
//           expecting "c:<child pid>\n" each time.
//   socket  the server side of a TCP connection, handed over unread
//           after the client wrote 32 KiB, while the client writes 1 MiB
//           more; the child must read every byte, in order.
//   nack    as socket, but the child first makes the descriptor's first
//           delivery fail, so it answers NODE_HANDLE_NACK; Node resends
//           the socket inside a second envelope, and the child must take
//           it and answer with one NODE_HANDLE_ACK.
//   dgram   a dgram.Socket bound on 127.0.0.1; once the child is bound,
//           this process closes its own copy and sends 5 datagrams from
//           another socket, expecting "c:<child pid>" for each.
//
// Every case also checks that the child answered the handle with exactly
// one NODE_HANDLE_ACK, and with no NODE_HANDLE_NACK except in nack mode. Prints "<mode> ok" and exits with status 0 on
// success; prints the reason and exits with status 1 otherwise.
'use strict';

const { spawn } = require('node:child_process');
const dgram = require('node:dgram');
const net = require('node:net');

const mode = process.argv[2];
const child = spawn(process.argv[3], [], { stdio: ['inherit', 'inherit', 'inherit', 'ipc'] });
const ROUNDS = 5;
let acks = 0;
let nacks = 0;
let failed = false;

function fail(reason) {
  if (failed) return;
  failed = true;
  console.log(`${mode} failed: ${reason}`);
  process.exitCode = 1;
  child.kill();
}

function finish() {
  if (acks !== 1) return fail(`${acks} NODE_HANDLE_ACK messages, expected 1`);
  const expectedNacks = mode === 'nack' ? 1 : 0;
  if (nacks !== expectedNacks) return fail(`${nacks} NODE_HANDLE_NACK messages, expected ${expectedNacks}`);
  console.log(`${mode} ok`);
  child.disconnect();
}

child.on('internalMessage', (message) => {
  if (message.cmd === 'NODE_HANDLE_ACK') acks++;
  if (message.cmd === 'NODE_HANDLE_NACK') nacks++;
});
child.on('exit', (code, signal) => {
  if (!failed && code !== 0) fail(`child exit ${code} ${signal}`);
});

// Connects to port once and returns what the server wrote before closing.
function fetch(port) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    net.connect(port, '127.0.0.1')
      .on('data', (chunk) => chunks.push(chunk))
      .on('end', () => resolve(Buffer.concat(chunks).toString()))
      .on('error', reject);
  });
}

function serveMode() {
  const server = net.createServer(() => fail('the parent accepted a connection'));
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    child.once('message', async (reply) => {
      if (reply.serving !== child.pid) return fail(`reply ${JSON.stringify(reply)}`);
      // Closes this process's descriptor only: the child's stays listening.
      server.close();
      for (let i = 0; i < ROUNDS; i++) {
        const answer = await fetch(port);
        if (answer !== `c:${child.pid}\n`) return fail(`connection ${i}: ${JSON.stringify(answer)}`);
      }
      finish();
    });
    child.send({ cmd: 'serve' }, server);
  });
}

// Byte i of the client's stream is i % 251, as cp-handle-serve checks.
function pattern(from, length) {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (from + i) % 251;
  return bytes;
}

async function socketMode() {
  const FIRST = 32 * 1024;
  const REST = 1024 * 1024;
  // pauseOnConnect: this process never reads from the connection. A Node
  // sender that did read would keep reading, and dropping, bytes until the
  // child's ACK came (Node v20 only replaces the handle's onread).
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const client = net.connect(server.address().port, '127.0.0.1');
  client.on('error', (error) => fail(`client: ${error.message}`));
  await new Promise((resolve) => client.once('connect', resolve));
  // These bytes wait in the kernel and travel with the socket.
  await new Promise((resolve) => client.write(pattern(0, FIRST), resolve));
  const socket = await accepted;
  if (mode === 'nack') {
    const armed = new Promise((resolve) => child.once('message', resolve));
    child.send({ cmd: 'nack-next' });
    const reply = await armed;
    if (reply.armed !== child.pid) return fail(`reply ${JSON.stringify(reply)}`);
  }

  child.once('message', (reply) => {
    if (reply.bytes !== FIRST + REST || reply.bad !== 0)
      return fail(`reply ${JSON.stringify(reply)}, expected ${FIRST + REST} bytes`);
    server.close();
    finish();
  });
  child.send({ cmd: 'socket', offset: 0 }, socket);
  client.end(pattern(FIRST, REST));
}

function dgramMode() {
  const shared = dgram.createSocket('udp4');
  const sender = dgram.createSocket('udp4');
  shared.on('message', () => fail('the parent received a datagram'));
  shared.bind(0, '127.0.0.1', () => {
    const { port } = shared.address();
    child.once('message', (reply) => {
      if (reply.bound !== child.pid) return fail(`reply ${JSON.stringify(reply)}`);
      shared.close();
      let answers = 0;
      sender.on('message', (answer) => {
        if (answer.toString() !== `c:${child.pid}`) return fail(`answer ${answer}`);
        if (++answers < ROUNDS) return sender.send('ping', port, '127.0.0.1');
        sender.close();
        finish();
      });
      sender.send('ping', port, '127.0.0.1');
    });
    child.send({ cmd: 'dgram' }, shared);
  });
}

const modes = { serve: serveMode, socket: socketMode, nack: socketMode, dgram: dgramMode };
if (!modes[mode]) {
  console.log(`unknown mode ${mode}`);
  process.exit(2);
}
modes[mode]();
