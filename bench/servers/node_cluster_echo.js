// Node.js echo server with the cluster module: node node_cluster_echo.js N PORT
// (N workers; the primary distributes connections, Node's default on Linux).
'use strict';
const cluster = require('cluster');
const net = require('net');
const n = Number(process.argv[2]);
const port = Number(process.argv[3]);
if (cluster.isPrimary) {
  for (let i = 0; i < n; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].kill();
    process.exit(0);
  });
} else {
  net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('data', (d) => sock.write(d));
    sock.on('error', () => {});
  }).listen({ port, host: '127.0.0.1', backlog: 511 });
}
