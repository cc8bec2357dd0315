// A real redis-server on a free loopback port, with no persistence, that the
// tests can kill (SIGKILL) and start again on the same port.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REDIS_SERVER, ARTIFACTS_DIR, T, makeTmpDir } from './env.mjs';
import { freePort } from './ports.mjs';
import { RespConnection, redisCommand } from './resp.mjs';
import { trackChild, untrackChild } from './procs.mjs';
import { withTimeout } from './wait.mjs';
import { setTimeout as delay } from 'node:timers/promises';

export class RedisServer {
  /**
   * Does not start anything; see start(). Port is picked free when omitted.
   * args: more redis-server flags, e.g. ['--appendonly', 'yes'] for a Redis
   * that keeps its data across kill() and start().
   */
  constructor({ port, name = 'redis', args = [] } = {}) {
    this.port = port;
    this.name = name;
    this.extraArgs = args;
    this.proc = null;
    this.dir = null;
    this.log = '';
    this.starts = 0;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running() {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Starts redis-server and waits until it answers PING. */
  async start() {
    if (this.running) throw new Error(`${this.name} already running`);
    if (!this.port) this.port = await freePort();
    if (!this.dir) this.dir = makeTmpDir('wsgw-redis-');
    this.starts += 1;
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--protected-mode', 'no', '--loglevel', 'notice', ...this.extraArgs];
    const proc = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    trackChild(proc);
    const onData = (d) => {
      this.log += d.toString('utf8');
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
      untrackChild(proc);
      resolve({ code, signal });
    }));
    const deadline = Date.now() + T(10000);
    for (;;) {
      if (!this.running) throw new Error(`${this.name} exited at start:\n${this.log}`);
      try {
        const c = await RespConnection.connect(this.port, { timeout: 500 });
        try {
          const pong = await withTimeout(c.command('PING'), 1000, 'PING');
          if (pong === 'PONG') return this;
        } finally {
          c.close();
        }
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`${this.name} did not answer PING on port ${this.port}:\n${this.log}`);
      await delay(30);
    }
  }

  /** Kills redis-server with SIGKILL (an outage, no clean shutdown) and waits for it to go. */
  async kill() {
    if (!this.running) return;
    this.proc.kill('SIGKILL');
    await withTimeout(this.exited, T(5000), `${this.name} to die`);
  }

  /** Stops redis-server (SIGTERM, SIGKILL after a timeout) and removes its folder. */
  async stop() {
    if (this.running) {
      this.proc.kill('SIGTERM');
      try {
        await withTimeout(this.exited, T(5000), `${this.name} to exit`);
      } catch {
        this.proc.kill('SIGKILL');
        await this.exited;
      }
    }
    this.#saveLog();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }

  #saveLog() {
    try {
      fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
      fs.writeFileSync(path.join(ARTIFACTS_DIR, `${this.name}-${this.port}-${process.pid}.log`), this.log);
    } catch {
      /* logs are a convenience */
    }
  }

  /** Runs one command against this server. */
  command(...args) {
    return redisCommand(this.port, ...args);
  }

  /** Channels with at least one subscriber that match pattern (PUBSUB CHANNELS). */
  async channels(pattern = '*') {
    const r = await this.command('PUBSUB', 'CHANNELS', pattern);
    return r.slice().sort();
  }

  /** Subscriber count of one channel (PUBSUB NUMSUB). */
  async numsub(channel) {
    const r = await this.command('PUBSUB', 'NUMSUB', channel);
    return Number(r[1]);
  }

  /** PUBLISH channel payload; resolves with the receiver count Redis reports. */
  publish(channel, payload) {
    return this.command('PUBLISH', channel, typeof payload === 'string' ? payload : JSON.stringify(payload));
  }

  /** A connection subscribed to channels, for watching what the gateway publishes. */
  async subscriber(...channels) {
    const c = await RespConnection.connect(this.port);
    await c.command('SUBSCRIBE', ...channels);
    return c;
  }
}
