// POST /api/publish as a backend uses it: a Bearer API key from one of
// several key files (rotation), one message or a batch, 200 with the
// message's offset and epoch on history channels ({} elsewhere) and the
// message delivered to subscribers on every gateway; 401, 400, 413, 405 and
// 503 (Redis down) publish nothing and leave the gateway serving.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  Scope, uniq, runWsgw, freePort, T, QUIET_MS,
  apiKey, apiKeyFile, apiPost, apiPublish, httpRequest, API_PATH,
  assertPosition, assertOffsets, takeMessages, subscribeSince,
} from './lib/index.mjs';

const s = new Scope('api');
const oldKey = apiKey(40); // file 1, line 1
const otherKey = apiKey(16); // file 1, line 2 (the shortest allowed)
const newKey = apiKey(64); // file 2: the key a rotation adds
let redis;
let down; // a second Redis, stopped in the 503 test
let A;
let B;
let D; // on `down`
let N; // no --api-key-file
let S; // --max-message-bytes 4096

before(async () => {
  [redis, down] = await Promise.all([s.redis(), s.redis()]);
  const f1 = apiKeyFile(s, 'keys-old', oldKey, otherKey);
  const f2 = apiKeyFile(s, 'keys-new', newKey);
  const keys = ['--api-key-file', f1, '--api-key-file', f2];
  [A, B, D, N, S] = await Promise.all([
    s.gateway({ name: 'api-A', redis, args: keys }),
    s.gateway({ name: 'api-B', redis, args: keys }),
    s.gateway({ name: 'api-D', redis: down, args: keys }),
    s.gateway({ name: 'api-N', redis }),
    s.gateway({ name: 'api-S', redis, args: [...keys, '--max-message-bytes', '4096'] }),
  ]);
});
after(() => s.close());

const noFrom = (m) => assert.equal('from' in m, false, `an API message must carry no from: ${JSON.stringify(m)}`);
const status = (r, want, what) => assert.equal(r.status, want, `${what}: HTTP ${r.status}, expected ${want}; body ${JSON.stringify(r.body)}${r.error ? ` (${r.error.message})` : ''}`);

/** A client on gw subscribed to channel (any namespace). */
async function listener(gw, channel, name) {
  const c = await s.user(gw, { sub: uniq(name || 'alice'), channels: ['*'] }, name);
  await subscribeSince(c, channel);
  return c;
}

describe('200', () => {
  test('a job update: {offset, epoch}, delivered to subscribers on both gateways without from', async () => {
    const job = `job:${uniq('job')}`;
    const onA = await listener(A, job, 'onA');
    const onB = await listener(B, job, 'onB');
    const r1 = await apiPost(A, oldKey, { channel: job, data: { state: 'running', progress: 40 } });
    status(r1, 200, 'POST');
    assertPosition(r1.json, 1, undefined, 'answer');
    assert.deepEqual(Object.keys(r1.json).sort(), ['epoch', 'offset'], `answer: ${r1.body}`);
    const r2 = await apiPublish(B, newKey, job, { state: 'running', progress: 50 });
    assertPosition(r2, 2, r1.json.epoch, 'second answer');
    for (const c of [onA, onB]) {
      const ms = await takeMessages(c, job, 2);
      assertOffsets(ms, 1, 2, r1.json.epoch, c.name);
      assert.deepEqual(ms.map((m) => m.data), [{ state: 'running', progress: 40 }, { state: 'running', progress: 50 }]);
      ms.forEach(noFrom);
    }
  });

  test('answers are JSON with a JSON Content-Type', async () => {
    const r = await apiPost(B, oldKey, { channel: `job:${uniq('ct')}`, data: 1 });
    status(r, 200, 'POST');
    assert.match(String(r.headers['content-type']), /application\/json/, 'Content-Type of the answer');
    assertPosition(r.json, 1, undefined, 'answer');
  });

  test('a channel without history: {} and a message without offset', async () => {
    const ch = `news:${uniq('n')}`;
    const c = await listener(B, ch);
    const r = await apiPost(A, oldKey, { channel: ch, data: [1, 'two', null] });
    status(r, 200, 'POST');
    assert.deepEqual(r.json, {}, `answer: ${r.body}`);
    const m = await c.nextOn(ch);
    assert.deepEqual(m.data, [1, 'two', null]);
    assert.equal('offset' in m, false, JSON.stringify(m));
    assert.equal('epoch' in m, false, JSON.stringify(m));
    noFrom(m);
  });

  test('any JSON value is data, null included; a "from" in the body is not stamped', async () => {
    const ch = `job:${uniq('vals')}`;
    const c = await listener(A, ch);
    const values = [null, 0, 'text', false, { nested: { a: [1, 2, { b: 'ü€😀' }] } }];
    for (const v of values) await apiPublish(A, otherKey, ch, v);
    const spoof = await apiPost(A, otherKey, { channel: ch, data: 'spoof', from: 'mallory' });
    status(spoof, 200, 'POST with a from field');
    const ms = await takeMessages(c, ch, values.length + 1);
    assert.deepEqual(ms.map((m) => m.data), [...values, 'spoof']);
    ms.forEach(noFrom);
  });

  test('a batch: results in order, messages delivered in order', async () => {
    const job = `job:${uniq('batch')}`;
    const news = `news:${uniq('batch')}`;
    const cj = await listener(B, job, 'job');
    const cn = await listener(B, news, 'news');
    const r = await apiPost(A, newKey, {
      messages: [
        { channel: job, data: { progress: 10 } },
        { channel: news, data: 'headline' },
        { channel: job, data: { progress: 20 } },
        { channel: job, data: { progress: 30 } },
      ],
    });
    status(r, 200, 'batch');
    assert.ok(r.json && Array.isArray(r.json.results), `answer: ${r.body}`);
    assert.equal(r.json.results.length, 4, `answer: ${r.body}`);
    const [a, b, c, d] = r.json.results;
    assertPosition(a, 1, undefined, 'results[0]');
    assert.deepEqual(b, {}, 'results[1] (no history)');
    assertPosition(c, 2, a.epoch, 'results[2]');
    assertPosition(d, 3, a.epoch, 'results[3]');
    const ms = await takeMessages(cj, job, 3);
    assertOffsets(ms, 1, 3, a.epoch, 'job messages');
    assert.deepEqual(ms.map((m) => m.data.progress), [10, 20, 30]);
    assert.equal((await cn.nextOn(news)).data, 'headline');
  });

  test('a batch with one bad message: that one gets its own error, the others are published', async () => {
    const job = `job:${uniq('mixed')}`;
    const c = await listener(A, job);
    const r = await apiPost(B, oldKey, {
      messages: [
        { channel: job, data: 1 },
        { channel: 'no spaces allowed', data: 2 },
        { channel: job, data: 3 },
      ],
    });
    status(r, 200, 'batch with a bad message');
    const res = r.json?.results;
    assert.ok(Array.isArray(res) && res.length === 3, `answer: ${r.body}`);
    assertPosition(res[0], 1, undefined, 'results[0]');
    assert.equal('offset' in res[1], false, `results[1] must not be published: ${JSON.stringify(res[1])}`);
    assert.ok(['error', 'code', 'status'].some((k) => k in res[1]), `results[1] should say what is wrong: ${JSON.stringify(res[1])}`);
    assertPosition(res[2], 2, res[0].epoch, 'results[2]');
    const ms = await takeMessages(c, job, 2);
    assert.deepEqual(ms.map((m) => m.data), [1, 3]);
  });

  test('20 concurrent POSTs to one job on two gateways: offsets 1..20, each once, delivered in offset order', async () => {
    const job = `job:${uniq('par')}`;
    const c = await listener(A, job);
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => apiPost(i % 2 ? A : B, oldKey, { channel: job, data: { i } })));
    rs.forEach((r, i) => status(r, 200, `POST #${i}`));
    const offsets = rs.map((r) => r.json.offset).sort((x, y) => x - y);
    assert.deepEqual(offsets, Array.from({ length: 20 }, (_, i) => i + 1), 'answered offsets');
    const epoch = rs[0].json.epoch;
    assert.ok(rs.every((r) => r.json.epoch === epoch), 'one epoch');
    const ms = await takeMessages(c, job, 20);
    assertOffsets(ms, 1, 20, epoch, 'delivered');
    // Each answer names the offset its own message got.
    for (const m of ms) assert.equal(rs[m.data.i].json.offset, m.offset, `message ${JSON.stringify(m)}`);
  });

  test('several requests on one keep-alive connection', async () => {
    const job = `job:${uniq('ka')}`;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const rs = [];
      for (let i = 0; i < 5; i++) rs.push(await apiPost(A, oldKey, { channel: job, data: i }, { agent }));
      rs.forEach((r, i) => status(r, 200, `request #${i} on a keep-alive connection`));
      assert.deepEqual(rs.map((r) => r.json.offset), [1, 2, 3, 4, 5]);
      assert.ok(rs.slice(1).some((r) => r.reusedSocket), 'the connection was never reused (the gateway closes after each answer)');
      status(await apiPost(A, 'x'.repeat(20), { channel: job, data: 'bad key' }, { agent }), 401, 'a bad key on a keep-alive connection');
      status(await apiPost(A, oldKey, { channel: job, data: 6 }, { agent }), 200, 'a request after a 401 on the same agent');
    } finally {
      agent.destroy();
    }
  });

  test('a body just under --max-message-bytes (60 000 bytes) is published', async () => {
    const job = `job:${uniq('big')}`;
    const c = await listener(A, job);
    const big = 'x'.repeat(60000);
    const r = await apiPost(B, oldKey, { channel: job, data: { big } });
    status(r, 200, 'POST of 60 000 bytes');
    assertPosition(r.json, 1, undefined, 'answer');
    assert.equal((await c.nextOn(job)).data.big.length, 60000);
  });
});

describe('401', () => {
  test('missing, wrong, truncated or non-Bearer keys: 401 and nothing published; every configured key works', async () => {
    const job = `job:${uniq('auth')}`;
    const c = await listener(A, job);
    const body = { channel: job, data: { evil: true } };
    const cases = [
      ['no Authorization header', null, {}],
      ['an unknown key', apiKey(40), {}],
      ['a configured key with one byte less', oldKey.slice(0, -1), {}],
      ['a configured key with one byte more', `${oldKey}x`, {}],
      ['an empty bearer token', '', {}],
      ['Basic instead of Bearer', null, { Authorization: `Basic ${Buffer.from(`api:${oldKey}`).toString('base64')}` }],
      ['the key without a scheme', null, { Authorization: oldKey }],
    ];
    for (const [what, key, headers] of cases) {
      const r = await apiPost(A, key, body, { headers });
      status(r, 401, what);
    }
    // A bad key is refused before the body is looked at.
    status(await apiPost(A, apiKey(40), '{not json'), 401, 'unknown key with a bad body');
    await c.expectNoMessage(QUIET_MS, { type: 'message' });

    // Rotation: both lines of the first file and the key of the second file.
    let epoch;
    for (const [i, k] of [oldKey, otherKey, newKey].entries()) {
      const r = await apiPost(A, k, { channel: job, data: { ok: i } });
      status(r, 200, `configured key #${i + 1}`);
      epoch = assertPosition(r.json, i + 1, epoch, `answer for key #${i + 1}`).epoch;
    }
    assertOffsets(await takeMessages(c, job, 3), 1, 3, epoch, 'published with the three keys');
  });

  test('a gateway started without --api-key-file publishes nothing over HTTP', async () => {
    const job = `job:${uniq('nokeys')}`;
    const c = await listener(N, job);
    for (const key of [null, oldKey]) {
      const r = await apiPost(N, key, { channel: job, data: 1 });
      assert.ok(r.status >= 400 && r.status < 500, `POST on a gateway without keys (key ${key ? 'given' : 'none'}): HTTP ${r.status} ${r.body}`);
    }
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
  });
});

describe('400', () => {
  test('bad JSON, missing data, bad channel: 400 and nothing published', async () => {
    const job = `job:${uniq('bad')}`;
    const c = await listener(B, job);
    const cases = [
      ['not JSON', '{"channel":'],
      ['plain text', 'hello'],
      ['an empty body', ''],
      ['a JSON array', [{ channel: job, data: 1 }]],
      ['a JSON string', JSON.stringify('x')],
      ['no data', { channel: job }],
      ['no channel', { data: 1 }],
      ['a channel that is not a string', { channel: 42, data: 1 }],
      ['a channel with a space', { channel: 'job:4 2', data: 1 }],
      ['a channel with a non-ASCII character', { channel: 'job:ü', data: 1 }],
      ['an empty channel', { channel: '', data: 1 }],
      ['a channel of 129 bytes', { channel: `job:${'a'.repeat(125)}`, data: 1 }],
      ['messages that is not an array', { messages: { channel: job, data: 1 } }],
    ];
    for (const [what, body] of cases) {
      const r = await apiPost(B, oldKey, body);
      status(r, 400, what);
    }
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    // A channel of exactly 128 bytes is fine.
    const ch128 = `job:${'b'.repeat(124)}`;
    assert.equal(ch128.length, 128);
    status(await apiPost(B, oldKey, { channel: ch128, data: 1 }), 200, 'a channel of 128 bytes');
  });
});

describe('413, 405', () => {
  test('a body larger than --max-message-bytes (65536): 413 and nothing published', async () => {
    const job = `job:${uniq('huge')}`;
    const c = await listener(A, job);
    const r = await apiPost(A, oldKey, { channel: job, data: 'y'.repeat(70000) });
    status(r, 413, 'POST of 70 000 bytes');
    // 1 MiB: the gateway may answer 413 and close before reading it all; a
    // client that is still writing may then see the connection reset instead.
    const r2 = await apiPost(A, oldKey, { channel: job, data: 'z'.repeat(1 << 20) });
    assert.ok(r2.status === 413 || (r2.status === 0 && /ECONNRESET|EPIPE/.test(r2.error?.code || '')),
      `POST of 1 MiB: HTTP ${r2.status} ${r2.body} ${r2.error ? r2.error.message : ''}`);
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    assert.equal((await A.get('/healthz')).status, 200);
    assertPosition(await apiPublish(A, oldKey, job, 'small'), 1, undefined, 'a normal POST afterwards');
  });

  test('--max-message-bytes 4096: a 5000-byte message is 413, a 3000-byte one is published', async () => {
    const job = `job:${uniq('limit')}`;
    const c = await listener(S, job);
    status(await apiPost(S, oldKey, { channel: job, data: 'y'.repeat(5000) }), 413, 'POST of 5000 bytes');
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    status(await apiPost(S, oldKey, { channel: job, data: 'y'.repeat(3000) }), 200, 'POST of 3000 bytes');
    assert.equal((await c.nextOn(job)).data.length, 3000);
  });

  test('GET, PUT and DELETE on /api/publish: 405', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const r = await httpRequest(B.port, {
        method,
        path: API_PATH,
        headers: { Authorization: `Bearer ${oldKey}`, 'Content-Type': 'application/json' },
        body: method === 'GET' ? undefined : { channel: 'job:1', data: 1 },
      });
      status(r, 405, method);
    }
  });
});

describe('503', () => {
  test('Redis down: 503 for history and plain channels; 200 again once Redis is back', async () => {
    const job = `job:${uniq('down')}`;
    assertPosition(await apiPublish(D, oldKey, job, 'before'), 1, undefined, 'before the outage');
    await down.kill();
    await D.waitStatus('/readyz', 503, T(10000));
    for (const [ch, what] of [[job, 'job (history)'], [`news:${uniq('down')}`, 'news (no history)']]) {
      const r = await apiPost(D, oldKey, { channel: ch, data: 'lost' });
      status(r, 503, `POST ${what} with Redis down`);
    }
    const batch = await apiPost(D, oldKey, { messages: [{ channel: job, data: 'lost' }] });
    assert.ok(batch.status === 503 || (batch.status === 200 && batch.json?.results?.[0] && !('offset' in batch.json.results[0])),
      `batch with Redis down: HTTP ${batch.status} ${batch.body}`);
    assert.equal((await D.get('/healthz')).status, 200);

    await down.start();
    await D.waitStatus('/readyz', 200, T(20000));
    const c = await listener(D, job);
    const r = await apiPublish(D, oldKey, job, 'after');
    assertPosition(r, 1, undefined, 'after the restart (a new, empty Redis)');
    const m = await c.nextOn(job, (x) => x.data === 'after');
    assertPosition(m, 1, r.epoch, 'message after the restart');
  });
});

describe('key files at start', () => {
  test('a key shorter than 16 bytes, or a missing key file, stops the gateway with a message', async () => {
    const short = apiKeyFile(s, 'keys-short', apiKey(15));
    for (const [what, file] of [['a 15-byte key', short], ['a missing file', `${s.dir}/no-such-keys`]]) {
      const port = await freePort();
      const r = await runWsgw(['--listen', `127.0.0.1:${port}`, '--jwt-secret-file', s.secretFile, '--api-key-file', file], { timeout: T(5000) });
      assert.equal(r.timedOut, false, `${what}: the gateway kept running`);
      assert.notEqual(r.code, 0, `${what}: exit code 0`);
      assert.ok(r.stderr.trim().length > 0, `${what}: nothing on stderr`);
    }
  });
});
