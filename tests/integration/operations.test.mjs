// Operations, as an operator sees them: a SIGTERM drain that spreads the
// 1001 closes over --drain-seconds while /readyz says 503, --workers N
// processes sharing one port (both get clients, both deliver, a killed one
// comes back), and /metrics as Prometheus text whose counters follow the
// traffic.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { Scope, WsClient, runWsgw, uniq, waitFor, withTimeout, T } from './lib/index.mjs';

const s = new Scope('operations');
after(() => s.close());

const perms = { channels: ['chat:*', 'job:*'], publish: ['chat:*'] };
const isMsg = (channel) => (m) => m.type === 'message' && m.channel === channel;

/** The process part of a connection id ("<process>-<serial>"). */
const processOf = (c) => c.authOk.conn.split('-')[0];

async function users(gw, n, name) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await s.user(gw, { sub: uniq(`${name}${i}`), ...perms }, `${name}${i}`));
  return out;
}

/** Rejects unless a WebSocket upgrade to gw is refused with HTTP 503. */
async function expectUpgradeRefused(gw) {
  await assert.rejects(WsClient.connect(gw.url, { name: 'refused', timeout: T(3000) }),
    /got HTTP 503/);
}

describe('graceful drain on SIGTERM', () => {
  test('every client gets 1001, spread over --drain-seconds; /readyz 503 and no upgrades meanwhile; exit 0', async () => {
    const DRAIN_S = 3;
    const gw = await s.gateway({ name: 'drain', drainSeconds: DRAIN_S });
    const clients = await users(gw, 30, 'drain');
    const t0 = Date.now();
    gw.signal('SIGTERM');
    await gw.waitStatus('/readyz', 503, T(1000));
    assert.equal((await gw.get('/readyz')).body, 'draining\n');
    assert.equal((await gw.get('/healthz')).status, 200, 'liveness stays up while draining');
    await expectUpgradeRefused(gw);

    const infos = await Promise.all(clients.map((c) => c.expectClose(1001, T((DRAIN_S + 5) * 1000))));
    const times = infos.map((i) => i.at - t0).sort((a, b) => a - b);
    const firstSecond = times.filter((t) => t < 1000).length;
    assert.ok(times[times.length - 1] - times[0] >= (DRAIN_S - 1) * 1000 * 0.8,
      `closes not spread over the window: ${JSON.stringify(times)}`);
    assert.ok(firstSecond <= clients.length * 0.6,
      `${firstSecond} of ${clients.length} closed in the first second: ${JSON.stringify(times)}`);
    assert.ok(times[times.length - 1] <= T((DRAIN_S + 2) * 1000), `last close after ${times[times.length - 1]} ms`);
    // It exits by itself once the last client is gone (under ASan, after
    // LeakSanitizer's exit scan: no second signal must interrupt it).
    await withTimeout(gw.exited, T(10000), 'the gateway to exit after the drain');
    const exit = await gw.stop();
    assert.equal(exit.code, 0);
    const drainLog = gw.logRecords().find((r) => r.event === 'draining');
    assert.ok(drainLog, 'a "draining" log record');
  });

  test('clients that leave by themselves end the drain early: the process exits 0 at once', async () => {
    const gw = await s.gateway({ name: 'drain-early', drainSeconds: 60 });
    const clients = await users(gw, 3, 'early');
    gw.signal('SIGTERM');
    await gw.waitStatus('/readyz', 503, T(1000));
    const t0 = Date.now();
    await Promise.all(clients.map((c) => c.close())); // they reconnect elsewhere
    await withTimeout(gw.exited, T(5000), 'the gateway to exit once its last client left');
    assert.ok(Date.now() - t0 < T(5000));
    assert.equal((await gw.stop()).code, 0);
  });

  test('a second signal during the drain closes the rest at once', async () => {
    const gw = await s.gateway({ name: 'drain-cut', drainSeconds: 60 });
    const clients = await users(gw, 5, 'cut');
    gw.signal('SIGTERM');
    await gw.waitStatus('/readyz', 503, T(1000));
    gw.signal('SIGTERM');
    await Promise.all(clients.map((c) => c.expectClose(1001, T(5000))));
    await withTimeout(gw.exited, T(10000), 'the gateway to exit after the drain');
    assert.equal((await gw.stop()).code, 0);
  });
});

describe('--workers', () => {
  /** {worker index -> pid} from the supervisor's worker_started records. */
  function workerPids(gw) {
    const pids = new Map();
    for (const r of gw.logRecords()) {
      const m = r.event === 'worker_started' && /^worker (\d+) pid (\d+)$/.exec(r.msg);
      if (m) pids.set(Number(m[1]), Number(m[2]));
    }
    return pids;
  }

  test('two workers share the port, both get clients and both deliver; a killed worker is restarted; SIGTERM drains all', async () => {
    const redis = await s.redis();
    const gw = await s.gateway({ name: 'workers', redis, args: ['--workers', '2'], drainSeconds: 1 });
    await waitFor(() => workerPids(gw).size === 2, { timeout: T(5000), what: 'two workers started' });

    const room = `chat:${uniq('room')}`;
    const clients = await users(gw, 24, 'w');
    const procs = new Set(clients.map(processOf));
    assert.equal(procs.size, 2, `24 clients all landed on one process: ${[...procs]}`);
    await Promise.all(clients.map((c) => c.subscribe(room)));
    // One publisher on each worker: every client gets both messages.
    const [a, b] = [...procs].map((p) => clients.find((c) => processOf(c) === p));
    await a.publish(room, 'from-a');
    await b.publish(room, 'from-b');
    for (const c of clients) {
      const got = [(await c.nextMessage(isMsg(room))).data, (await c.nextMessage(isMsg(room))).data];
      assert.deepEqual(got.sort(), ['from-a', 'from-b'], `${c.name} on ${processOf(c)}`);
    }

    // Kill worker 0 outright: its clients drop, the supervisor starts another.
    const before = workerPids(gw);
    const victim = before.get(0);
    process.kill(victim, 'SIGKILL');
    await waitFor(() => workerPids(gw).get(0) !== victim, { timeout: T(5000), what: 'worker 0 restarted' });
    assert.ok(gw.running, 'the supervisor survives a worker crash');
    const survivors = clients.filter((c) => c.closeInfo === null);
    assert.ok(survivors.length > 0 && survivors.length < clients.length, 'the clients of the other worker stay');
    const logs = gw.logRecords();
    assert.ok(logs.some((r) => r.event === 'worker_died' && r.msg.includes('signal 9')), 'the crash is logged');
    // Both workers serve new clients again.
    await gw.waitStatus('/readyz', 200, T(5000));
    const more = await users(gw, 24, 'again');
    assert.equal(new Set(more.map(processOf)).size, 2, 'the restarted worker takes clients');
    assert.ok(logs.every((r) => r.event.startsWith('worker') || r.event === 'supervisor' || 'worker' in r),
      'worker log lines carry their worker index');

    const open = [...survivors, ...more];
    const closes = Promise.all(open.map((c) => c.expectClose(1001, T(10000))));
    const exit = await gw.stop({ timeout: T(15000) });
    assert.equal(exit.code, 0);
    await closes;
    assert.equal(workerPids(gw).size, 2);
    for (const pid of workerPids(gw).values()) {
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} still running`);
    }
  });

  test('a worker that cannot start stops the supervisor with an error', async () => {
    const redis = await s.redis();
    const r = await runWsgw(['--workers', '2', '--listen', '127.0.0.1:0', '--redis', redis.url,
      '--jwt-secret-file', `${s.dir}/missing`]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /worker_init_failed/);
  });

  test('--workers without --redis is refused: workers could not share messages', async () => {
    const r = await runWsgw(['--workers', '2', '--jwt-secret-file', s.secretFile]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--workers 2 needs --redis/);
  });
});

/** Parses Prometheus text exposition: {name{labels}: value}; throws on a bad line. */
function parseProm(text) {
  const samples = new Map();
  const types = new Map();
  for (const line of text.split('\n')) {
    if (!line) continue;
    let m;
    if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      types.set(m[1], m[2]);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|NaN|\+Inf|-Inf)$/.exec(line);
    assert.ok(m, `not Prometheus text: ${JSON.stringify(line)}`);
    const base = m[1].replace(/_(bucket|sum|count)$/, '');
    assert.ok(types.has(m[1]) || types.has(base), `sample ${m[1]} without # TYPE`);
    samples.set(m[1] + (m[2] || ''), Number(m[3]));
  }
  return { samples, types };
}

describe('/metrics', () => {
  test('parses as Prometheus text and its counters move with traffic', async () => {
    const redis = await s.redis();
    const gw = await s.gateway({ name: 'metrics', redis });
    const metrics = async () => {
      const r = await gw.get('/metrics');
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
      return parseProm(r.body).samples;
    };
    const m0 = await metrics();
    for (const name of ['wsgw_connections', 'wsgw_subscriptions', 'wsgw_deliveries_total', 'wsgw_bytes_out_total',
      'wsgw_bus_messages_in_total', 'wsgw_slow_consumer_drops_total', 'wsgw_bus_up', 'wsgw_bus_reconnects_total',
      'wsgw_process_resident_memory_bytes', 'wsgw_delivery_latency_seconds_count']) {
      assert.ok(m0.has(name), `missing ${name}`);
    }
    assert.equal(m0.get('wsgw_bus_up'), 1);
    assert.ok(m0.get('wsgw_process_resident_memory_bytes') > 1e6, 'RSS in bytes');

    const room = `chat:${uniq('m')}`;
    const [a, b] = await users(gw, 2, 'm');
    await a.subscribe(room);
    await b.subscribe(room);
    for (let i = 0; i < 5; i++) await a.publish(room, i);
    for (let i = 0; i < 5; i++) await b.nextMessage(isMsg(room));
    const bad = await s.connect(gw);
    bad.send({ type: 'auth', token: 'not-a-token' });
    await bad.expectClose(4001);
    const expired = await s.connect(gw);
    expired.send({ type: 'auth', token: s.token({ sub: uniq('old'), exp: Math.floor(Date.now() / 1000) - 3600 }) });
    await expired.expectClose(4001);

    let m1;
    await waitFor(async () => {
      m1 = await metrics();
      return m1.get('wsgw_deliveries_total') - m0.get('wsgw_deliveries_total') >= 10;
    }, { timeout: T(3000), what: 'deliveries counted' });
    assert.equal(m1.get('wsgw_connections'), 2);
    assert.ok(m1.get('wsgw_subscriptions') >= 2, 'two chat subscriptions (plus user channels)');
    assert.equal(m1.get('wsgw_client_publishes_total') - (m0.get('wsgw_client_publishes_total') || 0), 5);
    assert.ok(m1.get('wsgw_bus_messages_in_total') - m0.get('wsgw_bus_messages_in_total') >= 5);
    assert.ok(m1.get('wsgw_bytes_out_total') > m0.get('wsgw_bytes_out_total'));
    assert.equal(m1.get('wsgw_auth_total{result="ok"}'), 2);
    assert.equal(m1.get('wsgw_auth_total{result="malformed"}'), 1);
    assert.equal(m1.get('wsgw_auth_total{result="expired"}'), 1);
    assert.ok(m1.get('wsgw_delivery_latency_seconds_count') - m0.get('wsgw_delivery_latency_seconds_count') >= 5,
      'client publishes observed in the latency histogram');
    assert.equal(m1.get('wsgw_delivery_latency_seconds_bucket{le="+Inf"}'), m1.get('wsgw_delivery_latency_seconds_count'));

    // The Redis link: down while Redis is gone, reconnects counted after.
    await redis.stop();
    await waitFor(async () => (await metrics()).get('wsgw_bus_up') === 0, { timeout: T(5000), what: 'bus_up 0' });
    await redis.start();
    await waitFor(async () => (await metrics()).get('wsgw_bus_up') === 1, { timeout: T(10000), what: 'bus_up 1' });
    assert.ok((await metrics()).get('wsgw_bus_reconnects_total') >= 1);
  });
});
