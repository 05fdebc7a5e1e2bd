// Node.js echo server: node node_echo.js PORT
'use strict';
const net = require('net');
const port = Number(process.argv[2]);
net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on('data', (d) => sock.write(d));
  sock.on('error', () => {});
}).listen({ port, host: '127.0.0.1', backlog: 511 });
