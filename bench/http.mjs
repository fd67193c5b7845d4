// bench/http: tools/call get_stock per second and p50/p99 latency at 1, 16 and 64 connections over TLS
// keep-alive with a bearer JWT, through the whole Bastion chain (bastion-front -> broker -> sandboxed
// worker -> SQLite), with the broker's verified-token cache on (an ES256 token) and off (an ES256 and an
// RS256 token), against the official TypeScript SDK's Streamable HTTP server (McpServer +
// StreamableHTTPServerTransport, JSON responses) serving a get_stock tool over TLS in its own process,
// same load generator, same run; printed as a table with the ratio, and the sandboxed worker on its own
// stdio (bench/calls) as the baseline. It prints; it asserts nothing. The load generator is wrk
// (apt-get install wrk).
// Usage (as root, after `npm ci` in tests/): node bench/http.mjs [BUILD_DIR [SECONDS]]
// BENCH_QUICK=CONNS: only Bastion with the token cache on, at CONNS connections, with its CPU per call
// by process (for before/after pairs of builds: alternate them, compare medians).
// (`node bench/http.mjs --sdk-server PORT CERT KEY` is the SDK server's own process.)
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID, sign as cryptoSign } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const QUICK = process.env.BENCH_QUICK ? Number(process.env.BENCH_QUICK) : null;
const CONCURRENCY = QUICK ? [QUICK] : [1, 16, 64];
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
let dir, cert, key, ca, signers;

function setup() {
  dir = mkdtempSync('/tmp/bastion-bench-http-');
  chmodSync(dir, 0o755);
  cert = join(dir, 'cert.pem');
  key = join(dir, 'key.pem');
  const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
    '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  if (gen.status !== 0) throw new Error(gen.stderr);
  ca = readFileSync(cert);
  // Two signing keys: ES256 (P-256) and RS256 (2048 bits). Verifying one ES256 signature costs ~70 µs
  // on this class of CPU, an RS256 one ~20 µs (`openssl speed ecdsap256 rsa2048`): with the token cache
  // off, which one the issuer uses moves the broker's cost per call more than anything Bastion does.
  signers = {
    ES256: { kid: 'bench-es256', ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) },
    RS256: { kid: 'bench-rs256', ...generateKeyPairSync('rsa', { modulusLength: 2048 }) },
  };
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: Object.entries(signers).map(([alg, s]) =>
    ({ ...s.publicKey.export({ format: 'jwk' }), kid: s.kid, alg, use: 'sig' })) }));
}

function token(aud, alg) {
  const now = Math.floor(Date.now() / 1000);
  const s = signers[alg];
  const input = `${b64u(JSON.stringify({ typ: 'at+jwt', alg, kid: s.kid }))}.${b64u(JSON.stringify({
    iss: ISSUER, aud, sub: 'bench', iat: now, exp: now + 3600, bastion_role: 'auditor', scope: 'inventory:read' }))}`;
  return `${input}.${b64u(cryptoSign('sha256', Buffer.from(input), alg === 'ES256' ?
    { key: s.privateKey, dsaEncoding: 'ieee-p1363' } : { key: s.privateKey }))}`;
}

// ---- bastiond ----

// One bastiond; a target per token algorithm in algs, all on the same daemon.
async function startBastion(cache, algs) {
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
  const stop = async () => { proc.kill('SIGTERM'); await new Promise((r) => proc.on('exit', r)); };
  const targets = algs.map((alg) => ({ name: `bastion (cache ${cache ? 'on' : 'off'}, ${alg})`, pid: proc.pid, base,
    path: '/mcp/inventory', auth: `Bearer ${token(`${base}/mcp/inventory`, alg)}`, stop }));
  for (let i = 0; i < 200; i++) {
    const r = await call(new Agent({ keepAlive: true, ca }), targets[0], initBody(0), {}).catch(() => null);
    if (r?.status === 200) return targets;
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
  const target = { name: 'official SDK server', pid: proc.pid, base: `https://127.0.0.1:${port}`, path: '/mcp', auth: null,
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

// The load generator is wrk (one thread, pinned to the last CPU with taskset, for every server), driven by
// a Lua script: it POSTs tools/call get_stock with a fresh id per request on the one session the bench
// opened beforehand, counts every answer that is not 200 with a "result", and prints the counts and
// wrk's own latency percentiles.
const WRK_LUA = `
wrk.method = "POST"
id, bad = 0, 0
local threads = {}
function setup(t)
  table.insert(threads, t)
  local i = 0
  for sid in string.gmatch(os.getenv("BENCH_SIDS"), "[^ ]+") do
    i = i + 1
    if i == #threads then t:set("sid", sid) end
  end
end
function request()
  id = id + 1
  if sid ~= "-" then wrk.headers["Mcp-Session-Id"] = sid end
  return wrk.format("POST", nil, nil,
    '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call","params":{"name":"get_stock","arguments":{"sku":"SKU-1001"}}}')
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"result"', 1, true) then
    bad = bad + 1
    if bad == 1 then io.stderr:write("first failed call: " .. status .. " " .. string.sub(body, 1, 200) .. "\\n") end
  end
end
function done(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  io.write(string.format("WRK %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), b,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
`;
const CPUS = Number(spawnSync('nproc', { encoding: 'utf8' }).stdout.trim() || 1);

// Bastion caps calls in flight per session at 16 (lib/bounds.h), so each wrk thread gets its own
// session and at most 16 connections: -t1 at 1 and 16 connections, -t4 at 64, for every server.
async function session(target) {
  const agent = new Agent({ keepAlive: true, ca });
  const init = await call(agent, target, initBody(0), {});
  if (init.status !== 200) throw new Error(`${target.name}: initialize ${init.status} ${init.text}`);
  const sid = init.headers['mcp-session-id'];
  const h = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  await call(agent, target, { jsonrpc: '2.0', method: 'notifications/initialized' }, h);
  const r0 = await call(agent, target, callBody(1), h);
  if (r0.status !== 200 || !r0.text.includes('"result"')) throw new Error(`${target.name}: tools/call ${r0.status} ${r0.text}`);
  agent.destroy();
  return sid ?? '-';
}

// CPU time (user + system, in clock ticks of 10 ms) of a process and all its descendants: for Bastion
// bastiond, broker, front and workers; for the SDK its one node process. Per call, it is the cost of
// serving one, which contention between the servers and wrk for 2 CPUs does not change the way it
// changes throughput.
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
// Also by process name (bastion-front, bastion-broker, ...), summed over processes of that name.
function cpuTicks(root) {
  const procs = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(d), { comm: st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')), ppid: Number(f[1]),
        ticks: Number(f[11]) + Number(f[12]) });
    } catch { /* gone meanwhile */ }
  }
  const out = { total: 0, by: {} };
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    const p = procs.get(pid);
    if (p) {
      out.total += p.ticks;
      out.by[p.comm] = (out.by[p.comm] ?? 0) + p.ticks;
    }
    for (const [q, v] of procs) if (v.ppid === pid) todo.push(q);
  }
  return out;
}

async function measure(target, c) {
  const threads = Math.max(1, Math.ceil(c / 16));
  const sids = [];
  for (let i = 0; i < threads; i++) sids.push(await session(target));
  const lua = join(dir, 'call.lua');
  writeFileSync(lua, WRK_LUA);
  const headers = ['Content-Type: application/json', 'Accept: application/json, text/event-stream',
    'MCP-Protocol-Version: 2025-11-25', ...(target.auth ? [`Authorization: ${target.auth}`] : [])];
  const run = (secs) => {
    const args = ['-c', String(CPUS - 1), 'wrk', `-t${threads}`, `-c${c}`, `-d${secs}s`, '--timeout', '5s', '-s', lua,
      ...headers.flatMap((x) => ['-H', x]), `${target.base}${target.path}`];
    const out = spawnSync('taskset', args, { encoding: 'utf8', env: { ...process.env, BENCH_SIDS: sids.join(' ') } });
    const m = /^WRK (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(out.stdout ?? '');
    if (!m) throw new Error(`${target.name}: wrk failed: ${out.stdout}${out.stderr}`);
    const [reqs, us, p50, p99, bad, errs] = m.slice(1).map(Number);
    if (bad || errs) throw new Error(`${target.name}, ${c} connections: ${bad} calls without a 200 result, ${errs} wrk errors; ${out.stderr.trim()}`);
    return { rate: reqs / (us / 1e6), p50: p50 / 1000, p99: p99 / 1000 };
  };
  run(1);                                                                      // warm-up
  const t0 = cpuTicks(target.pid);
  const r = run(SECONDS);
  const t1 = cpuTicks(target.pid);
  const perCall = (ticks) => (ticks / CLK_TCK) * 1e6 / (r.rate * SECONDS);
  r.cpu = perCall(t1.total - t0.total);
  r.cpuBy = Object.fromEntries(Object.entries(t1.by).map(([k, v]) => [k, perCall(v - (t0.by[k] ?? 0))]));
  return r;
}

// The worker on its own stdio, as bench/calls measures it (same get_stock, sequential): the baseline
// for "p99 added over calling the worker directly".
function workerDirect() {
  const out = spawnSync(join(BUILD, 'bench/calls'), [BUILD, '5000'], { encoding: 'utf8' });
  const m = /^worker on its stdio, --sandbox\s+([\d.]+)\s+([\d.]+)\s+(\d+)/m.exec(out.stdout ?? '');
  if (!m) throw new Error(`bench/calls failed: ${out.stdout}${out.stderr}`);
  return { p50: Number(m[1]) / 1000, p99: Number(m[2]) / 1000, rate: Number(m[3]) };
}

// ---- run ----

async function main() {
  if (spawnSync('wrk', ['-v']).error) throw new Error('bench/http needs wrk: apt-get install wrk');
  const results = {};
  const direct = workerDirect();
  setup();
  try {
    const starts = QUICK ? [() => startBastion(true, ['ES256'])] :
      [() => startBastion(true, ['ES256']), () => startBastion(false, ['ES256', 'RS256']), async () => [await startSdk()]];
    for (const start of starts) {
      const targets = await start();
      for (const target of targets) {
        results[target.name] = {};
        for (const c of CONCURRENCY) results[target.name][c] = await measure(target, c);
      }
      await targets[0].stop();
    }
  } finally {
    // bastiond made the audit files append-only (bastion-audit(5)): lift the flag, or they cannot go.
    spawnSync('sh', ['-c', 'chattr -a "$1"/*/audit/* 2>/dev/null', 'sh', dir]);
    rmSync(dir, { recursive: true, force: true });
  }
  const byProcess = (r) => Object.entries(r.cpuBy).map(([k, v]) => `${k.replace(/^bastion-/, '')} ${v.toFixed(0)}`).join(', ');
  if (QUICK) {
    for (const n of Object.keys(results)) {
      const r = results[n][QUICK];
      console.log(`${n}, ${QUICK} conns, ${SECONDS} s: ${r.rate.toFixed(0)} calls/s, p50 ${r.p50.toFixed(3)} ms, ` +
        `p99 ${r.p99.toFixed(3)} ms, CPU µs per call ${r.cpu.toFixed(0)} (${byProcess(r)})`);
    }
    return;
  }
  const sdk = results['official SDK server'];
  console.log(`tools/call get_stock over TLS keep-alive, legacy 2025-11-25 sessions, JWT (ES256 P-256 or RS256 2048), ${SECONDS} s per cell ` +
    `after 1 s warm-up; load: wrk (-t1, -t4 at 64 conns: one session per thread) pinned to CPU ${CPUS - 1} (taskset), servers unpinned, ${CPUS} CPUs`);
  console.log(`${'server'.padEnd(28)} ${'conns'.padStart(5)} ${'calls/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ` +
    `${'vs SDK'.padStart(7)} ${'CPU µs/call'.padStart(12)} ${'vs SDK'.padStart(7)}`);
  for (const n of Object.keys(results)) {
    for (const c of CONCURRENCY) {
      const r = results[n][c];
      console.log(`${n.padEnd(28)} ${String(c).padStart(5)} ${r.rate.toFixed(0).padStart(9)} ${r.p50.toFixed(3).padStart(8)} ` +
        `${r.p99.toFixed(3).padStart(8)} ${(r.rate / sdk[c].rate).toFixed(2).padStart(6)}x ${r.cpu.toFixed(0).padStart(12)} ` +
        `${(sdk[c].cpu / r.cpu).toFixed(2).padStart(6)}x`);
    }
  }
  console.log(`${'worker direct (stdio)'.padEnd(28)} ${'1'.padStart(5)} ${direct.rate.toFixed(0).padStart(9)} ` +
    `${direct.p50.toFixed(3).padStart(8)} ${direct.p99.toFixed(3).padStart(8)}   (bench/calls, sandboxed worker on pipes)`);
  for (const n of Object.keys(results).filter((x) => x.startsWith('bastion')))
    for (const c of CONCURRENCY) console.log(`${n}, ${c} conns: CPU µs per call by process: ${byProcess(results[n][c])}`);
  for (const n of Object.keys(results).filter((x) => x.startsWith('bastion'))) {
    const r = results[n][1];
    console.log(`${n}, 1 conn: p50 added over the worker direct ${(r.p50 - direct.p50).toFixed(3)} ms, ` +
      `p99 added ${(r.p99 - direct.p99).toFixed(3)} ms`);
  }
}

if (SERVER_MODE)
  await sdkServer(process.argv.slice(3));
else
  await main();
