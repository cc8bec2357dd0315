// Commands after authentication on one gateway (in-process bus): replies echo
// the id, permissions come from the token's patterns or a subscription token,
// every failure is an error reply with the documented code and the
// connection stays open, and the gateway stamps "from".
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Scope, uniq, hsToken, claims, signJwt, now, randomSecret } from './lib/index.mjs';

const s = new Scope('commands');
let gw;

before(async () => {
  gw = await s.gateway({ name: 'commands' });
});
after(() => s.close());

/** An authenticated client with the given permission patterns. */
function user(opts = {}, name) {
  return s.user(gw, { sub: uniq(name || 'alice'), ...opts }, name);
}

describe('ping', () => {
  test('pong echoes the id', async () => {
    const c = await user();
    c.send({ type: 'ping', id: 5 });
    assert.deepEqual(await c.nextMessage({ id: 5 }), { type: 'pong', id: 5 });
    c.send({ type: 'ping', id: 123456 });
    assert.equal((await c.nextMessage({ id: 123456 })).type, 'pong');
  });
});

describe('subscribe', () => {
  test('allowed by a prefix pattern: subscribed with id and channel', async () => {
    const c = await user({ channels: ['chat:*'] });
    c.send({ type: 'subscribe', id: 1, channel: 'chat:lobby' });
    const r = await c.nextMessage({ id: 1 });
    assert.equal(r.type, 'subscribed');
    assert.equal(r.channel, 'chat:lobby');
  });

  test('allowed by an exact pattern, which is not a prefix', async () => {
    const c = await user({ channels: ['job:42'] });
    await c.subscribe('job:42');
    await c.expectError({ type: 'subscribe', channel: 'job:420' }, 'forbidden');
  });

  test('no matching pattern → forbidden, connection stays open', async () => {
    const c = await user({ channels: ['chat:*'] });
    const r = await c.expectError({ type: 'subscribe', id: 7, channel: 'job:1' }, 'forbidden');
    assert.equal(r.id, 7);
    await c.expectError({ type: 'subscribe', channel: 'chatroom:1' }, 'forbidden');
    const none = await user();
    await none.expectError({ type: 'subscribe', channel: 'chat:lobby' }, 'forbidden');
    await c.ping();
    c.assertOpen();
  });

  test("another user's user: channel is forbidden, even with channels [\"*\"]", async () => {
    const bob = uniq('bob');
    const c = await user({ channels: ['*', 'user:*'] });
    await c.expectError({ type: 'subscribe', channel: `user:${bob}` }, 'forbidden');
    await c.ping();
  });

  const badNames = [
    ['a space', 'chat:the lobby'],
    ['a slash', 'chat:a/b'],
    ['no namespace separator', 'lobby'],
    ['an empty name', ''],
    ['129 bytes', `chat:${'x'.repeat(124)}`],
    ['non-ASCII', 'chat:café'],
    ['a number instead of a string', 42],
  ];
  for (const [what, channel] of badNames) {
    test(`a channel name with ${what} → bad_request`, async () => {
      if (typeof channel === 'string' && channel.startsWith('chat:x')) assert.equal(Buffer.byteLength(channel), 129);
      const c = await user({ channels: ['*'] });
      await c.expectError({ type: 'subscribe', channel }, 'bad_request');
      await c.ping();
    });
  }

  test('a channel name of 128 bytes of the allowed characters is fine', async () => {
    const channel = `chat:${'aZ09_.:@-'.repeat(13)}${'x'.repeat(6)}`;
    assert.equal(Buffer.byteLength(channel), 128);
    const c = await user({ channels: ['chat:*'] });
    await c.subscribe(channel);
  });

  test('subscribe without a channel → bad_request', async () => {
    const c = await user({ channels: ['*'] });
    const r = await c.expectError({ type: 'subscribe' }, 'bad_request');
    assert.equal('channel' in r, false, JSON.stringify(r));
  });

  test('a malformed since, token or data on a good channel → bad_request that names the channel', async () => {
    const c = await user({ channels: ['chat:*'], publish: ['chat:*'] });
    const bad = [
      [{ type: 'subscribe', channel: 'chat:a', since: { offset: -1, epoch: 'e' } }, /since must be/],
      [{ type: 'subscribe', channel: 'chat:a', since: { offset: 1, epoch: 'a"b' } }, /since must be/],
      [{ type: 'subscribe', channel: 'chat:a', token: 42 }, /token must be/],
      [{ type: 'publish', channel: 'chat:a' }, /publish needs data/],
    ];
    for (const [cmd, message] of bad) {
      const r = await c.expectError(cmd, 'bad_request');
      assert.equal(r.channel, 'chat:a', JSON.stringify(r));
      assert.match(r.message, message);
    }
    await c.ping();
  });
});

describe('bad commands', () => {
  test('unknown type → bad_request with the id, connection stays open', async () => {
    const c = await user();
    const r = await c.expectError({ type: 'launch_missiles', id: 66 }, 'bad_request');
    assert.equal(r.id, 66);
    await c.ping();
  });

  test('no type → bad_request', async () => {
    const c = await user();
    await c.expectError({ channel: 'chat:lobby' }, 'bad_request');
  });

  test('a second auth after authentication → an error reply, not a close', async () => {
    const c = await user();
    c.send({ type: 'auth', id: 3, token: s.token() });
    const r = await c.nextMessage((m) => m.type === 'error' || m.type === 'auth_ok');
    assert.equal(r.type, 'error', JSON.stringify(r));
    await c.ping();
  });

  for (const [what, raw] of [['not JSON', 'this is not json'], ['truncated JSON', '{"type":"ping","id":1'], ['a JSON array', '[1,2,3]']]) {
    test(`${what} after auth → bad_request, connection stays open`, async () => {
      const c = await user();
      c.sendRaw(raw);
      const r = await c.nextMessage({ type: 'error' });
      assert.equal(r.code, 'bad_request', JSON.stringify(r));
      assert.equal(typeof r.message, 'string');
      await c.ping();
      c.assertOpen();
    });
  }
});

describe('publish', () => {
  test('forbidden without a publish pattern (channels alone do not allow it)', async () => {
    const c = await user({ channels: ['chat:*'] });
    await c.subscribe('chat:nopub');
    const r = await c.expectError({ type: 'publish', id: 4, channel: 'chat:nopub', data: 'x' }, 'forbidden');
    assert.equal(r.id, 4);
    await c.expectNoMessage(undefined, { type: 'message' });
  });

  test('forbidden to user: channels, own and others, even with publish ["*"]', async () => {
    const bob = await user({}, 'bob');
    const c = await user({ publish: ['*', 'user:*'] });
    await c.expectError({ type: 'publish', channel: `user:${bob.user}`, data: 'x' }, 'forbidden');
    await c.expectError({ type: 'publish', channel: `user:${c.user}`, data: 'x' }, 'forbidden');
    await bob.expectNoMessage(undefined, { type: 'message' });
    await c.expectNoMessage(undefined, { type: 'message' });
  });

  test('a bad channel name → bad_request', async () => {
    const c = await user({ publish: ['*'] });
    await c.expectError({ type: 'publish', channel: 'chat:a b', data: 1 }, 'bad_request');
  });

  test('published echoes the id; the subscriber gets the data with from stamped', async () => {
    const room = `chat:${uniq('room')}`;
    const alice = await user({ publish: ['chat:*'] });
    const bob = await user({ channels: ['chat:*'] }, 'bob');
    await bob.subscribe(room);
    alice.send({ type: 'publish', id: 31, channel: room, data: { text: 'hi' } });
    const r = await alice.nextMessage({ id: 31 });
    assert.equal(r.type, 'published');
    // chat: keeps history by default, so the reply also names the offset.
    assert.ok(Number.isInteger(r.offset) && r.offset >= 1, JSON.stringify(r));
    const m = await bob.nextOn(room);
    assert.equal(m.offset, r.offset);
    assert.equal(m.epoch, r.epoch);
    assert.deepEqual(m.data, { text: 'hi' });
    assert.equal(m.from, alice.user);
    assert.equal(m.type, 'message');
  });

  test('a client-supplied "from" is overwritten by the gateway; "from" inside data is left alone', async () => {
    const room = `chat:${uniq('room')}`;
    const alice = await user({ publish: ['chat:*'] });
    const bob = await user({ channels: ['chat:*'] }, 'bob');
    await bob.subscribe(room);
    await alice.publish(room, { from: 'mallory' }, { from: 'mallory' });
    const m = await bob.nextOn(room);
    assert.equal(m.from, alice.user);
    assert.deepEqual(m.data, { from: 'mallory' });
  });

  test('any JSON value is carried as data unchanged', async () => {
    const room = `chat:${uniq('room')}`;
    const alice = await user({ publish: ['chat:*'] });
    const bob = await user({ channels: ['chat:*'] }, 'bob');
    await bob.subscribe(room);
    const values = [0, -1.5, 'text with "quotes" and ünïcødé ✓', true, false, null, [1, [2, { a: 3 }]], { nested: { deep: [null] } }, ''];
    for (const v of values) await alice.publish(room, v);
    for (const v of values) assert.deepEqual((await bob.nextOn(room)).data, v);
    await bob.expectNoMessage(undefined, { type: 'message' });
  });
});

describe('unsubscribe', () => {
  test('unsubscribed echoes id and channel; no more messages after it', async () => {
    const room = `chat:${uniq('room')}`;
    const alice = await user({ publish: ['chat:*'] });
    const bob = await user({ channels: ['chat:*'] }, 'bob');
    await bob.subscribe(room);
    await alice.publish(room, 1);
    assert.equal((await bob.nextOn(room)).data, 1);
    bob.send({ type: 'unsubscribe', id: 12, channel: room });
    assert.deepEqual(await bob.nextMessage({ id: 12 }), { type: 'unsubscribed', id: 12, channel: room });
    await alice.publish(room, 2);
    await bob.expectNoMessage(undefined, { type: 'message' });
  });
});

describe('subscription tokens', () => {
  test('wsgw token --channel job:7 lets alice subscribe job:7 without a pattern, not job:8', async () => {
    const sub = uniq('alice');
    const subTok = await s.cliToken(['--sub', sub, '--channel', 'job:7']);
    const alice = await s.user(gw, { sub });
    await alice.expectError({ type: 'subscribe', channel: 'job:7' }, 'forbidden');
    const r = await alice.subscribe('job:7', { token: subTok });
    assert.equal(r.channel, 'job:7');
    await alice.expectError({ type: 'subscribe', channel: 'job:8', token: subTok }, 'forbidden');
  });

  test("bob cannot use alice's subscription token", async () => {
    const aliceSub = uniq('alice');
    const subTok = await s.cliToken(['--sub', aliceSub, '--channel', 'job:7']);
    const bob = await s.user(gw, { sub: uniq('bob') });
    await bob.expectError({ type: 'subscribe', channel: 'job:7', token: subTok }, 'forbidden');
    await bob.ping();
  });

  test('a subscription token minted elsewhere with the same secret works; one with another secret does not', async () => {
    const sub = uniq('alice');
    const alice = await s.user(gw, { sub });
    const good = signJwt({ sub, channel: 'job:99', exp: now() + 600 }, s.secret, { alg: 'HS256' });
    await alice.subscribe('job:99', { token: good });
    const forged = hsToken(randomSecret(48), { sub, channel: 'job:100' });
    await alice.expectError({ type: 'subscribe', channel: 'job:100', token: forged }, 'forbidden');
    const expired = signJwt({ ...claims({ sub }), channel: 'job:101', exp: now() - 120 }, s.secret, { alg: 'HS256' });
    const r = await alice.request({ type: 'subscribe', channel: 'job:101', token: expired });
    assert.equal(r.type, 'error', `expired subscription token accepted: ${JSON.stringify(r)}`);
    await alice.ping();
  });

  test("no subscription token opens another user's user: channel, however it was signed", async () => {
    const aliceSub = uniq('alice');
    const bobSub = uniq('bob');
    // An issuer that signs carelessly: the token names alice and bob's channel.
    const subTok = await s.cliToken(['--sub', aliceSub, '--channel', `user:${bobSub}`]);
    const alice = await s.user(gw, { sub: aliceSub });
    const r = await alice.request({ type: 'subscribe', channel: `user:${bobSub}`, token: subTok });
    assert.equal(r.type, 'error', `another user's channel opened: ${JSON.stringify(r)}`);
    assert.equal(r.code, 'forbidden');
    assert.equal(r.message, 'private channel');
    assert.equal(r.channel, `user:${bobSub}`);
    await alice.ping();
  });

  test('messages reach a subscriber admitted by a subscription token', async () => {
    const sub = uniq('alice');
    const channel = `job:${uniq('j')}`;
    const alice = await s.user(gw, { sub });
    await alice.subscribe(channel, { token: await s.cliToken(['--sub', sub, '--channel', channel]) });
    const worker = await user({ publish: ['job:*'] }, 'worker');
    await worker.publish(channel, { progress: 40 });
    const m = await alice.nextOn(channel);
    assert.deepEqual(m.data, { progress: 40 });
  });
});
