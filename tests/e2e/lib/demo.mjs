// The demo backend (wsgw-demo) as a test fixture: started on a free port
// with the gateways' secret and an API key file, ready when /healthz
// answers; stopped with SIGTERM, and, like the gateways, expected to exit 0
// without a sanitizer report.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  ARTIFACTS_DIR, BIN_DIR, T, childEnv, freePort, httpGet, sanitizerReport, tail, waitFor, withTimeout,
} from '../../integration/lib/index.mjs';
import { trackChild, untrackChild } from '../../integration/lib/procs.mjs';

export const DEMO_BIN = path.join(BIN_DIR, 'wsgw-demo');

export class DemoBackend {
  /** opts: gatewayPorts (array), secretFile, apiKeyFile, args (more flags). */
  constructor(opts) {
    this.opts = opts;
    this.port = null;
    this.proc = null;
    this.stderr = '';
    this.stopped = null;
  }

  get url() {
    return `http://127.0.0.1:${this.port}/`;
  }

  get running() {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  argv() {
    const o = this.opts;
    return ['--insecure-demo', '--listen', `127.0.0.1:${this.port}`,
      '--gateway-ports', o.gatewayPorts.join(','), '--secret-file', o.secretFile,
      '--api-key-file', o.apiKeyFile, ...(o.args || [])];
  }

  async start() {
    if (!fs.existsSync(DEMO_BIN)) throw new Error(`wsgw-demo not found at ${DEMO_BIN}; build it or set WSGW_BIN_DIR`);
    this.port = await freePort();
    const proc = spawn(DEMO_BIN, this.argv(), { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
    this.proc = proc;
    trackChild(proc);
    proc.stderr.on('data', (d) => { this.stderr += d.toString('utf8'); });
    this.exited = new Promise((resolve) => proc.once('close', (code, signal) => {
      untrackChild(proc);
      resolve({ code, signal });
    }));
    await waitFor(async () => {
      if (!this.running) throw Object.assign(new Error(`wsgw-demo exited:\n${tail(this.stderr)}`), { fatal: true });
      return (await httpGet(this.port, '/healthz')).status === 200;
    }, { timeout: T(10000), what: 'wsgw-demo /healthz' });
    return this;
  }

  /** SIGTERM, then checks the exit: code 0 and no sanitizer report. Idempotent. */
  async stop() {
    if (!this.stopped) this.stopped = this.#stop();
    return this.stopped;
  }

  async #stop() {
    if (!this.proc) return;
    if (this.running) {
      this.proc.kill('SIGTERM');
      await withTimeout(this.exited, T(10000), 'wsgw-demo to exit').catch(() => this.proc.kill('SIGKILL'));
    }
    const { code, signal } = await this.exited;
    try {
      fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
      fs.writeFileSync(path.join(ARTIFACTS_DIR, `wsgw-demo-${this.port}-${process.pid}.log`), this.stderr);
    } catch { /* logs are a convenience */ }
    const problems = [];
    if (signal || code !== 0) problems.push(`exit code ${code}, signal ${signal}`);
    const rep = sanitizerReport(this.stderr);
    if (rep) problems.push(`sanitizer report: ${rep}`);
    if (problems.length) throw new Error(`wsgw-demo: ${problems.join('; ')}\n${tail(this.stderr)}`);
  }
}
