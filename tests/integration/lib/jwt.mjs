// JWT minting in JavaScript with node:crypto, so tests can craft both good
// tokens and every kind of bad one (alg none, wrong key, expired, nbf in the
// future, bad claims, oversized, truncated) byte for byte.
import crypto from 'node:crypto';

export const now = () => Math.floor(Date.now() / 1000);

/** base64url without padding of a Buffer, a string (UTF-8) or a JSON value. */
export function b64url(input) {
  let buf;
  if (Buffer.isBuffer(input)) buf = input;
  else if (typeof input === 'string') buf = Buffer.from(input, 'utf8');
  else buf = Buffer.from(JSON.stringify(input), 'utf8');
  return buf.toString('base64url');
}

export function b64urlDecode(s) {
  return Buffer.from(s, 'base64url');
}

const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

function algParts(alg) {
  const m = /^(HS|RS|PS|ES)(256|384|512)$/.exec(alg);
  if (!m) throw new Error(`unsupported alg ${alg}`);
  return { family: m[1], hash: HASH[m[2]] };
}

/** Signs `signingInput` (header.payload) for `alg` with `key`; returns base64url. */
export function signInput(alg, signingInput, key) {
  if (alg === 'none') return '';
  const { family, hash } = algParts(alg);
  const data = Buffer.from(signingInput, 'ascii');
  switch (family) {
    case 'HS':
      return crypto.createHmac(hash, key).update(data).digest('base64url');
    case 'RS':
      return crypto.sign(hash, data, key).toString('base64url');
    case 'PS':
      return crypto
        .sign(hash, data, {
          key,
          padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
          saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST,
        })
        .toString('base64url');
    case 'ES':
      return crypto.sign(hash, data, { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    default:
      throw new Error(`unsupported alg ${alg}`);
  }
}

/**
 * Encodes and signs a JWT. `header` defaults to {alg, typ:"JWT"}; a string
 * header or payload is used verbatim (for malformed JSON cases).
 */
export function signJwt(payload, key, { alg = 'HS256', header, kid } = {}) {
  const h = header ?? { alg, typ: 'JWT', ...(kid !== undefined ? { kid } : {}) };
  const hAlg = (typeof h === 'object' && h.alg) || alg;
  const input = `${b64url(h)}.${b64url(payload)}`;
  return `${input}.${signInput(hAlg, input, key)}`;
}

/**
 * Claims of a normal connection token: sub, iat now, exp now+ttl, plus extra.
 * Pass a claim as undefined to leave it out.
 */
export function claims(opts = {}) {
  const { ttl = 3600, ...extra } = opts;
  const t = now();
  const c = { sub: 'alice', iat: t, exp: t + ttl, ...extra };
  for (const k of Object.keys(c)) if (c[k] === undefined) delete c[k];
  return c;
}

/** An HS256 token for `secret` with claims(opts). */
export function hsToken(secret, opts = {}, signOpts = {}) {
  return signJwt(claims(opts), secret, { alg: 'HS256', ...signOpts });
}

/**
 * A validly signed HS256 token whose total length is exactly `length`
 * characters, made by padding a claim. Header whitespace is varied too
 * because a base64url segment can never be 4k+1 characters long.
 */
export function tokenOfLength(secret, length, opts = {}) {
  const base = claims(opts);
  for (let spaces = 0; spaces < 4; spaces++) {
    const header = `{"alg":"HS256",${' '.repeat(spaces)}"typ":"JWT"}`;
    const fixed = signJwt({ ...base, pad: '' }, secret, { header, alg: 'HS256' }).length;
    const est = Math.max(0, Math.floor(((length - fixed) * 3) / 4) - 4);
    for (let n = est; n < est + 12; n++) {
      const tok = signJwt({ ...base, pad: 'x'.repeat(n) }, secret, { header, alg: 'HS256' });
      if (tok.length === length) return tok;
      if (tok.length > length) break;
    }
  }
  throw new Error(`could not build a token of exactly ${length} characters`);
}

/** Splits a JWT without checking anything. */
export function decodeJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a JWT (need 3 parts)');
  return {
    header: JSON.parse(b64urlDecode(parts[0]).toString('utf8')),
    payload: JSON.parse(b64urlDecode(parts[1]).toString('utf8')),
    signature: parts[2],
  };
}

/**
 * Verifies a token independently of signJwt (node:crypto verify / HMAC
 * compare); returns {header, payload} or throws. Used by the harness self-test
 * and to check `wsgw token` output.
 */
export function verifyJwt(token, key, { algorithms = ['HS256'] } = {}) {
  const [h, p, s] = token.split('.');
  if (s === undefined) throw new Error('not a JWT');
  const { header, payload } = decodeJwt(token);
  if (!algorithms.includes(header.alg)) throw new Error(`alg ${header.alg} not allowed`);
  const input = Buffer.from(`${h}.${p}`, 'ascii');
  const sig = b64urlDecode(s);
  const { family, hash } = algParts(header.alg);
  let ok;
  if (family === 'HS') {
    const mac = crypto.createHmac(hash, key).update(input).digest();
    ok = mac.length === sig.length && crypto.timingSafeEqual(mac, sig);
  } else if (family === 'RS') {
    ok = crypto.verify(hash, input, key, sig);
  } else if (family === 'PS') {
    ok = crypto.verify(hash, input, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }, sig);
  } else {
    ok = crypto.verify(hash, input, { key, dsaEncoding: 'ieee-p1363' }, sig);
  }
  if (!ok) throw new Error('bad signature');
  return { header, payload };
}

/** A fresh RSA key pair as PEM strings. */
export function rsaKeyPair(bits = 2048) {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** A fresh EC key pair (P-256 by default) as PEM strings. */
export function ecKeyPair(namedCurve = 'P-256') {
  return crypto.generateKeyPairSync('ec', {
    namedCurve,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

/** A random HMAC secret of n bytes (printable, no newline). */
export function randomSecret(n = 48) {
  return crypto.randomBytes(n).toString('base64url').slice(0, n);
}
