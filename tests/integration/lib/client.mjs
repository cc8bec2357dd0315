// A WebSocket client as a browser would be, with helpers for assertions:
// every received message is queued; nextMessage() takes the first one that
// matches; expectNoMessage() checks that nothing (matching) arrives in a quiet
// window; expectClose() resolves with the close code and reason.
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { T, QUIET_MS } from './env.mjs';
import { withTimeout } from './wait.mjs';

/** A predicate from a function, or from an object whose fields must all equal (deeply). */
export function matcher(pred) {
  if (!pred) return () => true;
  if (typeof pred === 'function') return pred;
  return (m) => m && typeof m === 'object' && Object.entries(pred).every(([k, v]) => {
    try {
      assert.deepStrictEqual(m[k], v);
      return true;
    } catch {
      return false;
    }
  });
}

function describe(pred) {
  if (!pred) return 'any message';
  if (typeof pred === 'function') return pred.name || 'a matching message';
  return JSON.stringify(pred);
}

export class WsClient {
  constructor(ws, name) {
    this.ws = ws;
    this.name = name || 'client';
    this.queue = []; // received, not yet taken by nextMessage()
    this.received = []; // every message ever received, in order
    this.waiters = [];
    this.closeInfo = null;
    this.nextId = 1;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8'), at: Date.now() };
        for (const w of this.waiters.splice(0)) {
          w.reject(new Error(`${this.name}: connection closed (${code} ${this.closeInfo.reason}) while waiting for ${w.what}`));
        }
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('error', (e) => {
      this.lastError = e;
    });
  }

  /**
   * Opens a WebSocket to url; resolves a WsClient once open. Rejects when the
   * handshake fails (with the HTTP status when there is one).
   */
  static connect(url, { name, timeout = T(5000), headers, perMessageDeflate = false } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, perMessageDeflate, handshakeTimeout: timeout });
      const client = new WsClient(ws, name);
      const fail = (e) => reject(new Error(`${client.name}: could not connect to ${url}: ${e.message}`));
      ws.once('open', () => {
        ws.off('error', fail);
        resolve(client);
      });
      ws.once('error', fail);
      ws.once('unexpected-response', (req, res) => {
        reject(new Error(`${client.name}: handshake to ${url} got HTTP ${res.statusCode}`));
        req.destroy();
      });
    });
  }

  #onMessage(data, isBinary) {
    let msg;
    if (isBinary) {
      msg = { binary: true, data };
    } else {
      const text = data.toString('utf8');
      try {
        msg = JSON.parse(text);
      } catch {
        msg = { unparsable: text };
      }
    }
    this.received.push(msg);
    const i = this.waiters.findIndex((w) => w.pred(msg));
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
    else this.queue.push(msg);
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a JSON value as one text frame. */
  send(obj) {
    this.sendRaw(JSON.stringify(obj));
  }

  /** Sends a string as a text frame, or a Buffer as a binary frame with {binary:true}. */
  sendRaw(data, { binary = false } = {}) {
    // Errors (sending on a closing socket) show up as a close, which tests assert.
    this.ws.send(data, { binary }, () => {});
  }

  /**
   * Takes the first queued or future message that matches pred (a function or
   * an object of fields), within timeout ms. Rejects on timeout or close.
   */
  nextMessage(pred, timeout = T(5000)) {
    const fn = matcher(pred);
    const what = describe(pred);
    const i = this.queue.findIndex(fn);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.closeInfo) {
      return Promise.reject(new Error(`${this.name}: connection closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${what}`));
    }
    let w;
    const p = new Promise((resolve, reject) => {
      w = { pred: fn, resolve, reject, what };
      this.waiters.push(w);
    });
    return withTimeout(p, timeout, `${this.name}: ${what} (queued: ${JSON.stringify(this.queue).slice(0, 500)})`).finally(() => {
      const j = this.waiters.indexOf(w);
      if (j >= 0) this.waiters.splice(j, 1);
    });
  }

  /**
   * Asserts that no message matching pred is queued or arrives within ms.
   * The connection closing during the window is not a message.
   */
  async expectNoMessage(ms = QUIET_MS, pred) {
    const fn = matcher(pred);
    const early = this.queue.find(fn);
    assert.equal(early, undefined, `${this.name}: unexpected message ${JSON.stringify(early)}`);
    const got = await this.nextMessage(fn, ms).then((m) => m, () => undefined);
    assert.equal(got, undefined, `${this.name}: unexpected message ${JSON.stringify(got)}`);
  }

  /**
   * Waits for the connection to close; asserts the code when given. Resolves
   * {code, reason}.
   */
  async expectClose(code, timeout = T(5000)) {
    const info = await withTimeout(this.closed, timeout, `${this.name}: close${code ? ` ${code}` : ''} (received: ${JSON.stringify(this.received).slice(0, 500)})`);
    if (code !== undefined) {
      assert.equal(info.code, code, `${this.name}: close code ${info.code} (reason ${JSON.stringify(info.reason)}), expected ${code}`);
    }
    return info;
  }

  /** Asserts that the connection is still open and did not close. */
  assertOpen() {
    assert.equal(this.closeInfo, null, `${this.name}: closed unexpectedly ${JSON.stringify(this.closeInfo)}`);
    assert.ok(this.isOpen, `${this.name}: not open (readyState ${this.ws.readyState})`);
  }

  /**
   * Sends a command with a fresh integer id (unless obj has one) and resolves
   * the reply carrying that id (a success reply or an error).
   */
  request(obj, timeout = T(5000)) {
    const id = obj.id ?? this.nextId++;
    this.send({ ...obj, id });
    return this.nextMessage((m) => m && m.id === id && m.type !== 'message', timeout);
  }

  /** Sends auth and resolves auth_ok; rejects (with the close code) otherwise. */
  async auth(token, timeout = T(5000)) {
    this.send({ type: 'auth', token });
    const m = await this.nextMessage((x) => x && (x.type === 'auth_ok' || x.type === 'error'), timeout);
    assert.equal(m.type, 'auth_ok', `${this.name}: auth failed: ${JSON.stringify(m)}`);
    return m;
  }

  /** subscribe; asserts the reply is `subscribed` and returns it. */
  async subscribe(channel, extra = {}) {
    const r = await this.request({ type: 'subscribe', channel, ...extra });
    assert.equal(r.type, 'subscribed', `${this.name}: subscribe ${channel}: ${JSON.stringify(r)}`);
    assert.equal(r.channel, channel);
    return r;
  }

  /** unsubscribe; asserts the reply is `unsubscribed`. */
  async unsubscribe(channel) {
    const r = await this.request({ type: 'unsubscribe', channel });
    assert.equal(r.type, 'unsubscribed', `${this.name}: unsubscribe ${channel}: ${JSON.stringify(r)}`);
    assert.equal(r.channel, channel);
    return r;
  }

  /** publish; asserts the reply is `published` with our id. */
  async publish(channel, data, extra = {}) {
    const r = await this.request({ type: 'publish', channel, data, ...extra });
    assert.equal(r.type, 'published', `${this.name}: publish ${channel}: ${JSON.stringify(r)}`);
    return r;
  }

  /** Resolves the reply to a command that must fail with `code`. */
  async expectError(obj, code) {
    const r = await this.request(obj);
    assert.equal(r.type, 'error', `${this.name}: expected error ${code} for ${JSON.stringify(obj)}, got ${JSON.stringify(r)}`);
    if (code) assert.equal(r.code, code, `${this.name}: error code for ${JSON.stringify(obj)}: ${JSON.stringify(r)}`);
    assert.equal(typeof r.message, 'string', `error without message: ${JSON.stringify(r)}`);
    return r;
  }

  /** ping; asserts pong with the same id. */
  async ping() {
    const r = await this.request({ type: 'ping' });
    assert.equal(r.type, 'pong', `${this.name}: ping: ${JSON.stringify(r)}`);
    return r;
  }

  /** Next `message` on channel (optionally also matching pred). */
  nextOn(channel, pred, timeout) {
    const fn = matcher(pred);
    return this.nextMessage((m) => m && m.type === 'message' && m.channel === channel && fn(m), timeout);
  }

  /** Closes with 1000 and waits for the close to finish. */
  async close(code = 1000) {
    if (this.closeInfo) return this.closeInfo;
    try {
      this.ws.close(code);
    } catch {
      this.ws.terminate();
    }
    return withTimeout(this.closed, T(3000), `${this.name}: close`).catch(() => {
      this.ws.terminate();
      return this.closed;
    });
  }

  /** Drops the TCP connection without a close frame (a crashed browser). */
  async terminate() {
    this.ws.terminate();
    return this.closed;
  }
}
