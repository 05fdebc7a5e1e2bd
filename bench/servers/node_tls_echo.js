// Node.js TLS echo server: node node_tls_echo.js PORT CERT KEY
'use strict';
const tls = require('tls');
const fs = require('fs');
const [port, cert, key] = [Number(process.argv[2]), process.argv[3], process.argv[4]];
tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (sock) => {
  sock.setNoDelay(true);
  sock.on('data', (d) => sock.write(d));
  sock.on('error', () => {});
}).on('tlsClientError', () => {}).listen({ port, host: '127.0.0.1', backlog: 511 });
