// Backend publishing and history helpers: HTTP requests of any method with a
// body (POST /api/publish), API keys and key files, `wsgw publish`, and
// collecting the messages of one channel for offset/epoch assertions.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { T } from './env.mjs';
import { runWsgw } from './gateway.mjs';

export const API_PATH = '/api/publish';

/**
 * One HTTP request to 127.0.0.1:port. body: a string or Buffer (sent as is)
 * or any other value (sent as JSON); Content-Length is set unless
 * `chunked`. Resolves {status, headers, body, json} (json: the parsed body or
 * undefined; reusedSocket: whether a keep-alive `agent` reused a connection);
 * status 0 when no response came (error in .error). Never rejects.
 * A server that answers before reading the whole body (413, 401) and closes is
 * fine: the response wins over the write error it causes.
 */
export function httpRequest(port, { method = 'GET', path = '/', headers = {}, body, chunked = false, host = '127.0.0.1', timeout = T(5000), agent = false } = {}) {
  let payload = null;
  if (body !== undefined) payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8');
  const h = { ...headers };
  if (payload && !chunked && !Object.keys(h).some((k) => k.toLowerCase() === 'content-length')) {
    h['Content-Length'] = String(payload.length);
  }
  return new Promise((resolve) => {
    let done = false;
    const finish = (v) => {
      if (!done) {
        done = true;
        resolve(v);
      }
    };
    const req = http.request({ host, port, path, method, headers: h, timeout, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      const end = () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        finish({ status: res.statusCode, headers: res.headers, body: text, json, reusedSocket: req.reusedSocket });
      };
      res.on('end', end);
      res.on('error', end);
      res.on('aborted', end);
    });
    req.on('timeout', () => req.destroy(new Error(`http ${method} ${path} timed out after ${timeout} ms`)));
    req.on('error', (e) => setTimeout(() => finish({ status: 0, error: e, body: '' }), 50));
    if (payload) req.write(payload, () => {});
    req.end();
  });
}

/** A random API key of n visible ASCII characters (base64url). */
export function apiKey(n = 40) {
  return crypto.randomBytes(n).toString('base64url').slice(0, n);
}

/** Writes an API key file (one key a line) in the scope's folder; returns its path. */
export function apiKeyFile(scope, name, ...keys) {
  return scope.file(name, `${keys.join('\n')}\n`);
}

/**
 * POST /api/publish on a gateway (or a port) with `Authorization: Bearer key`
 * (no header when key is null). headers are added to (and override) the
 * defaults. Resolves as httpRequest.
 */
export function apiPost(target, key, body, { headers = {}, method = 'POST', path = API_PATH, timeout, agent } = {}) {
  const port = typeof target === 'number' ? target : target.port;
  const h = { 'Content-Type': 'application/json' };
  if (key !== null && key !== undefined) h.Authorization = `Bearer ${key}`;
  return httpRequest(port, { method, path, headers: { ...h, ...headers }, body, timeout, agent });
}

/** POST one message; asserts 200 and resolves the parsed answer ({offset, epoch} or {}). */
export async function apiPublish(target, key, channel, data) {
  const r = await apiPost(target, key, { channel, data });
  assert.equal(r.status, 200, `POST ${API_PATH} ${channel}: HTTP ${r.status} ${r.body}${r.error ? ` (${r.error.message})` : ''}`);
  assert.ok(r.json && typeof r.json === 'object' && !Array.isArray(r.json), `answer is not a JSON object: ${r.body}`);
  return r.json;
}

/** Runs `wsgw publish args...`; resolves {code, signal, stdout, stderr, timedOut, json}. */
export async function runPublishCli(args, opts = {}) {
  const r = await runWsgw(['publish', ...args], { timeout: T(10000), ...opts });
  let json;
  try {
    json = JSON.parse(r.stdout.trim());
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/** An epoch as the protocol allows it: a non-empty string. */
export function assertEpoch(epoch, what = 'epoch') {
  assert.equal(typeof epoch, 'string', `${what} is not a string: ${JSON.stringify(epoch)}`);
  assert.ok(epoch.length > 0, `${what} is empty`);
}

/** Asserts `{offset, epoch}` of a history publish answer; returns it. */
export function assertPosition(v, offset, epoch, what = 'answer') {
  assert.ok(v && typeof v === 'object', `${what}: ${JSON.stringify(v)}`);
  assert.equal(typeof v.offset, 'number', `${what} has no numeric offset: ${JSON.stringify(v)}`);
  assertEpoch(v.epoch, `${what}.epoch`);
  if (offset !== undefined) assert.equal(v.offset, offset, `${what}: offset ${v.offset}, expected ${offset}: ${JSON.stringify(v)}`);
  if (epoch !== undefined) assert.equal(v.epoch, epoch, `${what}: epoch ${v.epoch}, expected ${epoch}`);
  return v;
}

/** The next n `message`s on channel, in arrival order (each within timeout ms of the last). */
export async function takeMessages(client, channel, n, timeout = T(5000)) {
  const out = [];
  for (let i = 0; i < n; i++) {
    try {
      out.push(await client.nextOn(channel, undefined, timeout));
    } catch (e) {
      throw new Error(`${client.name}: got ${out.length} of ${n} messages on ${channel} (offsets ${JSON.stringify(out.map((m) => m.offset))}): ${e.message}`);
    }
  }
  return out;
}

/**
 * Takes messages on channel until one has offset >= top; resolves them all.
 * Fails when the whole wait exceeds timeout ms.
 */
export async function takeUntilOffset(client, channel, top, timeout = T(15000)) {
  const out = [];
  const deadline = Date.now() + timeout;
  while (!out.length || !(out[out.length - 1].offset >= top)) {
    const left = deadline - Date.now();
    try {
      if (left <= 0) throw new Error('deadline passed');
      out.push(await client.nextOn(channel, undefined, left));
    } catch (e) {
      const offs = out.map((m) => m.offset);
      throw new Error(`${client.name}: waiting for offset ${top} on ${channel}, got ${out.length} messages (offsets ${JSON.stringify(offs).slice(0, 800)}): ${e.message}`);
    }
  }
  return out;
}

/**
 * Asserts that msgs carry exactly the offsets from..to, once each and in
 * order, all with epoch (when given).
 */
export function assertOffsets(msgs, from, to, epoch, what = 'messages') {
  const got = msgs.map((m) => m.offset);
  const want = [];
  for (let o = from; o <= to; o++) want.push(o);
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    const seen = new Map();
    for (const o of got) seen.set(o, (seen.get(o) || 0) + 1);
    const dups = [...seen].filter(([, c]) => c > 1).map(([o]) => o);
    const missing = want.filter((o) => !seen.has(o));
    const extra = got.filter((o) => typeof o !== 'number' || o < from || o > to);
    const outOfOrder = got.some((o, i) => i > 0 && o < got[i - 1]);
    assert.fail(`${what}: expected offsets ${from}..${to} once each in order; got ${got.length} messages: `
      + `missing ${JSON.stringify(missing).slice(0, 300)}, duplicated ${JSON.stringify(dups).slice(0, 300)}, `
      + `outside ${JSON.stringify(extra).slice(0, 300)}, out of order: ${outOfOrder}; offsets ${JSON.stringify(got).slice(0, 600)}`);
  }
  if (epoch !== undefined) {
    const bad = msgs.find((m) => m.epoch !== epoch);
    assert.equal(bad, undefined, `${what}: a message with epoch ${bad?.epoch}, expected ${epoch}: ${JSON.stringify(bad)}`);
  }
}

/**
 * Sends `subscribe` (with since when given) and resolves the reply, which
 * must be `subscribed` for channel.
 */
export async function subscribeSince(client, channel, since, extra = {}) {
  const r = await client.request({ type: 'subscribe', channel, ...(since ? { since } : {}), ...extra });
  assert.equal(r.type, 'subscribed', `${client.name}: subscribe ${channel} since ${JSON.stringify(since)}: ${JSON.stringify(r)}`);
  assert.equal(r.channel, channel);
  return r;
}

/** Asserts that client received msgs (objects it handed out) in the order given. */
export function assertArrivalOrder(client, ...msgs) {
  const idx = msgs.map((m) => client.received.indexOf(m));
  for (let i = 0; i < idx.length; i++) assert.ok(idx[i] >= 0, `${client.name}: message not received: ${JSON.stringify(msgs[i])}`);
  for (let i = 1; i < idx.length; i++) {
    assert.ok(idx[i - 1] < idx[i], `${client.name}: ${JSON.stringify(msgs[i - 1])} should arrive before ${JSON.stringify(msgs[i])}`);
  }
}

/**
 * Publishes each data of datas to channel from a client, pipelined (all sent
 * at once), and resolves the replies in order; each must be `published`.
 */
export async function publishMany(client, channel, datas, timeout = T(10000)) {
  const base = client.nextId;
  client.nextId += datas.length;
  datas.forEach((data, i) => client.send({ type: 'publish', id: base + i, channel, data }));
  const replies = await Promise.all(datas.map((_, i) => client.nextMessage((m) => m && m.id === base + i && m.type !== 'message', timeout)));
  replies.forEach((r, i) => assert.equal(r.type, 'published', `${client.name}: publish #${i} to ${channel}: ${JSON.stringify(r)}`));
  return replies;
}

/** Does the gateway executable list `flag` in its --help? */
export async function wsgwSupports(flag) {
  const r = await runWsgw(['--help'], { timeout: T(5000) }).catch(() => null);
  return !!r && `${r.stdout}${r.stderr}`.includes(flag);
}
