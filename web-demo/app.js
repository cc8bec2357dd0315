// app.js: the wsgw demo page. It signs in through the demo backend
// (POST /demo/login), connects to the chosen gateway process with the other
// one as failover, shows a chat room and the jobs the user started
// (POST /demo/jobs), and writes everything that arrives into an event log.
// Tab state (name, gateway, jobs) lives in sessionStorage, so a reload picks
// up where it was: job channels deliver their latest state on subscribe.
import { WsgwClient } from './wsgw-client.js';

const CHAT = 'chat:lobby';
const MAX_JOBS = 8;
const MAX_LOG = 400;
const STORE_KEY = 'wsgw-demo';

const $ = (id) => document.getElementById(id);

/** @type {WsgwClient|null} */
let client = null;
/** @type {{name: string, gateway: number, jobs: {id: string, channel: string, token: string}[]}|null} */
let session = null;
let token = null;          // the latest connection token, also sent to /demo/jobs
let gateways = [];         // [{name, url}] from the login answer
let countdown = null;      // interval of the "reconnecting in N s" text
let reconnected = false;   // the current connection replaced a lost one

// ------------------------------------------------------------ storage

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null');
  } catch {
    return null;
  }
}

function save() {
  if (session) sessionStorage.setItem(STORE_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(STORE_KEY);
}

// ------------------------------------------------------------ backend calls

async function postJson(path, body, headers = {}) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch { /* an empty or non-JSON answer: reported by status */ }
  if (!res.ok) {
    const err = new Error(data?.error || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

/** Signs in (again): a fresh connection token, also what getToken returns. */
async function login(name) {
  const r = await postJson('/demo/login', { name });
  token = r.token;
  gateways = r.gateways;
  return r;
}

// ------------------------------------------------------------ event log

function logEvent(kind, text, data = {}) {
  const li = document.createElement('li');
  li.dataset.kind = kind;
  for (const [k, v] of Object.entries(data)) if (v !== undefined) li.dataset[k] = String(v);
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  const log = $('log');
  log.append(li);
  while (log.children.length > MAX_LOG) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

// ------------------------------------------------------------ connection indicator

function gatewayName(url) {
  return gateways.find((g) => g.url === url)?.name ?? url;
}

function setConn(state, text, recovered) {
  const el = $('conn');
  el.dataset.state = state;
  if (recovered === undefined) delete el.dataset.recovered;
  else el.dataset.recovered = String(recovered);
  $('conn-text').textContent = text;
}

function onState(ev) {
  clearInterval(countdown);
  countdown = null;
  const where = ev.url ? ` ${gatewayName(ev.url)}` : '';
  if (ev.state === 'connecting') {
    setConn('connecting', `connecting to${where}…`);
  } else if (ev.state === 'connected') {
    setConn('connected', `connected to${where}`);
  } else if (ev.state === 'reconnecting') {
    reconnected = true;
    const until = Date.now() + ev.delayMs;
    const tick = () => {
      const s = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setConn('reconnecting', `reconnecting to${where} in ${s} s`);
    };
    tick();
    countdown = setInterval(tick, 250);
  } else {
    const why = ev.code === 4001 ? ': not authorized, sign in again' : '';
    setConn('closed', `disconnected${why}`);
  }
  const code = ev.code ? ` (close ${ev.code}${ev.reason ? ` ${ev.reason}` : ''})` : '';
  const delay = ev.state === 'reconnecting' ? ` in ${ev.delayMs} ms` : '';
  logEvent('state', `connection ${ev.state}${where}${delay}${code}`, { state: ev.state });
}

function onRecovered({ channel, recovered }) {
  logEvent('recovered', `${channel}: recovered ${recovered}`, { channel, recovered });
  if (!reconnected || client.state !== 'connected') return;
  const where = gatewayName(client.url);
  if (recovered) setConn('connected', `connected to ${where} · recovered, nothing missed`, true);
  else setConn('connected', `connected to ${where} · messages lost, state reloaded`, false);
}

// ------------------------------------------------------------ chat

function addChat(from, text, mine) {
  const li = document.createElement('li');
  if (mine) li.className = 'mine';
  li.dataset.from = from ?? '';
  const who = document.createElement('span');
  who.className = 'from';
  who.textContent = from ?? 'system';
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  li.append(who, body);
  $('chat').append(li);
  $('chat').scrollTop = $('chat').scrollHeight;
}

function chatNote(text) {
  const li = document.createElement('li');
  li.className = 'note';
  li.textContent = text;
  $('chat').append(li);
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $('chat-text');
  const text = input.value.trim();
  if (!text || !client) return;
  try {
    await client.publish(CHAT, { text });
    input.value = '';
  } catch (e) {
    logEvent('error', `chat not sent: ${e.code || ''} ${e.message}`);
  }
}

// ------------------------------------------------------------ jobs

function jobRow(id) {
  let li = document.querySelector(`.job[data-job="${CSS.escape(id)}"]`);
  if (li) return li;
  li = document.createElement('li');
  li.className = 'job';
  li.dataset.job = id;
  li.dataset.state = 'starting';
  li.innerHTML = '<div class="job-head"><span class="job-id"></span><span class="job-state"></span></div>'
    + '<progress max="100" value="0"></progress><div class="job-msg"></div>';
  li.querySelector('.job-id').textContent = `job ${id}`;
  li.querySelector('.job-state').textContent = 'starting';
  $('jobs').prepend(li);
  return li;
}

function showJob(li, data) {
  if (!data || typeof data !== 'object') return;
  if (typeof data.state === 'string') li.dataset.state = data.state;
  if (Number.isInteger(data.progress)) {
    li.dataset.progress = String(data.progress);
    li.querySelector('progress').value = data.progress;
  }
  const pct = li.dataset.progress !== undefined ? ` ${li.dataset.progress}%` : '';
  li.querySelector('.job-state').textContent = `${li.dataset.state}${pct}`;
  li.querySelector('.job-msg').textContent = typeof data.message === 'string' ? data.message : '';
}

/** Subscribes to a job's channel with its subscription token. */
function watchJob(job) {
  const li = jobRow(job.id);
  const sub = client.subscribe(job.channel, {
    token: job.token,
    onMessage: (data, msg) => {
      showJob(li, data);
      logEvent('message', `${msg.channel} #${msg.offset ?? '-'} ${data?.state ?? ''}`
        + `${Number.isInteger(data?.progress) ? ` ${data.progress}%` : ''}`,
      { channel: msg.channel, offset: msg.offset, state: data?.state, progress: data?.progress });
    },
    onRecovered: (ok) => {
      // Messages were lost: start over without `since` to get the latest state.
      if (!ok) {
        sub.unsubscribe();
        watchJob(job);
      }
    },
  });
  sub.ready.then((reply) => {
    logEvent('subscribed', `${job.channel} subscribed at offset ${reply.offset ?? '-'}`,
      { channel: job.channel, offset: reply.offset });
  }, (e) => {
    li.dataset.state = 'unavailable';
    li.querySelector('.job-state').textContent = 'unavailable';
    li.querySelector('.job-msg').textContent = e.message;
  });
}

async function startJob() {
  const button = $('start-job');
  button.disabled = true;
  try {
    let job;
    try {
      job = await postJson('/demo/jobs', {}, { Authorization: `Bearer ${token}` });
    } catch (e) {
      if (e.status !== 401) throw e;
      await login(session.name); // the token expired: sign in again and retry once
      job = await postJson('/demo/jobs', {}, { Authorization: `Bearer ${token}` });
    }
    session.jobs.push({ id: job.id, channel: job.channel, token: job.token });
    while (session.jobs.length > MAX_JOBS) {
      const old = session.jobs.shift();
      document.querySelector(`.job[data-job="${CSS.escape(old.id)}"]`)?.remove();
    }
    save();
    logEvent('job', `started ${job.channel}`, { channel: job.channel });
    watchJob(session.jobs.at(-1));
  } catch (e) {
    logEvent('error', `could not start a job: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------ sign in and out

async function start(name, gateway) {
  const first = await login(name);
  const primary = gateways[gateway] ?? gateways[0];
  const urls = [primary.url, ...gateways.filter((g) => g !== primary).map((g) => g.url)];
  session = { name, gateway, jobs: session?.name === name ? session.jobs : [] };
  save();

  $('who').textContent = name;
  $('gw-name').textContent = primary.name;
  $('gw-url').textContent = primary.url;
  $('login').hidden = true;
  $('app').hidden = false;

  let fresh = first.token; // the login's token serves the first connection
  client = new WsgwClient({
    urls,
    getToken: async () => {
      if (fresh) {
        const t = fresh;
        fresh = null;
        return t;
      }
      return (await login(name)).token;
    },
  });
  client.on('state', onState);
  client.on('recovered', onRecovered);
  client.on('error', (e) => logEvent('error', `${e.code || 'error'}: ${e.message}`, { code: e.code }));
  const chat = client.subscribe(CHAT, {
    onMessage: (data, msg) => {
      addChat(msg.from, typeof data?.text === 'string' ? data.text : JSON.stringify(data), msg.from === name);
      logEvent('message', `${msg.channel} #${msg.offset ?? '-'} from ${msg.from ?? 'backend'}`,
        { channel: msg.channel, offset: msg.offset, from: msg.from });
    },
    onRecovered: (ok) => { if (!ok) chatNote('some messages were missed while disconnected'); },
  });
  chat.ready.then((reply) => logEvent('subscribed', `${CHAT} subscribed at offset ${reply.offset ?? '-'}`,
    { channel: CHAT, offset: reply.offset }), (e) => logEvent('error', `${CHAT}: ${e.message}`));
  for (const job of session.jobs) watchJob(job);
  client.connect();
}

function signOut() {
  client?.close();
  client = null;
  session = null;
  save();
  location.reload();
}

async function onLogin(ev) {
  ev.preventDefault();
  const err = $('login-error');
  err.hidden = true;
  const name = $('name').value.trim();
  const gateway = Number(new FormData($('login-form')).get('gateway')) || 0;
  $('login-button').disabled = true;
  try {
    await start(name, gateway);
  } catch (e) {
    err.textContent = `Could not sign in: ${e.message}`;
    err.hidden = false;
  } finally {
    $('login-button').disabled = false;
  }
}

$('login-form').addEventListener('submit', onLogin);
$('chat-form').addEventListener('submit', sendChat);
$('start-job').addEventListener('click', startJob);
$('logout').addEventListener('click', signOut);

session = load();
if (session?.name) {
  start(session.name, session.gateway).catch((e) => {
    logEvent('error', `could not sign in again: ${e.message}`);
    session = null;
    save();
    $('login').hidden = false;
    $('app').hidden = true;
  });
}
