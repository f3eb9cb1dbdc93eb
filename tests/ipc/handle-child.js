// A Node.js child for the handle tests, forked by a C parent. It acts on
// each message by its cmd:
//
//   serve   with a net.Server: writes "node:<pid>\n" to every connection
//           and ends it; replies {serving: pid}.
//   socket  with a net.Socket: reads to the end, checks that byte i read
//           is (offset + i) % 251, replies {bytes, bad}, then writes
//           "node:<pid>\n" and ends the socket.
//   echo    with any handle: sends the message back with the same handle,
//           then closes its own copy once that write is done.
//
// A plain string is sent back as it is, so that its echo follows every
// echo sent before it. Anything else is answered with {unexpected}. On
// disconnect the server, if any, is closed, so the process can exit.
'use strict';

let server = null;

function checkSocket(message, socket) {
  let bytes = 0;
  let bad = 0;
  socket.on('data', (chunk) => {
    for (const byte of chunk) {
      if (byte !== (message.offset + bytes) % 251) bad++;
      bytes++;
    }
  });
  socket.on('end', () => {
    process.send({ bytes, bad });
    socket.end(`node:${process.pid}\n`);
  });
}

process.on('message', (message, handle) => {
  const cmd = message !== null && typeof message === 'object' ? message.cmd : undefined;
  if (typeof message === 'string') {
    process.send(message);
  } else if (cmd === 'serve' && handle && typeof handle.listen === 'function') {
    server = handle;
    server.on('connection', (socket) => socket.end(`node:${process.pid}\n`));
    process.send({ serving: process.pid });
  } else if (cmd === 'socket' && handle && typeof handle.pipe === 'function') {
    checkSocket(message, handle);
  } else if (cmd === 'echo' && handle) {
    process.send(message, handle, () => handle.close());
  } else {
    process.send({ unexpected: message, handle: handle ? handle.constructor.name : null });
  }
});

process.on('disconnect', () => {
  if (server !== null) server.close();
});
