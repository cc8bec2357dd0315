// `wsgw publish` as an operator or a cron job uses it: no gateway of its
// own, straight to Redis through the same atomic path as the HTTP API. It
// prints {"offset":N,"epoch":"E"} (or {} without history) and exits 0;
// subscribers on running gateways get the message; the next page opened
// sees it as the latest state; an unreachable Redis or bad input is a
// non-zero exit with a message on stderr.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  Scope, uniq, freePort, T, QUIET_MS,
  apiKey, apiKeyFile, apiPublish, runPublishCli, assertPosition, assertOffsets, takeMessages, subscribeSince,
} from './lib/index.mjs';

const s = new Scope('publish-cli');
const key = apiKey();
let redis;
let A;
let B;

before(async () => {
  redis = await s.redis();
  const keys = apiKeyFile(s, 'api-keys', key);
  [A, B] = await Promise.all([
    s.gateway({ name: 'cli-A', redis, args: ['--api-key-file', keys] }),
    s.gateway({ name: 'cli-B', redis, args: ['--api-key-file', keys] }),
  ]);
});
after(() => s.close());

/** Whether something accepts TCP connections on 127.0.0.1:port. */
const listening = (port) => new Promise((resolve) => {
  const sock = net.connect(port, '127.0.0.1');
  sock.once('connect', () => { sock.destroy(); resolve(true); });
  sock.once('error', () => resolve(false));
});
const publish = (channel, data, extra = []) => runPublishCli(['--redis', redis.url, '--channel', channel, '--data', data, ...extra]);

function assertExit0(r, what) {
  assert.equal(r.timedOut, false, `${what}: still running after the timeout`);
  assert.equal(r.code, 0, `${what}: exit code ${r.code} (signal ${r.signal})\n--- stderr ---\n${r.stderr}\n--- stdout ---\n${r.stdout}`);
  assert.ok(r.json && typeof r.json === 'object' && !Array.isArray(r.json), `${what}: stdout is not one JSON object: ${JSON.stringify(r.stdout)}`);
  return r.json;
}

function assertFailed(r, what) {
  assert.equal(r.timedOut, false, `${what}: still running after the timeout`);
  assert.notEqual(r.code, 0, `${what}: exit code 0 (stdout ${JSON.stringify(r.stdout)})`);
  assert.ok(r.stderr.trim().length > 0, `${what}: nothing on stderr`);
  assert.equal(r.json?.offset, undefined, `${what}: printed a position: ${r.stdout}`);
}

describe('wsgw publish', () => {
  test('job progress reaches subscribers on both gateways; stdout {offset, epoch}; exit 0', async () => {
    const job = `job:${uniq('job')}`;
    const onA = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] }, 'onA');
    const onB = await s.user(B, { sub: uniq('bob'), channels: ['job:*'] }, 'onB');
    const sa = await subscribeSince(onA, job);
    await subscribeSince(onB, job);

    const r1 = assertExit0(await publish(job, '{"progress":40}'), 'publish progress 40');
    assertPosition(r1, 1, sa.epoch, 'stdout of the first publish');
    assert.deepEqual(Object.keys(r1).sort(), ['epoch', 'offset']);
    const r2 = assertExit0(await publish(job, '{"progress":60}'), 'publish progress 60');
    assertPosition(r2, 2, r1.epoch, 'stdout of the second publish');

    for (const c of [onA, onB]) {
      const ms = await takeMessages(c, job, 2);
      assertOffsets(ms, 1, 2, r1.epoch, c.name);
      assert.deepEqual(ms.map((m) => m.data), [{ progress: 40 }, { progress: 60 }], c.name);
      assert.ok(ms.every((m) => !('from' in m)), `${c.name}: no from: ${JSON.stringify(ms)}`);
    }

    // One sequence with the HTTP API.
    assertPosition(await apiPublish(A, key, job, { progress: 80 }), 3, r1.epoch, 'API publish after the CLI');
    for (const c of [onA, onB]) assertPosition(await c.nextOn(job), 3, r1.epoch, `${c.name}: API message`);
    await Promise.all([onA, onB].map((c) => c.expectNoMessage(QUIET_MS, { type: 'message' })));
  });

  test('with no subscriber anywhere the message is kept: a page opened later shows it', async () => {
    const job = `job:${uniq('later')}`;
    const r = assertExit0(await publish(job, '{"state":"done","url":"/r/1.pdf"}'), 'publish done');
    assertPosition(r, 1, undefined, 'stdout');
    const page = await s.user(B, { sub: uniq('alice'), channels: ['job:*'] }, 'page');
    const sub = await subscribeSince(page, job);
    assertPosition(sub, 1, r.epoch, 'subscribed');
    const m = await page.nextOn(job, undefined, T(2000));
    assert.deepEqual(m.data, { state: 'done', url: '/r/1.pdf' });
    assertPosition(m, 1, r.epoch, 'latest state');
  });

  test('a channel without history: stdout {} and a message without offset', async () => {
    const ch = `news:${uniq('n')}`;
    const c = await s.user(A, { sub: uniq('alice'), channels: ['news:*'] });
    await subscribeSince(c, ch);
    const r = assertExit0(await publish(ch, '"hello"'), 'publish to news:');
    assert.deepEqual(r, {});
    const m = await c.nextOn(ch);
    assert.equal(m.data, 'hello');
    assert.equal('offset' in m, false, JSON.stringify(m));
  });

  test('WSGW_REDIS in the environment instead of --redis', async () => {
    const job = `job:${uniq('env')}`;
    const r = await runPublishCli(['--channel', job, '--data', '{"progress":5}'], { env: { WSGW_REDIS: redis.url } });
    assertPosition(assertExit0(r, 'publish with WSGW_REDIS'), 1, undefined, 'stdout');
  });

  test('neither --redis nor WSGW_REDIS: the Redis at 127.0.0.1:6379, as redis-cli (the contract\'s example has no --redis)', async (t) => {
    // Never write into a Redis this test did not start: with one on 6379
    // there is nothing to check safely.
    if (await listening(6379)) return t.skip('something listens on 127.0.0.1:6379');
    const r = await runPublishCli(['--channel', `job:${uniq('dflt')}`, '--data', '1', '--timeout-ms', '1000'], { env: { WSGW_REDIS: '' } });
    assert.equal(r.code, 1, `not a usage error: ${r.stderr}`);
    assert.match(r.stderr, /Redis at 127\.0\.0\.1:6379 not reachable/);
    assert.equal(r.stdout, '');
  });

  test('Redis unreachable: non-zero exit, a message on stderr, no position printed', async () => {
    const port = await freePort(); // nothing listens here
    const r = await runPublishCli(['--redis', `redis://127.0.0.1:${port}`, '--channel', `job:${uniq('x')}`, '--data', '{"progress":1}']);
    assertFailed(r, 'publish with Redis unreachable');
  });

  test('bad input: data that is not JSON, a bad channel, no channel: non-zero exit and nothing published', async () => {
    const job = `job:${uniq('bad')}`;
    const c = await s.user(A, { sub: uniq('alice'), channels: ['job:*'] });
    await subscribeSince(c, job);
    assertFailed(await publish(job, '{"progress":'), 'data that is not JSON');
    assertFailed(await publish('job:4 2', '1'), 'a channel with a space');
    assertFailed(await runPublishCli(['--redis', redis.url, '--data', '1']), 'no --channel');
    await c.expectNoMessage(QUIET_MS, { type: 'message' });
    // Nothing took an offset: the next publish is 1.
    assertPosition(assertExit0(await publish(job, '1'), 'a good publish'), 1, undefined, 'stdout');
  });
});
