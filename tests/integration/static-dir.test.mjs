// GET / and static files, when a static folder is configured (the
// contract's endpoint table): --static-dir serves exactly the files found
// under it at start, with the type browsers need, and nothing else: no dot
// file, no path that climbs out, no method but GET and HEAD. The gateway's
// own endpoints keep working beside it, and without the flag GET / is 404.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Scope, runWsgw, freePort, httpGet, T } from './lib/index.mjs';

const s = new Scope('static');
let www;
let gw;
let plain;
// A text file large enough that lws sends it over several writable turns.
const big = 'wsgw static file\n'.repeat(20000);

before(async () => {
  www = path.join(s.dir, 'www');
  fs.mkdirSync(path.join(www, 'js', 'lib'), { recursive: true });
  fs.mkdirSync(path.join(www, 'docs'));
  fs.mkdirSync(path.join(www, '.git'));
  fs.writeFileSync(path.join(www, 'index.html'), '<!doctype html><title>demo</title>');
  fs.writeFileSync(path.join(www, 'style.css'), 'body{margin:0}');
  fs.writeFileSync(path.join(www, 'js', 'app.js'), 'console.log("app")');
  fs.writeFileSync(path.join(www, 'js', 'lib', 'client.mjs'), 'export {}');
  fs.writeFileSync(path.join(www, 'docs', 'index.html'), '<p>docs</p>');
  fs.writeFileSync(path.join(www, 'big.txt'), big);
  fs.writeFileSync(path.join(www, '.env'), 'SECRET=1');
  fs.writeFileSync(path.join(www, '.git', 'config'), '[core]');
  fs.writeFileSync(path.join(s.dir, 'outside.txt'), 'outside the folder');
  // A link to a file in the folder is served like the file (as a mounted
  // Kubernetes ConfigMap's files are links).
  fs.symlinkSync(path.join(www, 'style.css'), path.join(www, 'linked.css'));
  // Links back into the walk: three to the folder itself (3^16 paths if
  // followed 16 deep) and one to an ancestor. The gateway must start at
  // once and serve none of those aliases.
  fs.mkdirSync(path.join(www, 'cycle'));
  for (const name of ['a', 'b', 'c']) fs.symlinkSync('.', path.join(www, 'cycle', name));
  fs.symlinkSync('../..', path.join(www, 'js', 'lib', 'top'));
  [gw, plain] = await Promise.all([
    s.gateway({ name: 'static', args: ['--static-dir', www] }),
    s.gateway({ name: 'no-static' }),
  ]);
});
after(() => s.close());

const get = (p, target = gw) => httpGet(target.port, p, { timeout: T(5000) });

describe('--static-dir', () => {
  test('GET / is index.html; files by their paths, with their types', async () => {
    const cases = [
      ['/', '<!doctype html><title>demo</title>', 'text/html; charset=utf-8'],
      ['/index.html', '<!doctype html><title>demo</title>', 'text/html; charset=utf-8'],
      ['/style.css', 'body{margin:0}', 'text/css; charset=utf-8'],
      ['/js/app.js', 'console.log("app")', 'text/javascript; charset=utf-8'],
      ['/js/lib/client.mjs', 'export {}', 'text/javascript; charset=utf-8'],
      ['/docs/', '<p>docs</p>', 'text/html; charset=utf-8'],
      ['/linked.css', 'body{margin:0}', 'text/css; charset=utf-8'],
    ];
    for (const [p, body, type] of cases) {
      const r = await get(p);
      assert.equal(r.status, 200, `${p}: ${r.status} ${r.body}`);
      assert.equal(r.body, body, p);
      assert.equal(r.headers['content-type'], type, p);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
      assert.equal(r.headers['cache-control'], 'no-cache', p);
    }
  });

  test('a 340 KB file arrives whole', async () => {
    const r = await get('/big.txt');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, big.length);
    assert.equal(r.body, big);
  });

  test('nothing else: dot files, paths that climb out, unknown files and folders without a slash are 404', async () => {
    for (const p of ['/.env', '/.git/config', '/../outside.txt', '/js/../../outside.txt',
      '/%2e%2e/outside.txt', '/js/%2e%2e/%2e%2e/outside.txt', '/nope.html', '/docs', '/js/',
      '//etc/passwd', '/index.html/', '/style.css?x=1/../../outside.txt',
      '/cycle/a/', '/cycle/a/b/c/', '/js/lib/top/index.html', '/js/lib/top/js/app.js']) {
      const r = await get(p);
      if (p.startsWith('/style.css?')) {
        // The query is not part of the path: the file itself.
        assert.equal(r.status, 200, p);
        assert.equal(r.body, 'body{margin:0}', p);
        continue;
      }
      assert.equal(r.status, 404, `${p}: ${r.status} ${r.body}`);
      assert.doesNotMatch(r.body, /SECRET|outside the folder|\[core\]|root:/, p);
    }
  });

  test('POST / is 404; HEAD gives the headers alone', async () => {
    const post = await fetch(`http://127.0.0.1:${gw.port}/`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 404);
    const head = await fetch(`http://127.0.0.1:${gw.port}/style.css`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String('body{margin:0}'.length));
    assert.equal(await head.text(), '');
  });

  test('the gateway\'s own endpoints and WebSocket clients work beside it', async () => {
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
    assert.match((await get('/metrics')).body, /wsgw_/);
    const c = await s.user(gw, { sub: 'alice' });
    await c.ping();
  });

  test('without --static-dir, GET / is 404', async () => {
    assert.equal((await get('/', plain)).status, 404);
    assert.equal((await get('/index.html', plain)).status, 404);
  });

  test('a --static-dir that is not a readable folder stops the gateway at start with a message', async () => {
    for (const bad of [path.join(s.dir, 'missing'), path.join(www, 'style.css')]) {
      const port = await freePort();
      const r = await runWsgw(['--listen', `127.0.0.1:${port}`, '--jwt-secret-file', s.secretFile, '--static-dir', bad], { timeout: T(5000) });
      assert.equal(r.timedOut, false, `${bad}: the gateway kept running`);
      assert.notEqual(r.code, 0, `${bad}: exit code 0`);
      assert.match(r.stderr, /--static-dir .*not a readable folder/, r.stderr);
    }
  });
});
