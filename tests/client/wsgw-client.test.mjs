// Unit tests of web-demo/wsgw-client.js: backoff, reconnect and failover,
// close codes, token refresh, recovery with `since`, app pings and state
// events. A fake socket stands in for the network and a fake clock for
// time (helpers.mjs), so every test runs in milliseconds and decides
// exactly when each timer fires.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../web-demo/wsgw-client.js';
import { ackSubscribe, connectSocket, connected, flush, setup } from './helpers.mjs';

const ALMOST_ONE = 0.999999;

// ------------------------------------------------------------ backoff

test('backoffDelay: full jitter under min(20 s, 0.5 s * 2^(attempt-1))', () => {
  const bounds = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000];
  bounds.forEach((bound, i) => {
    assert.equal(backoffDelay(i + 1, 500, 20000, () => 0), 0);
    assert.equal(backoffDelay(i + 1, 500, 20000, () => ALMOST_ONE), bound - 1);
    assert.equal(backoffDelay(i + 1, 500, 20000, () => 0.5), bound / 2);
  });
  assert.equal(backoffDelay(1000, 500, 20000, () => ALMOST_ONE), 19999, 'huge attempts stay capped');
});

test('failed connection attempts back off exponentially, capped, alternating the URLs', async () => {
  const env = setup({ random: () => ALMOST_ONE });
  env.client.connect();
  const delays = [];
  for (let i = 0; i < 8; i++) {
    await flush();
    const ws = env.ws();
    assert.equal(ws.url, i % 2 === 0 ? 'ws://a/ws' : 'ws://b/ws');
    ws.serverClose(1006);
    const ev = env.events.state.at(-1);
    assert.equal(ev.state, 'reconnecting');
    assert.equal(ev.code, 1006);
    delays.push(ev.delayMs);
    // Not a millisecond early.
    await env.clock.advance(ev.delayMs - 1);
    assert.equal(env.sockets.length, i + 1);
    await env.clock.advance(1);
    assert.equal(env.sockets.length, i + 2);
  }
  assert.deepEqual(delays, [499, 999, 1999, 3999, 7999, 15999, 19999, 19999]);
});

test('a connection that reached auth_ok resets the backoff; the next drop retries within 0.5 s on the other URL', async () => {
  const env = setup({ random: () => ALMOST_ONE });
  env.client.connect();
  for (let i = 0; i < 3; i++) {
    await flush();
    env.ws().serverClose(1006);
    await env.clock.advance(env.events.state.at(-1).delayMs);
  }
  const ws = await connectSocket(env);
  assert.equal(env.client.state, 'connected');
  const url = ws.url;
  ws.serverClose(1001, 'server shutting down');
  const ev = env.events.state.at(-1);
  assert.equal(ev.state, 'reconnecting');
  assert.ok(ev.delayMs < 500, `delay ${ev.delayMs}`);
  assert.notEqual(ev.url, url, 'fails over to the other gateway');
});

test('state events: connecting, connected, reconnecting (with delay, code, next URL), connecting, connected', async () => {
  const env = setup();
  const ws = await connected(env);
  ws.serverClose(1006);
  await env.clock.advance(250);
  await connectSocket(env);
  assert.deepEqual(env.states(), ['connecting', 'connected', 'reconnecting', 'connecting', 'connected']);
  const r = env.events.state[2];
  assert.equal(r.delayMs, 250);
  assert.equal(r.attempt, 1);
  assert.equal(r.code, 1006);
  assert.equal(r.url, 'ws://b/ws');
  assert.equal(env.events.state[4].url, 'ws://b/ws');
});

// ------------------------------------------------------------ close codes

for (const code of [1000, 1003, 1008, 1009]) {
  test(`close ${code}: no reconnect`, async () => {
    const env = setup();
    const ws = await connected(env);
    ws.serverClose(code, 'bye');
    assert.equal(env.client.state, 'closed');
    assert.deepEqual(env.events.state.at(-1), { state: 'closed', code, reason: 'bye' });
    await env.clock.advance(120_000);
    assert.equal(env.sockets.length, 1);
    assert.deepEqual(env.clock.pending(), [], 'no timer left armed');
  });
}

test('4001 on a token fetched for this attempt: stops, no reconnect loop', async () => {
  const env = setup();
  env.client.connect();
  await flush();
  env.ws().open();
  assert.deepEqual(env.ws().sent[0], { type: 'auth', token: 'tok1' });
  env.ws().serverClose(4001, 'invalid signature');
  assert.equal(env.client.state, 'closed');
  await env.clock.advance(120_000);
  assert.equal(env.sockets.length, 1);
  assert.equal(env.tokenCalls, 1);
});

test('4001 on a cached token: one immediate retry with a fresh token, on the same URL; a second 4001 stops', async () => {
  const env = setup();
  const ws1 = await connected(env);
  ws1.serverClose(1006); // a network drop: the reconnect reuses the cached token
  await env.clock.advance(250);
  await flush();
  const ws2 = env.ws();
  ws2.open();
  assert.equal(ws2.lastSent('auth').token, 'tok1', 'cached token reused after a drop');
  assert.equal(env.tokenCalls, 1);

  ws2.serverClose(4001, 'unknown key id'); // e.g. the gateways rotated their key
  assert.equal(env.events.state.at(-1).state, 'reconnecting');
  assert.equal(env.events.state.at(-1).delayMs, 0);
  await env.clock.advance(0);
  const ws3 = env.ws();
  assert.equal(ws3.url, ws2.url);
  ws3.open();
  assert.equal(ws3.lastSent('auth').token, 'tok2', 'a fresh token from getToken');
  assert.equal(env.tokenCalls, 2);

  ws3.serverClose(4001, 'unknown key id');
  assert.equal(env.client.state, 'closed');
  await env.clock.advance(120_000);
  assert.equal(env.sockets.length, 3);
});

test('4003 (token expired): reconnects with backoff and a fresh token', async () => {
  const env = setup();
  const ws = await connected(env);
  ws.serverClose(4003, 'token expired');
  assert.equal(env.events.state.at(-1).state, 'reconnecting');
  await env.clock.advance(env.events.state.at(-1).delayMs);
  await flush();
  env.ws().open();
  assert.equal(env.ws().lastSent('auth').token, 'tok2');
  assert.equal(env.tokenCalls, 2);
});

test('a getToken that fails is reported and retried with backoff', async () => {
  let calls = 0;
  const env = setup({
    getToken: async () => {
      calls += 1;
      if (calls === 1) throw new Error('login service down');
      return 'tokX';
    },
  });
  env.client.connect();
  await flush();
  assert.equal(env.sockets.length, 0, 'no socket without a token');
  assert.equal(env.events.error[0].code, 'token_failed');
  assert.match(env.events.error[0].message, /login service down/);
  assert.equal(env.client.state, 'reconnecting');
  await env.clock.advance(env.events.state.at(-1).delayMs);
  await flush();
  env.ws().open();
  assert.equal(env.ws().lastSent('auth').token, 'tokX');
});

// ------------------------------------------------------------ refresh before expiry

test('refresh: a fresh token is sent refreshBeforeMs (60 s) before exp, then again before the new exp', async () => {
  const env = setup({ pingIntervalMs: 0 }); // no pings: nothing answers them here
  const ws = await connected(env, { exp: env.expIn(3600) });
  await env.clock.advance(3539_000);
  assert.equal(ws.sentOf('refresh').length, 0, 'not early');
  await env.clock.advance(1000);
  const req = ws.lastSent('refresh');
  assert.equal(req.token, 'tok2');
  ws.deliver({ type: 'refreshed', id: req.id, exp: env.expIn(3600) });
  await flush();
  await env.clock.advance(3540_000);
  assert.equal(ws.lastSent('refresh').token, 'tok3');
  assert.equal(env.client.state, 'connected');
  assert.equal(env.sockets.length, 1, 'refresh needs no reconnect');
});

test('refresh of a short-lived token happens at half its remaining life', async () => {
  const env = setup();
  const ws = await connected(env, { exp: env.expIn(30) });
  await env.clock.advance(14_999);
  assert.equal(ws.sentOf('refresh').length, 0);
  await env.clock.advance(1);
  assert.equal(ws.sentOf('refresh').length, 1);
});

test('a refused refresh is reported and tried again before expiry; the new token is used only once accepted', async () => {
  const env = setup({ pingIntervalMs: 0 });
  const ws = await connected(env, { exp: env.expIn(120) });
  await env.clock.advance(60_000);
  const req = ws.lastSent('refresh');
  ws.deliver({ type: 'error', id: req.id, code: 'forbidden', message: 'sub mismatch' });
  await flush();
  assert.equal(env.events.error.at(-1).code, 'forbidden');
  await env.clock.advance(30_000);
  assert.equal(ws.sentOf('refresh').length, 2, 'retried at half the remaining time');
  // After a drop the cached token is still the one the gateway accepted last.
  ws.serverClose(1006);
  await env.clock.advance(env.events.state.at(-1).delayMs);
  await flush();
  env.ws().open();
  assert.equal(env.ws().lastSent('auth').token, 'tok1');
});

// ------------------------------------------------------------ recovery

test('resubscribe after a reconnect carries since = last offset and epoch, and the subscription token', async () => {
  const env = setup();
  const got = [];
  const recovered = [];
  const ws1 = await connected(env);
  const sub = env.client.subscribe('job:42', {
    token: 'subtok', onMessage: (data, msg) => got.push(msg.offset), onRecovered: (r) => recovered.push(r),
  });
  const req1 = ackSubscribe(ws1, 'job:42', { offset: 3, epoch: 'E1' });
  assert.equal(req1.token, 'subtok');
  assert.equal(req1.since, undefined, 'first subscribe has no since');
  assert.equal((await sub.ready).offset, 3);
  for (const offset of [3, 4]) ws1.deliver({ type: 'message', channel: 'job:42', data: { progress: offset }, offset, epoch: 'E1' });

  ws1.serverClose(1006);
  await env.clock.advance(env.events.state.at(-1).delayMs);
  const ws2 = await connectSocket(env);
  const req2 = ws2.lastSent('subscribe');
  assert.deepEqual({ channel: req2.channel, token: req2.token, since: req2.since },
    { channel: 'job:42', token: 'subtok', since: { offset: 4, epoch: 'E1' } });
  ackSubscribe(ws2, 'job:42', { offset: 6, epoch: 'E1', recovered: true });
  for (const offset of [5, 6, 6]) ws2.deliver({ type: 'message', channel: 'job:42', data: { progress: offset }, offset, epoch: 'E1' });

  assert.deepEqual(got, [3, 4, 5, 6], 'replayed messages once each, duplicate dropped');
  assert.deepEqual(recovered, [true]);
  assert.deepEqual(env.events.recovered, [{ channel: 'job:42', recovered: true }]);
});

test('recovered:false is passed to the app, and delivery resumes after the reply\'s offset', async () => {
  const env = setup();
  const got = [];
  const recovered = [];
  const ws1 = await connected(env);
  env.client.subscribe('chat:room', { onMessage: (d, m) => got.push(m.offset), onRecovered: (r) => recovered.push(r) });
  ackSubscribe(ws1, 'chat:room', { offset: 10, epoch: 'E1' });
  ws1.deliver({ type: 'message', channel: 'chat:room', data: 'x', offset: 11, epoch: 'E1' });
  ws1.serverClose(1006);
  await env.clock.advance(env.events.state.at(-1).delayMs);
  const ws2 = await connectSocket(env);
  assert.deepEqual(ws2.lastSent('subscribe').since, { offset: 11, epoch: 'E1' });
  ackSubscribe(ws2, 'chat:room', { offset: 3, epoch: 'E2', recovered: false }); // Redis lost the history
  ws2.deliver({ type: 'message', channel: 'chat:room', data: 'y', offset: 4, epoch: 'E2' });
  assert.deepEqual(recovered, [false]);
  assert.deepEqual(got, [11, 4], 'a new epoch restarts the offsets');
  // The next reconnect asks from the new position.
  ws2.serverClose(1006);
  await env.clock.advance(env.events.state.at(-1).delayMs);
  const ws3 = await connectSocket(env);
  assert.deepEqual(ws3.lastSent('subscribe').since, { offset: 4, epoch: 'E2' });
});

test('a live message with another epoch means history was lost: recovered:false', async () => {
  const env = setup();
  const recovered = [];
  const ws = await connected(env);
  env.client.subscribe('job:1', { onRecovered: (r) => recovered.push(r) });
  ackSubscribe(ws, 'job:1', { offset: 5, epoch: 'E1' });
  ws.deliver({ type: 'message', channel: 'job:1', data: {}, offset: 1, epoch: 'E2' });
  assert.deepEqual(recovered, [false]);
});

test('a channel without history: resubscribing reports recovered:false (messages may have been missed)', async () => {
  const env = setup();
  const recovered = [];
  const ws1 = await connected(env);
  env.client.subscribe('news:x', { onRecovered: (r) => recovered.push(r) });
  ackSubscribe(ws1, 'news:x');
  assert.deepEqual(recovered, [], 'nothing to recover on the first subscribe');
  ws1.serverClose(1006);
  await env.clock.advance(env.events.state.at(-1).delayMs);
  const ws2 = await connectSocket(env);
  assert.equal(ws2.lastSent('subscribe').since, undefined);
  ackSubscribe(ws2, 'news:x');
  assert.deepEqual(recovered, [false]);
});

test('a gap error makes the client subscribe again from where it was', async () => {
  const env = setup();
  const ws = await connected(env);
  env.client.subscribe('job:9');
  ackSubscribe(ws, 'job:9', { offset: 2, epoch: 'E' });
  ws.deliver({ type: 'message', channel: 'job:9', data: {}, offset: 2, epoch: 'E' });
  ws.deliver({ type: 'error', code: 'gap', channel: 'job:9', message: 'messages lost' });
  assert.equal(env.events.error.at(-1).code, 'gap');
  assert.deepEqual(ws.lastSent('subscribe').since, { offset: 2, epoch: 'E' });
  assert.equal(ws.sentOf('subscribe').length, 2);
});

test('subscribe refused as unavailable (Redis down) is retried with backoff; forbidden rejects ready', async () => {
  const env = setup();
  const ws = await connected(env);
  const a = env.client.subscribe('job:1');
  const first = ws.lastSent('subscribe');
  ws.deliver({ type: 'error', id: first.id, code: 'unavailable', channel: 'job:1', message: 'redis down' });
  await env.clock.advance(250);
  assert.equal(ws.sentOf('subscribe').length, 2, 'retried');
  ackSubscribe(ws, 'job:1', { offset: 0, epoch: 'E' });
  assert.equal((await a.ready).channel, 'job:1');

  const b = env.client.subscribe('job:2');
  const req = ws.lastSent('subscribe');
  ws.deliver({ type: 'error', id: req.id, code: 'forbidden', channel: 'job:2', message: 'no' });
  await assert.rejects(b.ready, (e) => e.code === 'forbidden' && e.channel === 'job:2');
});

// ------------------------------------------------------------ pings, publish, close

test('app ping: a pong keeps the link; no pong within pingTimeoutMs closes it and reconnects', async () => {
  const env = setup({ pingIntervalMs: 20_000, pingTimeoutMs: 10_000 });
  const ws = await connected(env);
  await env.clock.advance(20_000);
  const ping = ws.lastSent('ping');
  assert.ok(ping, 'ping sent');
  ws.deliver({ type: 'pong', id: ping.id });
  await env.clock.advance(15_000);
  assert.equal(env.client.state, 'connected');
  await env.clock.advance(5_000);
  assert.equal(ws.sentOf('ping').length, 2);
  await env.clock.advance(9_999);
  assert.equal(env.client.state, 'connected');
  await env.clock.advance(1);
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'ping timeout' });
  assert.equal(env.events.state.at(-1).state, 'reconnecting');
  assert.equal(env.events.state.at(-1).reason, 'ping timeout');
});

test('connect timeout: a socket that never authenticates is given up and the next URL tried', async () => {
  const env = setup({ connectTimeoutMs: 5000 });
  env.client.connect();
  await flush();
  env.ws().open(); // the auth reply never comes
  await env.clock.advance(5000);
  assert.equal(env.events.state.at(-1).reason, 'connect timeout');
  await env.clock.advance(env.events.state.at(-1).delayMs);
  assert.equal(env.ws().url, 'ws://b/ws');
});

test('publish resolves with the reply, rejects with the gateway\'s code, and fails fast when not connected', async () => {
  const env = setup();
  await assert.rejects(env.client.publish('chat:x', {}), (e) => e.code === 'not_connected');
  const ws = await connected(env);
  const p1 = env.client.publish('chat:x', { text: 'hi' });
  const req1 = ws.lastSent('publish');
  assert.deepEqual(req1.data, { text: 'hi' });
  ws.deliver({ type: 'published', id: req1.id, offset: 1, epoch: 'E' });
  assert.equal((await p1).offset, 1);
  const p2 = env.client.publish('user:bob', 1);
  ws.deliver({ type: 'error', id: ws.lastSent('publish').id, code: 'forbidden', message: 'no' });
  await assert.rejects(p2, (e) => e.code === 'forbidden');
  const p3 = env.client.publish('chat:x', 2);
  ws.serverClose(1006);
  await assert.rejects(p3, (e) => e.code === 'disconnected');
});

test('close(): closes with 1000, stops every timer, and a later connect() resubscribes', async () => {
  const env = setup();
  const ws = await connected(env);
  env.client.subscribe('chat:a');
  ackSubscribe(ws, 'chat:a', { offset: 1, epoch: 'E' });
  env.client.close();
  assert.deepEqual(ws.closedWith, { code: 1000, reason: 'client close' });
  assert.equal(env.client.state, 'closed');
  assert.deepEqual(env.clock.pending(), []);
  env.client.connect();
  const ws2 = await connectSocket(env);
  assert.deepEqual(ws2.lastSent('subscribe').since, { offset: 1, epoch: 'E' });
});

test('an exception in an application callback does not break the client', async () => {
  const env = setup();
  const reported = [];
  const orig = globalThis.reportError;
  globalThis.reportError = (e) => reported.push(e.message);
  try {
    const ws = await connected(env);
    const got = [];
    env.client.subscribe('chat:a', { onMessage: () => { throw new Error('app bug'); } });
    env.client.subscribe('chat:a', { onMessage: (d) => got.push(d) });
    ackSubscribe(ws, 'chat:a');
    ws.deliver({ type: 'message', channel: 'chat:a', data: 'x' });
    assert.deepEqual(got, ['x']);
    assert.deepEqual(reported, ['app bug']);
  } finally {
    globalThis.reportError = orig;
  }
});
