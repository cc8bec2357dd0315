// Redis outages as users see them: connected clients stay connected, /readyz
// says 503 while Redis is gone, a publish gets "unavailable", and once Redis
// is back (a new, empty process on the same port) the gateways subscribe
// again and messages flow. Also a gateway started while Redis is down.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
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
  let erin; // on A: a second job channel and a channel without history
  const room = `chat:${uniq('room')}`;
  const job = `job:${uniq('job')}`;
  const erinJob = `job:${uniq('erin')}`;
  const plain = `plain:${uniq('p')}`;
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
    erin = await s.user(A, { sub: uniq('erin'), channels: ['job:*', 'plain:*'] }, 'erin@A');
    await erin.subscribe(erinJob);
    await erin.subscribe(plain);
    for (const c of [alice, bob, carol, erin]) c.closed.then((info) => closes.push({ name: c.name, ...info }));
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

  test('a publish Redis takes but never answers (paused, then killed) gets "unavailable" naming its channel', async () => {
    await redisCli(redis.port, 'CLIENT', 'PAUSE', String(T(20000)), 'ALL');
    const reply = alice.request({ type: 'publish', id: 66, channel: room, data: 'in flight' });
    // Long enough for the command to reach the paused Redis.
    await sleep(200);
    await redis.kill();
    const r = await reply;
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'unavailable');
    assert.equal(r.id, 66);
    assert.equal(r.channel, room);
    assert.equal(typeof r.message, 'string');
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

  test('during the outage: resubscribing a held history channel gets "unavailable" and ends it; a held channel without history answers subscribed', async () => {
    const r = await erin.expectError({ type: 'subscribe', channel: erinJob, since: { offset: 0, epoch: 'x' } }, 'unavailable');
    assert.equal(r.channel, erinJob);
    const p = await erin.subscribe(plain);
    assert.equal('offset' in p, false);
    await erin.ping();
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

  test('after the restart: the history subscription that failed stays ended until the client subscribes again, which recovers', async () => {
    await waitFor(async () => (await redis.channels('wsgw:*')).includes(`wsgw:${plain}`), { timeout: T(10000), what: 'plain channel restored' });
    assert.equal((await redis.channels('wsgw:*')).includes(`wsgw:${erinJob}`), false, 'the ended subscription came back');
    await redisCli(redis.port, 'PUBLISH', `wsgw:${erinJob}`, '{"data":"unseen"}');
    await redisCli(redis.port, 'PUBLISH', `wsgw:${plain}`, '{"data":"seen"}');
    assert.equal((await erin.nextMessage(isMsg(plain))).data, 'seen');
    await erin.expectNoMessage(QUIET_MS, isMsg(erinJob));
    const r = await erin.subscribe(erinJob);
    assert.equal(typeof r.epoch, 'string', JSON.stringify(r));
    await redisCli(redis.port, 'PUBLISH', `wsgw:${erinJob}`, '{"data":"live"}');
    assert.equal((await erin.nextMessage(isMsg(erinJob))).data, 'live');
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

// ------------------------------------------------------------------------
// Under steady publishing, with a Redis that keeps its data (appendonly,
// fsync always: what Redis accepted survives the kill), so that the client
// on a history channel can be held to "every accepted message exactly
// once": messages published before the outage, and after it, including the
// ones that reached Redis while its gateway was still resubscribing (filled
// from the stream by the gap recovery).

describe('Redis killed for 5 s under steady publishing, then restarted', () => {
  const s = new Scope('outage');
  let redis;
  let A;
  let B;
  before(async () => {
    redis = await s.redis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    // The writer publishes 40 messages a second; the history must reach back
    // over the seconds one gateway's links may take to come back after the
    // other's (reconnect backoff up to 5 s), or its gap fill finds the stream
    // trimmed (correctly reported as a gap, but not what this test is about).
    const args = ['--publish-rate', '1000', '--publish-burst', '1000', '--history', 'chat=2000:3600'];
    [A, B] = await Promise.all([
      s.gateway({ name: 'outage-A', redis, args }),
      s.gateway({ name: 'outage-B', redis, args }),
    ]);
  });
  after(() => s.close());

  test('no client closed; /readyz 503 then 200; every subscription back; the history client got every accepted message once, in order', async () => {
    const room = `chat:${uniq('steady')}`;
    const live = `live:${uniq('nohistory')}`;
    const perms = { channels: ['chat:*', 'live:*'], publish: ['chat:*'] };
    const reader = await s.user(A, { sub: uniq('reader'), ...perms }, 'reader@A');
    const watcher = await s.user(B, { sub: uniq('watcher'), ...perms }, 'watcher@B');
    const writer = await s.user(B, { sub: uniq('writer'), ...perms }, 'writer@B');
    const closes = [];
    for (const c of [reader, watcher, writer]) c.closed.then((info) => closes.push({ name: c.name, ...info }));
    const first = await reader.subscribe(room);
    await watcher.subscribe(live);

    // The writer publishes every 25 ms, one at a time, and notes the outcome.
    const accepted = [];
    const refused = [];
    let stop = false;
    let i = 0;
    const writing = (async () => {
      while (!stop) {
        const n = i++;
        const r = await writer.request({ type: 'publish', channel: room, data: { i: n } });
        if (r.type === 'published') accepted.push(n);
        else {
          assert.equal(r.code, 'unavailable', JSON.stringify(r));
          refused.push(n);
        }
        await sleep(25);
      }
    })();

    await sleep(1000);
    await redis.kill();
    const killedAt = Date.now();
    await Promise.all([A.waitStatus('/readyz', 503, T(10000)), B.waitStatus('/readyz', 503, T(10000))]);
    await sleep(Math.max(0, killedAt + 5000 - Date.now()));
    await redis.start();
    await Promise.all([A.waitStatus('/readyz', 200, T(20000)), B.waitStatus('/readyz', 200, T(20000))]);
    const acceptedBefore = accepted.filter((n) => n < refused[0]).length;
    await sleep(1000);
    stop = true;
    await writing;

    assert.ok(acceptedBefore >= 10, `accepted before the outage: ${acceptedBefore}`);
    assert.ok(refused.length >= 10, `refused during the outage: ${refused.length}`);
    assert.ok(accepted.length - acceptedBefore >= 10, `accepted after it: ${accepted.length - acceptedBefore}`);

    // Every subscription is active again, on both gateways.
    await waitFor(async () => {
      const l = await redis.channels('wsgw:*');
      return [room, live, `user:${reader.user}`, `user:${watcher.user}`, `user:${writer.user}`]
        .every((c) => l.includes(`wsgw:${c}`));
    }, { timeout: T(10000), what: 'every channel subscribed again' });
    await redis.publish(`wsgw:${live}`, { data: 'after' });
    assert.equal((await watcher.nextOn(live)).data, 'after');
    await redis.publish(`wsgw:user:${reader.user}`, { data: 'hi' });
    assert.equal((await reader.nextOn(`user:${reader.user}`)).data, 'hi');

    // The reader: each accepted message once, in order, one epoch,
    // consecutive offsets. A publish whose reply was lost with the link may
    // still have reached Redis: such a one (refused, yet stored) may appear
    // too, once.
    const last = accepted[accepted.length - 1];
    const got = [];
    await waitFor(() => {
      for (let m; (m = reader.queue.findIndex((x) => x.type === 'message' && x.channel === room)) >= 0;) {
        got.push(reader.queue.splice(m, 1)[0]);
      }
      return got.some((m) => m.data.i === last);
    }, { timeout: T(15000), what: `message ${last} at the reader (got ${got.length})` });
    await sleep(QUIET_MS);
    got.push(...reader.queue.filter((x) => x.type === 'message' && x.channel === room));
    const seen = got.map((m) => m.data.i);
    assert.equal(new Set(seen).size, seen.length, `duplicates: ${JSON.stringify(seen)}`);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), 'in publish order');
    const missing = accepted.filter((n) => !seen.includes(n));
    assert.deepEqual(missing, [], 'accepted messages the reader never got');
    const extra = seen.filter((n) => !accepted.includes(n));
    assert.ok(extra.every((n) => refused.includes(n)) && extra.length <= 2, `unexpected messages ${JSON.stringify(extra)}`);
    assert.ok(got.every((m) => m.epoch === first.epoch), 'one epoch: the history survived');
    got.forEach((m, k) => assert.equal(m.offset, first.offset + 1 + k, `offset of message ${k}`));
    assert.deepEqual(closes, []);
  });
});

// ------------------------------------------------------------------------
// The subscriber link alone stops delivering: its TCP flow is black-holed
// (a proxy that stops forwarding it, as a NAT or load balancer that lost
// the flow would), or Redis kills just that client. The gateway's probe
// finds the silence, rebuilds the link, and the gap recovery hands the
// history client what it missed.

/** A TCP proxy to Redis that can black-hole the flows of one client name. */
class FreezableProxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.flows = [];
    this.frozenName = null;
  }

  async start() {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.targetPort, '127.0.0.1');
      const flow = { client, upstream, name: '', frozen: false };
      this.flows.push(flow);
      client.on('data', (d) => {
        const m = /wsgw-(sub|cmd)-\d+/.exec(d.toString('latin1'));
        if (m && !flow.name) flow.name = m[0];
        if (flow.name && flow.name.startsWith(this.frozenName || '\0')) flow.frozen = true;
        if (!flow.frozen) upstream.write(d);
      });
      upstream.on('data', (d) => {
        if (!flow.frozen) client.write(d);
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
      client.on('close', end);
      upstream.on('close', end);
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  /** From now on, nothing passes either way on flows named prefix*, existing or new. */
  freeze(prefix) {
    this.frozenName = prefix;
    for (const f of this.flows) if (f.name.startsWith(prefix)) f.frozen = true;
  }

  thaw() {
    this.frozenName = null;
  }

  close() {
    for (const f of this.flows) {
      f.client.destroy();
      f.upstream.destroy();
    }
    return new Promise((resolve) => this.server.close(resolve));
  }
}

describe('a subscriber link that stops delivering is detected and rebuilt', () => {
  const s = new Scope('wedge');
  let redis;
  let proxy;
  let G; // through the proxy
  let P; // straight to Redis: the publisher's gateway
  const perms = { channels: ['chat:*'], publish: ['chat:*'] };
  before(async () => {
    redis = await s.redis();
    proxy = await new FreezableProxy(redis.port).start();
    [G, P] = await Promise.all([
      s.gateway({ name: 'wedge-G', redis: `redis://127.0.0.1:${proxy.port}` }),
      s.gateway({ name: 'wedge-P', redis }),
    ]);
  });
  after(async () => {
    await proxy.close();
    await s.close();
  });

  async function publishAll(writer, room, from, to) {
    for (let n = from; n <= to; n++) await writer.publish(room, { n });
  }

  async function expectAll(reader, room, from, to) {
    const got = [];
    for (let n = from; n <= to; n++) got.push((await reader.nextOn(room, undefined, T(15000))).data.n);
    assert.deepEqual(got, Array.from({ length: to - from + 1 }, (_, k) => from + k));
    await reader.expectNoMessage(QUIET_MS, (m) => m.type === 'message' && m.channel === room);
  }

  test('black-holed flow: the probe notices within two intervals, the link is rebuilt, nothing is lost or doubled', async () => {
    const room = `chat:${uniq('wedged')}`;
    const reader = await s.user(G, { sub: uniq('reader'), ...perms }, 'reader@G');
    const writer = await s.user(P, { sub: uniq('writer'), ...perms }, 'writer@P');
    await reader.subscribe(room);
    await waitFor(async () => (await redis.numsub(`wsgw:${room}`)) === 1, { timeout: T(5000), what: 'room subscribed' });
    await publishAll(writer, room, 1, 3);
    await expectAll(reader, room, 1, 3);

    const names = (await redis.command('CLIENT', 'LIST')).split('\n');
    const subName = `wsgw-sub-${G.pid}`;
    assert.ok(names.some((l) => l.includes(`name=${subName}`)), `CLIENT LIST names the sub link:\n${names.join('\n')}`);
    proxy.freeze(subName);
    const frozenAt = Date.now();
    await publishAll(writer, room, 4, 8); // accepted by Redis, lost on the frozen flow
    proxy.thaw(); // new flows pass: the rebuilt link works
    await waitFor(() => G.logRecords().some((r) => r.event === 'bus_down'), { timeout: T(8000), what: 'the wedge detected' });
    const took = Date.now() - frozenAt;
    assert.ok(took <= T(6000), `detected after ${took} ms (probe every 2 s)`);
    await G.waitStatus('/readyz', 200, T(10000));
    await publishAll(writer, room, 9, 10);
    await expectAll(reader, room, 4, 10);
    reader.assertOpen();
    assert.ok(/no answer to a probe/.test(G.stderr), 'the reason is logged');
  });

  test('CLIENT KILL of just the sub link: rebuilt at once, nothing lost or doubled', async () => {
    const room = `chat:${uniq('killed')}`;
    const reader = await s.user(G, { sub: uniq('reader'), ...perms }, 'reader@G');
    const writer = await s.user(P, { sub: uniq('writer'), ...perms }, 'writer@P');
    await reader.subscribe(room);
    await publishAll(writer, room, 1, 2);
    await expectAll(reader, room, 1, 2);
    const line = (await redis.command('CLIENT', 'LIST')).split('\n').find((l) => l.includes(`name=wsgw-sub-${G.pid}`));
    const id = /\bid=(\d+)/.exec(line)[1];
    assert.equal(await redis.command('CLIENT', 'KILL', 'ID', id), 1);
    await publishAll(writer, room, 3, 5);
    await waitFor(async () => {
      const l = await redis.command('CLIENT', 'LIST');
      return l.includes(`name=wsgw-sub-${G.pid}`) && !l.includes(`id=${id} `);
    }, { timeout: T(10000), what: 'a new sub link' });
    await G.waitStatus('/readyz', 200, T(10000));
    await publishAll(writer, room, 6, 6);
    await expectAll(reader, room, 3, 6);
    reader.assertOpen();
  });
});
