// Limits, each at its documented threshold with its documented answer and
// its metric: --max-connections (HTTP 503), --max-connects-per-ip (closed
// at accept), --allowed-origin (HTTP 403), --max-subscriptions
// (limit_exceeded), --publish-rate/--publish-burst (rate_limited, then 4029
// for sustained abuse), --handshake-timeout-seconds (the TCP connection is
// dropped), and the counters of the existing 1009 and 1003 closes.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Scope, WsClient, uniq, T, QUIET_MS, tryUpgrade, rawConnect, metrics, waitFor,
} from './lib/index.mjs';

const s = new Scope('limits');
after(() => s.close());

/** An authenticated WsClient over an upgrade that succeeded. */
async function authed(up, claims = {}) {
  assert.equal(up.status, 101, `upgrade: ${JSON.stringify(up.status)} ${up.error?.message || ''}`);
  const c = new WsClient(up.ws, uniq('c'));
  s.clients.push(c);
  c.authOk = await c.auth(s.token({ sub: uniq('u'), ...claims }));
  return c;
}

describe('--max-connections', () => {
  let gw;
  before(async () => {
    gw = await s.gateway({ name: 'maxconn', args: ['--max-connections', '3'] });
  });

  test('3 connections are served; the 4th upgrade gets HTTP 503; after one closes a new one is served', async () => {
    const ups = await Promise.all([1, 2, 3].map(() => tryUpgrade(gw.url)));
    const clients = [];
    for (const up of ups) clients.push(await authed(up));
    const refused = await tryUpgrade(gw.url);
    assert.equal(refused.status, 503);
    // HTTP endpoints are not WebSocket connections: they still answer.
    assert.equal((await gw.get('/healthz')).status, 200);
    for (const c of clients) await c.ping();
    await clients[0].close();
    const again = await waitFor(async () => {
      const up = await tryUpgrade(gw.url);
      if (up.status === 101) return up;
      return null;
    }, { timeout: T(5000), what: 'a slot after one client closed' });
    const d = await authed(again);
    await d.ping();
    assert.ok((await metrics(gw)).wsgw_limit_max_connections_total >= 1);
  });
});

describe('--max-connects-per-ip', () => {
  let gw;
  before(async () => {
    gw = await s.gateway({ name: 'perip', args: ['--max-connects-per-ip', '5'] });
  });

  test('5 upgrades from one address within a second are served, the 6th is closed at accept; other addresses are not affected', async () => {
    // The burst comes from 127.0.0.5 so that the harness's own requests
    // (from 127.0.0.1) do not count against it.
    const ups = await Promise.all([1, 2, 3, 4, 5, 6].map(() => tryUpgrade(gw.url, { localAddress: '127.0.0.5' })));
    const opened = ups.filter((u) => u.status === 101);
    const dropped = ups.filter((u) => u.status === 0);
    assert.equal(opened.length, 5, JSON.stringify(ups.map((u) => u.status)));
    assert.equal(dropped.length, 1, 'the 6th is closed without an HTTP answer');
    const other = await tryUpgrade(gw.url, { localAddress: '127.0.0.6' });
    assert.equal(other.status, 101);
    await authed(other);
    for (const u of opened) await authed(u);
    assert.equal((await metrics(gw)).wsgw_limit_connects_per_ip_total, 1);
  });

  test('the next second the address is served again', async () => {
    await sleep(1100);
    const up = await tryUpgrade(gw.url, { localAddress: '127.0.0.5' });
    assert.equal(up.status, 101);
    await (await authed(up)).ping();
  });
});

describe('--allowed-origin', () => {
  let gw;
  before(async () => {
    gw = await s.gateway({
      name: 'origin',
      args: ['--allowed-origin', 'https://app.example.com', '--allowed-origin', 'http://localhost:3000'],
    });
  });

  test('listed Origins upgrade; another Origin gets HTTP 403; no Origin (not a browser) upgrades', async () => {
    for (const origin of ['https://app.example.com', 'http://localhost:3000']) {
      const up = await tryUpgrade(gw.url, { headers: { Origin: origin } });
      assert.equal(up.status, 101, origin);
      await (await authed(up)).ping();
    }
    for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.test', 'null']) {
      assert.equal((await tryUpgrade(gw.url, { headers: { Origin: origin } })).status, 403, origin);
    }
    const none = await tryUpgrade(gw.url);
    assert.equal(none.status, 101);
    await authed(none);
    assert.equal((await metrics(gw)).wsgw_limit_origin_total, 3);
  });

  test('without --allowed-origin any Origin upgrades', async () => {
    const any = await s.gateway({ name: 'anyorigin' });
    const up = await tryUpgrade(any.url, { headers: { Origin: 'https://anything.example' } });
    assert.equal(up.status, 101);
    await authed(up);
  });
});

describe('--max-subscriptions', () => {
  let gw;
  before(async () => {
    gw = await s.gateway({ name: 'maxsubs', args: ['--max-subscriptions', '3'] });
  });

  test('3 channels (the own user: channel not counted) are served; the 4th is limit_exceeded; the connection stays open', async () => {
    const c = await authed(await tryUpgrade(gw.url), { channels: ['chat:*'] });
    for (const room of ['a', 'b', 'c']) await c.subscribe(`chat:${room}`);
    const r = await c.expectError({ type: 'subscribe', id: 44, channel: 'chat:d' }, 'limit_exceeded');
    assert.equal(r.id, 44);
    assert.equal(r.channel, 'chat:d');
    // Subscribing again to a channel already held is not one more.
    await c.subscribe('chat:b');
    await c.unsubscribe('chat:a');
    await c.subscribe('chat:d');
    await c.expectError({ type: 'subscribe', channel: 'chat:e' }, 'limit_exceeded');
    await c.ping();
    assert.equal((await metrics(gw)).wsgw_limit_subscriptions_total, 2);
  });
});

describe('--publish-rate / --publish-burst', () => {
  let gw;
  before(async () => {
    gw = await s.gateway({ name: 'rate', args: ['--publish-rate', '1', '--publish-burst', '5'] });
  });

  test('a burst of 5 is published; the 6th gets rate_limited with its id; a token comes back after 1 s', async () => {
    const c = await authed(await tryUpgrade(gw.url), { publish: ['chat:*'] });
    for (let i = 0; i < 5; i++) await c.publish('chat:rate', i);
    const r = await c.expectError({ type: 'publish', id: 99, channel: 'chat:rate', data: 5 }, 'rate_limited');
    assert.equal(r.id, 99);
    await sleep(1100);
    await c.publish('chat:rate', 'after a second');
    await c.ping();
    c.assertOpen();
  });

  test('sustained abuse: 10 x rate refusals within 10 s are answered rate_limited, the next one closes with 4029', async () => {
    const c = await authed(await tryUpgrade(gw.url), { publish: ['chat:*'] });
    const sub = await authed(await tryUpgrade(gw.url), { channels: ['chat:*'] });
    await sub.subscribe('chat:flood');
    const before = await metrics(gw);
    // One at a time, each reply awaited: 5 from the burst, then 10 refusals
    // (10 x --publish-rate 1), then the 11th refusal closes.
    for (let i = 1; i <= 15; i++) {
      const m = await c.request({ type: 'publish', channel: 'chat:flood', data: i });
      if (i <= 5) assert.equal(m.type, 'published', `publish ${i}: ${JSON.stringify(m)}`);
      else assert.equal(m.code, 'rate_limited', `publish ${i}: ${JSON.stringify(m)}`);
    }
    c.send({ type: 'publish', id: 999, channel: 'chat:flood', data: 16 });
    const info = await c.expectClose(4029, T(5000));
    assert.equal(info.reason, 'rate limited');
    assert.equal(c.received.filter((m) => m.id === 999).length, 0, 'the 16th is not answered');
    // Only the 5 accepted messages were published.
    const got = [];
    for (let i = 0; i < 5; i++) got.push((await sub.nextOn('chat:flood')).data);
    assert.deepEqual(got, [1, 2, 3, 4, 5]);
    await sub.expectNoMessage(QUIET_MS, { type: 'message' });
    const m = await metrics(gw);
    assert.equal(m.wsgw_limit_publish_rate_closes_total - before.wsgw_limit_publish_rate_closes_total, 1);
    assert.equal(m.wsgw_limit_publish_rate_total - before.wsgw_limit_publish_rate_total, 10);
  });
});

describe('--handshake-timeout-seconds', () => {
  let gw;
  before(async () => {
    gw = await s.gateway({ name: 'handshake', args: ['--handshake-timeout-seconds', '2'] });
  });

  test('a TCP connection that sends nothing, or half a request, is dropped after 2 s; a finished upgrade is kept', async () => {
    const silent = await rawConnect(gw.port);
    const half = await rawConnect(gw.port, 'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    const good = await authed(await tryUpgrade(gw.url));
    for (const r of [silent, half]) {
      const at = await Promise.race([r.closed, sleep(T(6000)).then(() => null)]);
      assert.ok(at, 'the connection was not dropped');
      const took = at - r.openedAt;
      assert.ok(took >= 1500 && took <= T(4000), `dropped after ${took} ms, expected about 2000`);
    }
    await sleep(500);
    await good.ping();
    good.assertOpen();
    assert.ok((await metrics(gw)).wsgw_limit_handshake_timeouts_total >= 2);
  });
});

describe('message size and binary frames are counted', () => {
  test('1009 and 1003 closes show in /metrics', async () => {
    const gw = await s.gateway({ name: 'frames', args: ['--max-message-bytes', '1024'] });
    const big = await authed(await tryUpgrade(gw.url));
    big.sendRaw(JSON.stringify({ type: 'ping', pad: 'x'.repeat(1100) }));
    await big.expectClose(1009);
    const bin = await authed(await tryUpgrade(gw.url));
    bin.sendRaw(Buffer.from('{}'), { binary: true });
    await bin.expectClose(1003);
    const m = await metrics(gw);
    assert.equal(m.wsgw_limit_message_too_big_total, 1);
    assert.equal(m.wsgw_limit_binary_frames_total, 1);
  });
});
