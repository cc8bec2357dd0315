// Token expiry and refresh: a connection closes with 4003 when its token's
// exp (plus --jwt-leeway-seconds) passes; `refresh` with a token of the
// same sub moves the expiry; another sub or a bad token is an error reply
// and the old expiry holds. Subscriptions that a subscription token allowed
// end when that token expires, with an error event naming the channel.
// The gateway checks expiry on a 1 s tick, so a close comes within a second
// after the deadline. The scenarios wait for the clock, so they run
// concurrently.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Scope, uniq, now, T, QUIET_MS, randomSecret, hsToken, metrics } from './lib/index.mjs';

const s = new Scope('expiry');
let gw; // --jwt-leeway-seconds 0
let lenient; // --jwt-leeway-seconds 2
after(() => s.close());
before(async () => {
  [gw, lenient] = await Promise.all([
    s.gateway({ name: 'expiry', args: ['--jwt-leeway-seconds', '0'] }),
    s.gateway({ name: 'expiry-leeway', args: ['--jwt-leeway-seconds', '2'] }),
  ]);
});

const isMsg = (channel) => (m) => m.type === 'message' && m.channel === channel;

/** Waits for the 4003 close; asserts it came at deadline (unix s) or within the tick after it. */
async function expectExpiredAt(c, deadline) {
  const info = await c.expectClose(4003, T((deadline - now() + 4) * 1000));
  assert.equal(info.reason, 'token expired');
  const at = info.at / 1000;
  assert.ok(at >= deadline - 0.05, `closed at ${at.toFixed(2)}, before the deadline ${deadline}`);
  assert.ok(at <= deadline + T(2000) / 1000, `closed at ${at.toFixed(2)}, long after the deadline ${deadline}`);
}

/** Sleeps until the unix time t (seconds, fractional). */
const until = (t) => sleep(Math.max(0, t * 1000 - Date.now()));

describe('connection token expiry and refresh', { concurrency: true }, () => {
  test('4003 "token expired" at exp, not before', async () => {
    const exp = now() + 2;
    const c = await s.user(gw, { sub: uniq('alice'), exp });
    assert.equal(c.authOk.exp, exp);
    await until(exp - 0.5);
    await c.ping();
    await expectExpiredAt(c, exp);
  });

  test('the leeway is granted: 4003 at exp + --jwt-leeway-seconds', async () => {
    const exp = now() + 1;
    const c = await s.user(lenient, { sub: uniq('alice'), exp });
    await until(exp + 1.2);
    await c.ping();
    await expectExpiredAt(c, exp + 2);
  });

  test('refresh with the same sub extends: refreshed with the new exp; open past the old exp; 4003 at the new one', async () => {
    const sub = uniq('alice');
    const oldExp = now() + 2;
    const c = await s.user(gw, { sub, exp: oldExp, channels: ['chat:*'] });
    const newExp = oldExp + 3;
    const r = await c.request({ type: 'refresh', id: 4, token: s.token({ sub, exp: newExp, channels: ['chat:*'] }) });
    assert.deepEqual(r, { type: 'refreshed', id: 4, exp: newExp });
    await until(oldExp + 1.5);
    await c.ping();
    c.assertOpen();
    await expectExpiredAt(c, newExp);
  });

  test("refresh with another user's token: forbidden, the old expiry holds", async () => {
    const exp = now() + 2;
    const c = await s.user(gw, { sub: uniq('alice'), exp });
    const r = await c.expectError({ type: 'refresh', id: 5, token: s.token({ sub: uniq('mallory'), exp: exp + 600 }) }, 'forbidden');
    assert.equal(r.id, 5);
    await expectExpiredAt(c, exp);
  });

  test('refresh with a bad token (other key, expired, garbage): forbidden each time, the old expiry holds', async () => {
    const sub = uniq('alice');
    const exp = now() + 2;
    const c = await s.user(gw, { sub, exp });
    const bad = [
      hsToken(randomSecret(48), { sub, exp: exp + 600 }),
      s.token({ sub, iat: now() - 100, exp: now() - 10 }),
      'not.a.token',
    ];
    for (const token of bad) await c.expectError({ type: 'refresh', token }, 'forbidden');
    await c.ping();
    await expectExpiredAt(c, exp);
  });
});

describe('subscriptions allowed by subscription tokens', { concurrency: true }, () => {
  test('end when the token expires: an error event names the channel, no more messages, the connection stays', async () => {
    const sub = uniq('alice');
    const job = `job:${uniq('short')}`;
    const other = `job:${uniq('long')}`;
    const c = await s.user(gw, { sub, exp: now() + 3600 });
    const publisher = await s.user(gw, { sub: uniq('worker'), publish: ['job:*'] });
    const exp = now() + 2;
    await c.subscribe(job, { token: s.token({ sub, channel: job, exp }) });
    await c.subscribe(other, { token: s.token({ sub, channel: other, exp: now() + 600 }) });
    await publisher.publish(job, 'before');
    assert.equal((await c.nextMessage(isMsg(job))).data, 'before');

    const ev = await c.nextMessage({ type: 'error', channel: job }, T(5000));
    assert.equal(ev.code, 'forbidden');
    assert.equal(ev.message, 'subscription token expired');
    assert.equal(ev.id, undefined, 'an event, not a reply');
    const at = Date.now() / 1000;
    assert.ok(at >= exp - 0.05 && at <= exp + T(2000) / 1000, `ended at ${at.toFixed(2)}, token exp ${exp}`);

    await publisher.publish(job, 'after');
    await publisher.publish(other, 'still here');
    assert.equal((await c.nextMessage(isMsg(other))).data, 'still here');
    await c.expectNoMessage(QUIET_MS, isMsg(job));
    await c.ping();
    c.assertOpen();
    // A fresh token subscribes again (job: channels deliver their latest
    // state at once: the message sent while it was not subscribed).
    await c.subscribe(job, { token: s.token({ sub, channel: job, exp: now() + 600 }) });
    assert.equal((await c.nextMessage(isMsg(job))).data, 'after');
    await publisher.publish(job, 'again');
    assert.equal((await c.nextMessage(isMsg(job))).data, 'again');
    assert.ok((await metrics(gw)).wsgw_subscription_token_expiries_total >= 1);
  });

  test('a resubscribe with a later token extends the subscription', async () => {
    const sub = uniq('bob');
    const job = `job:${uniq('ext')}`;
    const c = await s.user(gw, { sub, exp: now() + 3600 });
    const exp = now() + 2;
    await c.subscribe(job, { token: s.token({ sub, channel: job, exp }) });
    await c.subscribe(job, { token: s.token({ sub, channel: job, exp: exp + 600 }) });
    await until(exp + 1.5);
    await c.expectNoMessage(QUIET_MS, { type: 'error' });
    const publisher = await s.user(gw, { sub: uniq('worker'), publish: ['job:*'] });
    await publisher.publish(job, 'kept');
    assert.equal((await c.nextMessage(isMsg(job))).data, 'kept');
  });

  test('a refreshed connection token whose patterns allow the channel keeps the subscription', async () => {
    const sub = uniq('carol');
    const job = `job:${uniq('covered')}`;
    const c = await s.user(gw, { sub, exp: now() + 3600 });
    const exp = now() + 2;
    await c.subscribe(job, { token: s.token({ sub, channel: job, exp }) });
    await c.request({ type: 'refresh', token: s.token({ sub, exp: now() + 3600, channels: ['job:*'] }) });
    await until(exp + 1.5);
    await c.expectNoMessage(QUIET_MS, { type: 'error' });
    const publisher = await s.user(gw, { sub: uniq('worker'), publish: ['job:*'] });
    await publisher.publish(job, 'kept');
    assert.equal((await c.nextMessage(isMsg(job))).data, 'kept');
  });
});
