// Dead peers: the gateway pings a connection that has been silent for
// --ping-interval-seconds and drops it when it has stayed silent (no PONG,
// no data) for --ping-timeout-seconds, without a close frame since nobody
// is listening. A client that answers pings stays however long it idles.
// (App-level {"type":"ping"} replies are in commands.test.mjs.)
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Scope, WsClient, uniq, T, tryUpgrade } from './lib/index.mjs';

describe('WebSocket keepalive (--ping-interval-seconds 1 --ping-timeout-seconds 3)', () => {
  const s = new Scope('keepalive');
  let gw;
  before(async () => {
    gw = await s.gateway({ name: 'keepalive', args: ['--ping-interval-seconds', '1', '--ping-timeout-seconds', '3'] });
  });
  after(() => s.close());

  async function client(autoPong) {
    const up = await tryUpgrade(gw.url, { autoPong });
    assert.equal(up.status, 101);
    const c = new WsClient(up.ws, autoPong ? 'answers' : 'deaf');
    s.clients.push(c);
    c.pings = 0;
    up.ws.on('ping', () => { c.pings += 1; });
    await c.auth(s.token({ sub: uniq('u') }));
    c.authedAt = Date.now();
    return c;
  }

  test('a peer that never answers pings is dropped within the timeout; one that answers is kept', async () => {
    const [deaf, answers] = await Promise.all([client(false), client(true)]);
    const info = await deaf.expectClose(undefined, T(8000));
    const after = info.at - deaf.authedAt;
    assert.equal(info.code, 1006, 'dropped without a close frame');
    // Silent from its auth message on: dropped at 3 s, on the 1 s tick.
    assert.ok(after >= 2900 && after <= T(5000), `dropped ${after} ms after its last message`);
    assert.ok(deaf.pings >= 1, 'it was pinged first');
    const log = gw.logRecords().filter((r) => r.event === 'peer_timeout');
    assert.equal(log.length, 1);

    await sleep(Math.max(0, answers.authedAt + 5000 - Date.now()));
    answers.assertOpen();
    assert.ok(answers.pings >= 2, `pinged ${answers.pings} times while idle`);
    await answers.ping();
  });
});
