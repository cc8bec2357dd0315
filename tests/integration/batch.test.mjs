// Batched publishing with history: the consecutive messages of one
// POST /api/publish to one history channel go to Redis as one script call
// (consecutive offsets, one PUBLISH of them all) and gateways split them
// again. What a backend and a browser notice: the answer gives every message
// its own offset, in order; subscribers on another gateway get each message
// once, in order, whether live, recovering with `since` while the batch
// lands, or reading the latest state; a request mixing channels keeps each
// channel's order and the request's order; Redis losing its scripts
// (SCRIPT FLUSH) costs nothing; `wsgw publish` continues the same offsets.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Scope, uniq, T,
  apiKey, apiKeyFile, apiPost, runPublishCli,
  assertPosition, assertOffsets, takeMessages, takeUntilOffset, subscribeSince,
} from './lib/index.mjs';

const s = new Scope('batch');
const key = apiKey(40);
let redis;
let A;
let B;

before(async () => {
  redis = await s.redis();
  const keys = ['--api-key-file', apiKeyFile(s, 'keys', key)];
  [A, B] = await Promise.all([
    s.gateway({ name: 'batch-A', redis, args: keys }),
    s.gateway({ name: 'batch-B', redis, args: keys }),
  ]);
});
after(() => s.close());

const ok = (r, what) => assert.equal(r.status, 200, `${what}: HTTP ${r.status} ${r.body}`);

/** A client on gw subscribed to channel (since when given); resolves the client and the reply. */
async function listener(gw, channel, name, since) {
  const c = await s.user(gw, { sub: uniq(name), channels: ['*'] }, name);
  const reply = await subscribeSince(c, channel, since);
  return { c, reply };
}

/** POSTs messages [{channel, data}] as one batch; resolves the results. */
async function batch(gw, messages) {
  const r = await apiPost(gw, key, { messages }, { timeout: T(15000) });
  ok(r, 'batch');
  assert.equal(r.json?.results?.length, messages.length, `results: ${r.body.slice(0, 300)}`);
  return r.json.results;
}

const range = (n, f) => Array.from({ length: n }, (_, i) => f(i));

/** How often Redis ran each of cmds so far (INFO commandstats; script calls included). */
async function calls(...cmds) {
  const info = String(await redis.command('INFO', 'commandstats'));
  return cmds.map((c) => Number((info.match(new RegExp(`cmdstat_${c}:calls=(\\d+)`)) || [])[1] || 0));
}

/** Runs fn; resolves what it resolved and how many EVALSHA and PUBLISH Redis ran meanwhile. */
async function counting(fn) {
  const [e0, p0] = await calls('evalsha', 'publish');
  const out = await fn();
  const [e1, p1] = await calls('evalsha', 'publish');
  return { out, evalsha: e1 - e0, publish: p1 - p0 };
}

describe('one history channel', () => {
  test('250 messages in one request: offsets 1..250 in order; each delivered once, in order, on both gateways; history has them', async () => {
    const job = `job:${uniq('b')}`;
    const onA = await listener(A, job, 'onA');
    const onB = await listener(B, job, 'onB');
    const { out: res, evalsha, publish } = await counting(() => batch(A, range(250, (i) => ({ channel: job, data: { i } }))));
    // Runs of at most 100: one script call and one PUBLISH each.
    assert.deepEqual({ evalsha, publish }, { evalsha: 3, publish: 3 }, 'Redis commands for 250 messages');
    const epoch = res[0].epoch;
    res.forEach((r, i) => assertPosition(r, i + 1, epoch, `results[${i}]`));
    for (const { c } of [onA, onB]) {
      const ms = await takeMessages(c, job, 250);
      assertOffsets(ms, 1, 250, epoch, c.name);
      assert.deepEqual(ms.map((m) => m.data.i), range(250, (i) => i), `${c.name}: data in order`);
      // Nothing more: no message twice.
      await assert.rejects(c.nextOn(job, undefined, T(300)), undefined, `${c.name}: a message after the last`);
    }
    // Recovery from the middle of the batch, and the latest state, from the stream.
    const late = await listener(B, job, 'late', { offset: 180, epoch });
    assert.equal(late.reply.recovered, true, `subscribed: ${JSON.stringify(late.reply)}`);
    assertOffsets(await takeMessages(late.c, job, 70), 181, 250, epoch, 'recovered');
    const fresh = await listener(A, job, 'fresh');
    assertPosition(fresh.reply, 250, epoch, 'subscribed');
    const latest = await fresh.c.nextOn(job);
    assert.equal(latest.offset, 250, `latest state: ${JSON.stringify(latest)}`);
    assert.equal(latest.data.i, 249);
  });

  test('a subscriber recovering with since while batches land: every offset once, in order', async () => {
    const job = `job:${uniq('r')}`;
    const [first] = await batch(A, [{ channel: job, data: 0 }]);
    const c = await s.user(B, { sub: uniq('rec'), channels: ['*'] }, 'rec');
    const posting = Promise.all(range(3, (k) => batch(A, range(100, (i) => ({ channel: job, data: 1 + k * 100 + i })))));
    const reply = await subscribeSince(c, job, { offset: 1, epoch: first.epoch });
    assert.equal(reply.recovered, true, `subscribed: ${JSON.stringify(reply)}`);
    const results = (await posting).flat();
    const top = Math.max(...results.map((r) => r.offset));
    assert.equal(top, 301);
    const ms = await takeUntilOffset(c, job, 301);
    assertOffsets(ms, 2, 301, first.epoch, 'recovered, then live');
    await assert.rejects(c.nextOn(job, undefined, T(300)), undefined, 'a message after the last');
  });

  test('SCRIPT FLUSH before a batch: published as usual, offsets continue', async () => {
    const job = `job:${uniq('f')}`;
    const { c } = await listener(B, job, 'flush');
    const before1 = await batch(A, range(3, (i) => ({ channel: job, data: i })));
    await redis.command('SCRIPT', 'FLUSH');
    const after1 = await batch(A, range(4, (i) => ({ channel: job, data: 3 + i })));
    after1.forEach((r, i) => assertPosition(r, 4 + i, before1[0].epoch, `after the flush, results[${i}]`));
    assertOffsets(await takeMessages(c, job, 7), 1, 7, before1[0].epoch, 'delivered');
  });

  test('wsgw publish after a batch takes the next offset', async () => {
    const job = `job:${uniq('cli')}`;
    const res = await batch(A, range(5, (i) => ({ channel: job, data: i })));
    const r = await runPublishCli(['--redis', redis.url, '--channel', job, '--data', '{"cli":true}']);
    assert.equal(r.code, 0, `wsgw publish: ${r.stderr}`);
    assertPosition(r.json, 6, res[0].epoch, 'wsgw publish');
  });
});

describe('mixed batches', () => {
  test('several channels, with and without history, interleaved: per-channel offsets and order, and the request order on one client', async () => {
    const j1 = `job:${uniq('m1')}`;
    const j2 = `job:${uniq('m2')}`;
    const chat = `chat:${uniq('m')}`;
    const news = `news:${uniq('m')}`; // no history
    const seq = [j1, j1, j1, chat, chat, news, j1, j2, 'no spaces allowed', j1, j2, news, chat, j1];
    const all = await s.user(B, { sub: uniq('all'), channels: ['*'] }, 'all');
    for (const ch of [j1, j2, chat, news]) await subscribeSince(all, ch);
    const { out: res, evalsha, publish } = await counting(() => batch(A, seq.map((channel, i) => ({ channel, data: { i } }))));
    // One script call per run of history messages, which a message
    // without history ends ([j1 j1 j1 | chat chat] news [j1 | j2 | j1 | j2]
    // news [chat | j1]); in it one group, and one PUBLISH, per stretch of
    // one channel (8), and one PUBLISH per plain message (2).
    assert.deepEqual({ evalsha, publish }, { evalsha: 3, publish: 10 }, 'Redis commands for the mixed batch');
    const want = new Map();
    seq.forEach((ch, i) => {
      const r = res[i];
      if (ch === 'no spaces allowed') {
        assert.ok(r.error && !('offset' in r), `results[${i}]: ${JSON.stringify(r)}`);
      } else if (ch === news) {
        assert.deepEqual(r, {}, `results[${i}] (no history)`);
      } else {
        const prev = want.get(ch) || [];
        assertPosition(r, prev.length + 1, prev[0]?.epoch, `results[${i}] on ${ch}`);
        want.set(ch, [...prev, r]);
      }
    });
    const published = seq.map((ch, i) => ({ ch, i })).filter(({ ch }) => ch !== 'no spaces allowed');
    const got = [];
    for (let k = 0; k < published.length; k++) got.push(await all.nextMessage((m) => m?.type === 'message', T(5000)));
    assert.deepEqual(got.map((m) => [m.channel, m.data.i]), published.map(({ ch, i }) => [ch, i]), 'arrival order');
    for (const [ch, rs] of want) {
      assertOffsets(got.filter((m) => m.channel === ch), 1, rs.length, rs[0].epoch, ch);
    }
  });
});
