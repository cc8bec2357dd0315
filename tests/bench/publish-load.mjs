// publish-load: POST /api/publish as fast as a gateway answers, for
// tests/bench/publish-throughput.sh. Keeps --concurrency keep-alive
// requests in flight, each publishing one message (or --batch messages) to
// the given channel, and prints one JSON line: requests, messages, seconds,
// messages/s, and latency percentiles in ms. Node's own http module, no
// dependencies: the bench needs nothing the tests do not.
//
//   node publish-load.mjs --port 8080 --key KEY --channel job:1 \
//        [--seconds 5] [--concurrency 32] [--batch 1] [--payload-bytes 100]
//        [--channels 1]
//
// --channels N spreads the requests over N channels (the channel name with
// ":0" .. ":N-1" appended, one after the other), as many jobs reporting
// progress at once would; 1 keeps the one channel given.
import http from 'node:http';

function args() {
  const a = { port: 8080, key: '', channel: 'job:bench', seconds: 5, concurrency: 32, batch: 1, payloadBytes: 100, channels: 1 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(k in a)) throw new Error(`unknown option ${argv[i]}`);
    a[k] = typeof a[k] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  return a;
}

const o = args();
const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
const data = { state: 'running', pad: 'x'.repeat(Math.max(0, o.payloadBytes - 30)) };
const bodyFor = (channel) => (o.batch > 1
  ? JSON.stringify({ messages: Array.from({ length: o.batch }, () => ({ channel, data })) })
  : JSON.stringify({ channel, data }));
const bodies = o.channels > 1
  ? Array.from({ length: o.channels }, (_, i) => bodyFor(`${o.channel}:${i}`))
  : [bodyFor(o.channel)];
let next = 0;
const lat = [];
let requests = 0;
let failures = 0;
const t0 = process.hrtime.bigint();
const deadline = t0 + BigInt(o.seconds * 1e9);

function one() {
  const body = bodies[next++ % bodies.length];
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const req = http.request({
      host: '127.0.0.1', port: o.port, path: '/api/publish', method: 'POST', agent,
      headers: { authorization: `Bearer ${o.key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) failures++;
        lat.push(Number(process.hrtime.bigint() - start) / 1e6);
        requests++;
        resolve();
      });
    });
    req.on('error', () => { failures++; resolve(); });
    req.end(body);
  });
}

async function lane() {
  while (process.hrtime.bigint() < deadline) await one();
}

await Promise.all(Array.from({ length: o.concurrency }, lane));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
lat.sort((x, y) => x - y);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] : null);
agent.destroy();
console.log(JSON.stringify({
  requests, failures, messages: requests * o.batch, seconds: Number(secs.toFixed(3)),
  messages_per_s: Math.round((requests * o.batch) / secs),
  p50_ms: pct(0.5), p99_ms: pct(0.99),
}));
process.exit(failures ? 1 : 0);
