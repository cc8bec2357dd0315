// Real wsgw processes: start on a free port, wait for /healthz (and /readyz),
// capture stderr, stop with SIGTERM and check the exit: code 0 and no
// sanitizer report.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ARTIFACTS_DIR, T, childEnv, requireWsgw } from './env.mjs';
import { freePort } from './ports.mjs';
import { httpGet } from './http.mjs';
import { trackChild, untrackChild } from './procs.mjs';
import { waitFor, withTimeout } from './wait.mjs';

const SANITIZER_PATTERNS = [
  'ERROR: AddressSanitizer',
  'ERROR: LeakSanitizer',
  'runtime error:',
  'WARNING: AddressSanitizer',
];

/** The first line of text that looks like a sanitizer report, or null. */
export function sanitizerReport(text) {
  for (const line of text.split('\n')) {
    if (SANITIZER_PATTERNS.some((p) => line.includes(p))) return line.trim();
  }
  return null;
}

/** The last n lines of text, for error messages. */
export function tail(text, n = 40) {
  const lines = text.split('\n');
  return lines.slice(Math.max(0, lines.length - n)).join('\n');
}

function saveLog(name, text) {
  try {
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const file = path.join(ARTIFACTS_DIR, `${name}-${process.pid}.log`);
    fs.writeFileSync(file, text);
    return file;
  } catch {
    return null;
  }
}

export class Gateway {
  /**
   * opts: name, port (free when omitted), redis (URL, or null for the
   * in-process bus), secretFile (null: no --jwt-secret-file), args (more
   * flags), env (more environment), logLevel, listenFlag (false: pass
   * nothing, e.g. when the test sets WSGW_LISTEN itself), drainSeconds
   * (default 0 so that stopping a test gateway is quick; drain tests set it).
   */
  constructor(opts = {}) {
    this.opts = opts;
    this.name = opts.name || 'wsgw';
    this.port = opts.port;
    this.proc = null;
    this.stderr = '';
    this.stdout = '';
    this.stopped = null;
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  get running() {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get pid() {
    return this.proc?.pid;
  }

  argv() {
    const o = this.opts;
    const a = [];
    if (o.listenFlag !== false) a.push('--listen', `127.0.0.1:${this.port}`);
    if (o.redis) a.push('--redis', o.redis);
    if (o.secretFile) a.push('--jwt-secret-file', o.secretFile);
    if (o.logLevel !== null) a.push('--log-level', o.logLevel || 'info');
    if (o.drainSeconds !== null) a.push('--drain-seconds', String(o.drainSeconds ?? 0));
    return a.concat(o.args || []);
  }

  /**
   * Spawns the gateway and waits for /healthz 200, and for /readyz 200 unless
   * waitReady is false. Throws (with stderr) when it exits or times out.
   */
  async start({ waitReady = true } = {}) {
    const bin = requireWsgw();
    if (!this.port) this.port = await freePort();
    const proc = spawn(bin, this.argv(), { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(this.opts.env) });
    this.proc = proc;
    trackChild(proc);
    proc.stdout.on('data', (d) => {
      this.stdout += d.toString('utf8');
    });
    proc.stderr.on('data', (d) => {
      this.stderr += d.toString('utf8');
    });
    this.exited = new Promise((resolve) => proc.once('close', (code, signal) => {
      untrackChild(proc);
      resolve({ code, signal });
    }));
    const spawnError = new Promise((_, reject) => proc.once('error', reject));
    spawnError.catch(() => {});
    try {
      await Promise.race([
        spawnError,
        this.waitStatus('/healthz', 200, T(10000)),
      ]);
      if (waitReady) await this.waitStatus('/readyz', 200, T(10000));
    } catch (e) {
      if (this.running) {
        this.proc.kill('SIGKILL');
        await withTimeout(this.exited, 5000, `${this.name} to die`).catch(() => {});
      }
      saveLog(`${this.name}-${this.port}`, this.stderr);
      throw new Error(`${this.name} (${this.argv().join(' ')}) did not come up: ${e.message}\n--- stderr ---\n${tail(this.stderr)}`);
    }
    return this;
  }

  /** GET a path of this gateway; {status, body}, status 0 when unreachable. */
  get(p) {
    return httpGet(this.port, p);
  }

  /** Polls GET path until it answers `status`; throws with stderr if the process exits. */
  async waitStatus(p, status, timeout = T(10000)) {
    let last;
    await waitFor(async () => {
      if (this.proc && !this.running) {
        const e = await this.exited;
        throw Object.assign(new Error(`${this.name} exited (code ${e.code}, signal ${e.signal})`), { fatal: true });
      }
      last = await this.get(p);
      return last.status === status;
    }, { timeout, interval: 50, what: `${this.name} GET ${p} -> ${status} (last ${last?.status})` }).catch((e) => {
      throw new Error(`${e.message}\n--- ${this.name} stderr ---\n${tail(this.stderr)}`);
    });
  }

  /** Sends a signal without waiting. */
  signal(sig) {
    if (this.running) this.proc.kill(sig);
  }

  /**
   * Stops the gateway: `signal` (SIGTERM), SIGKILL after timeout ms. Resolves
   * {code, signal, stderr, problems}; problems lists what is wrong with the
   * exit (not 0, killed, sanitizer report). With check (default) a non-empty
   * problems list throws. Idempotent.
   */
  async stop({ signal = 'SIGTERM', timeout = T(10000), check = true } = {}) {
    if (!this.stopped) this.stopped = this.#stop(signal, timeout);
    const r = await this.stopped;
    if (check && r.problems.length) {
      throw new Error(`${this.name} on port ${this.port}: ${r.problems.join('; ')}\n--- stderr (tail; full log ${r.logFile}) ---\n${tail(r.stderr)}`);
    }
    return r;
  }

  async #stop(signal, timeout) {
    const problems = [];
    if (!this.proc) return { code: null, signal: null, stderr: '', problems };
    if (this.running) {
      this.proc.kill(signal);
      try {
        await withTimeout(this.exited, timeout, `${this.name} to exit after ${signal}`);
      } catch {
        problems.push(`did not exit within ${timeout} ms of ${signal}; killed with SIGKILL`);
        this.proc.kill('SIGKILL');
        await withTimeout(this.exited, 5000, `${this.name} to die`).catch(() => {});
      }
    }
    const { code, signal: sig } = await this.exited;
    if (sig) problems.push(`killed by ${sig}`);
    else if (code !== 0) problems.push(`exit code ${code}, expected 0`);
    const rep = sanitizerReport(this.stderr);
    if (rep) problems.push(`sanitizer report: ${rep}`);
    const logFile = saveLog(`${this.name}-${this.port}`, this.stderr);
    return { code, signal: sig, stderr: this.stderr, problems, logFile };
  }

  /** Lines of stderr that parse as JSON objects (the gateway's log records). */
  logRecords() {
    const out = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.trim()) continue;
      try {
        const v = JSON.parse(line);
        if (v && typeof v === 'object') out.push(v);
      } catch {
        /* not a log record */
      }
    }
    return out;
  }
}

/**
 * Runs `wsgw args...` to completion (e.g. `wsgw token ...`, or a gateway
 * expected to refuse to start). Resolves {code, signal, stdout, stderr,
 * timedOut}; a process still running after timeout ms is killed.
 */
export function runWsgw(args, { env, timeout = T(10000) } = {}) {
  const bin = requireWsgw();
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(env) });
    trackChild(proc);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.on('data', (d) => { stdout += d.toString('utf8'); });
    proc.stderr.on('data', (d) => { stderr += d.toString('utf8'); });
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeout);
    proc.once('error', (e) => {
      clearTimeout(timer);
      untrackChild(proc);
      reject(e);
    });
    proc.once('close', (code, signal) => {
      clearTimeout(timer);
      untrackChild(proc);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}
