// A test scope owns everything a test file starts: a temporary folder with a
// 48-byte HMAC secret, Redis servers, gateways and clients. close() stops all
// of them (clients first, then gateways, then Redis), checks every gateway's
// exit (code 0, no sanitizer report) and throws if one was wrong. Call it from
// after() so it runs even when a test fails.
import fs from 'node:fs';
import path from 'node:path';
import { makeTmpDir, uniq } from './env.mjs';
import { RedisServer } from './redis.mjs';
import { Gateway, runWsgw } from './gateway.mjs';
import { WsClient } from './client.mjs';
import { freePort } from './ports.mjs';
import { hsToken, randomSecret } from './jwt.mjs';

export class Scope {
  constructor(name = 'test') {
    this.name = name;
    this.dir = makeTmpDir(`wsgw-it-${name}-`);
    this.secret = randomSecret(48);
    this.secretFile = this.file('jwt-secret', this.secret);
    this.redises = [];
    this.gateways = [];
    this.clients = [];
  }

  /** Writes a file in the scope's folder (mode 0600); returns its path. */
  file(name, content) {
    const p = path.join(this.dir, name);
    fs.writeFileSync(p, content, { mode: 0o600 });
    return p;
  }

  /**
   * A started redis-server (options as RedisServer). With start:false only a
   * free port is reserved, so a gateway can be pointed at a Redis that is down.
   */
  async redis({ start = true, ...opts } = {}) {
    const r = new RedisServer({ name: `${this.name}-redis${this.redises.length}`, ...opts });
    this.redises.push(r);
    if (!r.port) r.port = await freePort();
    if (start) await r.start();
    return r;
  }

  /**
   * A started gateway. opts as Gateway (redis may be a RedisServer); the
   * scope's secret file is used unless secretFile is given (null for none).
   * waitReady defaults to true when there is no Redis or it is running.
   */
  async gateway({ waitReady, ...opts } = {}) {
    const redis = opts.redis instanceof RedisServer ? opts.redis : null;
    const o = {
      name: `${this.name}-gw${this.gateways.length}`,
      secretFile: this.secretFile,
      ...opts,
      redis: redis ? redis.url : opts.redis,
    };
    const gw = new Gateway(o);
    this.gateways.push(gw);
    const ready = waitReady ?? (redis ? redis.running : true);
    await gw.start({ waitReady: ready });
    return gw;
  }

  /** An HS256 token signed with the scope's secret (claims as jwt.claims()). */
  token(opts = {}, signOpts = {}) {
    return hsToken(this.secret, opts, signOpts);
  }

  /** Runs `wsgw token --secret-file <scope secret> args...`; resolves the token. */
  async cliToken(args) {
    const r = await runWsgw(['token', '--secret-file', this.secretFile, ...args]);
    if (r.code !== 0) throw new Error(`wsgw token ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.stdout.trim();
  }

  /** A connected client (not authenticated); target is a Gateway or a URL. */
  async connect(target, name) {
    const url = typeof target === 'string' ? target : target.url;
    const c = await WsClient.connect(url, { name: name || `client${this.clients.length}` });
    this.clients.push(c);
    return c;
  }

  /**
   * A connected, authenticated client. `token` is a token string, or claims
   * for scope.token(); returns the client with .user and .authOk set.
   */
  async user(target, token = {}, name) {
    const tok = typeof token === 'string' ? token : this.token({ sub: uniq('user'), ...token });
    const c = await this.connect(target, name);
    c.authOk = await c.auth(tok);
    c.user = c.authOk.user;
    return c;
  }

  /** Stops everything; throws an error listing every gateway that exited badly. */
  async close() {
    const errors = [];
    await Promise.all(this.clients.map((c) => c.close().catch(() => c.terminate())));
    const results = await Promise.allSettled(this.gateways.map((g) => g.stop()));
    for (const r of results) if (r.status === 'rejected') errors.push(r.reason);
    await Promise.allSettled(this.redises.map((r) => r.stop()));
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new Error(errors.map((e) => e.message).join('\n\n'));
  }
}
