// Test doubles for wsgw-client.js: a fake WebSocket the test drives by hand
// (open, deliver frames, close from the server side) and a fake clock whose
// timers run only when the test advances time. No network, no real timers.

import { WsgwClient } from '../../web-demo/wsgw-client.js';

/** Lets pending promise callbacks (getToken, awaits inside the client) run. */
export const flush = () => new Promise((resolve) => setImmediate(resolve));

export function fakeClock(start = 1_700_000_000_000) {
  let now = start;
  let seq = 1;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = seq++;
      timers.set(id, { fn, at: now + Math.max(0, ms || 0) });
      return id;
    },
    clearTimeout: (id) => { timers.delete(id); },
    /** Delays (from now) of the timers still armed, sorted. */
    pending: () => [...timers.values()].map((t) => t.at - now).sort((a, b) => a - b),
    /** Moves time forward, running each timer due on the way at its own time. */
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        let next = null;
        for (const [id, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
        if (!next) break;
        timers.delete(next[0]);
        now = next[1].at;
        next[1].fn();
        await flush();
      }
      now = end;
      await flush();
    },
  };
}

/** A WebSocket class whose instances land in `sockets`. */
export function fakeWebSocketClass(sockets) {
  return class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(text) {
      if (this.readyState !== 1) throw new Error('InvalidStateError');
      this.sent.push(JSON.parse(text));
    }
    close(code, reason) {
      this.closedWith = { code, reason };
      this.readyState = 2;
    }
    // Driven by the test, as the network would.
    open() { this.readyState = 1; this.onopen({ type: 'open' }); }
    deliver(msg) { this.onmessage({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) }); }
    serverClose(code, reason = '') { this.readyState = 3; this.onclose({ code, reason, wasClean: code !== 1006 }); }
    /** The last frame sent of `type`. */
    lastSent(type) { return this.sent.filter((m) => m.type === type).at(-1); }
    sentOf(type) { return this.sent.filter((m) => m.type === type); }
  };
}

/**
 * A client wired to fakes. getToken returns tok1, tok2, ... (counted in
 * env.tokenCalls); `events` records every 'state', 'recovered' and 'error'.
 */
export function setup(opts = {}) {
  const clock = fakeClock();
  const sockets = [];
  const env = { clock, sockets, tokenCalls: 0, events: { state: [], recovered: [], error: [] } };
  env.client = new WsgwClient({
    urls: ['ws://a/ws', 'ws://b/ws'],
    getToken: async () => `tok${++env.tokenCalls}`,
    WebSocket: fakeWebSocketClass(sockets),
    random: () => 0.5,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    now: clock.now,
    ...opts,
  });
  for (const name of Object.keys(env.events)) env.client.on(name, (e) => env.events[name].push(e));
  env.ws = () => sockets.at(-1);
  env.states = () => env.events.state.map((e) => e.state);
  /** Session expiry `s` seconds from the fake now, as auth_ok carries it. */
  env.expIn = (s) => Math.floor(clock.now() / 1000) + s;
  return env;
}

/**
 * Runs one connection up to 'connected': waits for the socket, opens it and
 * answers the auth message. Returns the socket.
 */
export async function connectSocket(env, { exp = env.expIn(3600), user = 'alice' } = {}) {
  await flush();
  const ws = env.ws();
  ws.open();
  ws.deliver({ type: 'auth_ok', user, conn: `c${env.sockets.length}`, exp });
  await flush();
  return ws;
}

/** Starts the client and brings its first connection up. */
export async function connected(env, o) {
  env.client.connect();
  return connectSocket(env, o);
}

/** Answers the last subscribe sent for `channel` with `subscribed` plus `extra`. */
export function ackSubscribe(ws, channel, extra = {}) {
  const req = ws.sentOf('subscribe').filter((m) => m.channel === channel).at(-1);
  ws.deliver({ type: 'subscribed', channel, id: req.id, ...extra });
  return req;
}
