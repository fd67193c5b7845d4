// bench/http: tools/call get_stock per second and p50/p99 latency at 1, 16 and 64 connections over TLS
// keep-alive with a bearer JWT, through the whole Bastion chain (bastion-front -> broker -> sandboxed
// worker -> SQLite), with the broker's verified-token cache on and off, against the official TypeScript
// SDK's Streamable HTTP server (McpServer + StreamableHTTPServerTransport, JSON responses) serving a
// get_stock tool over TLS in this same process, same client, same run; printed as a table with the
// ratio. It prints; it asserts nothing.
// Usage (as root, after `npm ci` in tests/): node bench/http.mjs [BUILD_DIR [SECONDS]]
// (`node bench/http.mjs --sdk-server PORT CERT KEY` is the SDK server's own process.)
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign as cryptoSign } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('..', import.meta.url));
const SDK = (p) => import(join(SRC, 'tests/node_modules/@modelcontextprotocol/sdk/dist/esm', p));
const { McpServer } = await SDK('server/mcp.js');
const { StreamableHTTPServerTransport } = await SDK('server/streamableHttp.js');
const { z } = await import(join(SRC, 'tests/node_modules/zod/index.js'));

const BUILD = resolve(process.argv[2] ?? join(SRC, 'build'));
const SECONDS = Number(process.argv[3] ?? 3);
const CONCURRENCY = [1, 16, 64];
const ISSUER = 'https://issuer.bench.test';
// Worker uids of the benchmark's daemons: clear of the integration tests' blocks and bench/calls.
const UIDS = [62920, 62935];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64u = (b) => Buffer.from(b).toString('base64url');

async function freePort() {
  return new Promise((r) => { const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => r(port)); }); });
}

// ---- keys, certificate, token ----

const SERVER_MODE = process.argv[2] === '--sdk-server';
let dir, cert, key, ca, signer;

function setup() {
  dir = mkdtempSync('/tmp/bastion-bench-http-');
  chmodSync(dir, 0o755);
  cert = join(dir, 'cert.pem');
  key = join(dir, 'key.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
    '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(gen.stderr);
  ca = readFileSync(cert);
  signer = { kid: 'bench', ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) };
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...signer.publicKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' }] }));
}

function token(aud) {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64u(JSON.stringify({ typ: 'at+jwt', alg: 'ES256', kid: 'bench' }))}.${b64u(JSON.stringify({
    iss: ISSUER, aud, sub: 'bench', iat: now, exp: now + 3600, bastion_role: 'auditor', scope: 'inventory:read' }))}`;
  return `${input}.${b64u(cryptoSign('sha256', Buffer.from(input), { key: signer.privateKey, dsaEncoding: 'ieee-p1363' }))}`;
}

// ---- bastiond ----

async function startBastion(cache) {
  const port = await freePort();
  const d = join(dir, cache ? 'cache' : 'nocache');
  spawnSync('mkdir', ['-p', d]);
  chmodSync(d, 0o755);
  writeFileSync(join(d, 'bastion.conf'), `bastion = {
        socket = "${d}/mcp.sock"; control_socket = "${d}/control.sock"; state_dir = "${d}/state";
        runtime_dir = "${d}/run"; libexec_dir = "${BUILD}"; audit_dir = "${d}/audit";
        secrets_key_file = "${d}/secrets.key"; worker_uids = [ ${UIDS[0]}, ${UIDS[1]} ];
};
roles = { auditor = { scopes = [ "inventory:read" ]; }; };
servers = { inventory = { domain = "inventory"; demo_data = true;
        tools = { get_stock = { scopes = [ "inventory:read" ]; }; }; }; };
http = { listen = "127.0.0.1:${port}"; tls_cert = "${cert}"; tls_key = "${key}"; max_connections_per_address = 256; };
oauth = { issuer = "${ISSUER}"; jwks_file = "${dir}/jwks.json"; authorization_servers = [ "https://as.bench.test" ];
        token_cache = ${cache}; };
`);
  const env = { ...process.env, BASTION_LOG_LEVEL: '4' };
  const proc = spawn(join(BUILD, 'bastiond'), ['--config', join(d, 'bastion.conf')], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  proc.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
  const base = `https://127.0.0.1:${port}`;
  const target = { name: `bastion (token cache ${cache ? 'on' : 'off'})`, base, path: '/mcp/inventory', auth: `Bearer ${token(`${base}/mcp/inventory`)}`,
    stop: async () => { proc.kill('SIGTERM'); await new Promise((r) => proc.on('exit', r)); } };
  for (let i = 0; i < 200; i++) {
    const r = await call(new Agent({ keepAlive: true, ca }), target, initBody(0), {}).catch(() => null);
    if (r?.status === 200) return target;
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error(`bastiond did not serve:\n${stderr}`);
}

// ---- the SDK server ----

// Runs in its own process (`node bench/http.mjs --sdk-server PORT CERT KEY`), so it does not share the
// client's event loop.
async function sdkServer([port, certPath, keyPath]) {
  const sessions = new Map();
  const server = createHttpsServer({ cert: readFileSync(certPath), key: readFileSync(keyPath) }, async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    const sid = req.headers['mcp-session-id'];
    let transport = sid ? sessions.get(sid) : undefined;
    if (!transport) {
      transport = new StreamableHTTPServerTransport({ sessionIdGenerator: randomUUID, enableJsonResponse: true,
        onsessioninitialized: (id) => sessions.set(id, transport) });
      const mcp = new McpServer({ name: 'sdk-inventory', version: '1.0.0' });
      mcp.registerTool('get_stock', { description: 'Stock of one SKU', inputSchema: { sku: z.string() } },
        async ({ sku }) => {
          const stock = { sku, warehouse: 'WH-1', on_hand: 120, reserved: 20, available: 100 };
          return { content: [{ type: 'text', text: JSON.stringify(stock) }], structuredContent: stock };
        });
      await mcp.connect(transport);
    }
    await transport.handleRequest(req, res, body);
  });
  server.listen(Number(port), '127.0.0.1');
}

async function startSdk() {
  const port = await freePort();
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), '--sdk-server', String(port), cert, key],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  const target = { name: 'official SDK server', base: `https://127.0.0.1:${port}`, path: '/mcp', auth: null,
    stop: async () => { proc.kill('SIGTERM'); await new Promise((r) => proc.on('exit', r)); } };
  for (let i = 0; i < 100; i++) {
    const r = await call(new Agent({ keepAlive: true, ca }), target, initBody(0), {}).catch(() => null);
    if (r?.status === 200) return target;
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error('the SDK server did not start');
}

// ---- the client ----

const initBody = (id) => ({ jsonrpc: '2.0', id, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '0' } } });
const callBody = (id) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'get_stock', arguments: { sku: 'SKU-1001' } } });

function call(agent, target, msg, extra) {
  const body = JSON.stringify(msg);
  return new Promise((resolveP, reject) => {
    const req = httpsRequest(`${target.base}${target.path}`, { method: 'POST', agent, ca, servername: 'localhost', headers: {
      'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body),
      ...(target.auth ? { authorization: target.auth } : {}), ...extra } }, (res) => {
      let s = '';
      res.setEncoding('utf8').on('data', (c) => (s += c)).on('end', () => resolveP({ status: res.statusCode, headers: res.headers, text: s }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// One client loop: its own connection and session; calls until the deadline.
async function loop(target, deadline, lat) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const init = await call(agent, target, initBody(0), {});
  if (init.status !== 200) throw new Error(`${target.name}: initialize ${init.status} ${init.text}`);
  const h = { 'mcp-session-id': init.headers['mcp-session-id'], 'mcp-protocol-version': '2025-11-25' };
  await call(agent, target, { jsonrpc: '2.0', method: 'notifications/initialized' }, h);
  for (let id = 1; ; id++) {
    const t0 = process.hrtime.bigint();
    const r = await call(agent, target, callBody(id), h);
    const t1 = process.hrtime.bigint();
    if (r.status !== 200 || !r.text.includes('"result"')) throw new Error(`${target.name}: tools/call ${r.status} ${r.text}`);
    if (deadline && Date.now() > deadline) break;
    if (lat) lat.push(Number(t1 - t0) / 1e6);
    if (!deadline && id >= 200) break;
  }
  agent.destroy();
}

// With wrk (Debian package "wrk"; BENCH_CLIENT=node forces the Node loop): one legacy session made here,
// then wrk's C client drives `c` keep-alive TLS connections for SECONDS with the same request, so the
// load generator costs little next to the servers; non-2xx answers are counted and fail the row.
const WRK = process.env.BENCH_CLIENT !== 'node' && spawnSync('wrk', ['--version']).error === undefined;

async function measureWrk(target, c) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
  const init = await call(agent, target, initBody(0), {});
  if (init.status !== 200) throw new Error(`${target.name}: initialize ${init.status} ${init.text}`);
  const h = { 'Mcp-Session-Id': init.headers['mcp-session-id'], 'MCP-Protocol-Version': '2025-11-25' };
  await call(agent, target, { jsonrpc: '2.0', method: 'notifications/initialized' }, h);
  const check = await call(agent, target, callBody(1), h);
  agent.destroy();
  if (check.status !== 200 || !check.text.includes('"result"')) throw new Error(`${target.name}: tools/call ${check.status} ${check.text}`);
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...h,
    ...(target.auth ? { Authorization: target.auth } : {}) };
  const script = join(dir, 'wrk.lua');
  writeFileSync(script, [
    'wrk.method = "POST"',
    `wrk.body = ${JSON.stringify(JSON.stringify(callBody(1)))}`,
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`),
    'done = function(s, latency, requests)',
    '  local e = s.errors',
    '  io.write(string.format("WRK %d %d %.4f %.4f %d\\n", s.requests, s.duration, latency:percentile(50) / 1000,',
    '    latency:percentile(99) / 1000, e.status + e.connect + e.read + e.write + e.timeout))',
    'end', ''].join('\n'));
  const run = (secs) => spawnSync('wrk', ['-t1', `-c${c}`, `-d${secs}s`, '-s', script, `${target.base}${target.path}`],
    { encoding: 'utf8' });
  run(1);                                                                                  // warm-up
  const r = run(SECONDS);
  const m = /^WRK (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)$/m.exec(r.stdout);
  if (!m) throw new Error(`${target.name}: wrk said ${r.stdout}${r.stderr}`);
  if (Number(m[5]) > 0) throw new Error(`${target.name}: ${m[5]} of ${m[1]} calls failed under wrk at ${c} connections`);
  return { rate: Number(m[1]) / (Number(m[2]) / 1e6), p50: Number(m[3]), p99: Number(m[4]) };
}

async function measure(target, c) {
  if (WRK) return measureWrk(target, c);
  await Promise.all(Array.from({ length: c }, () => loop(target, 0, null)));       // warm-up
  const lat = [];
  const started = Date.now();
  await Promise.all(Array.from({ length: c }, () => loop(target, started + SECONDS * 1000, lat)));
  const secs = (Date.now() - started) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(lat.length * p))];
  return { rate: lat.length / secs, p50: pct(0.5), p99: pct(0.99) };
}

// ---- run ----

async function main() {
  const results = {};
  setup();
  try {
    for (const start of [() => startBastion(true), () => startBastion(false), startSdk]) {
      const target = await start();
      results[target.name] = {};
      for (const c of CONCURRENCY) results[target.name][c] = await measure(target, c);
      await target.stop();
    }
  } finally {
    // bastiond made the audit files append-only (bastion-audit(5)): lift the flag, or they cannot go.
    spawnSync('sh', ['-c', 'chattr -a "$1"/*/audit/* 2>/dev/null', 'sh', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
  const sdk = results['official SDK server'];
  console.log(`tools/call get_stock over TLS keep-alive, legacy sessions, ES256 JWT, ${SECONDS} s per cell, ` +
    `${WRK ? 'load from wrk (one thread, C)' : 'load from Node (BENCH_CLIENT=node or no wrk)'}; ` +
    'one Node client process, the SDK server in another');
  console.log(`${'server'.padEnd(28)} ${'conns'.padStart(5)} ${'calls/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'vs SDK'.padStart(7)}`);
  for (const n of Object.keys(results)) {
    for (const c of CONCURRENCY) {
      const r = results[n][c];
      console.log(`${n.padEnd(28)} ${String(c).padStart(5)} ${r.rate.toFixed(0).padStart(9)} ${r.p50.toFixed(3).padStart(8)} ` +
        `${r.p99.toFixed(3).padStart(8)} ${(r.rate / sdk[c].rate).toFixed(2).padStart(6)}x`);
    }
  }
}

if (SERVER_MODE)
  await sdkServer(process.argv.slice(3));
else
  await main();
