// Integration harness: runs a real bastiond (with its real broker and sandboxed workers) from the build
// tree on a generated configuration in a fresh temporary directory, and drives it through
// bastion-stdio with the official MCP TypeScript SDK clients. Tests run as root.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { constants as osConstants } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { StdioClientTransport as StdioTransportV1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioTransportV2 } from '@modelcontextprotocol/client/stdio';

const SRC_DIR = fileURLToPath(new URL('../..', import.meta.url));
export const BUILD_DIR = resolve(process.env.BUILD_DIR ?? join(SRC_DIR, 'build'));
export const bin = (name) => join(BUILD_DIR, name);

// The second local user of the tests: mapped to a role that may read but not reorder.
export const TEST_USER = 'bastion-test-nobody';
export const INVENTORY_TOOLS = ['create_reorder', 'get_reorder', 'get_stock', 'list_low_stock', 'list_reorders'];
export const READ_TOOLS = ['get_reorder', 'get_stock', 'list_low_stock', 'list_reorders'];

const READY_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 10000;
const PROBE_TIMEOUT_MS = 2000;
// Each daemon gets its own block of worker uids, so test files running in parallel never share a
// uid (and with it the per-uid task limit of the sandbox).
const UID_BASE = 62000;
const UID_BLOCK = 16;
const UID_BLOCKS = 50;
const UID_LOCKS = '/run/bastion-test-uids';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what, fn, timeoutMs, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(intervalMs);
  }
}

// ---- the test user ----

function idOf(flag, user) {
  const r = spawnSync('id', [flag, user], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : null;
}

export function ensureTestUser() {
  if (idOf('-u', TEST_USER) === null) {
    // Test files start in parallel; a concurrent useradd of the same name fails, which is fine.
    spawnSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell',
      '/usr/sbin/nologin', TEST_USER], { encoding: 'utf8' });
  }
  const uid = idOf('-u', TEST_USER), gid = idOf('-g', TEST_USER);
  assert.ok(uid !== null && gid !== null, `cannot create the test user ${TEST_USER}`);
  return { uid, gid };
}

// setpriv arguments that run the rest of the command line as this local user (uid, gid and groups).
function asUser(user) {
  const uid = idOf('-u', user), gid = idOf('-g', user);
  assert.ok(uid !== null && gid !== null, `no local user ${user}`);
  return ['--reuid', String(uid), '--regid', String(gid), '--init-groups', '--'];
}

// ---- /proc ----

function procStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { pid, state: f[0], ppid: Number(f[1]), start: f[19] };
  } catch {
    return null;
  }
}

export function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s !== '');
  } catch {
    return [];
  }
}

function allProcs() {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map((d) => procStat(Number(d))).filter(Boolean);
}

// Every live descendant of pid (not pid itself), found by following ppid links.
export function descendants(pid) {
  const procs = allProcs();
  const out = [];
  let frontier = [pid];
  while (frontier.length) {
    const kids = procs.filter((p) => frontier.includes(p.ppid));
    out.push(...kids);
    frontier = kids.map((p) => p.pid);
  }
  return out.map((p) => ({ ...p, argv: cmdline(p.pid) }));
}

const alive = (p) => {
  const now = procStat(p.pid);
  return now !== null && now.start === p.start && now.state !== 'Z';
};

// ---- uid blocks ----

function takeUidBlock() {
  mkdirSync(UID_LOCKS, { recursive: true });
  for (let i = 0; i < UID_BLOCKS; i++) {
    const dir = join(UID_LOCKS, String(i));
    try {
      mkdirSync(dir);
    } catch {
      // Taken; steal it only if its owner is gone.
      let owner = 0;
      try { owner = Number(readFileSync(join(dir, 'pid'), 'utf8')); } catch { /* being created */ }
      if (!owner || existsSync(`/proc/${owner}`)) continue;
      rmSync(dir, { recursive: true, force: true });
      try { mkdirSync(dir); } catch { continue; }
    }
    writeFileSync(join(dir, 'pid'), String(process.pid));
    return { dir, min: UID_BASE + i * UID_BLOCK, max: UID_BASE + (i + 1) * UID_BLOCK - 1 };
  }
  throw new Error('no free worker uid block for the test daemon');
}

// ---- configuration ----

const q = (s) => JSON.stringify(s);

// approval: the approval level of create_reorder ("none", "confirm", "approver").
export function inventoryServer(name, { demoData = true, approval = 'none', extra = '' } = {}) {
  return `        ${name} = {
                domain = "inventory";
                demo_data = ${demoData};
                tools = {
                        get_stock = { scopes = [ "inventory:read" ]; };
                        list_low_stock = { scopes = [ "inventory:read" ]; };
                        get_reorder = { scopes = [ "inventory:read" ]; };
                        list_reorders = { scopes = [ "inventory:read" ]; };
                        create_reorder = { scopes = [ "inventory:reorder" ]; approval = ${q(approval)}; };
                };${extra}
        };
`;
}

function configText(d, servers) {
  return `# Generated by tests/integration/harness.mjs.
bastion = {
        socket = ${q(d.socket)};
        control_socket = ${q(d.controlSocket)};
        state_dir = ${q(d.stateDir)};
        runtime_dir = ${q(d.runtimeDir)};
        libexec_dir = ${q(d.libexecDir)};
        audit_dir = ${q(join(d.dir, 'audit'))};
        secrets_key_file = ${q(join(d.dir, 'secrets.key'))};
        worker_uids = [ ${d.uids.min}, ${d.uids.max} ];
        call_timeout_ms = 10000;
        max_inflight = 16;
};

roles = {
        supply-chain-manager = { scopes = [ "inventory:read", "inventory:reorder" ]; };
        auditor = { scopes = [ "inventory:read" ]; };
};

users = (
        { user = "root"; role = "supply-chain-manager"; },
        { user = ${q(TEST_USER)}; role = "auditor"; }
);

servers = {
${servers.join('')}};
`;
}

// ---- a raw connection (readiness probe and protocol-level checks) ----

// Opens the socket, sends the preamble and resolves with the first answer line and a line reader.
// A connection idle for timeoutMs is destroyed, so a broker that accepts but never answers fails the
// probe instead of hanging it.
export function rawConnect(socketPath, server, timeoutMs = PROBE_TIMEOUT_MS) {
  return new Promise((resolveP, reject) => {
    const sock = createConnection(socketPath);
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    let buf = '';
    const waiting = [];
    const lines = [];
    let first = true;
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('connect', () => sock.write(`server ${server}\n`));
    sock.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (first) {
          first = false;
          resolveP({ answer: line, sock, next, request, close: () => sock.destroy() });
        } else if (waiting.length) waiting.shift()(line);
        else lines.push(line);
      }
    });
    sock.on('close', () => {
      if (first) reject(new Error('connection closed before the preamble answer'));
      while (waiting.length) waiting.shift()(null);
    });
    function next() {
      return new Promise((r) => (lines.length ? r(lines.shift()) : waiting.push(r)));
    }
    async function request(msg) {
      sock.write(JSON.stringify(msg) + '\n');
      const line = await next();
      return line === null ? null : JSON.parse(line);
    }
  });
}

const INITIALIZE = {
  jsonrpc: '2.0', id: 0, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'harness', version: '0' } },
};

// A server is ready once its worker has completed the broker's handshake: its tools are listed.
async function serverReady(socketPath, server) {
  const c = await rawConnect(socketPath, server);
  try {
    if (c.answer !== 'ok') return false;
    const init = await c.request(INITIALIZE);
    if (!init?.result) return false;
    c.sock.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');
    const list = await c.request({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
    return (list?.result?.tools?.length ?? 0) > 0;
  } finally {
    c.close();
  }
}

// ---- the daemon ----

// No daemon outlives the test process, however it ends.
const running = new Set();
process.on('exit', () => {
  for (const d of running) d.kill();
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    for (const d of running) d.kill();
    process.exit(128 + osConstants.signals[sig]);
  });
}

export class Daemon {
  // libexecDir: where bastiond finds bastion-broker and bastion-worker (default: the build directory).
  // prepare(d): runs once the daemon's directory exists, before bastiond starts (d.mount() goes there).
  // fileSizeLimit: RLIMIT_FSIZE in bytes for bastiond and so for every process it starts.
  static async start({ servers = [inventoryServer('inventory')], wait = ['inventory'], libexecDir, prepare, fileSizeLimit } = {}) {
    const d = new Daemon(servers, { libexecDir, prepare, fileSizeLimit });
    try {
      await d.waitReady(wait);
    } catch (e) {
      d.kill();
      throw new Error(`${e.message}\nbastiond stderr:\n${d.stderr}`);
    }
    return d;
  }

  constructor(servers, { libexecDir = BUILD_DIR, prepare, fileSizeLimit } = {}) {
    ensureTestUser();
    this.libexecDir = libexecDir;
    this.dir = mkdtempSync('/tmp/bastion-it-');
    // Workers run as unprivileged uids and must be able to reach their state directory below here.
    chmodSync(this.dir, 0o755);
    this.socket = join(this.dir, 'mcp.sock');
    this.controlSocket = join(this.dir, 'control.sock');
    this.stateDir = join(this.dir, 'state');
    this.runtimeDir = join(this.dir, 'run');
    this.configPath = join(this.dir, 'bastion.conf');
    this.uids = takeUidBlock();
    this.clients = [];
    this.mounts = [];
    this.writeConfig(servers);
    prepare?.(this);
    this.stderr = '';
    this.exited = null;
    const argv = [bin('bastiond'), '--config', this.configPath];
    if (fileSizeLimit) argv.unshift('prlimit', `--fsize=${fileSizeLimit}`, '--');
    this.proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.setEncoding('utf8').on('data', (s) => (this.stderr += s));
    this.proc.stderr.setEncoding('utf8').on('data', (s) => (this.stderr += s));
    this.exit = new Promise((r) => {
      this.proc.on('exit', (code, signal) => r((this.exited = { code, signal })));
      this.proc.on('error', (e) => r((this.exited = { error: `cannot run ${bin('bastiond')}: ${e.message}` })));
    });
    this.pid = this.proc.pid;
    running.add(this);
  }

  writeConfig(servers) {
    writeFileSync(this.configPath, configText(this, servers));
  }

  async waitReady(servers) {
    const exited = this.exit.then((e) => { throw new Error(`bastiond exited early: ${JSON.stringify(e)}`); });
    await Promise.race([exited, waitFor(`bastiond to serve ${servers.join(', ')}`, async () => {
      if (this.exited) return false; // the exit promise reports it
      if (!existsSync(this.socket)) return false;
      for (const s of servers) if (!(await serverReady(this.socket, s))) return false;
      return true;
    }, READY_TIMEOUT_MS, 50)]);
  }

  // Rewrites the configuration, sends SIGHUP and waits until the listed servers answer.
  async reload(servers, wait) {
    this.writeConfig(servers);
    process.kill(this.pid, 'SIGHUP');
    await this.waitReady(wait);
  }

  tree() {
    return descendants(this.pid);
  }

  // The bastion-worker processes serving one server (matched by the database path on their command
  // line); with a pid namespace the server proper is the deepest of them.
  workers(server) {
    const db = join(this.stateDir, server) + '/';
    return this.tree().filter((p) => p.argv.some((a) => a.includes('bastion-worker')) &&
      p.argv.some((a) => a.startsWith(db)));
  }

  workerPid(server) {
    const ws = this.workers(server);
    if (!ws.length) return null;
    const depth = (p) => { let n = 0; for (let x = p; x; x = ws.find((w) => w.pid === x.ppid)) n++; return n; };
    return ws.reduce((a, b) => (depth(b) > depth(a) ? b : a)).pid;
  }

  stdioArgs(server) {
    return [server, '--socket', this.socket];
  }

  // A 2025-11-25 client (SDK v1) through bastion-stdio. user: run the shim as this local user.
  // onElicit(params) => result: the human at the host; without it the client cannot be asked.
  async connectV1({ server = 'inventory', user, onElicit } = {}) {
    const transport = new StdioTransportV1({ ...this.shimCommand(server, user), stderr: 'pipe' });
    const client = new ClientV1({ name: 'bastion-it-v1', version: '1.0.0' },
      { capabilities: onElicit ? { elicitation: { form: {} } } : {} });
    if (onElicit) client.setRequestHandler(ElicitRequestSchema, (req) => onElicit(req.params));
    return this.track(client, transport);
  }

  // A 2026-07-28 client (SDK v2, pinned: it fails loudly if the broker does not speak that revision).
  async connectV2({ server = 'inventory', user, onElicit } = {}) {
    const transport = new StdioTransportV2({ ...this.shimCommand(server, user), stderr: 'pipe' });
    const client = new ClientV2({ name: 'bastion-it-v2', version: '1.0.0' }, {
      capabilities: onElicit ? { elicitation: { form: {} } } : {},
      versionNegotiation: { mode: { pin: '2026-07-28' } },
    });
    // The same handler answers the modern InputRequiredResult round trip.
    if (onElicit) client.setRequestHandler('elicitation/create', (req) => onElicit(req.params));
    return this.track(client, transport);
  }

  shimCommand(server, user) {
    if (!user) return { command: bin('bastion-stdio'), args: this.stdioArgs(server) };
    return { command: 'setpriv', args: [...asUser(user), bin('bastion-stdio'), ...this.stdioArgs(server)] };
  }

  async track(client, transport) {
    let shimStderr = '';
    transport.stderr?.setEncoding('utf8').on('data', (s) => (shimStderr += s));
    this.clients.push(client);
    try {
      await client.connect(transport);
    } catch (e) {
      throw new Error(`${e.message}\nbastion-stdio stderr: ${shimStderr}\nbastiond stderr:\n${this.stderr}`);
    }
    client.shimStderr = () => shimStderr;
    return client;
  }

  // SIGTERM: bastiond must exit 0 and leave no process of its tree behind.
  async stop() {
    for (const c of this.clients.splice(0)) await c.close().catch(() => {});
    const tree = this.tree();
    assert.ok(tree.length > 0, 'bastiond has no child processes before the stop');
    process.kill(this.pid, 'SIGTERM');
    let timer;
    const timeout = new Promise((r) => (timer = setTimeout(r, STOP_TIMEOUT_MS, 'timeout')));
    const r = await Promise.race([this.exit, timeout]);
    clearTimeout(timer);
    assert.notEqual(r, 'timeout', `bastiond did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM; stderr:\n${this.stderr}`);
    assert.deepEqual(r, { code: 0, signal: null }, `bastiond stderr:\n${this.stderr}`);
    // Zombies of processes that were reparented are reaped by init a moment later.
    await waitFor('the process tree to be gone', () => !tree.some(alive), 1000).catch(() => {});
    const left = tree.filter(alive).map((p) => `${p.pid} ${p.argv.join(' ')}`);
    const strays = allProcs().filter((p) => cmdline(p.pid).some((a) => a.includes(this.dir)))
      .map((p) => `${p.pid} ${cmdline(p.pid).join(' ')}`);
    assert.deepEqual([...left, ...strays], [], 'processes left behind after SIGTERM');
    this.cleanup();
  }

  kill() {
    if (!this.exited) {
      for (const p of this.tree()) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
      try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    this.cleanup();
  }

  // A tmpfs of `size` at this.dir/SUBDIR (made if missing), unmounted at cleanup.
  mount(subdir, size) {
    const at = join(this.dir, subdir);
    mkdirSync(at, { recursive: true });
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', at], { encoding: 'utf8' });
    assert.equal(r.status, 0, `mount tmpfs at ${at}: ${r.stderr}`);
    this.mounts.push(at);
    return at;
  }

  cleanup() {
    if (!running.has(this)) return;
    running.delete(this);
    for (const c of this.clients.splice(0)) c.close().catch(() => {});
    for (const at of this.mounts.splice(0)) {
      const files = readdirSync(at).map((f) => join(at, f));
      if (files.length) spawnSync('chattr', ['-a', ...files]);
      spawnSync('umount', [at]);
    }
    removeDaemonDir(this.dir);
    try { rmSync(this.uids.dir, { recursive: true, force: true }); } catch { /* gone */ }
  }
}

// Removes a test daemon's directory. bastiond makes the audit files (DIR/audit) append-only
// (bastion-audit(5)): not even root may remove them as they are.
export function removeDaemonDir(dir) {
  const audit = join(dir, 'audit');
  let files = [];
  try { files = readdirSync(audit).map((f) => join(audit, f)); } catch { /* no log */ }
  if (files.length) spawnSync('chattr', ['-a', ...files]);
  rmSync(dir, { recursive: true, force: true });
}

// Starts a daemon for one test and kills it if the test fails before stopping it.
export async function withDaemon(t, opts) {
  const d = await Daemon.start(opts);
  t.after(() => d.kill());
  return d;
}

// Runs bastion-stdio by hand: resolves with {status, stdout, stderr}.
export function runShim(args, input = '', { user } = {}) {
  return new Promise((resolveP) => {
    const argv = user ? ['setpriv', ...asUser(user), bin('bastion-stdio'), ...args] : [bin('bastion-stdio'), ...args];
    const p = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
    p.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
    p.on('close', (status, signal) => resolveP({ status, signal, stdout, stderr }));
    p.stdin.on('error', () => {}); // the shim may exit before reading its input
    p.stdin.end(input);
  });
}
