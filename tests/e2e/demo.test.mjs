// The web demo end to end, in real Chromium (Debian's, driven by
// playwright-core): a real redis-server, two wsgw processes sharing it (A and
// B), the wsgw-demo backend publishing job progress through the gateways'
// HTTP API, and the page with wsgw-client.js. Each test is what a person
// trying the demo would see.
//
// The tests share one set of processes and run in order; the last one kills
// gateway A. Jobs run with --fail-percent 0 so that every job ends in done.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  ARTIFACTS_DIR, Gateway, RedisServer, T, makeTmpDir, randomSecret,
} from '../integration/lib/index.mjs';
import { DemoBackend } from './lib/demo.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const PROGRESS = Array.from({ length: 21 }, (_, i) => i * 5); // 0, 5, ..., 100
const JOB_SECONDS = 8;

let dir;
let redis;
let gwA;
let gwB;
let demo;
let browser;
const pageErrors = [];

before(async () => {
  dir = makeTmpDir('wsgw-e2e-');
  const secretFile = path.join(dir, 'secret');
  const apiKeyFile = path.join(dir, 'api-keys');
  fs.writeFileSync(secretFile, randomSecret(48), { mode: 0o600 });
  fs.writeFileSync(apiKeyFile, `${randomSecret(40)}\n`, { mode: 0o600 });
  redis = await new RedisServer({ name: 'redis-e2e' }).start();
  const gw = (name) => new Gateway({ name, redis: redis.url, secretFile, args: ['--api-key-file', apiKeyFile] });
  gwA = await gw('gateway-A').start();
  gwB = await gw('gateway-B').start();
  demo = await new DemoBackend({
    gatewayPorts: [gwA.port, gwB.port], secretFile, apiKeyFile,
    args: ['--fail-percent', '0', '--job-seconds', String(JOB_SECONDS)],
  }).start();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
});

after(async () => {
  // Everything is stopped even when a step fails; the first failure is reported.
  const errors = [];
  const attempt = async (fn) => { try { await fn(); } catch (e) { errors.push(e); } };
  await attempt(() => browser?.close());
  await attempt(() => demo?.stop());
  await attempt(() => gwB?.stop());
  // A was killed on purpose by the last test; a gateway still running must exit cleanly.
  await attempt(() => gwA?.stop({ check: gwA.running }));
  await attempt(() => redis?.stop());
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  if (errors.length) throw errors[0];
});

/** A fresh browser context (its own sessionStorage) signed in as `name` on gateway A or B. */
async function signIn(name, gateway) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`${name} console: ${m.text()}`); });
  await page.goto(demo.url);
  await page.fill('#name', name);
  await page.check(`input[name="gateway"][value="${gateway === 'A' ? 0 : 1}"]`);
  await page.click('#login-button');
  await page.waitForSelector(`#conn[data-state="connected"]`, { timeout: T(10000) });
  assert.equal(await page.textContent('#conn-text'), `connected to ${gateway}`);
  await waitLog(page, `[data-kind="subscribed"][data-channel="chat:lobby"]`);
  return page;
}

/** The pages raised no script error and the browser reported no CSP violation. */
function noPageErrors() {
  assert.deepEqual(pageErrors.splice(0), []);
}

/** Waits for an event-log entry matching the attribute selector. */
function waitLog(page, attrs, timeout = T(10000)) {
  return page.waitForSelector(`#log li${attrs}`, { state: 'attached', timeout });
}

/** The event log's entries for `channel`, as data attributes. */
function logOf(page, channel) {
  return page.$$eval('#log li', (items, ch) => items
    .filter((li) => li.dataset.channel === ch)
    .map((li) => ({ ...li.dataset })), channel);
}

/** Progress values of the job messages in the log, in order of arrival. */
async function progressLog(page, channel) {
  return (await logOf(page, channel))
    .filter((e) => e.kind === 'message' && e.state === 'running')
    .map((e) => Number(e.progress));
}

/** Clicks "Start a job"; returns its channel once the page shows it queued or later. */
async function startJob(page) {
  const before = await page.$$eval('.job', (l) => l.length);
  await page.click('#start-job');
  await page.waitForFunction((n) => document.querySelectorAll('.job').length > n, before, { timeout: T(5000) });
  const id = await page.$eval('.job', (li) => li.dataset.job);
  return { id, channel: `job:${id}`, row: `.job[data-job="${id}"]` };
}

function jobProgress(page, row) {
  return page.$eval(row, (li) => Number(li.dataset.progress ?? -1));
}

test('chat: alice on gateway A and bob on gateway B see each other\'s messages with the sender', async () => {
  const alice = await signIn('alice', 'A');
  const bob = await signIn('bob', 'B');

  await alice.fill('#chat-text', 'hello bob, from gateway A');
  await alice.click('#chat-send');
  const atBob = await bob.waitForSelector('#chat li[data-from="alice"]', { timeout: T(5000) });
  assert.equal(await atBob.$eval('.from', (e) => e.textContent), 'alice');
  assert.equal(await atBob.$eval('.text', (e) => e.textContent), 'hello bob, from gateway A');

  await bob.fill('#chat-text', 'hi alice, from gateway B');
  await bob.click('#chat-send');
  const atAlice = await alice.waitForSelector('#chat li[data-from="bob"]', { timeout: T(5000) });
  assert.equal(await atAlice.$eval('.from', (e) => e.textContent), 'bob');
  assert.equal(await atAlice.$eval('.text', (e) => e.textContent), 'hi alice, from gateway B');

  // Each message exactly once on each side, the sender's own included.
  for (const page of [alice, bob]) {
    const lines = await page.$$eval('#chat li', (l) => l.map((li) => `${li.dataset.from}: ${li.querySelector('.text').textContent}`));
    assert.deepEqual(lines, ['alice: hello bob, from gateway A', 'bob: hi alice, from gateway B']);
  }
  noPageErrors();
  await alice.context().close();
  await bob.context().close();
});

test('job: the progress bar goes to 100% and the job ends done', async () => {
  const page = await signIn('alice', 'A');
  const job = await startJob(page);
  await page.waitForSelector(`${job.row}[data-state="done"]`, { timeout: T((JOB_SECONDS + 10) * 1000) });
  assert.equal(await page.$eval(`${job.row} progress`, (p) => p.value), 100);
  assert.equal(await page.$eval(`${job.row} .job-state`, (e) => e.textContent), 'done 100%');
  assert.deepEqual(await progressLog(page, job.channel), PROGRESS);
  noPageErrors();
  await page.context().close();
});

test('reload mid-job: the page shows the current progress at once, then carries on to done', async () => {
  const page = await signIn('alice', 'A');
  const job = await startJob(page);
  await page.waitForFunction((row) => Number(document.querySelector(row)?.dataset.progress) >= 20,
    job.row, { timeout: T(15000) });
  const before = await jobProgress(page, job.row);

  await page.reload();
  // The page signs in again from sessionStorage and subscribes without `since`.
  await waitLog(page, `[data-kind="subscribed"][data-channel="${job.channel}"]`);
  await waitLog(page, `[data-kind="message"][data-channel="${job.channel}"]`);
  const [subscribed, first] = (await logOf(page, job.channel)).filter((e) => e.kind === 'subscribed' || e.kind === 'message');
  assert.equal(subscribed.kind, 'subscribed');
  // The first message is the stored latest state (the subscribe reply's
  // offset), not the next update: the bar shows where the job was.
  assert.equal(first.kind, 'message');
  assert.equal(first.offset, subscribed.offset, 'first message after reload is the latest stored state');
  assert.equal(first.state, 'running');
  assert.ok(Number(first.progress) >= before && Number(first.progress) < 100,
    `progress after reload ${first.progress}, before ${before}`);

  await page.waitForSelector(`${job.row}[data-state="done"]`, { timeout: T((JOB_SECONDS + 10) * 1000) });
  // From the reload on, every later value exactly once.
  const after = await progressLog(page, job.channel);
  assert.deepEqual(after, PROGRESS.filter((p) => p >= after[0]));
  noPageErrors();
  await page.context().close();
});

test('gateway A killed mid-job: the page reconnects to B and misses nothing', async () => {
  const page = await signIn('alice', 'A');
  const job = await startJob(page);
  await page.waitForFunction((row) => Number(document.querySelector(row)?.dataset.progress) >= 25,
    job.row, { timeout: T(15000) });

  // Right after an update: the backend's next publish is half a second away.
  gwA.signal('SIGKILL');
  await gwA.exited;

  await waitLog(page, '[data-kind="state"][data-state="reconnecting"]');
  await page.waitForFunction(() => document.querySelector('#conn-text').textContent.startsWith('connected to B'),
    null, { timeout: T(15000) });
  await page.waitForSelector(`${job.row}[data-state="done"]`, { timeout: T((JOB_SECONDS + 15) * 1000) });

  const entries = await logOf(page, job.channel);
  const recovered = entries.filter((e) => e.kind === 'recovered');
  assert.deepEqual(recovered.map((e) => e.recovered), ['true'], 'one resubscription, with recovered:true');
  assert.deepEqual(await progressLog(page, job.channel), PROGRESS, 'every progress value exactly once');
  const offsets = entries.filter((e) => e.kind === 'message').map((e) => Number(e.offset));
  assert.deepEqual(offsets, offsets.map((_, i) => offsets[0] + i), 'offsets without gap or repeat');
  assert.equal(await page.$eval(`${job.row} progress`, (p) => p.value), 100);
  assert.match(await page.textContent('#conn-text'), /^connected to B · recovered/);

  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const shot = path.join(ARTIFACTS_DIR, 'e2e-demo-final.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10_000, 'screenshot written');
  noPageErrors();
  await page.context().close();
});
