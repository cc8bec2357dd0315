// First-message authentication as a browser sees it: auth_ok for a good
// token, the documented close code for everything else (4001 bad token, 4002
// auth timeout, 1008 protocol violation, 1003 binary, 1009 too big), a gateway
// that refuses a weak secret, `wsgw token` output, RSA/EC keys and key ids.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  Scope, runWsgw, freePort, T, uniq,
  signJwt, claims, hsToken, tokenOfLength, decodeJwt, verifyJwt, now, b64url,
  rsaKeyPair, ecKeyPair, randomSecret, sanitizerReport,
} from './lib/index.mjs';

const s = new Scope('auth');
const ISS = 'https://issuer.wsgw.test';
const AUD = 'wsgw-tests';
const rsa1 = rsaKeyPair();
const rsa2 = rsaKeyPair();
const ec1 = ecKeyPair();
let gw; // HMAC secret, defaults
let gwIss; // HMAC secret, --jwt-issuer/--jwt-audience
let gwTimeout; // --auth-timeout-ms 300
let gwSmall; // --max-message-bytes 1024
let gwRsa; // one RSA public key, no HMAC secret
let gwKeys; // several public keys picked by kid, no HMAC secret

before(async () => {
  const rsa1File = s.file('rsa1.pub.pem', rsa1.publicKey);
  const rsa2File = s.file('rsa2.pub.pem', rsa2.publicKey);
  const ecFile = s.file('ec1.pub.pem', ec1.publicKey);
  [gw, gwIss, gwTimeout, gwSmall, gwRsa, gwKeys] = await Promise.all([
    s.gateway({ name: 'auth-default' }),
    s.gateway({ name: 'auth-issaud', args: ['--jwt-issuer', ISS, '--jwt-audience', AUD] }),
    s.gateway({ name: 'auth-timeout', args: ['--auth-timeout-ms', '300'] }),
    s.gateway({ name: 'auth-small', args: ['--max-message-bytes', '1024'] }),
    s.gateway({ name: 'auth-rsa', secretFile: null, args: ['--jwt-public-key', rsa1File] }),
    s.gateway({
      name: 'auth-kids',
      secretFile: null,
      args: ['--jwt-public-key', `rsa1=${rsa1File}`, '--jwt-public-key', `rsa2=${rsa2File}`,
        '--jwt-public-key', `ec1=${ecFile}`],
    }),
  ]);
});

after(() => s.close());

/** Connects, sends auth with `token`, expects close 4001 and no auth_ok. */
async function expectUnauthorized(target, token, reason) {
  const c = await s.connect(target, 'unauthorized');
  c.send({ type: 'auth', token });
  const info = await c.expectClose(4001);
  assert.equal(c.received.find((m) => m.type === 'auth_ok'), undefined, 'auth_ok sent for a refused token');
  assert.ok(info.reason.length > 0, 'close 4001 should carry a reason');
  if (reason) assert.match(info.reason, reason, `close reason ${JSON.stringify(info.reason)}`);
  return info;
}

/** Connects, sends a raw first frame, expects close `code` with nothing received before it. */
async function expectCloseAfterFirstFrame(target, frame, code, { binary = false } = {}) {
  const c = await s.connect(target, 'first-frame');
  c.sendRaw(frame, { binary });
  const info = await c.expectClose(code);
  assert.deepEqual(c.received, [], `nothing should be sent before the close, got ${JSON.stringify(c.received)}`);
  return info;
}

describe('successful authentication', () => {
  test('auth_ok carries user, a connection id and the token exp', async () => {
    const sub = uniq('alice');
    const tok = s.token({ sub, ttl: 600, channels: ['chat:*'], publish: ['chat:*'] });
    const c = await s.connect(gw);
    const ok = await c.auth(tok);
    assert.equal(ok.type, 'auth_ok');
    assert.equal(ok.user, sub);
    assert.equal(typeof ok.conn, 'string');
    assert.ok(ok.conn.length > 0, 'conn must be non-empty');
    assert.equal(ok.exp, decodeJwt(tok).payload.exp);
    await c.ping();
    c.assertOpen();
  });

  test('two connections of the same user get different connection ids', async () => {
    const tok = s.token({ sub: uniq('alice') });
    const a = await s.user(gw, tok);
    const b = await s.user(gw, tok);
    assert.notEqual(a.authOk.conn, b.authOk.conn);
  });

  for (const alg of ['HS384', 'HS512']) {
    test(`an ${alg} token signed with the secret is accepted`, async () => {
      const sub = uniq('alice');
      const c = await s.user(gw, s.token({ sub }, { alg }));
      assert.equal(c.user, sub);
    });
  }

  test('a sub of 128 characters of [A-Za-z0-9_.@-] is accepted', async () => {
    const sub = `${'a'.repeat(60)}_.@-${'Z9'.repeat(32)}`;
    assert.equal(sub.length, 128);
    const c = await s.user(gw, s.token({ sub }));
    assert.equal(c.user, sub);
  });

  test('extra claims and a 2 KiB token are accepted', async () => {
    const sub = uniq('alice');
    const c = await s.user(gw, s.token({ sub, name: 'Alice', roles: ['x'], channels: [], publish: [] }));
    assert.equal(c.user, sub);
    const long = tokenOfLength(s.secret, 2048, { sub });
    const d = await s.user(gw, long);
    assert.equal(d.user, sub);
  });

  test('nbf and iat a few seconds ahead (clock skew within the leeway) are accepted', async () => {
    const sub = uniq('alice');
    const c = await s.user(gw, s.token({ sub, nbf: now() + 10, iat: now() + 10 }));
    assert.equal(c.user, sub);
  });
});

describe('refused tokens close with 4001', () => {
  const other = randomSecret(48);
  const cases = [
    ['expired (exp two minutes ago)', () => s.token({ exp: now() - 120 }), /expired/i],
    ['missing exp', () => s.token({ exp: undefined })],
    ['exp not a number', () => s.token({ exp: String(now() + 3600) })],
    ['nbf in the future', () => s.token({ nbf: now() + 600 }), /not yet valid|nbf/i],
    ['iat in the future', () => s.token({ iat: now() + 600 })],
    ['signed with another secret', () => hsToken(other, { sub: 'alice' })],
    ['payload changed after signing', () => {
      const [h, , sig] = s.token({ sub: 'alice' }).split('.');
      return `${h}.${b64url(claims({ sub: 'admin' }))}.${sig}`;
    }],
    ['alg none, no signature', () => signJwt(claims({ sub: 'alice' }), null, { alg: 'none' })],
    ['alg None with a valid HS256 signature part', () => {
      const good = s.token({ sub: 'alice' });
      const p = good.split('.')[1];
      return `${b64url({ alg: 'None', typ: 'JWT' })}.${p}.${good.split('.')[2]}`;
    }],
    ['no alg in the header', () => signJwt(claims(), s.secret, { header: { typ: 'JWT' }, alg: 'HS256' })],
    ['RS256 token to a gateway with only an HMAC secret', () => signJwt(claims(), rsa1.privateKey, { alg: 'RS256' })],
    ['sub with a space', () => s.token({ sub: 'bad sub' })],
    ['sub with a slash', () => s.token({ sub: 'a/b' })],
    ['sub with non-ASCII letters', () => s.token({ sub: 'jürgen' })],
    ['empty sub', () => s.token({ sub: '' })],
    ['sub of 129 characters', () => s.token({ sub: 'a'.repeat(129) })],
    ['sub missing', () => s.token({ sub: undefined })],
    ['sub a number', () => s.token({ sub: 42 })],
    ['channels a string, not an array', () => s.token({ channels: 'chat:*' })],
    ['channels an object', () => s.token({ channels: { 'chat:*': true } })],
    ['channels with a number inside', () => s.token({ channels: [42] })],
    ['publish a string, not an array', () => s.token({ publish: 'chat:*' })],
    ['token of 8 KiB + 1 characters, validly signed', () => tokenOfLength(s.secret, 8193), /long|large|size/i],
    ['truncated token', () => s.token().slice(0, -5)],
    ['signature part removed', () => s.token().split('.').slice(0, 2).join('.') + '.'],
    ['two parts only', () => s.token().split('.').slice(0, 2).join('.')],
    ['four parts', () => `${s.token()}.x`],
    ['garbage', () => 'garbage'],
    ['empty string', () => ''],
    ['invalid base64url characters', () => '!!!.@@@.###'],
    ['payload not JSON, validly signed', () => {
      const h = b64url({ alg: 'HS256', typ: 'JWT' });
      const p = b64url('hello');
      const sig = crypto.createHmac('sha256', s.secret).update(`${h}.${p}`).digest('base64url');
      return `${h}.${p}.${sig}`;
    }],
    ['payload a JSON array, validly signed', () => signJwt('[1,2]', s.secret, { alg: 'HS256' })],
  ];
  for (const [name, make, reason] of cases) {
    test(name, async () => {
      await expectUnauthorized(gw, make(), reason);
    });
  }
});

describe('issuer and audience when configured', () => {
  test('matching iss and aud are accepted', async () => {
    const c = await s.user(gwIss, s.token({ sub: uniq('alice'), iss: ISS, aud: AUD }));
    await c.ping();
  });
  test('wrong issuer → 4001', () => expectUnauthorized(gwIss, s.token({ iss: 'https://evil.test', aud: AUD }), /iss/i));
  test('missing issuer → 4001', () => expectUnauthorized(gwIss, s.token({ aud: AUD })));
  test('wrong audience → 4001', () => expectUnauthorized(gwIss, s.token({ iss: ISS, aud: 'other' }), /aud/i));
  test('missing audience → 4001', () => expectUnauthorized(gwIss, s.token({ iss: ISS })));
});

describe('the auth phase', () => {
  test('no first frame within --auth-timeout-ms → 4002 "auth timeout"', async () => {
    const t0 = Date.now();
    const c = await s.connect(gwTimeout);
    const info = await c.expectClose(4002, T(5000));
    const elapsed = Date.now() - t0;
    assert.match(info.reason, /auth timeout/);
    assert.ok(elapsed >= 250, `closed after ${elapsed} ms, before the 300 ms timeout`);
    assert.deepEqual(c.received, []);
  });

  test('a connection that authenticated in time outlives the auth timeout', async () => {
    const c = await s.user(gwTimeout, s.token({ sub: uniq('alice') }));
    await c.expectNoMessage(700); // well past 300 ms
    c.assertOpen();
    await c.ping();
  });

  const violations = [
    ['a first frame that is not JSON', 'hello'],
    ['a first frame of truncated JSON', '{"type":"auth","token":'],
    ['a first frame that is a JSON array', '[]'],
    ['a first frame without type', '{"token":"x"}'],
    ['a ping as first frame (no pong before auth)', '{"type":"ping","id":1}'],
    ['a subscribe as first frame (no reply before auth)', '{"type":"subscribe","id":1,"channel":"user:alice"}'],
  ];
  for (const [name, frame] of violations) {
    test(`${name} → 1008`, () => expectCloseAfterFirstFrame(gw, frame, 1008));
  }

  test('subscribe pipelined before a valid auth → 1008, neither auth_ok nor subscribed', async () => {
    const sub = uniq('alice');
    const c = await s.connect(gw);
    c.send({ type: 'subscribe', id: 1, channel: `user:${sub}` });
    c.send({ type: 'auth', token: s.token({ sub }) });
    await c.expectClose(1008);
    assert.deepEqual(c.received, []);
  });

  test('a binary frame before auth → 1003, even one holding a valid auth', async () => {
    await expectCloseAfterFirstFrame(gw, Buffer.from([0, 1, 2, 3]), 1003, { binary: true });
    const auth = Buffer.from(JSON.stringify({ type: 'auth', token: s.token() }));
    await expectCloseAfterFirstFrame(gw, auth, 1003, { binary: true });
  });

  test('a binary frame after auth → 1003', async () => {
    const c = await s.user(gw, s.token({ sub: uniq('alice') }));
    c.sendRaw(Buffer.from(JSON.stringify({ type: 'ping', id: 9 })), { binary: true });
    await c.expectClose(1003);
    assert.equal(c.received.find((m) => m.type === 'pong'), undefined);
  });

  test('a message over the default 64 KiB limit → 1009, before and after auth', async () => {
    const big = JSON.stringify({ type: 'auth', token: 'x'.repeat(70 * 1024) });
    await expectCloseAfterFirstFrame(gw, big, 1009);
    const c = await s.user(gw, s.token({ sub: uniq('alice'), publish: ['chat:*'] }));
    c.send({ type: 'publish', id: 1, channel: 'chat:big', data: 'x'.repeat(70 * 1024) });
    await c.expectClose(1009);
  });

  test('--max-message-bytes 1024: a 1024-byte message is served, 1025 bytes → 1009', async () => {
    const c = await s.user(gwSmall, s.token({ sub: uniq('alice'), publish: ['chat:*'] }));
    const frame = (n, id) => {
      const base = JSON.stringify({ type: 'publish', id, channel: 'chat:big', data: '' });
      return JSON.stringify({ type: 'publish', id, channel: 'chat:big', data: 'x'.repeat(n - base.length) });
    };
    const ok = frame(1024, 1);
    assert.equal(Buffer.byteLength(ok), 1024);
    c.sendRaw(ok);
    const r = await c.nextMessage({ id: 1 });
    assert.equal(r.type, 'published', JSON.stringify(r));
    const over = frame(1025, 2);
    assert.equal(Buffer.byteLength(over), 1025);
    c.sendRaw(over);
    await c.expectClose(1009);
    assert.equal(c.received.find((m) => m.id === 2), undefined);
  });
});

describe('HMAC secret strength at start', () => {
  test('a 31-byte secret: the gateway exits non-zero at start and says why on stderr', async () => {
    const weak = s.file('weak-secret', randomSecret(31));
    const port = await freePort();
    const r = await runWsgw(['--listen', `127.0.0.1:${port}`, '--jwt-secret-file', weak]);
    assert.equal(r.timedOut, false, 'gateway kept running with a weak secret');
    assert.notEqual(r.code, 0, `exit code ${r.code}`);
    assert.match(r.stderr, /secret/i);
    assert.equal(sanitizerReport(r.stderr), null, r.stderr);
  });

  test('a missing secret file: the gateway exits non-zero at start', async () => {
    const port = await freePort();
    const r = await runWsgw(['--listen', `127.0.0.1:${port}`, '--jwt-secret-file', `${s.dir}/does-not-exist`]);
    assert.equal(r.timedOut, false, 'gateway kept running without its secret');
    assert.notEqual(r.code, 0);
    assert.equal(sanitizerReport(r.stderr), null, r.stderr);
  });

  test('a secret of exactly 32 bytes is enough', async () => {
    const secret = randomSecret(32);
    const g = await s.gateway({ name: 'auth-32', secretFile: s.file('secret-32', secret) });
    const sub = uniq('alice');
    const c = await s.user(g, hsToken(secret, { sub }));
    assert.equal(c.user, sub);
    await c.close();
    await g.stop();
  });
});

describe('wsgw token', () => {
  test('prints one HS256 token that verifies and carries the requested claims', async () => {
    const t0 = now();
    const tok = await s.cliToken(['--sub', 'alice', '--channels', 'chat:*,job:42', '--publish', 'chat:*', '--ttl', '600']);
    assert.match(tok, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const { header, payload } = verifyJwt(tok, s.secret, { algorithms: ['HS256'] });
    assert.equal(header.alg, 'HS256');
    assert.equal(payload.sub, 'alice');
    assert.deepEqual(payload.channels, ['chat:*', 'job:42']);
    assert.deepEqual(payload.publish, ['chat:*']);
    assert.ok(payload.exp >= t0 + 600 - 2 && payload.exp <= now() + 600 + 2, `exp ${payload.exp}`);
  });

  test('its token is accepted by the gateway, auth_ok exp equal to the token exp', async () => {
    const sub = uniq('alice');
    const tok = await s.cliToken(['--sub', sub, '--ttl', '300']);
    const c = await s.user(gw, tok);
    assert.equal(c.user, sub);
    assert.equal(c.authOk.exp, decodeJwt(tok).payload.exp);
  });

  test('--iss and --aud: accepted by a gateway configured with them', async () => {
    const sub = uniq('alice');
    const tok = await s.cliToken(['--sub', sub, '--iss', ISS, '--aud', AUD]);
    const { payload } = decodeJwt(tok);
    assert.equal(payload.iss, ISS);
    assert.equal(payload.aud, AUD);
    const c = await s.user(gwIss, tok);
    assert.equal(c.user, sub);
  });

  test('--kid sets the header kid; --channel makes a subscription token', async () => {
    const tok = await s.cliToken(['--sub', 'alice', '--kid', 'k7', '--channel', 'job:42']);
    const { header, payload } = verifyJwt(tok, s.secret);
    assert.equal(header.kid, 'k7');
    assert.equal(payload.sub, 'alice');
    assert.equal(payload.channel, 'job:42');
    assert.ok(payload.exp > now());
  });
});

describe('public keys (--jwt-public-key)', () => {
  for (const alg of ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']) {
    test(`${alg} signed with the configured RSA key is accepted`, async () => {
      const sub = uniq('alice');
      const tok = signJwt(claims({ sub }), rsa1.privateKey, { alg });
      const c = await s.user(gwRsa, tok);
      assert.equal(c.user, sub);
      assert.equal(c.authOk.exp, decodeJwt(tok).payload.exp);
    });
  }

  test('HS256 signed with the PEM text as HMAC secret is refused (algorithm confusion)', async () => {
    await expectUnauthorized(gwRsa, signJwt(claims(), rsa1.publicKey, { alg: 'HS256' }));
    await expectUnauthorized(gwRsa, signJwt(claims(), rsa1.publicKey.trim(), { alg: 'HS256' }));
  });

  test('RS256 signed with another RSA key is refused', () => expectUnauthorized(gwRsa, signJwt(claims(), rsa2.privateKey, { alg: 'RS256' })));
  test('PS256 signed with another RSA key is refused', () => expectUnauthorized(gwRsa, signJwt(claims(), rsa2.privateKey, { alg: 'PS256' }), /invalid signature/));
  test('PS256 under the kid of the EC key is refused', () => expectUnauthorized(gwKeys, signJwt(claims(), rsa1.privateKey, { alg: 'PS256', kid: 'ec1' }), /algorithm not allowed/));
  test('ES256 to a gateway with an RSA key is refused', () => expectUnauthorized(gwRsa, signJwt(claims(), ec1.privateKey, { alg: 'ES256' })));
  test('alg none is refused', () => expectUnauthorized(gwRsa, signJwt(claims(), null, { alg: 'none' })));
  test('expired RS256 is refused', () => expectUnauthorized(gwRsa, signJwt(claims({ exp: now() - 120 }), rsa1.privateKey, { alg: 'RS256' }), /expired/i));

  test('key rotation: each kid picks its key (two RSA keys and an EC key)', async () => {
    for (const [kid, key, alg] of [['rsa1', rsa1.privateKey, 'RS256'], ['rsa2', rsa2.privateKey, 'RS256'], ['ec1', ec1.privateKey, 'ES256']]) {
      const sub = uniq(kid);
      const c = await s.user(gwKeys, signJwt(claims({ sub }), key, { alg, kid }));
      assert.equal(c.user, sub, kid);
    }
  });

  test('an unknown kid is refused', () => expectUnauthorized(gwKeys, signJwt(claims(), rsa1.privateKey, { alg: 'RS256', kid: 'nope' }), /key|kid/i));
  test('a kid naming another key than the signer is refused', () => expectUnauthorized(gwKeys, signJwt(claims(), rsa2.privateKey, { alg: 'RS256', kid: 'rsa1' })));
  test('an RSA algorithm under the kid of the EC key is refused', () => expectUnauthorized(gwKeys, signJwt(claims(), rsa1.privateKey, { alg: 'RS256', kid: 'ec1' })));
  test('HS256 with the EC PEM as secret under its kid is refused', () => expectUnauthorized(gwKeys, signJwt(claims(), ec1.publicKey, { alg: 'HS256', kid: 'ec1' })));
});

