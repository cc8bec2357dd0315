// wsgw-client.js: a dependency-free client for the wsgw WebSocket gateway
// (protocol v1, docs/protocol.md), for browsers and for Node 20 with a
// `ws`-compatible constructor. It authenticates with the first message, keeps
// the connection alive with application pings (browsers cannot send WebSocket
// pings), refreshes the token before it expires, reconnects with jittered
// exponential backoff across several gateway URLs, and resubscribes every
// channel with `since` so that history channels recover what was missed. No
// build step and no eval: it loads as a plain ES module under a strict CSP.

/**
 * @typedef {object} WsgwClientOptions
 * @property {string|string[]} urls Gateway WebSocket URLs (`ws://host:port/ws`).
 *   The first is tried first; each reconnect moves to the next, so a second
 *   URL is where the client fails over when a gateway goes away.
 * @property {() => (string|Promise<string>)} getToken Returns a connection
 *   token (a JWT from your backend). Called for the first connection, after
 *   4001/4003 closes, and before the token expires (the result is sent as
 *   `refresh`). A token is cached and reused for plain reconnects.
 * @property {any} [WebSocket] The WebSocket constructor: `globalThis.WebSocket`
 *   by default; pass the `ws` package's in Node versions without one.
 * @property {number} [pingIntervalMs=20000] Idle time between app pings; 0 disables them.
 * @property {number} [pingTimeoutMs=10000] A ping unanswered for this long
 *   counts the link as dead (closed with 4000 and reconnected).
 * @property {number} [connectTimeoutMs=10000] Time from creating the socket to
 *   `auth_ok`; past it the attempt is given up (4000) and the next URL tried.
 * @property {{baseMs?: number, capMs?: number}} [backoff] Reconnect delays,
 *   full jitter: uniform in [0, min(capMs, baseMs * 2^(attempt-1))); defaults 500 and 20000.
 * @property {number} [refreshBeforeMs=60000] How long before the token's
 *   expiry the client refreshes it (at half the remaining life for short tokens).
 * @property {() => number} [random] Uniform in [0, 1); for tests.
 * @property {(fn: Function, ms: number) => any} [setTimeout] For tests.
 * @property {(id: any) => void} [clearTimeout] For tests.
 * @property {() => number} [now] Milliseconds since the epoch; for tests.
 */
/**
 * The 'state' event. `delayMs`, `attempt` and `url` (the next URL) come with
 * 'reconnecting'; `code` and `reason` say why the link closed.
 * @typedef {{state: 'connecting'|'connected'|'reconnecting'|'closed',
 *   delayMs?: number, attempt?: number, url?: string, code?: number, reason?: string}} StateEvent
 */
/**
 * The 'recovered' event, after every resubscription: `recovered:false` means
 * messages of the channel were lost and the app should reload its state.
 * @typedef {{channel: string, recovered: boolean}} RecoveredEvent
 */
/**
 * @typedef {object} SubscribeOptions
 * @property {string} [token] A subscription token for this channel (kept for resubscribes).
 * @property {(data: any, msg: object) => void} [onMessage] Each message's
 *   `data`, and the whole frame (`offset`, `epoch`, `from`).
 * @property {(recovered: boolean) => void} [onRecovered] After each
 *   resubscription; `false`: messages were lost, reload the state.
 * @property {(err: WsgwError) => void} [onError] The gateway refused the
 *   subscription for good (forbidden, bad_request, limit_exceeded).
 */
/**
 * @typedef {object} Subscription
 * @property {string} channel
 * @property {Promise<object>} ready Resolves with the first `subscribed`
 *   reply; rejects with a WsgwError when refused.
 * @property {() => void} unsubscribe Removes this subscription (the last one
 *   of a channel unsubscribes at the gateway).
 */
/**
 * An Error with the gateway's error `code` (`forbidden`, `unavailable`, ...)
 * or the client's own (`not_connected`, `disconnected`, `token_failed`, ...).
 * @typedef {Error & {code?: string, channel?: string, reply?: object}} WsgwError
 */

/**
 * Close codes after which the client stops: 1000 is the gateway's normal
 * close, and after 1003, 1008 and 1009 reconnecting cannot help because the
 * client itself is wrong. 4001 (unauthorized) is handled apart: see _onClose.
 */
const STOP_CODES = new Set([1000, 1003, 1008, 1009]);
/** Close code this client uses when it gives up on a link (ping or connect timeout). */
const CLIENT_TIMEOUT_CODE = 4000;
const OPEN = 1;
const noop = () => {};

/**
 * Returns an Error carrying the protocol's error `code` (and `channel`).
 * @returns {WsgwError}
 */
function wsgwError(code, message, channel, reply) {
  const err = /** @type {WsgwError} */ (new Error(message || code));
  err.code = code;
  if (channel) err.channel = channel;
  if (reply) err.reply = reply;
  return err;
}

/**
 * The full-jitter backoff delay of reconnect attempt `attempt` (1, 2, ...):
 * uniform in [0, min(capMs, baseMs * 2^(attempt-1))).
 * @param {number} attempt
 * @param {number} baseMs
 * @param {number} capMs
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number} milliseconds
 */
export function backoffDelay(attempt, baseMs, capMs, random = Math.random) {
  const bound = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30));
  return Math.floor(random() * bound);
}

/**
 * The gateway URL of the page that loads the script: `wss://host/ws` on an
 * https page, `ws://host/ws` otherwise.
 * @param {string} [path]
 * @param {{protocol: string, host: string}} [loc]
 */
export function pageWsUrl(path = '/ws', loc = globalThis.location) {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}${path}`;
}

/**
 * A connection to wsgw that stays up: see the file's opening comment and
 * docs/client.md. Events: 'state' (StateEvent), 'recovered'
 * (RecoveredEvent), 'error' (WsgwError), 'message' (every message frame).
 */
export class WsgwClient {
  /** @param {WsgwClientOptions} opts */
  constructor(opts) {
    this._urls = [].concat(opts.urls);
    if (!this._urls.length) throw new TypeError('wsgw: urls is empty');
    if (typeof opts.getToken !== 'function') throw new TypeError('wsgw: getToken is required');
    this._getToken = opts.getToken;
    this._WS = opts.WebSocket || globalThis.WebSocket;
    this._pingIntervalMs = opts.pingIntervalMs ?? 20000;
    this._pingTimeoutMs = opts.pingTimeoutMs ?? 10000;
    this._connectTimeoutMs = opts.connectTimeoutMs ?? 10000;
    this._baseMs = opts.backoff?.baseMs ?? 500;
    this._capMs = opts.backoff?.capMs ?? 20000;
    this._refreshBeforeMs = opts.refreshBeforeMs ?? 60000;
    this._random = opts.random || Math.random;
    this._setTimeout = opts.setTimeout || globalThis.setTimeout.bind(globalThis);
    this._clearTimeout = opts.clearTimeout || globalThis.clearTimeout.bind(globalThis);
    this._now = opts.now || Date.now;

    /** @type {Map<string, Set<Function>>} */ this._listeners = new Map();
    /** @type {Map<string, any>} per channel: handles, token, position */ this._channels = new Map();
    /** @type {Map<number, any>} requests awaiting a reply, by id */ this._pending = new Map();
    this._nextId = 1;
    this._ws = null;
    this._gen = 0;            // bumped per connection attempt; stale async work checks it
    this._state = 'closed';
    this._urlIndex = 0;
    this._attempt = 0;        // reconnects since the last connection that reached 'connected'
    this._token = null;       // cached connection token; null means fetch a fresh one
    this._tokenFresh = false; // the current attempt's token came from getToken just now
    this._exp = 0;            // the session's expiry (unix seconds), from auth_ok/refreshed
    this._timers = {};        // reconnect, connect, ping, pong, refresh
    /** @type {string|null} the user (`sub`) of the current connection */
    this.user = null;
    /** @type {string|null} the gateway's id of the current connection */
    this.connId = null;
  }

  /** @returns {'connecting'|'connected'|'reconnecting'|'closed'} */
  get state() { return this._state; }
  /** The URL of the current (or next) connection attempt. */
  get url() { return this._urls[this._urlIndex]; }

  /**
   * Adds a listener for 'state', 'recovered', 'error' or 'message' (every
   * message frame, including those of channels this client did not subscribe,
   * such as the automatic `user:<sub>`). Returns a function that removes it.
   */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) { this._listeners.get(event)?.delete(fn); }

  /** Starts connecting; a no-op unless the client is closed. */
  connect() {
    if (this._state !== 'closed') return;
    if (!this._WS) throw new Error('wsgw: no WebSocket constructor (pass opts.WebSocket)');
    this._attempt = 0;
    this._open();
  }

  /** Closes with 1000 and stops reconnecting; subscriptions stay for a later connect(). */
  close() {
    if (this._state === 'closed') return;
    this._teardown(1000, 'client close');
    this._setState({ state: 'closed', code: 1000, reason: 'client close' });
  }

  /**
   * Subscribes to a channel, now or once connected, and again after every
   * reconnect (with `since` where the channel keeps history). Several
   * subscriptions to one channel share the gateway's subscription.
   * @param {string} channel
   * @param {SubscribeOptions} [opts]
   * @returns {Subscription}
   */
  subscribe(channel, opts = {}) {
    let ch = this._channels.get(channel);
    if (!ch) {
      ch = { channel, handles: new Set(), token: undefined, epoch: null, offset: null, seen: 0,
             live: false, wasLive: false, lastReply: null, retry: 0, pendingId: 0 };
      this._channels.set(channel, ch);
    }
    if (opts.token !== undefined) ch.token = opts.token;
    const handle = { opts, settled: false, resolve: noop, reject: noop };
    const ready = new Promise((resolve, reject) => { handle.resolve = resolve; handle.reject = reject; });
    ready.catch(noop); // a page that never awaits `ready` must not see an unhandled rejection
    ch.handles.add(handle);
    if (ch.live) this._settle(handle, ch.lastReply);
    else if (this._state === 'connected' && !ch.pendingId) this._sendSubscribe(ch);
    return { channel, ready, unsubscribe: () => this._unsubscribe(ch, handle) };
  }

  /**
   * Publishes `data` to a channel. Resolves with the `published` reply; rejects
   * with an Error whose .code is the gateway's error code, 'not_connected', or
   * 'disconnected' (the link dropped first: the message may or may not have
   * been published, and it is not retried).
   */
  publish(channel, data) {
    if (this._state !== 'connected') {
      return Promise.reject(wsgwError('not_connected', 'wsgw: not connected', channel));
    }
    return new Promise((resolve, reject) => {
      const id = this._request({ type: 'publish', channel, data }, { kind: 'publish', resolve, reject });
      if (id === null) reject(wsgwError('disconnected', 'wsgw: send failed', channel));
    });
  }

  // ---------------------------------------------------------------- connection

  async _open() {
    const gen = ++this._gen;
    const url = this.url;
    this._setState({ state: 'connecting', attempt: this._attempt, url });
    // A cached token past its known expiry would only earn a 4001: fetch anew.
    if (this._token && this._exp && this._now() >= this._exp * 1000) this._token = null;
    let token = this._token;
    this._tokenFresh = !token;
    if (!token) {
      try {
        token = await this._getToken();
      } catch (e) {
        if (gen !== this._gen) return;
        this._emit('error', wsgwError('token_failed', `wsgw: getToken failed: ${e?.message || e}`));
        this._reconnect(undefined, 'getToken failed');
        return;
      }
      if (gen !== this._gen) return;
      this._token = token;
    }
    let ws;
    try {
      ws = new this._WS(url);
    } catch (e) {
      this._emit('error', wsgwError('connect_failed', `wsgw: ${e?.message || e}`));
      this._reconnect(undefined, 'connect failed');
      return;
    }
    this._ws = ws;
    ws.onopen = () => this._send({ type: 'auth', token });
    ws.onmessage = (ev) => this._onFrame(ev.data);
    ws.onclose = (ev) => this._onClose(ev.code, ev.reason);
    ws.onerror = noop; // a close event always follows and carries what we act on
    this._timers.connect = this._setTimeout(
      () => this._onClose(CLIENT_TIMEOUT_CODE, 'connect timeout'), this._connectTimeoutMs);
  }

  /**
   * Handles the end of the current socket: closed by the gateway, or given
   * up on here. After 4001 the client never enters the backoff loop: a
   * token fetched from getToken for this very attempt is simply wrong, so it
   * stops; a cached token may only have gone stale (a rotated key), so it
   * asks getToken for a fresh one and tries once more, at once. After 4003
   * (expired) it reconnects as usual, with a fresh token.
   */
  _onClose(code, reason) {
    if (!this._ws) return;
    const fresh = this._tokenFresh;
    this._teardown(code, reason);
    if (code === 4001 || code === 4003) this._token = null;
    if (STOP_CODES.has(code) || (code === 4001 && fresh)) {
      this._setState({ state: 'closed', code, reason });
    } else if (code === 4001) {
      this._reconnect(code, reason, { immediate: true });
    } else {
      this._reconnect(code, reason);
    }
  }

  /**
   * Detaches and closes the socket, stops every timer and settles the pending
   * requests: publishes fail with 'disconnected', subscriptions wait for the
   * next connection.
   */
  _teardown(code, reason) {
    const ws = this._ws;
    this._ws = null;
    this._gen++;
    for (const t of Object.values(this._timers)) if (t !== undefined) this._clearTimeout(t);
    this._timers = {};
    if (ws) {
      // Handlers stay functions: the `ws` package throws on an unhandled 'error'.
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = noop;
      // Browsers accept only 1000 and 3000-4999 from a client.
      if (ws.readyState < 2) {
        try { ws.close(code >= 3000 ? code : 1000, reason); } catch { /* closing anyway */ }
      }
    }
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const p of pending) {
      if (p.kind === 'publish') p.reject(wsgwError('disconnected', 'wsgw: disconnected', p.channel));
    }
    for (const ch of this._channels.values()) {
      ch.live = false;
      ch.pendingId = 0;
    }
    this.connId = null;
  }

  /**
   * Schedules the next attempt: after a full-jitter delay, uniform in
   * [0, min(cap, base * 2^(attempt-1))), so that clients dropped together do
   * not come back together; on the next URL, since the one that failed may
   * be the gateway that is gone. `immediate`: at once, on the same URL (a
   * retry with a fresh token, not a network problem).
   */
  _reconnect(code, reason, { immediate = false } = {}) {
    let delayMs = 0;
    if (!immediate) {
      this._attempt++;
      delayMs = backoffDelay(this._attempt, this._baseMs, this._capMs, this._random);
      this._urlIndex = (this._urlIndex + 1) % this._urls.length;
    }
    this._setState({ state: 'reconnecting', delayMs, attempt: this._attempt, url: this.url, code, reason });
    this._timers.reconnect = this._setTimeout(() => {
      delete this._timers.reconnect;
      this._open();
    }, delayMs);
  }

  // ---------------------------------------------------------------- frames in

  _onFrame(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      this._emit('error', wsgwError('protocol', 'wsgw: frame is not JSON'));
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    const p = typeof msg.id === 'number' ? this._pending.get(msg.id) : undefined;
    if (p) {
      this._pending.delete(msg.id);
      this._onReply(p, msg);
    } else if (msg.type === 'auth_ok') {
      this._onAuthOk(msg);
    } else if (msg.type === 'message') {
      this._onMessage(msg);
    } else if (msg.type === 'error') {
      this._onUntiedError(msg);
    }
  }

  _onAuthOk(msg) {
    this._clearTimer('connect');
    this.user = msg.user;
    this.connId = msg.conn;
    this._exp = msg.exp;
    this._attempt = 0;
    this._setState({ state: 'connected', url: this.url });
    this._schedulePing();
    this._scheduleRefresh();
    for (const ch of this._channels.values()) this._sendSubscribe(ch);
  }

  _onReply(p, msg) {
    const err = msg.type === 'error' ? wsgwError(msg.code, msg.message, msg.channel, msg) : null;
    if (p.kind === 'publish') {
      if (err) p.reject(err); else p.resolve(msg);
    } else if (p.kind === 'subscribe') {
      if (err) this._onSubscribeError(p.ch, err); else this._onSubscribed(p.ch, msg);
    } else if (p.kind === 'refresh') {
      if (err) {
        this._emit('error', err);
        this._scheduleRefresh();
      } else {
        this._token = p.token;
        this._exp = msg.exp;
        this._scheduleRefresh();
      }
    } else if (p.kind === 'ping') {
      this._clearTimer('pong');
      this._schedulePing();
    }
  }

  _onUntiedError(msg) {
    const err = wsgwError(msg.code, msg.message, msg.channel, msg);
    this._emit('error', err);
    // The gateway unsubscribed us after lost messages: subscribe again from
    // where we were, and hear recovered:false.
    const ch = msg.code === 'gap' && this._channels.get(msg.channel);
    if (ch && this._state === 'connected') {
      ch.live = false;
      this._sendSubscribe(ch);
    }
  }

  // ---------------------------------------------------------------- channels

  _sendSubscribe(ch) {
    const req = { type: 'subscribe', channel: ch.channel };
    if (ch.token !== undefined) req.token = ch.token;
    if (ch.epoch !== null && ch.offset !== null) req.since = { offset: ch.offset, epoch: ch.epoch };
    ch.pendingId = this._request(req, { kind: 'subscribe', ch }) || 0;
  }

  _onSubscribed(ch, msg) {
    ch.pendingId = 0;
    if (this._channels.get(ch.channel) !== ch) return; // unsubscribed meanwhile
    ch.retry = 0;
    let recovered = msg.recovered;
    if (typeof msg.offset === 'number' && typeof msg.epoch === 'string') {
      if (msg.epoch !== ch.epoch) ch.seen = 0;
      ch.epoch = msg.epoch;
      // After recovered:true the stored messages from `since` follow and move
      // the position; otherwise the reply's offset is where delivery resumes.
      if (recovered !== true) ch.offset = msg.offset;
    } else if (recovered === undefined && ch.wasLive) {
      recovered = false; // no history: whatever was published while away is lost
    }
    ch.live = ch.wasLive = true;
    ch.lastReply = msg;
    for (const h of ch.handles) this._settle(h, msg);
    if (recovered !== undefined) this._recovered(ch, recovered);
  }

  _onSubscribeError(ch, err) {
    ch.pendingId = 0;
    if (this._channels.get(ch.channel) !== ch) return;
    if (err.code === 'unavailable') {
      // Redis is down for now: keep the subscription and try again later.
      this._emit('error', err);
      const name = `subscribe ${ch.channel}`;
      this._clearTimer(name);
      this._timers[name] = this._setTimeout(() => {
        delete this._timers[name];
        if (this._channels.get(ch.channel) === ch && !ch.live && !ch.pendingId) this._sendSubscribe(ch);
      }, backoffDelay(++ch.retry, this._baseMs, this._capMs, this._random));
      return;
    }
    // Refused for good (forbidden, bad_request, limit_exceeded): drop it.
    this._channels.delete(ch.channel);
    let reported = false;
    for (const h of ch.handles) {
      if (!h.settled) { h.settled = reported = true; h.reject(err); }
      if (h.opts.onError) { reported = true; this._call(h.opts.onError, err); }
    }
    if (!reported) this._emit('error', err);
  }

  _onMessage(msg) {
    const ch = this._channels.get(msg.channel);
    if (ch && typeof msg.offset === 'number' && typeof msg.epoch === 'string') {
      if (ch.epoch !== null && msg.epoch !== ch.epoch) {
        ch.epoch = msg.epoch;
        ch.seen = 0;
        this._recovered(ch, false);
      } else if (msg.offset <= ch.seen) {
        return; // a duplicate: already delivered in this epoch
      }
      ch.epoch = msg.epoch;
      ch.offset = ch.seen = msg.offset;
    }
    this._emit('message', msg);
    if (ch) for (const h of [...ch.handles]) if (h.opts.onMessage) this._call(h.opts.onMessage, msg.data, msg);
  }

  _recovered(ch, recovered) {
    this._emit('recovered', { channel: ch.channel, recovered });
    for (const h of ch.handles) if (h.opts.onRecovered) this._call(h.opts.onRecovered, recovered);
  }

  _settle(handle, reply) {
    if (handle.settled) return;
    handle.settled = true;
    handle.resolve(reply);
  }

  _unsubscribe(ch, handle) {
    if (!ch.handles.delete(handle)) return;
    if (!handle.settled) {
      handle.settled = true;
      handle.reject(wsgwError('unsubscribed', 'wsgw: unsubscribed before ready', ch.channel));
    }
    if (ch.handles.size) return;
    if (this._channels.get(ch.channel) !== ch) return;
    this._channels.delete(ch.channel);
    this._clearTimer(`subscribe ${ch.channel}`);
    if (this._state === 'connected') this._request({ type: 'unsubscribe', channel: ch.channel }, null);
  }

  // ---------------------------------------------------------------- keepalive and refresh

  _schedulePing() {
    if (!(this._pingIntervalMs > 0)) return;
    this._clearTimer('ping');
    this._timers.ping = this._setTimeout(() => {
      delete this._timers.ping;
      this._request({ type: 'ping' }, { kind: 'ping' });
      this._timers.pong = this._setTimeout(
        () => this._onClose(CLIENT_TIMEOUT_CODE, 'ping timeout'), this._pingTimeoutMs);
    }, this._pingIntervalMs);
  }

  /**
   * Refreshes `refreshBeforeMs` before expiry, or at half the remaining
   * lifetime for short-lived tokens (so a short token is not refreshed in a
   * tight loop); at least a second apart. Past expiry it stops: the gateway
   * closes with 4003 and the reconnect fetches a new token.
   */
  _scheduleRefresh() {
    this._clearTimer('refresh');
    const remaining = this._exp * 1000 - this._now();
    if (!(remaining > 0)) return;
    const delay = Math.max(1000, remaining - this._refreshBeforeMs, remaining / 2);
    const gen = this._gen;
    this._timers.refresh = this._setTimeout(async () => {
      delete this._timers.refresh;
      let token;
      try {
        token = await this._getToken();
      } catch (e) {
        if (gen !== this._gen) return;
        this._emit('error', wsgwError('token_failed', `wsgw: getToken failed: ${e?.message || e}`));
        this._scheduleRefresh();
        return;
      }
      if (gen === this._gen) this._request({ type: 'refresh', token }, { kind: 'refresh', token });
    }, delay);
  }

  // ---------------------------------------------------------------- plumbing

  /** Sends a command with a fresh id; returns the id, or null when it could not be sent. */
  _request(obj, pending) {
    const id = this._nextId++;
    if (!this._send({ ...obj, id })) return null;
    if (pending) this._pending.set(id, { channel: obj.channel, ...pending });
    return id;
  }

  _send(obj) {
    if (!this._ws || this._ws.readyState !== OPEN) return false;
    try {
      this._ws.send(JSON.stringify(obj));
      return true;
    } catch {
      return false;
    }
  }

  _clearTimer(name) {
    if (this._timers[name] === undefined) return;
    this._clearTimeout(this._timers[name]);
    delete this._timers[name];
  }

  _setState(ev) {
    this._state = ev.state;
    this._emit('state', ev);
  }

  _emit(event, arg) {
    const set = this._listeners.get(event);
    if (set) for (const fn of [...set]) this._call(fn, arg);
  }

  /** Calls application code; its exceptions are reported, never thrown into the client. */
  _call(fn, ...args) {
    try {
      fn(...args);
    } catch (e) {
      (globalThis.reportError || console.error)(e);
    }
  }
}
