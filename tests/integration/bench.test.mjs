// wsgw-bench against real gateways: small scenarios of each publishing path,
// where the bench itself checks every delivery (lost, duplicated, reordered,
// misrouted) and exits 0 only when all arrived exactly once. Under the ASan
// build the gateway is the sanitized one; the bench is that build's too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Scope, BIN_DIR, T } from './lib/index.mjs';
import { trackChild, untrackChild } from './lib/procs.mjs';

const s = new Scope('bench');
after(() => s.close());

/** Runs wsgw-bench with args; resolves {code, report, stderr}. */
function bench(args, timeout = T(60000)) {
  const json = path.join(s.dir, `bench-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
  return new Promise((resolve, reject) => {
    const proc = spawn(path.join(BIN_DIR, 'wsgw-bench'), [...args, '--quiet', '--json', json],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(proc);
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.stdout.resume();
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeout);
    proc.once('error', reject);
    proc.once('close', (code) => {
      clearTimeout(timer);
      untrackChild(proc);
      let report = null;
      try {
        report = JSON.parse(fs.readFileSync(json, 'utf8'));
      } catch { /* no report: the assertion below shows stderr */ }
      resolve({ code, report, stderr });
    });
  });
}

function assertExact(r, expected) {
  assert.ok(r.report, `no JSON report; stderr:\n${r.stderr}`);
  const d = r.report.delivery;
  assert.equal(r.report.connect.ready, r.report.config.connections, JSON.stringify(r.report.connect));
  assert.equal(d.lost, 0, JSON.stringify(d));
  assert.equal(d.duplicates, 0, JSON.stringify(d));
  assert.equal(d.delivered, expected, JSON.stringify(d));
  assert.equal(r.code, 0, `wsgw-bench exit ${r.code}: ${JSON.stringify(r.report.failures)}`);
}

test('broadcast published into Redis, 100 connections on each of two gateways: every message once, none lost', async () => {
  const redis = await s.redis();
  const a = await s.gateway({ name: 'bench-a', redis });
  const b = await s.gateway({ name: 'bench-b', redis });
  for (const gw of [a, b]) {
    const r = await bench(['--url', gw.url, '--secret-file', s.secretFile, '--redis', redis.url,
      '--connections', '100', '--rate', '100', '--messages', '100', '--duration', '5']);
    assertExact(r, 100 * 100);
  }
});

test('200 connections, one job channel each, published by a WebSocket client: none lost, none twice', async () => {
  const redis = await s.redis();
  // One client publishes every message: the per-connection publish limit is raised for it.
  const gw = await s.gateway({ name: 'bench-ws', redis, args: ['--publish-rate', '100000', '--publish-burst', '100000'] });
  const r = await bench(['--url', gw.url, '--secret-file', s.secretFile, '--pattern', 'per-job',
    '--publish-via', 'ws', '--connections', '200', '--rate', '400', '--messages', '400', '--duration', '5']);
  assertExact(r, 400);
});
