// wsgw-demo, the demo backend, over plain HTTP (no browser): it refuses to
// start without --insecure-demo, signs tokens the gateways accept, starts
// jobs only for a valid bearer token, publishes their progress through the
// gateways (failing over when one is down), serves its page under a strict
// CSP, refuses malformed requests, and exits 0 on SIGTERM mid-job.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  Gateway, RedisServer, T, WsClient, decodeJwt, makeTmpDir, randomSecret, verifyJwt, waitFor,
} from '../integration/lib/index.mjs';
import { DEMO_BIN, DemoBackend } from './lib/demo.mjs';

let dir;
let secret;
let secretFile;
let apiKeyFile;
let redis;
let gwA;
let gwB;
let demo;

before(async () => {
  dir = makeTmpDir('wsgw-demo-');
  secret = randomSecret(48);
  secretFile = path.join(dir, 'secret');
  apiKeyFile = path.join(dir, 'api-keys');
  fs.writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  fs.writeFileSync(apiKeyFile, `# the demo's key\n${randomSecret(40)}\n`, { mode: 0o600 });
  redis = await new RedisServer({ name: 'redis-demo' }).start();
  const gw = (name) => new Gateway({ name, redis: redis.url, secretFile, args: ['--api-key-file', apiKeyFile] });
  gwA = await gw('gateway-A').start();
  gwB = await gw('gateway-B').start();
  demo = await new DemoBackend({
    gatewayPorts: [gwA.port, gwB.port], secretFile, apiKeyFile, args: ['--job-seconds', '3', '--fail-percent', '0'],
  }).start();
});

after(async () => {
  const errors = [];
  for (const p of [demo, gwB, gwA]) {
    try { await p?.stop(); } catch (e) { errors.push(e); }
  }
  await redis?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (errors.length) throw errors[0];
});

/** A raw HTTP exchange (the request as text); resolves {status, headers, body}. */
function rawHttp(port, request) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    sock.setTimeout(T(5000), () => sock.destroy(new Error('timeout')));
    sock.on('data', (d) => { data += d.toString('utf8'); });
    sock.on('error', reject);
    sock.on('close', () => {
      const [head, ...rest] = data.split('\r\n\r\n');
      const lines = head.split('\r\n');
      const headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(lines[0].split(' ')[1]), headers, body: rest.join('\r\n\r\n') });
    });
    sock.end(request);
  });
}

function post(pathname, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const extra = Object.entries({ 'Content-Type': 'application/json', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return rawHttp(demo.port, `POST ${pathname} HTTP/1.1\r\nHost: 127.0.0.1:${demo.port}\r\n${extra}Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
}

const login = async (name) => JSON.parse((await post('/demo/login', { name })).body);

test('refuses to start without --insecure-demo, and names the reason', () => {
  const r = spawnSync(DEMO_BIN, ['--secret-file', secretFile, '--api-key-file', apiKeyFile], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /refusing to start without --insecure-demo/);
  const short = path.join(dir, 'short');
  fs.writeFileSync(short, 'too short');
  const r2 = spawnSync(DEMO_BIN, ['--insecure-demo', '--secret-file', short, '--api-key-file', apiKeyFile], { encoding: 'utf8' });
  assert.equal(r2.status, 2);
  assert.match(r2.stderr, /shorter than 32 bytes/);
});

test('the page is served under a strict CSP whose connect-src lists both gateways', async () => {
  const r = await rawHttp(demo.port, `GET / HTTP/1.1\r\nHost: localhost:${demo.port}\r\n\r\n`);
  assert.equal(r.status, 200);
  assert.match(r.body, /<script type="module" src="\/app.js"><\/script>/);
  assert.doesNotMatch(r.body, /<script>|\sstyle=|\son[a-z]+=/, 'no inline script, style or handler');
  const csp = r.headers['content-security-policy'];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self';/);
  assert.match(csp, new RegExp(`connect-src 'self' ws://localhost:${gwA.port} ws://localhost:${gwB.port}$`));
  for (const f of ['/app.js', '/wsgw-client.js', '/style.css']) {
    assert.equal((await rawHttp(demo.port, `GET ${f} HTTP/1.1\r\nHost: x\r\n\r\n`)).status, 200, f);
  }
  assert.equal((await rawHttp(demo.port, 'GET /../secret HTTP/1.1\r\nHost: x\r\n\r\n')).status, 404);
});

test('login signs a connection token that a gateway accepts, and gives the gateway URLs', async () => {
  const r = await login('alice');
  assert.deepEqual(r.gateways, [
    { name: 'A', url: `ws://127.0.0.1:${gwA.port}/ws` }, { name: 'B', url: `ws://127.0.0.1:${gwB.port}/ws` }]);
  const { header, payload } = verifyJwt(r.token, secret);
  assert.equal(header.alg, 'HS256');
  assert.equal(payload.sub, 'alice');
  assert.deepEqual(payload.channels, ['chat:*']);
  assert.deepEqual(payload.publish, ['chat:*']);
  const c = await WsClient.connect(gwB.url);
  try {
    assert.equal((await c.auth(r.token)).user, 'alice');
  } finally {
    c.close();
  }
  for (const bad of ['', 'a b', 'x'.repeat(33), 'bob"}']) {
    assert.equal((await post('/demo/login', { name: bad })).status, 400, JSON.stringify(bad));
  }
  assert.equal((await post('/demo/login', 'not json')).status, 400);
  assert.equal((await post('/demo/login', { name: 'a' }, { 'Content-Type': 'text/plain' })).status, 415);
});

test('a job needs a valid bearer token; it publishes queued, 0..100, done on job:<id> through the gateways', async () => {
  assert.equal((await post('/demo/jobs', {})).status, 401);
  const forged = (await login('mallory')).token.replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A'));
  assert.equal((await post('/demo/jobs', {}, { Authorization: `Bearer ${forged}` })).status, 401);

  const { token } = await login('carol');
  const r = await post('/demo/jobs', {}, { Authorization: `Bearer ${token}` });
  assert.equal(r.status, 201);
  const job = JSON.parse(r.body);
  assert.match(job.id, /^[0-9a-f]{12}$/);
  assert.equal(job.channel, `job:${job.id}`);
  const claims = decodeJwt(job.token).payload;
  assert.equal(claims.sub, 'carol');
  assert.equal(claims.channel, job.channel);

  const c = await WsClient.connect(gwA.url);
  try {
    await c.auth(token);
    await c.subscribe(job.channel, { token: job.token });
    const states = [];
    for (;;) {
      const m = await c.nextOn(job.channel, () => true, T(10000));
      states.push(m.data.state === 'running' ? m.data.progress : m.data.state);
      if (m.data.state === 'done') break;
    }
    // Subscribing right after the answer: the latest state (queued) first, then everything.
    assert.deepEqual(states, ['queued', ...Array.from({ length: 21 }, (_, i) => i * 5), 'done']);
  } finally {
    c.close();
  }
});

test('malformed requests are refused with a status, not a hang', async () => {
  const cases = [
    ['GARBAGE\r\n\r\n', 400],
    ['POST /demo/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n', 411],
    ['POST /demo/login HTTP/1.1\r\nContent-Length: 99999\r\n\r\n', 413],
    [`GET / HTTP/1.1\r\nX: ${'a'.repeat(9000)}\r\n\r\n`, 431],
    ['DELETE /demo/jobs HTTP/1.1\r\n\r\n', 405],
  ];
  for (const [req, status] of cases) assert.equal((await rawHttp(demo.port, req)).status, status, req.slice(0, 30));
});

test('with gateway A down, jobs still publish through B; SIGTERM mid-job exits 0', async () => {
  await gwA.stop();
  const { token } = await login('dave');
  const job = JSON.parse((await post('/demo/jobs', {}, { Authorization: `Bearer ${token}` })).body);
  await waitFor(async () => Number(await redis.command('XLEN', `wsgw:h:{${job.channel}}`)) >= 3,
    { timeout: T(10000), what: 'job messages stored through gateway B' });
  await demo.stop(); // throws unless exit 0 without a sanitizer report
  assert.match(demo.stderr, /publish_failed/, 'the failover was logged');
});
