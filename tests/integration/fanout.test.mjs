// Fan-out across gateways through a real Redis: a message published on one
// gateway reaches every subscriber on every gateway exactly once and nobody
// else; backends publish with a plain Redis PUBLISH; the gateway's Redis
// subscriptions follow its local subscribers (PUBSUB CHANNELS).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Scope, uniq, redisCli, waitFor, T, QUIET_MS, metrics, RespConnection } from './lib/index.mjs';

const s = new Scope('fanout');
let redis;
let A;
let B;
let C; // --redis-prefix other:

before(async () => {
  redis = await s.redis();
  [A, B, C] = await Promise.all([
    s.gateway({ name: 'fanout-A', redis }),
    s.gateway({ name: 'fanout-B', redis }),
    s.gateway({ name: 'fanout-C', redis, args: ['--redis-prefix', 'other:'] }),
  ]);
});
after(() => s.close());

const isMsg = (channel) => (m) => m.type === 'message' && m.channel === channel;

/** Waits until Redis shows `n` subscribers of prefix+channel (one per gateway holding it). */
function waitNumsub(channel, n, prefix = 'wsgw:') {
  return waitFor(async () => (await redis.numsub(prefix + channel)) === n, {
    timeout: T(5000), what: `PUBSUB NUMSUB ${prefix}${channel} = ${n}`,
  });
}

function listed(channel, prefix = 'wsgw:') {
  return redis.channels(`${prefix}*`).then((l) => l.includes(prefix + channel));
}

function waitListed(channel, want, prefix = 'wsgw:') {
  return waitFor(async () => (await listed(channel, prefix)) === want, {
    timeout: T(5000), what: `${prefix}${channel} ${want ? '' : 'no longer '}listed in PUBSUB CHANNELS`,
  });
}

describe('client publish across gateways', () => {
  test('reaches subscribers on A and B exactly once each, the sender too, nobody else', async () => {
    const room = `chat:${uniq('room')}`;
    const other = `chat:${uniq('other')}`;
    const perms = { channels: ['chat:*'], publish: ['chat:*'] };
    const alice = await s.user(A, { sub: uniq('alice'), ...perms }, 'alice@A');
    const carol = await s.user(A, { sub: uniq('carol'), ...perms }, 'carol@A');
    const bob = await s.user(B, { sub: uniq('bob'), ...perms }, 'bob@B');
    const dave = await s.user(B, { sub: uniq('dave'), ...perms }, 'dave@B'); // other room
    const erin = await s.user(A, { sub: uniq('erin'), ...perms }, 'erin@A'); // no room
    for (const c of [alice, carol, bob]) await c.subscribe(room);
    await dave.subscribe(other);
    await waitNumsub(room, 2);

    await alice.publish(room, { text: 'hello', n: 1 });
    for (const c of [alice, carol, bob]) {
      const m = await c.nextMessage(isMsg(room));
      assert.deepEqual(m.data, { text: 'hello', n: 1 }, c.name);
      assert.equal(m.from, alice.user, c.name);
    }
    // Exactly once, and nothing for the others.
    await Promise.all([alice, carol, bob, dave, erin].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('a burst of 100 messages arrives complete, in order, once, on the other gateway', async () => {
    const room = `chat:${uniq('burst')}`;
    const alice = await s.user(A, { sub: uniq('alice'), publish: ['chat:*'] });
    const bob = await s.user(B, { sub: uniq('bob'), channels: ['chat:*'] });
    await bob.subscribe(room);
    await waitNumsub(room, 1);
    for (let i = 0; i < 100; i++) alice.send({ type: 'publish', id: 1000 + i, channel: room, data: { i } });
    for (let i = 0; i < 100; i++) {
      const m = await bob.nextMessage(isMsg(room));
      assert.equal(m.data.i, i);
    }
    for (let i = 0; i < 100; i++) assert.equal((await alice.nextMessage({ id: 1000 + i })).type, 'published');
    await bob.expectNoMessage(QUIET_MS, { type: 'message' });
  });

  test('a client publish is a Redis PUBLISH on <prefix><channel>', async () => {
    const room = `chat:${uniq('wire')}`;
    const watcher = await redis.subscriber(`wsgw:${room}`);
    try {
      const alice = await s.user(A, { sub: uniq('alice'), publish: ['chat:*'] });
      await alice.publish(room, { x: 1 });
      const p = await watcher.nextPush((m) => m.channel === `wsgw:${room}`, T(5000));
      assert.doesNotThrow(() => JSON.parse(p.payload), `payload is JSON: ${p.payload}`);
    } finally {
      watcher.close();
    }
  });
});

describe('backend publish with redis-cli', () => {
  test("PUBLISH wsgw:job:42 '{\"data\":{\"progress\":40}}' reaches only the job:42 subscriber", async () => {
    const job = await s.user(B, { sub: uniq('alice'), channels: ['job:42'] }, 'job42');
    const otherJob = await s.user(A, { sub: uniq('bob'), channels: ['job:*'] }, 'job43');
    const idle = await s.user(A, { sub: uniq('carol'), channels: ['job:*'] }, 'idle');
    await job.subscribe('job:42');
    await otherJob.subscribe('job:43');
    await waitNumsub('job:42', 1);
    assert.equal(await redisCli(redis.port, 'PUBLISH', 'wsgw:job:42', '{"data":{"progress":40}}'), '1');
    const m = await job.nextMessage(isMsg('job:42'));
    assert.deepEqual(m.data, { progress: 40 });
    assert.equal('from' in m, false, `backend message must carry no from: ${JSON.stringify(m)}`);
    await Promise.all([job, otherJob, idle].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('a payload that is not an envelope is dropped and the gateway keeps serving', async () => {
    const channel = `job:${uniq('bad')}`;
    const c = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] });
    await c.subscribe(channel);
    await waitNumsub(channel, 1);
    for (const bad of ['not json', '{"nodata":1}', '[1,2,3]', '42', '"data"', '', '{"data":', '\u0000\u0001']) {
      await redis.publish(`wsgw:${channel}`, bad);
    }
    await redisCli(redis.port, 'PUBLISH', `wsgw:${channel}`, '{"data":{"ok":true}}');
    const m = await c.nextMessage({ type: 'message' });
    assert.deepEqual(m.data, { ok: true }, `first delivered message should be the valid one: ${JSON.stringify(m)}`);
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    await c.ping();
    assert.equal((await A.get('/healthz')).status, 200);
    assert.equal((await A.get('/readyz')).status, 200);
    const d = await s.user(A, { sub: uniq('dave') });
    await d.ping();
  });

  test("a message to user:alice reaches alice's connections on both gateways and nobody else", async () => {
    const sub = uniq('alice');
    const onA = await s.user(A, { sub }, 'alice@A');
    const onB = await s.user(B, { sub }, 'alice@B');
    const bob = await s.user(B, { sub: uniq('bob'), channels: ['*'] }, 'bob@B');
    await waitNumsub(`user:${sub}`, 2);
    await redisCli(redis.port, 'PUBLISH', `wsgw:user:${sub}`, '{"data":{"note":"your export is ready"}}');
    for (const c of [onA, onB]) {
      const m = await c.nextMessage(isMsg(`user:${sub}`));
      assert.deepEqual(m.data, { note: 'your export is ready' }, c.name);
    }
    await Promise.all([onA, onB, bob].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('a backend PUBLISH right after the subscribed reply is delivered', async () => {
    const channel = `job:${uniq('fast')}`;
    const c = await s.user(B, { sub: uniq('alice'), channels: ['job:*'] });
    await c.subscribe(channel);
    await redis.publish(`wsgw:${channel}`, { data: 1 });
    assert.equal((await c.nextMessage(isMsg(channel))).data, 1);
  });

  test('--redis-prefix: a gateway with prefix other: hears other:<channel> only', async () => {
    const channel = `job:${uniq('pfx')}`;
    const c = await s.user(C, { sub: uniq('alice'), channels: ['job:*'] }, 'alice@C');
    const a = await s.user(A, { sub: uniq('bob'), channels: ['job:*'] }, 'bob@A');
    await c.subscribe(channel);
    await a.subscribe(channel);
    await waitNumsub(channel, 1, 'other:');
    await waitNumsub(channel, 1, 'wsgw:');
    await redis.publish(`wsgw:${channel}`, { data: 'for wsgw' });
    await redis.publish(`other:${channel}`, { data: 'for other' });
    assert.equal((await c.nextMessage(isMsg(channel))).data, 'for other');
    assert.equal((await a.nextMessage(isMsg(channel))).data, 'for wsgw');
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    await a.expectNoMessage(QUIET_MS, { type: 'message' });
  });
});

describe('writes', () => {
  // Frames are written in the loop turn that queued them (gateway/src/flush.c):
  // a reader that keeps up costs one write per delivery, and no frame waits
  // for a WRITEABLE callback, each of which costs epoll_ctl calls and a loop
  // turn. wsgw_write_waits_total counts the times frames did wait.
  test('readers that keep up get each message in one write and never wait for their socket', async () => {
    const room = `chat:${uniq('flush')}`;
    const readers = [];
    for (let k = 0; k < 20; k++) {
      const c = await s.user(B, { sub: uniq(`r${k}`), channels: ['chat:*'] }, `reader${k}`);
      await c.subscribe(room);
      readers.push(c);
    }
    await waitNumsub(room, 1);
    const m0 = await metrics(B);
    for (let i = 0; i < 30; i++) {
      await redisCli(redis.port, 'PUBLISH', `wsgw:${room}`, JSON.stringify({ data: { i } }));
      const got = await Promise.all(readers.map((c) => c.nextMessage(isMsg(room))));
      assert.deepEqual(got.map((m) => m.data.i), readers.map(() => i));
    }
    const m1 = await metrics(B);
    const delta = (name) => m1[name] - (m0[name] || 0);
    assert.equal(delta('wsgw_deliveries_total'), 600);
    assert.equal(delta('wsgw_writes_total'), 600, 'one write per delivery');
    assert.equal(delta('wsgw_write_waits_total'), 0, 'no frame waited for a WRITEABLE callback');
  });

  // Write coalescing: messages that reach the gateway together (one Redis
  // MULTI of 50 PUBLISHes arrives in one read) leave to each subscriber in
  // far fewer writes than frames: several frames framed into one buffer.
  test('a burst of 50 messages goes to each subscriber in a few writes, in order', async () => {
    const room = `chat:${uniq('burst')}`;
    const readers = [];
    for (let k = 0; k < 5; k++) {
      const c = await s.user(B, { sub: uniq(`b${k}`), channels: ['chat:*'] }, `burst${k}`);
      await c.subscribe(room);
      readers.push(c);
    }
    await waitNumsub(room, 1);
    const m0 = await metrics(B);
    const pub = await RespConnection.connect(redis.port);
    try {
      const replies = [pub.command('MULTI')];
      for (let i = 0; i < 50; i++) replies.push(pub.command('PUBLISH', `wsgw:${room}`, JSON.stringify({ data: { i } })));
      replies.push(pub.command('EXEC'));
      await Promise.all(replies);
    } finally {
      pub.close();
    }
    for (const c of readers) {
      const got = [];
      for (let i = 0; i < 50; i++) got.push((await c.nextMessage(isMsg(room))).data.i);
      assert.deepEqual(got, [...Array(50).keys()], `${c.name}: all 50 in order`);
    }
    const m1 = await metrics(B);
    const delta = (name) => m1[name] - (m0[name] || 0);
    assert.equal(delta('wsgw_deliveries_total'), 250);
    assert.ok(delta('wsgw_writes_total') <= 25, `250 frames took ${delta('wsgw_writes_total')} writes`);
    assert.ok(delta('wsgw_coalesced_frames_total') >= 200, 'most frames shared a write');
  });
});

describe('Redis subscriptions follow local subscribers', () => {
  test('unsubscribe stops delivery and the channel leaves PUBSUB CHANNELS', async () => {
    const channel = `job:${uniq('unsub')}`;
    const c = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] });
    await c.subscribe(channel);
    await waitListed(channel, true);
    await c.unsubscribe(channel);
    await waitListed(channel, false);
    await redis.publish(`wsgw:${channel}`, { data: 'late' });
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    await c.ping();
  });

  test('the last subscriber closing its connection removes the channel, its user: channel too', async () => {
    const channel = `job:${uniq('close')}`;
    const sub = uniq('alice');
    const c = await s.user(B, { sub, channels: ['job:*'] });
    await c.subscribe(channel);
    await waitListed(channel, true);
    await waitListed(`user:${sub}`, true);
    await c.close();
    await waitListed(channel, false);
    await waitListed(`user:${sub}`, false);
  });

  test('the last subscriber vanishing without a close frame removes the channel', async () => {
    const channel = `job:${uniq('drop')}`;
    const c = await s.user(B, { sub: uniq('alice'), channels: ['job:*'] });
    await c.subscribe(channel);
    await waitListed(channel, true);
    await c.terminate();
    await waitListed(channel, false);
  });

  test('while two clients hold a channel on one gateway and one leaves, it stays listed and delivered', async () => {
    const channel = `job:${uniq('two')}`;
    const c1 = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] }, 'c1');
    const c2 = await s.user(A, { sub: uniq('bob'), channels: ['job:*'] }, 'c2');
    await c1.subscribe(channel);
    await c2.subscribe(channel);
    await waitListed(channel, true);
    await c1.unsubscribe(channel);
    await c1.ping(); // the gateway has handled the unsubscribe completely
    await c1.expectNoMessage(QUIET_MS);
    assert.equal(await listed(channel), true, 'channel dropped from Redis while c2 still holds it');
    await redis.publish(`wsgw:${channel}`, { data: 'still here' });
    assert.equal((await c2.nextMessage(isMsg(channel))).data, 'still here');
    await c1.expectNoMessage(QUIET_MS, { type: 'message' });
    await c2.close();
    await waitListed(channel, false);
  });
});
