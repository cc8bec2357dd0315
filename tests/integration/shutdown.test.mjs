// Graceful shutdown: on SIGTERM (or SIGINT) every connected client is closed
// with 1001 and the process exits 0, with no sanitizer report.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Scope, uniq, waitFor, T } from './lib/index.mjs';

const s = new Scope('shutdown');
after(() => s.close());

async function expectAllClosed1001(clients) {
  const infos = await Promise.all(clients.map((c) => c.expectClose(1001, T(10000))));
  return infos;
}

test('SIGTERM: every client, authenticated or not, gets close 1001 and the process exits 0', async () => {
  const gw = await s.gateway({ name: 'shutdown-inproc' });
  const perms = { channels: ['chat:*'], publish: ['chat:*'] };
  const clients = [];
  for (let i = 0; i < 3; i++) {
    const c = await s.user(gw, { sub: uniq(`u${i}`), ...perms }, `authed${i}`);
    await c.subscribe('chat:shutdown');
    clients.push(c);
  }
  const pending = await s.connect(gw, 'not-yet-authenticated');
  const closed = expectAllClosed1001([...clients, pending]);
  const exit = await gw.stop({ signal: 'SIGTERM' }); // throws unless exit 0 without sanitizer report
  assert.equal(exit.code, 0);
  await closed;
});

test('SIGTERM with Redis: clients get 1001, exit 0, its Redis subscriptions go away', async () => {
  const redis = await s.redis();
  const gw = await s.gateway({ name: 'shutdown-redis', redis });
  const sub = uniq('alice');
  const c1 = await s.user(gw, { sub, channels: ['job:*'] }, 'c1');
  const c2 = await s.user(gw, { sub: uniq('bob'), channels: ['job:*'] }, 'c2');
  await c1.subscribe('job:1');
  await c2.subscribe('job:2');
  await waitFor(async () => (await redis.channels('wsgw:job:*')).length === 2, { timeout: T(5000), what: 'job channels listed' });
  const closed = expectAllClosed1001([c1, c2]);
  const exit = await gw.stop({ signal: 'SIGTERM' });
  assert.equal(exit.code, 0);
  await closed;
  await waitFor(async () => (await redis.channels('wsgw:*')).length === 0, { timeout: T(5000), what: 'no wsgw channels left' });
});

test('SIGINT: same as SIGTERM', async () => {
  const gw = await s.gateway({ name: 'shutdown-sigint' });
  const c = await s.user(gw, { sub: uniq('alice') });
  const closed = c.expectClose(1001, T(10000));
  const exit = await gw.stop({ signal: 'SIGINT' });
  assert.equal(exit.code, 0);
  await closed;
});

test('SIGTERM with no clients: exits 0 promptly', async () => {
  const gw = await s.gateway({ name: 'shutdown-idle' });
  const t0 = Date.now();
  const exit = await gw.stop({ signal: 'SIGTERM', timeout: T(5000) });
  assert.equal(exit.code, 0);
  assert.ok(Date.now() - t0 < T(5000));
});
