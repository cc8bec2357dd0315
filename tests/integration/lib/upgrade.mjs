// Upgrade attempts whose outcome is the point of the test (limits): the
// HTTP status of a refused upgrade, a connection closed before any answer,
// or an open socket; plus raw TCP connections that never finish a request,
// and the gateway's /metrics and memory as numbers.
import fs from 'node:fs';
import net from 'node:net';
import WebSocket from 'ws';
import { T } from './env.mjs';
import { httpGet } from './http.mjs';

/**
 * Tries a WebSocket upgrade. Resolves {status: 101, ws} when it opened,
 * {status: N} for an HTTP refusal, {status: 0, error} when the connection
 * was closed or reset before any HTTP answer. Never rejects. opts: headers,
 * localAddress (a 127.0.0.x source address), autoPong.
 */
export function tryUpgrade(url, { headers, localAddress, autoPong = true, timeout = T(5000) } = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, localAddress, autoPong, perMessageDeflate: false, handshakeTimeout: timeout });
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      resolve(r);
    };
    ws.once('open', () => finish({ status: 101, ws }));
    ws.once('unexpected-response', (req, res) => {
      finish({ status: res.statusCode });
      req.destroy();
    });
    ws.on('error', (error) => finish({ status: 0, error }));
  });
}

/**
 * A raw TCP connection that sends `send` (nothing by default) and then
 * waits. Resolves {socket, closed} once connected; `closed` resolves with
 * the time (Date.now()) the gateway closed the connection.
 */
export function rawConnect(port, send = '') {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const closed = new Promise((res) => socket.once('close', () => res(Date.now())));
    socket.on('error', () => {}); // a reset is a close, which tests assert
    socket.once('connect', () => {
      if (send) socket.write(send);
      resolve({ socket, closed, openedAt: Date.now() });
    });
    socket.once('error', reject);
  });
}

/** The gateway's /metrics as {name: number} (samples without labels). */
export async function metrics(gw) {
  const r = await httpGet(gw.port, '/metrics');
  if (r.status !== 200) throw new Error(`GET /metrics: ${r.status}`);
  const out = {};
  for (const line of r.body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** Resident memory of a process in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}
