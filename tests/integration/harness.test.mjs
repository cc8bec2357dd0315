// Self-test of the harness itself, needing no gateway: JWT minting checked
// against an RFC 7515 vector and node:crypto verification, the RESP client
// and redis-server lifecycle (including SIGKILL and restart on the same port),
// and the WebSocket client helpers against a local ws server.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { WebSocketServer } from 'ws';
import {
  signJwt, hsToken, tokenOfLength, decodeJwt, verifyJwt, claims, now, b64url,
  rsaKeyPair, ecKeyPair, randomSecret,
  RedisServer, redisCli, parseResp, encodeCommand,
  WsClient, sanitizerReport, waitFor, freePort,
} from './lib/index.mjs';

describe('JWT minting', () => {
  test('HS256 matches the RFC 7515 appendix A.1 example byte for byte', () => {
    const key = Buffer.from('AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow', 'base64url');
    const header = '{"typ":"JWT",\r\n "alg":"HS256"}';
    const payload = '{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}';
    const tok = signJwt(payload, key, { header, alg: 'HS256' });
    assert.equal(tok,
      'eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9' +
      '.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ' +
      '.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk');
  });

  test('HS256/384/512 tokens verify with node:crypto HMAC and not with another key', () => {
    const secret = randomSecret(48);
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const tok = hsToken(secret, { sub: 'alice', channels: ['chat:*'] }, { alg });
      const [h, p, s] = tok.split('.');
      const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
      const mac = crypto.createHmac(hash, secret).update(`${h}.${p}`).digest('base64url');
      assert.equal(s, mac);
      const { header, payload } = verifyJwt(tok, secret, { algorithms: [alg] });
      assert.equal(header.alg, alg);
      assert.equal(payload.sub, 'alice');
      assert.deepEqual(payload.channels, ['chat:*']);
      assert.ok(payload.exp > now() + 3500 && payload.exp <= now() + 3600);
      assert.throws(() => verifyJwt(tok, `${secret}x`, { algorithms: [alg] }), /bad signature/);
    }
  });

  test('RS256, PS256 and ES256 tokens verify with crypto.verify and the public key', () => {
    const rsa = rsaKeyPair();
    const ec = ecKeyPair();
    for (const [alg, pair] of [['RS256', rsa], ['PS256', rsa], ['ES256', ec]]) {
      const tok = signJwt(claims({ sub: 'bob' }), pair.privateKey, { alg, kid: 'k1' });
      const [h, p, s] = tok.split('.');
      const opts = alg === 'ES256' ? { key: pair.publicKey, dsaEncoding: 'ieee-p1363' }
        : alg === 'PS256' ? { key: pair.publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
          : pair.publicKey;
      assert.ok(crypto.verify('sha256', Buffer.from(`${h}.${p}`), opts, Buffer.from(s, 'base64url')), alg);
      assert.equal(decodeJwt(tok).header.kid, 'k1');
      assert.equal(verifyJwt(tok, pair.publicKey, { algorithms: [alg] }).payload.sub, 'bob');
    }
  });

  test('alg none has an empty signature; bad-claim tokens are still validly signed', () => {
    const tok = signJwt(claims(), null, { alg: 'none' });
    assert.match(tok, /^[\w-]+\.[\w-]+\.$/);
    assert.equal(decodeJwt(tok).header.alg, 'none');
    const secret = randomSecret();
    const t2 = hsToken(secret, { sub: 'bad sub!', channels: 'chat:*', exp: undefined });
    const { payload } = verifyJwt(t2, secret);
    assert.equal(payload.sub, 'bad sub!');
    assert.equal(payload.channels, 'chat:*');
    assert.equal('exp' in payload, false);
  });

  test('tokenOfLength gives exact lengths, 8 KiB + 1 included, and valid signatures', () => {
    const secret = randomSecret();
    for (const n of [600, 601, 602, 603, 2048, 8192, 8193]) {
      const tok = tokenOfLength(secret, n, { sub: 'alice' });
      assert.equal(tok.length, n);
      assert.equal(verifyJwt(tok, secret).payload.sub, 'alice');
    }
  });

  test('b64url has no padding and url-safe characters', () => {
    assert.equal(b64url(Buffer.from([0xfb, 0xff])), '-_8');
  });
});

describe('RESP', () => {
  test('encodes commands and parses every reply type, partial input included', () => {
    assert.equal(encodeCommand(['SET', 'k', 'é']).toString(), '*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n');
    const buf = Buffer.from('*3\r\n$7\r\nmessage\r\n:12\r\n+OK\r\n');
    assert.deepEqual(parseResp(buf)[0], ['message', 12, 'OK']);
    assert.equal(parseResp(buf.subarray(0, buf.length - 1)), null);
    assert.equal(parseResp(Buffer.from('$-1\r\n'))[0], null);
    assert.match(parseResp(Buffer.from('-ERR x\r\n'))[0].message, /ERR x/);
  });
});

describe('redis-server lifecycle', () => {
  const redis = new RedisServer({ name: 'harness-redis' });
  after(() => redis.stop());

  test('starts on a free port, answers PING, publishes to a subscriber, lists channels', async () => {
    await redis.start();
    assert.equal(await redis.command('PING'), 'PONG');
    const sub = await redis.subscriber('wsgw:job:42');
    try {
      assert.deepEqual(await redis.channels('wsgw:*'), ['wsgw:job:42']);
      assert.equal(await redis.numsub('wsgw:job:42'), 1);
      assert.equal(await redisCli(redis.port, 'PUBLISH', 'wsgw:job:42', '{"data":{"progress":40}}'), '1');
      const m = await sub.nextPush((x) => x.channel === 'wsgw:job:42', 2000);
      assert.deepEqual(JSON.parse(m.payload), { data: { progress: 40 } });
    } finally {
      sub.close();
    }
    await waitFor(async () => (await redis.channels('wsgw:*')).length === 0, { timeout: 2000, what: 'channel gone' });
  });

  test('SIGKILL and restart on the same port', async () => {
    const port = redis.port;
    await redis.kill();
    assert.equal(redis.running, false);
    await assert.rejects(redis.command('PING'));
    await redis.start();
    assert.equal(redis.port, port);
    assert.equal(await redis.command('PING'), 'PONG');
  });
});

describe('WebSocket client helpers', () => {
  let wss;
  let url;
  after(() => new Promise((r) => wss.close(r)));

  test('nextMessage, expectNoMessage, request, expectClose', async () => {
    const port = await freePort();
    wss = new WebSocketServer({ host: '127.0.0.1', port, path: '/ws' });
    await new Promise((r) => wss.once('listening', r));
    url = `ws://127.0.0.1:${port}/ws`;
    wss.on('connection', (ws) => {
      ws.on('message', (data, binary) => {
        if (binary) return ws.close(1003, 'binary');
        const m = JSON.parse(data.toString());
        if (m.type === 'ping') ws.send(JSON.stringify({ type: 'pong', id: m.id }));
        if (m.type === 'two') {
          ws.send(JSON.stringify({ type: 'message', channel: 'a', data: 1 }));
          ws.send(JSON.stringify({ type: 'message', channel: 'b', data: 2 }));
        }
        if (m.type === 'bye') ws.close(4001, 'token expired');
      });
    });
    const c = await WsClient.connect(url, { name: 'h' });
    assert.equal((await c.ping()).type, 'pong');
    c.send({ type: 'two' });
    assert.equal((await c.nextOn('b')).data, 2);
    await assert.rejects(c.expectNoMessage(100)); // 'a' is still queued
    assert.equal((await c.nextMessage({ channel: 'a' })).data, 1);
    await c.expectNoMessage(100);
    await assert.rejects(c.nextMessage({ type: 'never' }, 100), /timed out/);
    c.send({ type: 'bye' });
    const info = await c.expectClose(4001);
    assert.match(info.reason, /expired/);
    await assert.rejects(c.nextMessage(null, 100), /closed \(4001/);

    const d = await WsClient.connect(url);
    d.sendRaw(Buffer.from([1, 2, 3]), { binary: true });
    assert.equal((await d.expectClose(1003)).code, 1003);
  });
});

test('sanitizerReport finds ASan, LSan and UBSan reports only', () => {
  assert.equal(sanitizerReport('{"level":"info","msg":"listening"}\n'), null);
  assert.match(sanitizerReport('x\n==1==ERROR: AddressSanitizer: heap-use-after-free\n'), /AddressSanitizer/);
  assert.match(sanitizerReport('==1==ERROR: LeakSanitizer: detected memory leaks'), /LeakSanitizer/);
  assert.match(sanitizerReport('a.c:3:5: runtime error: signed integer overflow'), /runtime error/);
});
