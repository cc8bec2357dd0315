// One gateway without --redis: the in-process bus carries messages between
// clients of the same process, and the process is ready without Redis. Also
// configuration through WSGW_* environment variables and JSON-line logs.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Scope, uniq, freePort, QUIET_MS } from './lib/index.mjs';

const s = new Scope('inproc');
let gw;
before(async () => {
  gw = await s.gateway({ name: 'inproc' });
});
after(() => s.close());

const isMsg = (channel) => (m) => m.type === 'message' && m.channel === channel;
const perms = { channels: ['chat:*'], publish: ['chat:*'] };

describe('in-process bus', () => {
  test('/healthz and /readyz answer 200 with no Redis configured', async () => {
    assert.equal((await gw.get('/healthz')).status, 200);
    assert.equal((await gw.get('/readyz')).status, 200);
  });

  test('a publish reaches every subscriber of the process once, the sender if subscribed, nobody else', async () => {
    const room = `chat:${uniq('room')}`;
    const alice = await s.user(gw, { sub: uniq('alice'), ...perms }, 'alice');
    const bob = await s.user(gw, { sub: uniq('bob'), ...perms }, 'bob');
    const bob2 = await s.user(gw, { sub: bob.user, ...perms }, 'bob-2nd-tab');
    const carol = await s.user(gw, { sub: uniq('carol'), ...perms }, 'carol');
    const dave = await s.user(gw, { sub: uniq('dave'), ...perms }, 'dave');
    for (const c of [alice, bob, bob2]) await c.subscribe(room);
    await dave.subscribe(`chat:${uniq('elsewhere')}`);
    await alice.publish(room, { text: 'hello' });
    for (const c of [alice, bob, bob2]) {
      const m = await c.nextMessage(isMsg(room));
      assert.deepEqual(m.data, { text: 'hello' }, c.name);
      assert.equal(m.from, alice.user, c.name);
    }
    await Promise.all([alice, bob, bob2, carol, dave].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('a publisher that is not subscribed does not get its own message', async () => {
    const room = `chat:${uniq('room')}`;
    const alice = await s.user(gw, { sub: uniq('alice'), ...perms });
    const bob = await s.user(gw, { sub: uniq('bob'), ...perms });
    await bob.subscribe(room);
    await alice.publish(room, 'x');
    assert.equal((await bob.nextMessage(isMsg(room))).data, 'x');
    await alice.expectNoMessage(QUIET_MS, { type: 'message' });
  });

  test('200 messages from two publishers arrive complete and in per-publisher order', async () => {
    const room = `chat:${uniq('burst')}`;
    const p1 = await s.user(gw, { sub: uniq('p1'), ...perms });
    const p2 = await s.user(gw, { sub: uniq('p2'), ...perms });
    const sub = await s.user(gw, { sub: uniq('sub'), ...perms });
    await sub.subscribe(room);
    for (let i = 0; i < 100; i++) {
      p1.send({ type: 'publish', id: i + 1, channel: room, data: { p: 1, i } });
      p2.send({ type: 'publish', id: i + 1, channel: room, data: { p: 2, i } });
    }
    const next = { 1: 0, 2: 0 };
    for (let k = 0; k < 200; k++) {
      const m = await sub.nextMessage(isMsg(room));
      assert.equal(m.data.i, next[m.data.p], `publisher ${m.data.p} out of order`);
      next[m.data.p] += 1;
    }
    assert.deepEqual(next, { 1: 100, 2: 100 });
    await sub.expectNoMessage(QUIET_MS, { type: 'message' });
  });

  test('unsubscribe stops delivery to that client only', async () => {
    const room = `chat:${uniq('room')}`;
    const alice = await s.user(gw, { sub: uniq('alice'), ...perms });
    const bob = await s.user(gw, { sub: uniq('bob'), ...perms });
    await alice.subscribe(room);
    await bob.subscribe(room);
    await bob.unsubscribe(room);
    await alice.publish(room, 'only alice');
    assert.equal((await alice.nextMessage(isMsg(room))).data, 'only alice');
    await bob.expectNoMessage(QUIET_MS, { type: 'message' });
  });

  test('a subscriber that disconnects does not disturb the others', async () => {
    const room = `chat:${uniq('room')}`;
    const alice = await s.user(gw, { sub: uniq('alice'), ...perms });
    const gone = await s.user(gw, { sub: uniq('gone'), ...perms });
    const bob = await s.user(gw, { sub: uniq('bob'), ...perms });
    for (const c of [gone, bob]) await c.subscribe(room);
    await gone.terminate();
    await alice.publish(room, 1);
    await alice.publish(room, 2);
    assert.equal((await bob.nextMessage(isMsg(room))).data, 1);
    assert.equal((await bob.nextMessage(isMsg(room))).data, 2);
  });
});

describe('configuration and logs', () => {
  test('every flag can come from WSGW_<FLAG> environment variables', async () => {
    const port = await freePort();
    const g = await s.gateway({
      name: 'inproc-env',
      port,
      listenFlag: false, // no command-line flags at all
      secretFile: null,
      logLevel: null,
      drainSeconds: null,
      env: {
        WSGW_LISTEN: `127.0.0.1:${port}`,
        WSGW_JWT_SECRET_FILE: s.secretFile,
        WSGW_MAX_MESSAGE_BYTES: '1024',
        WSGW_LOG_LEVEL: 'warn',
        WSGW_DRAIN_SECONDS: '0',
      },
    });
    assert.deepEqual(g.argv(), []);
    const c = await s.user(g, { sub: uniq('alice') });
    await c.ping();
    c.send({ type: 'ping', id: 2, pad: 'x'.repeat(1100) });
    await c.expectClose(1009);
    await g.stop();
  });

  test('stderr holds JSON log lines only', async () => {
    const g = await s.gateway({ name: 'inproc-logs', logLevel: 'debug' });
    const c = await s.user(g, { sub: uniq('alice'), ...perms });
    await c.subscribe('chat:logs');
    await c.publish('chat:logs', 1);
    const bad = await s.connect(g);
    bad.sendRaw('not json');
    await bad.expectClose(1008);
    await c.close();
    const r = await g.stop();
    const lines = r.stderr.split('\n').filter((l) => l.trim());
    assert.ok(lines.length > 0, 'no log lines at debug level');
    for (const line of lines) {
      let v;
      assert.doesNotThrow(() => { v = JSON.parse(line); }, `not a JSON log line: ${line}`);
      assert.equal(typeof v, 'object', `not a JSON object: ${line}`);
    }
  });
});
