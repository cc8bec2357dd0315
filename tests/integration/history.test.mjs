// History and latest state as users see them: a page opened mid-job shows
// the current progress at once and a page opened after the job its final
// state; every message of a history channel carries the channel's next
// offset and its epoch, one sequence across gateways, the HTTP API and
// client publishes; a plain Redis PUBLISH is delivered live but takes no
// offset and is kept nowhere; --history and the WSGW_* variables configure it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Scope, uniq, redisCli, runWsgw, freePort, T, QUIET_MS,
  apiKey, apiKeyFile, apiPublish, apiPost, assertPosition, assertOffsets,
  takeMessages, subscribeSince, assertArrivalOrder,
} from './lib/index.mjs';

const s = new Scope('history');
const key = apiKey();
const envKey = apiKey();
let redis;
let A;
let B;
let C; // --history news=5:60:latest --history chat=0:60
let E; // configured by WSGW_HISTORY, WSGW_RECOVERY_MAX_MESSAGES, WSGW_API_KEY_FILE

before(async () => {
  redis = await s.redis();
  const keys = apiKeyFile(s, 'api-keys', key);
  const envKeys = apiKeyFile(s, 'api-keys-env', envKey);
  [A, B, C, E] = await Promise.all([
    s.gateway({ name: 'history-A', redis, args: ['--api-key-file', keys] }),
    s.gateway({ name: 'history-B', redis, args: ['--api-key-file', keys] }),
    s.gateway({
      name: 'history-C',
      redis,
      args: ['--api-key-file', keys, '--history', 'news=5:60:latest', '--history', 'chat=0:60'],
    }),
    s.gateway({
      name: 'history-E',
      redis,
      env: { WSGW_HISTORY: 'news=5:60:latest', WSGW_RECOVERY_MAX_MESSAGES: '2', WSGW_API_KEY_FILE: envKeys },
    }),
  ]);
});
after(() => s.close());

const noFrom = (m) => assert.equal('from' in m, false, `a backend message must carry no from: ${JSON.stringify(m)}`);
const noPosition = (m, what) => {
  assert.equal('offset' in m, false, `${what}: no offset expected: ${JSON.stringify(m)}`);
  assert.equal('epoch' in m, false, `${what}: no epoch expected: ${JSON.stringify(m)}`);
};

/** Publishes progress values to job via the API on gw; asserts offsets 1..n; resolves the epoch. */
async function publishProgress(gw, job, values, firstOffset = 1, epoch = undefined) {
  let e = epoch;
  for (const [i, p] of values.entries()) {
    const r = await apiPublish(gw, key, job, { state: 'running', progress: p });
    assertPosition(r, firstOffset + i, e, `POST progress ${p}`);
    e = r.epoch;
  }
  return e;
}

describe('latest state on job channels (page reload)', () => {
  test('a page opened mid-job: subscribed at offset 5, then progress 40 at once, before the next update', async () => {
    const job = `job:${uniq('job')}`;
    const epoch = await publishProgress(A, job, [0, 10, 20, 30, 40]);

    // A page opened now (on the other gateway) shows 40 without waiting for an update.
    const page = await s.user(B, { sub: uniq('alice'), channels: ['job:*'] }, 'page1');
    const sub = await subscribeSince(page, job);
    assertPosition(sub, 5, epoch, 'subscribed');
    const latest = await page.nextOn(job, undefined, T(2000));
    assert.deepEqual(latest.data, { state: 'running', progress: 40 });
    assertPosition(latest, 5, epoch, 'latest message');
    noFrom(latest);
    assertArrivalOrder(page, sub, latest);

    // A second page; the next update is published right after its subscribed
    // reply: the latest stored state still comes first, and only once.
    const page2 = await s.user(A, { sub: uniq('bob'), channels: ['job:*'] }, 'page2');
    const sub2 = await subscribeSince(page2, job);
    assertPosition(sub2, 5, epoch, 'subscribed (page2)');
    const next = apiPublish(B, key, job, { state: 'running', progress: 50 });
    next.catch(() => {}); // awaited below
    const [first, second] = await takeMessages(page2, job, 2);
    assert.deepEqual([first.data.progress, first.offset], [40, 5], `page2 first message: ${JSON.stringify(first)}`);
    assert.deepEqual([second.data.progress, second.offset], [50, 6], `page2 second message: ${JSON.stringify(second)}`);
    assertArrivalOrder(page2, sub2, first, second);
    assertPosition(await next, 6, epoch, 'POST progress 50');

    // The first page gets the update once, and no repeat of the latest state.
    const upd = await page.nextOn(job);
    assertPosition(upd, 6, epoch, 'update on page1');
    assert.equal(upd.data.progress, 50);
    await Promise.all([page, page2].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('a page opened after the job finished (with a subscription token) shows its final state, and only that', async () => {
    const job = `job:${uniq('done')}`;
    const watcher = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] }, 'watcher');
    await subscribeSince(watcher, job);
    const epoch = await publishProgress(B, job, [0, 50, 100]);
    const done = await apiPublish(B, key, job, { state: 'done', result: 'https://example.test/report.pdf' });
    assertPosition(done, 4, epoch, 'POST done');
    const seen = await takeMessages(watcher, job, 4);
    assertOffsets(seen, 1, 4, epoch, 'watcher during the job');
    await watcher.close();

    // The page opened later holds only a subscription token for this job.
    const user = uniq('alice');
    const later = await s.user(B, { sub: user }, 'later');
    const sub = await subscribeSince(later, job, undefined, { token: s.token({ sub: user, channel: job, ttl: 600 }) });
    assertPosition(sub, 4, epoch, 'subscribed after the job');
    const final = await later.nextOn(job, undefined, T(2000));
    assert.deepEqual(final.data, { state: 'done', result: 'https://example.test/report.pdf' });
    assertPosition(final, 4, epoch, 'final state');
    assertArrivalOrder(later, sub, final);
    await later.expectNoMessage(QUIET_MS, { type: 'message' });
  });

  test('subscribing before the first update: offset 0, nothing stored to show, then the first update is offset 1 of that epoch', async () => {
    const job = `job:${uniq('fresh')}`;
    const c = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] });
    const sub = await subscribeSince(c, job);
    assertPosition(sub, 0, undefined, 'subscribed to a fresh job');
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    const r = await apiPublish(B, key, job, { state: 'queued' });
    assertPosition(r, 1, sub.epoch, 'first POST (the epoch the subscriber was told)');
    const m = await c.nextOn(job);
    assertPosition(m, 1, sub.epoch, 'first message');
    assert.deepEqual(m.data, { state: 'queued' });
  });

  test('a second subscribe while the first is still reading the stream gets bad_request; the first is answered once and stands', async () => {
    const job = `job:${uniq('twice')}`;
    await publishProgress(A, job, [10, 20]);
    const c = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] });
    // Both frames leave in one tick: the first one's Redis read cannot have
    // come back when the gateway reads the second.
    c.send({ type: 'subscribe', id: 1, channel: job });
    c.send({ type: 'subscribe', id: 2, channel: job });
    const second = await c.nextMessage({ id: 2 });
    assert.deepEqual(second, {
      type: 'error', id: 2, code: 'bad_request', channel: job,
      message: 'a subscribe to this channel is already in progress',
    });
    const first = await c.nextMessage({ id: 1 });
    assert.equal(first.type, 'subscribed', JSON.stringify(first));
    assertPosition(first, 2, undefined, 'the first subscribe');
    assert.deepEqual((await c.nextOn(job)).data, { state: 'running', progress: 20 });
    await apiPublish(B, key, job, { state: 'done', progress: 100 });
    assert.deepEqual((await c.nextOn(job)).data, { state: 'done', progress: 100 });
    await c.expectNoMessage(QUIET_MS, (m) => m.id === 1 || m.id === 2 || m.type === 'message');
  });
});

describe('offsets and epochs', () => {
  test('client and API publishes on a chat room share one sequence, seen alike on both gateways', async () => {
    const room = `chat:${uniq('room')}`;
    const perms = { channels: ['chat:*'], publish: ['chat:*'] };
    const alice = await s.user(A, { sub: uniq('alice'), ...perms }, 'alice@A');
    const bob = await s.user(B, { sub: uniq('bob'), ...perms }, 'bob@B');
    const sa = await subscribeSince(alice, room);
    const sb = await subscribeSince(bob, room);
    assertPosition(sa, 0, undefined, 'alice subscribed');
    assertPosition(sb, 0, sa.epoch, 'bob subscribed');
    const epoch = sa.epoch;

    const p1 = await alice.publish(room, { text: 'hi' });
    const p2 = await bob.publish(room, { text: 'hello' });
    const api = await apiPublish(A, key, room, { text: 'system notice' });
    const p4 = await alice.publish(room, { text: 'bye' });
    assertPosition(api, 3, epoch, 'POST in the middle');
    // The published reply may carry the position; when it does it must be right.
    for (const [r, o] of [[p1, 1], [p2, 2], [p4, 4]]) {
      if ('offset' in r) assertPosition(r, o, epoch, `published reply ${JSON.stringify(r)}`);
    }

    for (const c of [alice, bob]) {
      const ms = await takeMessages(c, room, 4);
      assertOffsets(ms, 1, 4, epoch, c.name);
      assert.deepEqual(ms.map((m) => m.data.text), ['hi', 'hello', 'system notice', 'bye'], c.name);
      assert.deepEqual(ms.map((m) => m.from ?? null), [alice.user, bob.user, null, alice.user], `${c.name}: from`);
    }
    await Promise.all([alice, bob].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('chat rooms deliver no latest state: subscribed at the current offset, no stored message', async () => {
    const room = `chat:${uniq('quiet')}`;
    let epoch;
    for (let i = 1; i <= 3; i++) epoch = assertPosition(await apiPublish(A, key, room, { i }), i, epoch).epoch;
    const c = await s.user(B, { sub: uniq('carol'), channels: ['chat:*'] });
    const sub = await subscribeSince(c, room);
    assertPosition(sub, 3, epoch, 'subscribed');
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    await apiPublish(A, key, room, { i: 4 });
    assertPosition(await c.nextOn(room), 4, epoch, 'next live message');
  });

  test("a backend message to user:<sub> carries an offset and epoch", async () => {
    const sub = uniq('alice');
    const c = await s.user(A, { sub });
    const r = await apiPublish(B, key, `user:${sub}`, { note: 'your export is ready' });
    assertPosition(r, 1, undefined, 'POST user:');
    const m = await c.nextOn(`user:${sub}`);
    assert.deepEqual(m.data, { note: 'your export is ready' });
    assertPosition(m, 1, r.epoch, 'user: message');
    noFrom(m);
  });

  test('a namespace without history: no offset or epoch in the reply, the answer or the messages', async () => {
    const ch = `news:${uniq('n')}`;
    const c = await s.user(A, { sub: uniq('alice'), channels: ['news:*'], publish: ['news:*'] });
    const sub = await subscribeSince(c, ch);
    noPosition(sub, 'subscribed');
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    const r = await apiPublish(B, key, ch, { headline: 'x' });
    assert.deepEqual(r, {}, 'API answer on a channel without history');
    const m1 = await c.nextOn(ch);
    assert.deepEqual(m1.data, { headline: 'x' });
    noPosition(m1, 'API message');
    const p = await c.publish(ch, { headline: 'y' });
    noPosition(p, 'published reply');
    const m2 = await c.nextOn(ch);
    assert.equal(m2.from, c.user);
    noPosition(m2, 'client message');
  });
});

describe('backend PUBLISH straight into Redis', () => {
  test("redis-cli PUBLISH wsgw:job:N is delivered live without offset and kept in no history", async () => {
    const job = `job:${uniq('direct')}`;
    const c = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] });
    const sub = await subscribeSince(c, job);
    const epoch = sub.epoch;
    assertPosition(await apiPublish(B, key, job, { progress: 10 }), 1, epoch, 'POST 1');
    assertPosition(await c.nextOn(job), 1, epoch, 'message 1');

    assert.equal(await redisCli(redis.port, 'PUBLISH', `wsgw:${job}`, '{"data":{"progress":55}}'), '1');
    const direct = await c.nextOn(job);
    assert.deepEqual(direct.data, { progress: 55 });
    noPosition(direct, 'direct PUBLISH');
    noFrom(direct);

    // It took no offset: the next API publish is 2, and the latest state a new
    // page sees is that one, not the direct PUBLISH.
    assertPosition(await apiPublish(B, key, job, { progress: 20 }), 2, epoch, 'POST 2');
    assertPosition(await c.nextOn(job), 2, epoch, 'message 2');
    const page = await s.user(B, { sub: uniq('bob'), channels: ['job:*'] }, 'page');
    const sub2 = await subscribeSince(page, job);
    assertPosition(sub2, 2, epoch, 'subscribed after the direct PUBLISH');
    const latest = await page.nextOn(job, undefined, T(2000));
    assert.deepEqual(latest.data, { progress: 20 }, `latest state: ${JSON.stringify(latest)}`);
    await page.expectNoMessage(QUIET_MS, { type: 'message' });

    // A recovering client is not given it either.
    const again = await s.user(B, { sub: uniq('carol'), channels: ['job:*'] }, 'recovering');
    const r = await subscribeSince(again, job, { offset: 0, epoch });
    assert.equal(r.recovered, true, `recover from 0: ${JSON.stringify(r)}`);
    const replay = await takeMessages(again, job, 2);
    assertOffsets(replay, 1, 2, epoch, 'replay');
    await again.expectNoMessage(QUIET_MS, { type: 'message' });
  });
});

describe('configuration', () => {
  test('--history news=5:60:latest adds a namespace; --history chat=0:60 turns chat history off', async () => {
    const ch = `news:${uniq('cfg')}`;
    let epoch;
    for (let i = 1; i <= 7; i++) epoch = assertPosition(await apiPublish(C, key, ch, { i }), i, epoch, `POST ${i}`).epoch;
    const c = await s.user(C, { sub: uniq('alice'), channels: ['news:*', 'chat:*'] });
    const sub = await subscribeSince(c, ch);
    assertPosition(sub, 7, epoch, 'subscribed news');
    const latest = await c.nextOn(ch, undefined, T(2000));
    assertPosition(latest, 7, epoch, 'latest news');
    assert.deepEqual(latest.data, { i: 7 });
    // SIZE 5: offset 2 is gone, so recovering from 1 cannot succeed.
    const c2 = await s.user(C, { sub: uniq('bob'), channels: ['news:*'] });
    const r = await subscribeSince(c2, ch, { offset: 1, epoch });
    assert.equal(r.recovered, false, `since 1 with 5 kept of 7: ${JSON.stringify(r)}`);

    const room = `chat:${uniq('off')}`;
    const subRoom = await subscribeSince(c, room);
    noPosition(subRoom, 'subscribed chat on C');
    assert.deepEqual(await apiPublish(C, key, room, 'no history'), {}, 'POST chat on C');
    noPosition(await c.nextOn(room), 'chat message on C');
  });

  test('WSGW_HISTORY, WSGW_RECOVERY_MAX_MESSAGES and WSGW_API_KEY_FILE configure the same', async () => {
    const ch = `news:${uniq('env')}`;
    const bad = await apiPost(E, key, { channel: ch, data: 1 });
    assert.equal(bad.status, 401, `a key not in WSGW_API_KEY_FILE: HTTP ${bad.status} ${bad.body}`);
    let epoch;
    for (let i = 1; i <= 4; i++) {
      const r = await apiPost(E, envKey, { channel: ch, data: { i } });
      assert.equal(r.status, 200, `POST with the WSGW_API_KEY_FILE key: HTTP ${r.status} ${r.body}`);
      epoch = assertPosition(r.json, i, epoch, `POST ${i}`).epoch;
    }
    const c = await s.user(E, { sub: uniq('alice'), channels: ['news:*'] });
    const sub = await subscribeSince(c, ch);
    assertPosition(sub, 4, epoch, 'subscribed');
    assertPosition(await c.nextOn(ch, undefined, T(2000)), 4, epoch, 'latest (WSGW_HISTORY :latest)');
    // Recovery cap 2: three missed is too many, two is fine.
    const three = await s.user(E, { sub: uniq('bob'), channels: ['news:*'] });
    assert.equal((await subscribeSince(three, ch, { offset: 1, epoch })).recovered, false, '3 missed with WSGW_RECOVERY_MAX_MESSAGES=2');
    const two = await s.user(E, { sub: uniq('carol'), channels: ['news:*'] });
    assert.equal((await subscribeSince(two, ch, { offset: 2, epoch })).recovered, true, '2 missed with WSGW_RECOVERY_MAX_MESSAGES=2');
    assertOffsets(await takeMessages(two, ch, 2), 3, 4, epoch, 'replay of 2');
  });

  test('a malformed --history value stops the gateway at start with a message', async () => {
    for (const bad of ['job=ten:60', 'job=10', 'job=10:60:newest', '=10:60']) {
      const port = await freePort();
      const r = await runWsgw(['--listen', `127.0.0.1:${port}`, '--jwt-secret-file', s.secretFile, '--history', bad], { timeout: T(5000) });
      assert.equal(r.timedOut, false, `--history ${bad}: the gateway kept running`);
      assert.notEqual(r.code, 0, `--history ${bad}: exit code 0`);
      assert.match(r.stderr, /history/, `--history ${bad}: stderr does not name the flag: ${r.stderr}`);
    }
  });
});
