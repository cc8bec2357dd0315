// A tiny RESP2 client over a net socket: commands, and a subscriber that sees
// what the gateway publishes. Enough for PUBLISH, PUBSUB, PING, SUBSCRIBE.
import net from 'node:net';
import { execFile } from 'node:child_process';
import { REDIS_CLI } from './env.mjs';
import { withTimeout } from './wait.mjs';

export class RespError extends Error {}

/** Encodes a command as a RESP array of bulk strings. */
export function encodeCommand(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const s = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(`$${s.length}\r\n`, s, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p, 'utf8'))));
}

/**
 * Parses one RESP value from buf at off. Returns [value, nextOffset], or null
 * when buf does not hold the whole value yet.
 */
export function parseResp(buf, off = 0) {
  if (off >= buf.length) return null;
  const eol = buf.indexOf('\r\n', off);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new RespError(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const arr = [];
      let o = next;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, o);
        if (!r) return null;
        arr.push(r[0]);
        o = r[1];
      }
      return [arr, o];
    }
    default:
      throw new Error(`bad RESP type byte ${JSON.stringify(type)}`);
  }
}

/** One connection to Redis. Replies resolve in order; pushes go to onPush. */
export class RespConnection {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.pending = [];
    this.pushes = [];
    this.pushWaiters = [];
    this.subscribed = false;
    this.closed = false;
    socket.on('data', (d) => this.#onData(d));
    socket.on('close', () => {
      this.closed = true;
      const err = new Error('redis connection closed');
      for (const p of this.pending.splice(0)) p.reject(err);
      for (const w of this.pushWaiters.splice(0)) w.reject(err);
    });
    socket.on('error', () => {});
  }

  /** Connects to 127.0.0.1:port; rejects on refusal or after timeout ms. */
  static connect(port, { host = '127.0.0.1', timeout = 2000 } = {}) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to redis ${host}:${port} timed out`));
      }, timeout);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(new RespConnection(s));
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  #onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const r = parseResp(this.buf, 0);
      if (!r) break;
      this.buf = this.buf.subarray(r[1]);
      this.#dispatch(r[0]);
    }
  }

  #dispatch(v) {
    const isPush = this.subscribed && Array.isArray(v) && (v[0] === 'message' || v[0] === 'pmessage');
    if (isPush) {
      const msg = v[0] === 'message' ? { channel: v[1], payload: v[2] } : { pattern: v[1], channel: v[2], payload: v[3] };
      const i = this.pushWaiters.findIndex((w) => w.pred(msg));
      if (i >= 0) this.pushWaiters.splice(i, 1)[0].resolve(msg);
      else this.pushes.push(msg);
      return;
    }
    const p = this.pending.shift();
    if (!p) return;
    if (v instanceof RespError) p.reject(v);
    else p.resolve(v);
  }

  /** Sends a command; resolves with its reply (rejects with RespError on -ERR). */
  command(...args) {
    if (this.closed) return Promise.reject(new Error('redis connection closed'));
    const name = String(args[0]).toLowerCase();
    if (name === 'subscribe' || name === 'psubscribe') {
      this.subscribed = true;
      // One confirmation per channel; resolve with the last.
      const n = args.length - 1;
      const ps = [];
      for (let i = 0; i < n; i++) ps.push(new Promise((resolve, reject) => this.pending.push({ resolve, reject })));
      this.socket.write(encodeCommand(args));
      return Promise.all(ps);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(encodeCommand(args));
    });
  }

  /** Next pub/sub message matching pred (queued ones first), within timeout ms. */
  nextPush(pred = () => true, timeout = 5000) {
    const i = this.pushes.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.pushes.splice(i, 1)[0]);
    let waiter;
    const p = new Promise((resolve, reject) => {
      waiter = { pred, resolve, reject };
      this.pushWaiters.push(waiter);
    });
    return withTimeout(p, timeout, 'a Redis pub/sub message').finally(() => {
      const j = this.pushWaiters.indexOf(waiter);
      if (j >= 0) this.pushWaiters.splice(j, 1);
    });
  }

  close() {
    this.socket.destroy();
  }
}

/** Runs one command on a short-lived connection. */
export async function redisCommand(port, ...args) {
  const c = await RespConnection.connect(port);
  try {
    return await withTimeout(c.command(...args), 5000, `redis ${args[0]}`);
  } finally {
    c.close();
  }
}

/**
 * Runs the real `redis-cli -p PORT args...`, as a backend operator would.
 * Resolves with trimmed stdout; rejects on a non-zero exit.
 */
export function redisCli(port, ...args) {
  return new Promise((resolve, reject) => {
    execFile(REDIS_CLI, ['-h', '127.0.0.1', '-p', String(port), ...args.map(String)], { timeout: 10000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(' ')} failed: ${err.message} ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}
