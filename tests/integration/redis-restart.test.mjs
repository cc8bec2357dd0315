// Redis outages as users see them: connected clients stay connected, /readyz
// says 503 while Redis is gone, a publish gets "unavailable", and once Redis
// is back (a new, empty process on the same port) the gateways subscribe
// again and messages flow. Also a gateway started while Redis is down.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Scope, uniq, redisCli, waitFor, T, QUIET_MS } from './lib/index.mjs';

const isMsg = (channel) => (m) => m.type === 'message' && m.channel === channel;

describe('Redis killed and restarted under running gateways', () => {
  const s = new Scope('restart');
  let redis;
  let A;
  let B;
  let alice; // on A: chat:* both ways, subscribed to the room
  let bob; // on B: subscribed to the room
  let carol; // on A: subscribed to a job channel
  const room = `chat:${uniq('room')}`;
  const job = `job:${uniq('job')}`;
  const closes = [];

  before(async () => {
    redis = await s.redis();
    [A, B] = await Promise.all([s.gateway({ name: 'restart-A', redis }), s.gateway({ name: 'restart-B', redis })]);
    alice = await s.user(A, { sub: uniq('alice'), channels: ['chat:*'], publish: ['chat:*'] }, 'alice@A');
    bob = await s.user(B, { sub: uniq('bob'), channels: ['chat:*'] }, 'bob@B');
    carol = await s.user(A, { sub: uniq('carol'), channels: ['job:*'] }, 'carol@A');
    await alice.subscribe(room);
    await bob.subscribe(room);
    await carol.subscribe(job);
    for (const c of [alice, bob, carol]) c.closed.then((info) => closes.push({ name: c.name, ...info }));
    await waitFor(async () => (await redis.numsub(`wsgw:${room}`)) === 2, { timeout: T(5000), what: 'room on both gateways' });
  });
  after(() => s.close());

  test('before the outage: messages flow and both gateways are ready', async () => {
    await alice.publish(room, 'before');
    assert.equal((await bob.nextMessage(isMsg(room))).data, 'before');
    assert.equal((await alice.nextMessage(isMsg(room))).data, 'before');
    assert.equal((await A.get('/readyz')).status, 200);
    assert.equal((await B.get('/readyz')).status, 200);
  });

  test('during the outage: /readyz 503, /healthz 200, clients stay connected, ping works', async () => {
    await redis.kill();
    await Promise.all([A.waitStatus('/readyz', 503, T(10000)), B.waitStatus('/readyz', 503, T(10000))]);
    assert.equal((await A.get('/healthz')).status, 200);
    assert.equal((await B.get('/healthz')).status, 200);
    for (const c of [alice, bob, carol]) {
      await c.ping();
      c.assertOpen();
    }
    assert.deepEqual(closes, []);
  });

  test('during the outage: a client publish gets error "unavailable" and the connection stays open', async () => {
    const r = await alice.expectError({ type: 'publish', id: 77, channel: room, data: 'lost' }, 'unavailable');
    assert.equal(r.id, 77);
    await alice.ping();
    await bob.expectNoMessage(QUIET_MS, { type: 'message' });
    assert.deepEqual(closes, []);
  });

  test('during the outage: new clients can still authenticate', async () => {
    const d = await s.user(B, { sub: uniq('dave') });
    await d.ping();
    await d.close();
  });

  test('after the restart: /readyz 200 again and the gateways subscribe again', async () => {
    await redis.start();
    await Promise.all([A.waitStatus('/readyz', 200, T(20000)), B.waitStatus('/readyz', 200, T(20000))]);
    await waitFor(async () => {
      const l = await redis.channels('wsgw:*');
      return [`wsgw:${room}`, `wsgw:${job}`, `wsgw:user:${alice.user}`, `wsgw:user:${bob.user}`].every((c) => l.includes(c));
    }, { timeout: T(10000), what: 'subscriptions restored in Redis' });
    assert.equal(await redis.numsub(`wsgw:${room}`), 2);
    assert.deepEqual(closes, []);
  });

  test('after the restart: a redis-cli PUBLISH reaches the subscriber', async () => {
    await redisCli(redis.port, 'PUBLISH', `wsgw:${job}`, '{"data":{"progress":90}}');
    assert.deepEqual((await carol.nextMessage(isMsg(job))).data, { progress: 90 });
    await redisCli(redis.port, 'PUBLISH', `wsgw:user:${bob.user}`, '{"data":"hi bob"}');
    assert.equal((await bob.nextMessage(isMsg(`user:${bob.user}`))).data, 'hi bob');
  });

  test('after the restart: a client publish reaches both gateways once', async () => {
    await alice.publish(room, 'after');
    assert.equal((await bob.nextMessage(isMsg(room))).data, 'after');
    assert.equal((await alice.nextMessage(isMsg(room))).data, 'after');
    await bob.expectNoMessage(QUIET_MS, { type: 'message' });
    await alice.expectNoMessage(QUIET_MS, { type: 'message' });
    await carol.expectNoMessage(QUIET_MS, { type: 'message' });
    assert.deepEqual(closes, []);
  });

  test('a second outage and restart is survived too', async () => {
    await redis.kill();
    await A.waitStatus('/readyz', 503, T(10000));
    await redis.start();
    await A.waitStatus('/readyz', 200, T(20000));
    await waitFor(async () => (await redis.numsub(`wsgw:${job}`)) === 1, { timeout: T(10000), what: 'job channel restored' });
    await redis.publish(`wsgw:${job}`, { data: 'again' });
    assert.equal((await carol.nextMessage(isMsg(job))).data, 'again');
    assert.deepEqual(closes, []);
  });
});

describe('Redis down when the gateway starts', () => {
  const s = new Scope('late-redis');
  let redis;
  let gw;
  let early; // subscribed (or tried to) before Redis was up
  let earlyReply;
  const job = `job:${uniq('early')}`;

  before(async () => {
    redis = await s.redis({ start: false }); // a free port, nothing listening yet
  });
  after(() => s.close());

  test('the gateway starts: /healthz 200, /readyz 503', async () => {
    gw = await s.gateway({ name: 'late-redis', redis, waitReady: false });
    assert.equal((await gw.get('/healthz')).status, 200);
    await gw.waitStatus('/readyz', 503, T(5000));
  });

  test('clients can authenticate; subscribe answers subscribed or unavailable', async () => {
    early = await s.user(gw, { sub: uniq('alice'), channels: ['job:*'] });
    await early.ping();
    earlyReply = await early.request({ type: 'subscribe', channel: job });
    assert.ok(earlyReply.type === 'subscribed' || (earlyReply.type === 'error' && earlyReply.code === 'unavailable'),
      `unexpected reply ${JSON.stringify(earlyReply)}`);
    early.assertOpen();
  });

  test('once Redis starts: /readyz 200 and subscriptions work', async () => {
    await redis.start();
    await gw.waitStatus('/readyz', 200, T(20000));
    const late = await s.user(gw, { sub: uniq('bob'), channels: ['job:*'] });
    await late.subscribe(job);
    if (earlyReply.type !== 'subscribed') await early.subscribe(job);
    await waitFor(async () => (await redis.numsub(`wsgw:${job}`)) === 1, { timeout: T(10000), what: `wsgw:${job} subscribed in Redis` });
    await redisCli(redis.port, 'PUBLISH', `wsgw:${job}`, '{"data":{"progress":5}}');
    assert.deepEqual((await late.nextMessage(isMsg(job))).data, { progress: 5 });
    assert.deepEqual((await early.nextMessage(isMsg(job))).data, { progress: 5 });
    await waitFor(async () => (await redis.numsub(`wsgw:user:${early.user}`)) === 1, { timeout: T(10000), what: 'user channel of the early client' });
    await redis.publish(`wsgw:user:${early.user}`, { data: 'welcome' });
    assert.equal((await early.nextMessage(isMsg(`user:${early.user}`))).data, 'welcome');
  });
});
