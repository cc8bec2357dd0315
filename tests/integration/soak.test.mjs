// Soak: 5,000 connections on one gateway (Redis bus) under continuous
// connect/disconnect churn and traffic, for WSGW_SOAK_SECONDS (default 20;
// the 60 s with WSGW_SOAK_SECONDS=60). Every client is authenticated
// and subscribed to a room; every 100 ms a slice of them leaves (closing
// properly or just dropping the TCP connection) and as many new ones come;
// rooms get ~200 messages a second. Afterwards the gateway's RSS must be
// within 10% of its first plateau (plain build; ASan keeps freed memory in
// quarantine on purpose), and the gateway must stop cleanly with no
// sanitizer report (the harness checks that at the end, on the ASan run).
//
// The clients are lean `ws` sockets that only count, not WsClients: 5,000 of
// those keeping every message would measure node, not the gateway.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { Scope, RespConnection, uniq, T, SANITIZED, rssBytes, metrics, waitFor } from './lib/index.mjs';

const N = 5000;
const ROOMS = 50;
const SECONDS = Number(process.env.WSGW_SOAK_SECONDS) || 20;
// Every 100 ms: 250 connections a second replaced, 200 messages a second of
// ~100 recipients each; a quarter of that on the ASan build, which runs
// several times slower.
const CHURN_PER_TICK = SANITIZED ? 6 : 25;
const PUBLISH_PER_TICK = SANITIZED ? 5 : 20;

describe(`soak: ${N} connections, churn and traffic for ${SECONDS} s`, () => {
  const s = new Scope('soak');
  let gw;
  let redis;
  let pub;
  const live = new Set();
  const stats = { opened: 0, failed: 0, unexpectedCloses: 0, messages: 0, errors: [] };

  before(async () => {
    redis = await s.redis();
    gw = await s.gateway({ name: 'soak', redis });
    pub = await RespConnection.connect(redis.port);
  });
  after(async () => {
    for (const c of live) c.ws.terminate();
    pub?.close();
    await s.close();
  });

  /** Opens, authenticates and subscribes one lean client; resolves it, or null on failure. */
  function openClient(k) {
    return new Promise((resolve) => {
      const room = `chat:soak${k % ROOMS}`;
      const ws = new WebSocket(gw.url, { perMessageDeflate: false });
      const c = { ws, room, ready: false, leaving: false };
      const fail = () => {
        stats.failed += 1;
        resolve(null);
      };
      const timer = setTimeout(() => {
        ws.terminate();
        fail();
      }, T(20000));
      ws.on('error', () => {});
      ws.once('open', () => {
        ws.send(JSON.stringify({ type: 'auth', token: s.token({ sub: uniq('soak'), channels: ['chat:*'] }) }));
        ws.send(JSON.stringify({ type: 'subscribe', id: 1, channel: room }));
      });
      ws.on('message', (data) => {
        const m = JSON.parse(data);
        if (m.type === 'message') {
          stats.messages += 1;
        } else if (m.id === 1 && m.type === 'subscribed') {
          clearTimeout(timer);
          c.ready = true;
          stats.opened += 1;
          live.add(c);
          resolve(c);
        } else if (m.type === 'error') {
          stats.errors.push(m);
        }
      });
      ws.on('close', (code) => {
        live.delete(c);
        if (!c.ready) {
          clearTimeout(timer);
          fail();
        } else if (!c.leaving) {
          stats.unexpectedCloses += 1;
          stats.errors.push({ close: code });
        }
      });
    });
  }

  async function openMany(n, concurrency = 200) {
    let next = 0;
    const worker = async () => {
      while (next < n) await openClient(next++);
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  }

  function leave(c) {
    c.leaving = true;
    live.delete(c);
    if (Math.random() < 0.5) c.ws.close(1000);
    else c.ws.terminate(); // a vanished browser: no close frame
  }

  function publishSome(n) {
    for (let j = 0; j < n; j++) {
      const room = `chat:soak${Math.floor(Math.random() * ROOMS)}`;
      pub.command('PUBLISH', `wsgw:${room}`, JSON.stringify({ data: { t: Date.now(), pad: 'x'.repeat(100) } })).catch(() => {});
    }
  }

  /** RSS after it settles: the smallest of a few samples a moment apart. */
  async function settledRss() {
    let min = Infinity;
    for (let i = 0; i < 5; i++) {
      await sleep(200);
      min = Math.min(min, rssBytes(gw.pid));
    }
    return min;
  }

  async function run(seconds) {
    const end = Date.now() + seconds * 1000;
    let opening = 0;
    while (Date.now() < end) {
      const t0 = Date.now();
      // Backpressure: no new churn while the last slices are still opening.
      if (opening < 4 * CHURN_PER_TICK) {
        const leaving = [...live].sort(() => Math.random() - 0.5).slice(0, CHURN_PER_TICK);
        leaving.forEach(leave);
        const k0 = stats.opened;
        leaving.forEach((_, j) => {
          opening += 1;
          openClient(k0 + j).finally(() => { opening -= 1; });
        });
      }
      publishSome(PUBLISH_PER_TICK);
      await sleep(Math.max(0, 100 - (Date.now() - t0)));
    }
  }

  test('RSS returns to within 10% of its first plateau; nothing unexpected happens to any client', async () => {
    const t0 = Date.now();
    await openMany(N);
    assert.equal(live.size, N, `${stats.failed} clients failed to connect`);
    console.log(`# ${N} clients connected, authenticated and subscribed in ${Date.now() - t0} ms`);
    // First plateau: everybody connected, traffic flowing, no churn yet.
    const steady = Date.now() + 3000;
    while (Date.now() < steady) {
      publishSome(PUBLISH_PER_TICK);
      await sleep(100);
    }
    const plateau1 = await settledRss();

    await run(SECONDS);
    // Back to N connections, churn over, traffic still flowing.
    await waitFor(() => live.size >= N - CHURN_PER_TICK, { timeout: T(20000), what: `${N} clients again (have ${live.size})` });
    await openMany(N - live.size);
    for (let i = 0; i < 20; i++) {
      publishSome(PUBLISH_PER_TICK);
      await sleep(100);
    }
    const plateau2 = await settledRss();
    const m = await metrics(gw);
    const report = `RSS ${(plateau1 / 1048576).toFixed(1)} MiB -> ${(plateau2 / 1048576).toFixed(1)} MiB; `
      + `${stats.opened} connections opened, ${stats.messages} messages received, ${m.wsgw_connections} open`;
    console.log(`# ${report}`);

    assert.equal(stats.failed, 0, 'connections that failed');
    assert.equal(stats.unexpectedCloses, 0, `closes nobody asked for: ${JSON.stringify(stats.errors.slice(0, 5))}`);
    assert.deepEqual(stats.errors, []);
    assert.ok(stats.messages > SECONDS * 1000, `too few messages: ${stats.messages}`);
    assert.ok(Math.abs(m.wsgw_connections - N) <= CHURN_PER_TICK, `the gateway counts ${m.wsgw_connections} connections`);
    if (!SANITIZED) assert.ok(plateau2 <= plateau1 * 1.1, report);
  });
});
