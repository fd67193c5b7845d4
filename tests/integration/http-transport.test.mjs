// The HTTP transport from the outside (issue #6, transport table): a real bastiond with the `http` group,
// bastion-front over real TLS (a certificate made with openssl for this run, in a temporary directory),
// raw TLS sockets so every byte of the request is the test's. Requests the front refuses never reach the
// broker; requests it forwards get the broker's answer (whatever it is, the same for each).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { BUILD_DIR, Daemon, bin, inventoryServer, removeDaemonDir, sleep, waitFor } from './harness.mjs';

const HEADER_TIMEOUT_MS = 1500;
const MAX_BODY = 64 * 1024;
const CONCURRENT = 1000;

async function freePort() {
  return new Promise((resolveP) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolveP(port));
    });
  });
}

// A self-signed P-256 certificate for localhost and 127.0.0.1, made now; the key never leaves the
// temporary directory.
function makeCert() {
  const dir = mkdtempSync('/tmp/bastion-front-tls-');
  const cert = join(dir, 'cert.pem'), key = join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { dir, cert, key, ca: readFileSync(cert) };
}

const q = (s) => JSON.stringify(s);

function httpGroup({ port, tls, maxConnections = CONCURRENT + 24, perAddress = CONCURRENT + 24, extra = '' }) {
  return `
http = {
        listen = "127.0.0.1:${port}";
${tls ? `        tls_cert = ${q(tls.cert)};\n        tls_key = ${q(tls.key)};\n` : '        plain = true;\n'}\
        max_connections = ${maxConnections};
        max_connections_per_address = ${perAddress};
        header_timeout_ms = ${HEADER_TIMEOUT_MS};
        max_body = ${MAX_BODY};${extra}
};
`;
}

// The conformance fixtures' progress tool streams its answer (SSE) through the front.
const CONFORMANCE = `        conformance = {
                domain = "conformance";
                tools = {
                        test_tool_with_progress = { scopes = [ "conformance:use" ]; };
                        test_custom_headers = { scopes = [ "conformance:use" ]; };
                };
        };
`;

class FrontDaemon extends Daemon {
  writeConfig(opts) {
    super.writeConfig(opts.servers ?? [inventoryServer('inventory'), ...(opts.anonymous ? [CONFORMANCE] : [])]);
    if (opts.anonymous) {
      const text = readFileSync(this.configPath, 'utf8')
        .replace(/auditor = \{ scopes = \[ "inventory:read" \]; \};/, 'auditor = { scopes = [ "inventory:read", "conformance:use" ]; };');
      writeFileSync(this.configPath, text);
    }
    appendFileSync(this.configPath, httpGroup(opts));
    if (opts.anonymous) {
      // Plain loopback HTTP only (bastion.conf(5)): token-less requests are served as the auditor, so
      // what the broker answers depends on the bytes the front forwarded.
      const jwks = join(this.dir, 'jwks.json');
      writeFileSync(jwks, JSON.stringify({ keys: [] }));
      appendFileSync(this.configPath, `oauth = {\n        issuer = "https://issuer.bastion.test";\n        jwks_file = ${q(jwks)};\n` +
        '        authorization_servers = [ "https://as.bastion.test" ];\n        anonymous_role = "auditor";\n};\n');
    }
  }

  frontPid() {
    const p = this.tree().find((x) => x.argv[0]?.endsWith('/bastion-front'));
    return p ? p.pid : null;
  }
}

// ---- one exchange over a raw socket ----

// Parses what arrived: the first non-1xx response, complete once its Content-Length body is in.
function parseResponse(buf) {
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) return null;
    const head = buf.subarray(off, end).toString('latin1').split('\r\n');
    const status = Number(head[0].split(' ')[1]);
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
    }
    if (status >= 100 && status < 200) { off = end + 4; continue; }
    const len = Number(headers['content-length'] ?? 0);
    if (buf.length < end + 4 + len) return null;
    return { status, headers, body: buf.subarray(end + 4, end + 4 + len).toString('utf8') };
  }
}

// Sends `request` (string or Buffer) and resolves with the response, or {status: null} when the
// connection closed first; `closed` says whether the server closed the connection afterwards.
function exchange(port, request, { tls = null, timeoutMs = 10000, keepOpen = false } = {}) {
  return new Promise((resolveP, reject) => {
    const sock = tls ? tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] })
      : netConnect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0), done = false;
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err, res) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!keepOpen) sock.destroy();
      err ? reject(err) : resolveP(res);
    };
    sock.on(tls ? 'secureConnect' : 'connect', () => sock.write(request));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResponse(buf);
      if (r && !keepOpen) finish(null, r);
      if (r && keepOpen) finish(null, { ...r, sock });
    });
    sock.on('error', (e) => finish(null, { status: null, error: e.code ?? e.message }));
    sock.on('close', () => finish(null, parseResponse(buf) ?? { status: null, raw: buf.toString('latin1') }));
  });
}

const post = (port, body, headers = {}) => {
  const h = { Host: `127.0.0.1:${port}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
    'Content-Length': Buffer.byteLength(body), ...headers };
  return `POST /mcp/inventory HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`;
};

const PING = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });

async function startFront(t, opts = {}) {
  const port = await freePort();
  const d = new FrontDaemon({ port, ...opts }, { libexecDir: opts.libexecDir ?? BUILD_DIR });
  t.after(() => d.kill());
  d.port = port;
  try {
    await d.waitReady(opts.wait ?? ['inventory']);
    await waitFor('the front to answer', async () => {
      const r = await exchange(port, post(port, PING), { tls: opts.tls, timeoutMs: 2000 }).catch(() => null);
      return r?.status ? r : null;
    }, 15000, 100);
  } catch (e) {
    d.kill();
    throw new Error(`${e.message}\nbastiond stderr:\n${d.stderr}`);
  }
  return d;
}

// Whether any readable mapping of the process holds `needle` (read through /proc/PID/mem, as root).
function memoryHolds(pid, needle) {
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter(Boolean)) {
      const [range, perms, , , , path = ''] = line.trim().split(/\s+/);
      if (!perms.startsWith('r') || /^\[(vvar|vvar_vclock|vsyscall)\]$/.test(path)) continue;
      const [lo, hi] = range.split('-').map((x) => parseInt(x, 16));
      // A sanitizer build reserves terabytes of shadow memory; nothing of ours lives in a mapping that size.
      if (hi - lo > 1024 * 1024 * 1024) continue;
      const buf = Buffer.alloc(hi - lo);
      let n = 0;
      try { n = readSync(fd, buf, 0, buf.length, lo); } catch { continue; }
      if (buf.subarray(0, n).includes(needle)) return true;
    }
  } finally {
    closeSync(fd);
  }
  return false;
}

// 64 characters of a PEM private key that are key material (its second base64 line: the first begins
// with the algorithm's fixed ASN.1 prefix, the same for every P-256 key).
const keyNeedle = (pem) => Buffer.from(pem.toString('utf8').split('\n')[2]);

function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Object.fromEntries(s.split('\n').filter(Boolean).map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i), l.slice(i + 1).trim()];
  }));
}

// ---- configuration ----

function checkConfig(http) {
  const dir = mkdtempSync('/tmp/bastion-front-conf-');
  try {
    const path = join(dir, 'bastion.conf');
    writeFileSync(path, `bastion = { worker_uids = [ 63700, 63715 ]; };\nservers = { inventory = { domain = "inventory"; }; };\n${http}\n`);
    const r = spawnSync(bin('bastiond'), ['--config', path, '--check-config'], { encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr, path };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('plain HTTP is refused in the configuration unless the listener is on loopback', () => {
  let r = checkConfig('http = {\n  listen = "0.0.0.0:8080";\n  public_url = "http://mcp.example.com:8080";\n  plain = true;\n};');
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /bastion\.conf:6: http: plain HTTP is only allowed on a loopback address/);
  r = checkConfig('http = {\n  listen = "192.0.2.1:8080";\n  plain = true;\n};');
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /bastion\.conf:5: http: plain HTTP is only allowed on a loopback address/);
  r = checkConfig('http = {\n  listen = "127.0.0.1:8080";\n};');
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /bastion\.conf:4: http: tls_cert and tls_key are required/);
  r = checkConfig('http = {\n  listen = "[::1]:8080";\n  plain = true;\n};');
  assert.equal(r.status, 0, r.out);
  r = checkConfig('http = {\n  listen = "127.0.0.1:8080";\n  plain = true;\n  max_body = "2M";\n};');
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /bastion\.conf:6: http\.max_body: must be at most 1048576 bytes/);
});

// ---- over TLS ----

test('the transport table over TLS', async (t) => {
  const tls = makeCert();
  const originalKey = readFileSync(tls.key);
  t.after(() => rmSync(tls.dir, { recursive: true, force: true }));
  const d = await startFront(t, { tls });
  const { port } = d;
  const host = `127.0.0.1:${port}`;
  // What the broker answers a token-less ping; the front must hand it back unchanged.
  const reference = await exchange(port, post(port, PING), { tls });
  assert.ok(reference.status >= 200 && reference.status < 600, JSON.stringify(reference));

  await t.test('a foreign Origin is refused with 403', async () => {
    const r = await exchange(port, post(port, PING, { Origin: 'https://evil.example.com' }), { tls });
    assert.equal(r.status, 403);
    assert.match(r.body, /Origin not allowed/);
    const ok = await exchange(port, post(port, PING, { Origin: `https://${host}` }), { tls });
    assert.equal(ok.status, reference.status, 'the listener\'s own origin is served');
    assert.equal(ok.headers['access-control-allow-origin'], `https://${host}`);
  });

  await t.test('OPTIONS is answered by the front: 204 with the CORS preflight headers for an allowed Origin', async () => {
    const r = await exchange(port, `OPTIONS /mcp/inventory HTTP/1.1\r\nHost: ${host}\r\nOrigin: https://${host}\r\n` +
      'Access-Control-Request-Method: POST\r\n\r\n', { tls });
    assert.equal(r.status, 204);
    assert.equal(r.headers.allow, 'GET, POST, DELETE, OPTIONS');
    assert.equal(r.headers['access-control-allow-origin'], `https://${host}`);
    assert.equal(r.headers['access-control-allow-methods'], 'GET, POST, DELETE, OPTIONS');
    assert.match(r.headers['access-control-allow-headers'], /Authorization/);
    const foreign = await exchange(port, `OPTIONS /mcp/inventory HTTP/1.1\r\nHost: ${host}\r\nOrigin: https://evil.example.com\r\n\r\n`, { tls });
    assert.equal(foreign.status, 403);
  });

  await t.test('a foreign Host is refused with 403', async () => {
    const r = await exchange(port, post(port, PING, { Host: 'evil.example.com' }), { tls });
    assert.equal(r.status, 403);
    assert.match(r.body, /Host not allowed/);
    const other = await exchange(port, post(port, PING, { Host: `127.0.0.1:${port + 1}` }), { tls });
    assert.equal(other.status, 403, 'another port of the same name is another authority');
    const local = await exchange(port, post(port, PING, { Host: `localhost:${port}` }), { tls });
    assert.equal(local.status, reference.status);
  });

  await t.test('a body larger than max_body is refused with 413 before it is sent', async () => {
    const head = `POST /mcp/inventory HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${MAX_BODY + 1}\r\n\r\n`;
    const r = await exchange(port, head, { tls });
    assert.equal(r.status, 413);
    assert.equal(r.headers.connection, 'close');
    const fits = await exchange(port, post(port, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(MAX_BODY - 100) } })), { tls });
    assert.equal(fits.status, reference.status, 'a body within the limit is forwarded');
  });

  await t.test('a chunked body is refused with 411', async () => {
    const r = await exchange(port, `POST /mcp/inventory HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, { tls });
    assert.equal(r.status, 411);
  });

  await t.test('too many headers are refused with 431', async () => {
    const many = Array.from({ length: 100 }, (_, i) => `X-Pad-${i}: ${i}\r\n`).join('');
    const r = await exchange(port, `GET /mcp/inventory HTTP/1.1\r\nHost: ${host}\r\n${many}\r\n`, { tls });
    assert.equal(r.status, 431);
  });

  await t.test('an access token in the query string is refused with 400', async () => {
    const r = await exchange(port, `GET /mcp/inventory?access_token=eyJhbGciOi HTTP/1.1\r\nHost: ${host}\r\n\r\n`, { tls });
    assert.equal(r.status, 400);
    assert.match(r.body, /Authorization header/);
    assert.doesNotMatch(d.stderr, /eyJhbGciOi/, 'the token is not logged');
  });

  await t.test('paths other than the endpoints are 404, a wrong method on the metadata is 405', async () => {
    assert.equal((await exchange(port, `GET /mcp/nosuchserver HTTP/1.1\r\nHost: ${host}\r\n\r\n`, { tls })).status, 404);
    assert.equal((await exchange(port, `GET /mcp/inventory/../payments HTTP/1.1\r\nHost: ${host}\r\n\r\n`, { tls })).status, 400);
    assert.equal((await exchange(port, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, { tls })).status, 404);
    const r = await exchange(port, post(port, PING).replace('/mcp/inventory', '/.well-known/oauth-protected-resource/mcp/inventory'), { tls });
    assert.equal(r.status, 405);
    assert.equal(r.headers.allow, 'GET, OPTIONS');
  });

  await t.test('Expect: 100-continue gets 100 before the body is sent', async () => {
    const head = `POST /mcp/inventory HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: ${PING.length}\r\n\r\n`;
    const first = await new Promise((resolveP, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, servername: 'localhost' }, () => s.write(head));
      s.once('data', (b) => { resolveP({ s, text: b.toString('latin1') }); });
      s.on('error', reject);
      setTimeout(() => reject(new Error('no 100 Continue')), 5000);
    });
    assert.match(first.text, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
    const rest = await new Promise((resolveP) => {
      let buf = Buffer.alloc(0);
      first.s.on('data', (b) => { buf = Buffer.concat([buf, b]); const r = parseResponse(buf); if (r) resolveP(r); });
      // The body in two writes: the front waits for all of it before forwarding.
      first.s.write(PING.slice(0, 10));
      setTimeout(() => first.s.write(PING.slice(10)), 200);
    });
    first.s.destroy();
    assert.equal(rest.status, reference.status);
  });

  await t.test('a slow client is cut off by the header timeout', async () => {
    const started = Date.now();
    const r = await exchange(port, `POST /mcp/inventory HTTP/1.1\r\nHost: ${host}\r\nContent-Ty`, { tls, timeoutMs: HEADER_TIMEOUT_MS * 4 });
    const took = Date.now() - started;
    assert.equal(r.status, 408);
    assert.ok(took >= HEADER_TIMEOUT_MS - 200 && took < HEADER_TIMEOUT_MS * 3, `closed after ${took} ms`);
  });

  await t.test('TLS 1.1 is refused, TLS 1.2 and 1.3 are served', async () => {
    // SECLEVEL=0 lets the client offer TLS 1.1 at all: the refusal is the server's.
    const hello = (opts) => new Promise((resolveP) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, servername: 'localhost', ciphers: 'DEFAULT@SECLEVEL=0', ...opts },
        () => { const v = s.getProtocol(); s.destroy(); resolveP(v); });
      s.on('error', (e) => resolveP(`error: ${e.code ?? e.message}`));
    });
    const old = await hello({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1' });
    assert.match(old, /^error: /);
    assert.match(old, /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|ALERT/);
    assert.equal(await hello({ minVersion: 'TLSv1.1', maxVersion: 'TLSv1.2' }), 'TLSv1.2');
    assert.equal(await hello({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }), 'TLSv1.3');
  });

  await t.test(`${CONCURRENT} concurrent connections are all served`, async () => {
    // Each connection asks once it is up and stays open (keep-alive): once every one has its answer,
    // all of them are open together, and all are asked a second time at once.
    const socks = [];
    const ask = (s) => new Promise((resolveP) => {
      let buf = Buffer.alloc(0);
      const onData = (b) => {
        buf = Buffer.concat([buf, b]);
        const r = parseResponse(buf);
        if (r) { s.off('data', onData); s.off('close', onClose); resolveP(r.status); }
      };
      const onClose = () => resolveP(null);
      s.on('data', onData);
      s.on('close', onClose);
      s.write(post(port, PING));
    });
    const count = (answers) => {
      const counts = {};
      for (const a of answers) counts[a] = (counts[a] ?? 0) + 1;
      return counts;
    };
    // Opened in batches: this one client process makes the TLS handshakes one at a time, and a batch
    // of 1,000 would leave the last ones waiting longer than the header timeout for their own side.
    const first = [];
    for (let i = 0; i < CONCURRENT; i += 50) {
      first.push(...await Promise.all(Array.from({ length: Math.min(50, CONCURRENT - i) }, () => new Promise((resolveP) => {
        const s = tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, servername: 'localhost' }, () => ask(s).then(resolveP));
        s.on('error', () => resolveP(null));
        socks.push(s);
      }))));
    }
    try {
      assert.deepEqual(count(first), { [reference.status]: CONCURRENT });
      assert.equal(socks.filter((s) => !s.destroyed).length, CONCURRENT, 'every connection is still open');
      const second = await Promise.all(socks.map(ask));
      assert.deepEqual(count(second), { [reference.status]: CONCURRENT });
    } finally {
      for (const s of socks) s.destroy();
    }
  });

  await t.test('the front is confined: seccomp filter, no_new_privs, no capabilities, its own uid', async () => {
    const pid = d.frontPid();
    assert.ok(pid, 'a bastion-front process runs');
    const s = procStatus(pid);
    assert.equal(s.Seccomp, '2');
    assert.equal(s.NoNewPrivs, '1');
    for (const k of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(s[k], '0000000000000000', k);
    assert.equal(s.Uid.split(/\s+/)[0], String(d.uids.max), 'the last uid of the worker range');
    const ws = spawnSync(bin('bastionctl'), ['--socket', d.controlSocket, 'workers'], { encoding: 'utf8' });
    assert.equal(ws.status, 0, ws.stderr);
    assert.match(ws.stdout, new RegExp(`^front\\s+front\\s+${pid}\\s+running\\s+0\\s+${d.uids.max}\\s+yes\\s+2\\s+yes\\s+none\\s+shared`, 'm'));
    const st = spawnSync(bin('bastionctl'), ['--socket', d.controlSocket, 'status'], { encoding: 'utf8' });
    assert.match(st.stdout, new RegExp(`^front:\\s+running \\(pid ${pid}\\), 0 restart\\(s\\), 127\\.0\\.0\\.1:${port}, https://127\\.0\\.0\\.1:${port}`, 'm'));
  });

  await t.test('a killed front is restarted and serves again', async () => {
    const old = d.frontPid();
    process.kill(old, 'SIGKILL');
    const pid = await waitFor('a new front', () => { const p = d.frontPid(); return p && p !== old ? p : null; }, 10000);
    await waitFor('the new front to be confined', () => procStatus(pid).Seccomp === '2', 5000);
    const r = await waitFor('the new front to serve', async () => {
      const x = await exchange(port, post(port, PING), { tls, timeoutMs: 2000 }).catch(() => null);
      return x?.status ? x : null;
    }, 10000, 100);
    assert.equal(r.status, reference.status);
    assert.match(d.stderr, /front \(pid \d+\) killed by signal 9; restarting in \d+ ms/);
  });

  await t.test('a dead broker takes the front with it; both come back and serve', async () => {
    const brokerPid = d.tree().find((x) => x.argv[0]?.endsWith('/bastion-broker'))?.pid;
    const old = d.frontPid();
    assert.ok(brokerPid && old);
    process.kill(brokerPid, 'SIGKILL');
    const pid = await waitFor('a front for the new broker', () => { const p = d.frontPid(); return p && p !== old ? p : null; }, 10000);
    const r = await waitFor('the new front to serve', async () => {
      const x = await exchange(port, post(port, PING), { tls, timeoutMs: 2000 }).catch(() => null);
      return x?.status ? x : null;
    }, 10000, 100);
    assert.equal(r.status, reference.status);
    assert.equal(d.frontPid(), pid);
  });

  await t.test('SIGHUP reloads the certificate for new connections; an open one keeps working', async () => {
    const fingerprint = () => new Promise((resolveP, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'localhost' },
        () => { const f = s.getPeerCertificate().fingerprint256; s.destroy(); resolveP(f); });
      s.on('error', reject);
    });
    const before = await fingerprint();
    const open = await exchange(port, post(port, PING), { tls, keepOpen: true });
    const fresh = makeCert();
    t.after(() => rmSync(fresh.dir, { recursive: true, force: true }));
    writeFileSync(tls.cert, readFileSync(fresh.cert));
    writeFileSync(tls.key, readFileSync(fresh.key));
    tls.ca = fresh.ca;
    process.kill(d.pid, 'SIGHUP');
    const after = await waitFor('the new certificate', async () => { const f = await fingerprint(); return f !== before ? f : null; }, 10000, 100);
    assert.notEqual(after, before);
    const again = await new Promise((resolveP) => {
      let buf = Buffer.alloc(0);
      open.sock.on('data', (b) => { buf = Buffer.concat([buf, b]); const r = parseResponse(buf); if (r) resolveP(r); });
      open.sock.write(post(port, PING));
    });
    open.sock.destroy();
    assert.equal(again.status, reference.status, 'the connection made with the old certificate still works');
    assert.equal((await exchange(port, post(port, PING), { tls })).status, reference.status);
  });

  await t.test('no copy of the private key\'s PEM text stays in bastiond\'s or the front\'s memory', async () => {
    // bastiond reads the file and sends the bytes; the front parses them into OpenSSL's own form. Both the
    // key of the start and the one the SIGHUP above loaded have been through both processes by now.
    const needles = [keyNeedle(originalKey), keyNeedle(readFileSync(tls.key))];
    assert.equal(needles[0].length, 64);
    assert.notDeepEqual(needles[0], needles[1]);
    for (const [what, pid] of [['bastiond', d.pid], ['bastion-front', d.frontPid()]])
      for (const [i, needle] of needles.entries())
        assert.equal(memoryHolds(pid, needle), false, `${what} (pid ${pid}) holds the ${i ? 'reloaded' : 'first'} key's PEM text`);
    // The search itself finds what is there: bastiond holds its configuration, the key file's path in it.
    assert.equal(memoryHolds(d.pid, Buffer.from(tls.key)), true);
  });

  await t.test('a bearer token leaves no copy in the front\'s memory once its connection is gone', async () => {
    const token = `bastion-test-token-${randomBytes(24).toString('hex')}`;
    for (let i = 0; i < 3; i++) {
      const r = await exchange(port, post(port, PING, { Authorization: `Bearer ${token}` }), { tls });
      assert.ok(r.status >= 200, JSON.stringify(r));
    }
    const pid = d.frontPid();
    // The search finds what the front does hold: its configured host names.
    assert.equal(memoryHolds(pid, Buffer.from(host)), true);
    await waitFor('the front to hold no copy of the token', () => !memoryHolds(pid, Buffer.from(token)), 5000, 100);
    // Nor the broker, which received it over the channel into its batch slots (zeroed after the copy).
    const broker = d.tree().find((x) => x.argv[0]?.endsWith('/bastion-broker'))?.pid;
    assert.ok(broker);
    assert.equal(memoryHolds(broker, Buffer.from(token)), false, 'the broker holds a copy of the token');
  });

  await t.test('a bearer token leaves no copy in the front\'s memory while its keep-alive connection stays open', async () => {
    const token = `bastion-test-token-${randomBytes(24).toString('hex')}`;
    const pid = d.frontPid();
    // Searched at once, within FRONT_TLS_IDLE_MS: OpenSSL still holds its buffers for this connection,
    // and the decrypted record in them must already be zeroed.
    const r = await exchange(port, post(port, PING, { Authorization: `Bearer ${token}` }), { tls, keepOpen: true });
    try {
      assert.ok(r.status >= 200, JSON.stringify(r));
      assert.equal(memoryHolds(pid, Buffer.from(token)), false);
      r.sock.write(post(port, PING));
      const again = await new Promise((resolveP) => r.sock.once('data', (b) => resolveP(b.toString('latin1'))));
      assert.match(again, /^HTTP\/1\.1 \d{3} /, 'the connection stays open and serves on');
    } finally {
      r.sock.destroy();
    }
  });

  await d.stop();
});

// ---- plain HTTP on loopback: per-address cap, socket activation ----

test('connections beyond max_connections_per_address or max_connections are closed at once; idle ones after the idle timeout', async (t) => {
  const d = await startFront(t, { maxConnections: 3, perAddress: 2, extra: '\n        idle_timeout_ms = 700;' });
  const { port } = d;
  // Other loopback source addresses count as other clients.
  const connectFrom = (localAddress) => new Promise((resolveP) => {
    const s = netConnect({ host: '127.0.0.1', port, localAddress }, () => resolveP(s));
  });
  const open = [await connectFrom('127.0.0.1'), await connectFrom('127.0.0.1')];
  await sleep(200);
  const third = await exchange(port, post(port, PING), { timeoutMs: 5000 });
  assert.equal(third.status, null, 'a third connection from the same address is closed without an answer');
  open.push(await connectFrom('127.0.0.2'));
  await sleep(200);
  const other = await new Promise((resolveP) => {
    const s = netConnect({ host: '127.0.0.1', port, localAddress: '127.0.0.3' }, () => s.write(post(port, PING)));
    let buf = Buffer.alloc(0);
    s.on('data', (b) => { buf = Buffer.concat([buf, b]); });
    s.on('close', () => resolveP(parseResponse(buf)?.status ?? null));
    s.on('error', () => {});
  });
  assert.equal(other, null, 'a fourth connection, from a new address, is over max_connections');
  assert.match(d.stderr, /127\.0\.0\.3: connection refused: 3 connections open \(http\.max_connections\)/);
  for (const s of open) s.destroy();
  await waitFor('a slot to be free again', async () => (await exchange(port, post(port, PING))).status !== null, 5000, 50);
  assert.match(d.stderr, /connection refused: 2 connections from this address/);
  // Answered, then kept alive: closed by the front once idle for idle_timeout_ms.
  const kept = await exchange(port, post(port, PING), { keepOpen: true });
  const started = Date.now();
  await new Promise((r) => kept.sock.on('close', r));
  const idle = Date.now() - started;
  assert.ok(idle >= 500 && idle < 3000, `closed after ${idle} ms idle`);
  await d.stop();
});

test('requests reach the broker intact: split bodies, 100-continue, pipelining, keep-alive', async (t) => {
  const d = await startFront(t, { anonymous: true });
  const { port } = d;
  const init = (id) => JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize', params: {
    protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'front-test', version: '0' } } });
  const body = init(7);
  const head = `POST /mcp/inventory HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
    `Accept: application/json, text/event-stream\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`;
  const answers = await new Promise((resolveP, reject) => {
    const s = netConnect({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const got = [];
    s.on('connect', () => s.write(head));
    s.on('error', reject);
    s.on('data', (b) => {
      buf = Buffer.concat([buf, b]);
      if (got.length === 0 && buf.toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        got.push(100);
        buf = buf.subarray(25);
        // The body in three pieces, then two pipelined requests in one write.
        s.write(body.slice(0, 5));
        setTimeout(() => s.write(body.slice(5, 40)), 100);
        setTimeout(() => s.write(body.slice(40) + post(port, init(8)) + post(port, init(9))), 200);
      }
      for (let r; (r = parseResponse(buf));) {
        const len = buf.indexOf('\r\n\r\n') + 4 + Number(r.headers['content-length'] ?? 0);
        buf = buf.subarray(len);
        got.push(r);
        if (got.length === 4) { s.destroy(); resolveP(got); }
      }
    });
    setTimeout(() => reject(new Error(`only ${got.length} answers`)), 10000);
  });
  assert.equal(answers[0], 100);
  assert.deepEqual(answers.slice(1).map((r) => [r.status, JSON.parse(r.body).id, JSON.parse(r.body).result?.serverInfo?.name]),
    [[200, 7, 'bastion/inventory'], [200, 8, 'bastion/inventory'], [200, 9, 'bastion/inventory']]);
  await d.stop();
});

// Reads one chunked SSE response (and nothing after it) from a socket: its head and its events.
function readSse(sock) {
  return new Promise((resolveP, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (b) => {
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      let off = end + 4, body = '';
      for (;;) {
        const eol = buf.indexOf('\r\n', off);
        if (eol < 0) return;
        const size = parseInt(buf.subarray(off, eol).toString('latin1'), 16);
        if (buf.length < eol + 2 + size + 2) return;
        if (size === 0) break;
        body += buf.subarray(eol + 2, eol + 2 + size).toString('utf8');
        off = eol + 2 + size + 2;
      }
      sock.off('data', onData);
      const events = body.split('\n\n').filter((e) => e.includes('data:'))
        .map((e) => e.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n'))
        .filter((d) => d !== '').map((d) => JSON.parse(d));
      resolveP({ head, events });
    };
    sock.on('data', onData);
    sock.on('error', reject);
  });
}

test('an SSE answer streams through the front, and the connection carries the next request', async (t) => {
  const d = await startFront(t, { anonymous: true });
  const { port } = d;
  const init = await exchange(port, post(port, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'front-test', version: '0' } } })).replace('/mcp/inventory', '/mcp/conformance'));
  assert.equal(init.status, 200, init.body);
  const h = { 'Mcp-Session-Id': init.headers['mcp-session-id'], 'MCP-Protocol-Version': '2025-11-25' };
  const call = (id) => post(port, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
    params: { name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: `p${id}` } } }), h).replace('/mcp/inventory', '/mcp/conformance');
  const sock = netConnect({ host: '127.0.0.1', port });
  await new Promise((r) => sock.on('connect', r));
  sock.write(post(port, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), h).replace('/mcp/inventory', '/mcp/conformance'));
  await new Promise((r) => sock.once('data', r));
  sock.write(call(2));
  const first = await readSse(sock);
  assert.match(first.head, /^HTTP\/1\.1 200 /);
  assert.match(first.head, /\r\ncontent-type: text\/event-stream\r\n/i);
  assert.match(first.head, /\r\nTransfer-Encoding: chunked$/);
  assert.match(first.head, /\r\nX-Accel-Buffering: no\r\n/);
  assert.deepEqual(first.events.filter((e) => e.method === 'notifications/progress').map((e) => e.params.progress), [0, 50, 100]);
  assert.equal(first.events.at(-1).id, 2);
  assert.match(first.events.at(-1).result.content[0].text, /Progress test completed/);
  // The same connection, kept alive after the stream ended.
  sock.write(call(3));
  const second = await readSse(sock);
  assert.equal(second.events.at(-1).id, 3);
  // A client that leaves in the middle of a stream: the front tells the broker and carries on.
  sock.write(call(4));
  await new Promise((r) => sock.once('data', r));
  sock.destroy();
  await waitFor('the front to notice', () => /conn \d+ closed: the client went away before the answer/.test(d.stderr), 5000);
  const after = await exchange(port, call(5));
  assert.equal(after.status, 200);
  await d.stop();
});

// The front with tests/hostile/hostile-worker.c as the server `hostile` (its flood and stall tools), and a
// 2025-11-25 session on it.
async function hostileFront(t) {
  const dir = mkdtempSync('/tmp/bastion-front-hostile-');
  chmodSync(dir, 0o755);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync(bin('bastion-broker'), join(dir, 'bastion-broker'));
  symlinkSync(bin('bastion-front'), join(dir, 'bastion-front'));
  symlinkSync(join(BUILD_DIR, 'tests/hostile/bastion-hostile-worker'), join(dir, 'bastion-worker'));
  const tools = ['flood', 'stall', 'honest'].map((x) => `${x} = { scopes = [ "inventory:read" ]; };`).join(' ');
  const hostile = `        hostile = {\n                domain = "inventory";\n                tools = { ${tools} };\n        };\n`;
  const d = await startFront(t, { anonymous: true, servers: [hostile], wait: ['hostile'], libexecDir: dir });
  const { port } = d;
  const to = (req) => req.replace('/mcp/inventory', '/mcp/hostile');
  const init = await exchange(port, to(post(port, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'front-test', version: '0' } } }))));
  assert.equal(init.status, 200, init.body);
  const h = { 'Mcp-Session-Id': init.headers['mcp-session-id'], 'MCP-Protocol-Version': '2025-11-25' };
  const call = (id, name) => to(post(port, JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
    params: { name, arguments: {}, _meta: { progressToken: `p${id}` } } }), h));
  return { d, port, to, h, call };
}

// Backpressure: a client that asks for a streamed answer and then reads nothing must not make the front
// hold more than BASTION_HTTP_MAX_OUTPUT (8 MiB) for it. The flood tool sends ~64 MiB of progress
// notifications before its answer.
test('a client that stops reading an SSE answer is cut off at 8 MiB unread; the front stays small and serves on', async (t) => {
  const { d, port, to, h, call } = await hostileFront(t);
  const frontPid = d.frontPid();
  const rss = (what) => Number(new RegExp(`${what}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${frontPid}/status`, 'utf8'))[1]);
  const before = rss('VmRSS');

  const sock = netConnect({ host: '127.0.0.1', port });
  await new Promise((r) => sock.on('connect', r));
  let received = 0;
  sock.once('data', (b) => {
    received += b.length;
    assert.match(b.toString('latin1'), /^HTTP\/1\.1 200 [^]*\r\ncontent-type: text\/event-stream\r\n/i);
    sock.pause();                                         // and never read again
  });
  sock.write(call(2, 'flood'));
  await waitFor('the front to give up on the client', () =>
    new RegExp(`conn \\d+: more than ${8 * 1024 * 1024} bytes of answer unread; closing`).test(d.stderr), 30000, 100);
  sock.destroy();
  assert.ok(received < 1024 * 1024, `the client read ${received} bytes`);
  // What the front ever held on top of what it had: the 8 MiB bound and the buffers around it (more in
  // a sanitizer build, whose quarantine keeps freed blocks), never the ~64 MiB of the stream.
  const hwm = rss('VmHWM');
  t.diagnostic(`front RSS ${before} kB before, peak ${hwm} kB; the client read ${received} bytes before it stopped`);
  assert.ok(hwm - before < 48 * 1024, `the front's peak RSS grew from ${before} to ${hwm} kB`);
  // The same front and the same session serve the next call.
  assert.equal(d.frontPid(), frontPid);
  const after = await exchange(port, to(post(port, JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call',
    params: { name: 'honest', arguments: {} } }), h)));
  assert.equal(after.status, 200, after.body);
  assert.match(after.body, /honest answer/);
  await d.stop();
});

// DELETE of a 2025-11-25 session while one of its answers is still streaming: the stream ends (the
// chunked terminator, no result), the DELETE is answered, and the session is gone for every request.
test('DELETE of a session ends its open SSE answer; the session is gone afterwards', async (t) => {
  const { d, port, to, h, call } = await hostileFront(t);
  const sock = netConnect({ host: '127.0.0.1', port });
  await new Promise((r) => sock.on('connect', r));
  let text = '';
  const ended = new Promise((r) => sock.on('data', (b) => { text += b.toString('latin1'); if (text.endsWith('\r\n0\r\n\r\n')) r(); }));
  sock.write(call(2, 'stall'));
  await waitFor('the stream to start', () => /"notifications\/progress"/.test(text), 10000, 20);
  assert.match(text, /^HTTP\/1\.1 200 [^]*\r\ncontent-type: text\/event-stream\r\n/i);

  const del = await exchange(port, to(post(port, '', h)).replace(/^POST /, 'DELETE ').replace(/Content-Length: \d+/, 'Content-Length: 0'));
  assert.equal(del.status, 200, del.body);
  await Promise.race([ended, sleep(5000).then(() => { throw new Error(`the stream did not end:\n${text}`); })]);
  assert.doesNotMatch(text, /"result"/);
  sock.destroy();
  assert.match(d.stderr, /session [0-9a-f]{8}… of \S+ ended by DELETE/);

  const again = await exchange(port, call(3, 'honest'));
  assert.equal(again.status, 404, again.body);
  await d.stop();
});

// SEP-2243: arguments whose schema says x-mcp-header travel in Mcp-Param-* headers too; the broker
// refuses a request whose header and argument disagree (400, -32020, naming the header).
test('2026-07-28: Mcp-Param-* headers must match the arguments they mirror', async (t) => {
  const d = await startFront(t, { anonymous: true });
  const { port } = d;
  await waitFor('the conformance worker', async () => (await exchange(port, post(port, JSON.stringify({
    jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {},
      clientInfo: { name: 'front-test', version: '0' } } })).replace('/mcp/inventory', '/mcp/conformance'))).status === 200,
  10000, 100);
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
  const call = async (args, params) => {
    const r = await exchange(port, post(port, JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call',
      params: { name: 'test_custom_headers', arguments: args, _meta: meta } }), {
      'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'test_custom_headers', ...params,
    }).replace('/mcp/inventory', '/mcp/conformance'));
    return { status: r.status, body: r.body ? JSON.parse(r.body) : null };
  };
  const ok = (r) => {
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal(r.body.result.content[0].text, 'Custom headers test completed');
  };
  const mismatch = (r, header) => {
    assert.equal(r.status, 400, JSON.stringify(r));
    assert.equal(r.body.error.code, -32020);
    assert.equal(r.body.error.data.header, header);
  };
  ok(await call({ region: 'eu-west' }, { 'Mcp-Param-Region': 'eu-west' }));
  ok(await call({ region: 'Hello' }, { 'mcp-param-region': `=?base64?${Buffer.from('Hello').toString('base64')}?=` }));
  ok(await call({ region: 'eu', priority: 7 }, { 'Mcp-Param-Region': 'eu', 'Mcp-Param-Priority': '007' })); // numeric
  mismatch(await call({ region: 'eu-west' }, { 'Mcp-Param-Region': 'us-east' }), 'Region');
  mismatch(await call({ region: 'eu-west' }, {}), 'Region');                                    // missing
  mismatch(await call({ region: 'Hello' }, { 'Mcp-Param-Region': '=?base64?SGVsbG8?=' }), 'Region'); // bad padding
  mismatch(await call({ region: 'eu' }, { 'Mcp-Param-Region': 'eu', 'Mcp-Param-Priority': '7' }), 'Priority'); // no argument
  mismatch(await call({ region: 'eu', priority: 7 }, { 'Mcp-Param-Region': 'eu', 'Mcp-Param-Priority': '7.5' }), 'Priority');
  await d.stop();
});

test('socket activation: the listener systemd passes is used instead of binding', async (t) => {
  const dir = mkdtempSync('/tmp/bastion-front-act-');
  const configured = await freePort(), passed = await freePort();
  t.after(() => removeDaemonDir(dir));
  spawnSync('chmod', ['755', dir]);
  writeFileSync(join(dir, 'bastion.conf'), `bastion = {
        socket = "${dir}/mcp.sock";
        control_socket = "${dir}/control.sock";
        state_dir = "${dir}/state";
        runtime_dir = "${dir}/run";
        libexec_dir = ${q(bin(''))};
        audit_dir = "${dir}/audit";
        secrets_key_file = "${dir}/secrets.key";
        worker_uids = [ 63780, 63795 ];
};
roles = { auditor = { scopes = [ "inventory:read" ]; }; };
users = ( { user = "root"; role = "auditor"; } );
servers = { inventory = { domain = "inventory"; demo_data = true; tools = { get_stock = { scopes = [ "inventory:read" ]; }; }; }; };
http = { listen = "127.0.0.1:${configured}"; plain = true; };
`);
  const p = spawn('systemd-socket-activate', ['-l', `127.0.0.1:${passed}`, bin('bastiond'), '--config', join(dir, 'bastion.conf')],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  p.stdout.setEncoding('utf8').on('data', (s) => (stderr += s));
  p.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
  const exited = new Promise((r) => p.on('exit', (code, signal) => r({ code, signal })));
  t.after(() => { try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ } });
  // The first connection starts bastiond (systemd-socket-activate execs it); it waits in the backlog.
  const r = await waitFor('the activated front to answer', async () => {
    const x = await exchange(passed, post(passed, PING).replace(`127.0.0.1:${passed}`, `127.0.0.1:${configured}`), { timeoutMs: 5000 }).catch(() => null);
    return x?.status ? x : null;
  }, 20000, 200).catch((e) => { throw new Error(`${e.message}\n${stderr}`); });
  assert.ok(r.status >= 200, stderr);
  assert.match(stderr, /HTTP: using the listener passed by systemd \(socket activation\)/);
  const refused = await exchange(configured, post(configured, PING), { timeoutMs: 3000 });
  assert.equal(refused.status, null, 'the configured address is not bound');
  process.kill(p.pid, 'SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
});

test('systemd/bastiond.socket passes systemd-analyze verify', { skip: spawnSync('systemd-analyze', ['--version']).error && 'no systemd-analyze' }, () => {
  const dir = mkdtempSync('/tmp/bastion-socket-unit-');
  try {
    const unit = (name) => readFileSync(new URL(`../../systemd/${name}`, import.meta.url), 'utf8')
      .replace(/^ExecStart=.*$/m, 'ExecStart=/bin/true').replace(/^Documentation=.*\n/m, '');
    writeFileSync(join(dir, 'bastiond.service'), unit('bastiond.service'));
    writeFileSync(join(dir, 'bastiond.socket'), unit('bastiond.socket'));
    const r = spawnSync('systemd-analyze', ['verify', join(dir, 'bastiond.socket')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stderr, /bastiond\.socket/, r.stderr);
    assert.match(readFileSync(join(dir, 'bastiond.socket'), 'utf8'), /^ListenStream=127\.0\.0\.1:8443$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
