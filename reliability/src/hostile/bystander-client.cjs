/**
 * The bystander's process (see BystanderClient in bystander.ts): times
 * ordinary calls whatever the test's own process is busy with. Reads one
 * JSON line per measurement on stdin: the calls, as
 * [{ name, address, path, hex }]; makes them all at once over channels it
 * keeps open, and answers with one JSON line: [{ name, code, details, ms }].
 */
'use strict';
const grpc = require('@grpc/grpc-js');
const readline = require('node:readline');

const [token] = process.argv.slice(2);
const metadata = new grpc.Metadata();
metadata.set('authorization', `Bearer ${token}`);
const identity = (b) => b;
const clients = new Map();
const clientFor = (address) => {
  if (!clients.has(address)) clients.set(address, new grpc.Client(address, grpc.credentials.createInsecure()));
  return clients.get(address);
};

function timed({ name, address, path, hex }) {
  return new Promise((resolve) => {
    const started = performance.now();
    clientFor(address).makeUnaryRequest(path, identity, identity, Buffer.from(hex, 'hex'), metadata, { deadline: Date.now() + 30_000 }, (err) =>
      resolve({ name, code: err ? err.code : grpc.status.OK, details: err ? err.details : '', ms: Math.round(performance.now() - started) }),
    );
  });
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const calls = JSON.parse(line);
  process.stdout.write(`${JSON.stringify(await Promise.all(calls.map(timed)))}\n`);
});
process.stdin.on('end', () => {
  for (const client of clients.values()) client.close();
});
