// Tiny HTTP GET for the health endpoints.
import http from 'node:http';

/**
 * GET http://host:port/path. Resolves {status, body}; status is 0 when the
 * connection failed (error in .error). Never rejects.
 */
export function httpGet(port, path, { host = '127.0.0.1', timeout = 2000 } = {}) {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path, timeout, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => resolve({ status: 0, error: e }));
    });
    req.on('timeout', () => req.destroy(new Error('http timeout')));
    req.on('error', (e) => resolve({ status: 0, error: e }));
  });
}
