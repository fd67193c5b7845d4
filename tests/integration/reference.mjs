// The reference deployment of examples/reference.conf (roles, tools, scopes, approval levels,
// resources) run by a real bastiond on the harness's temporary paths, with real local test users:
// one per role, two in finance (four eyes), and two customers of different tenants.
// ROLES and SERVERS below mirror examples/reference.conf; matrix.test.mjs checks them against the file,
// so the two cannot drift.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { BUILD_DIR, Daemon, bin, rawConnect } from './harness.mjs';

export const REFERENCE_CONF = fileURLToPath(new URL('../../examples/reference.conf', import.meta.url));

// ---- the reference policy (mirror of examples/reference.conf) ----

export const ROLES = {
  'supply-chain-manager': ['inventory:read', 'orders:read', 'logistics:read', 'returns:read', 'payments:read',
    'inventory:reorder', 'logistics:reroute'],
  finance: ['payments:read', 'payments:release', 'returns:read', 'returns:refund', 'approvals:grant'],
  customer: ['orders:read:own', 'returns:read', 'returns:create'],
  auditor: ['inventory:read', 'orders:read', 'logistics:read', 'returns:read', 'payments:read'],
};

const t = (scope, approval = 'none') => ({ scopes: [scope], approval });

export const SERVERS = {
  inventory: {
    domain: 'inventory',
    tools: {
      get_stock: t('inventory:read'),
      list_low_stock: t('inventory:read'),
      get_reorder: t('inventory:read'),
      list_reorders: t('inventory:read'),
      create_reorder: t('inventory:reorder', 'confirm'),
    },
    resources: {},
  },
  orders: {
    domain: 'orders',
    tools: {
      list_orders: t('orders:read'),
      get_order: t('orders:read'),
      my_orders: t('orders:read:own'),
    },
    resources: {
      notes: { uri_prefix: 'orders://', scopes: ['orders:read'] },
      own_notes: { uri_prefix: 'orders://', scopes: ['orders:read:own'] },
    },
  },
  logistics: {
    domain: 'logistics',
    tools: {
      track_shipment: t('logistics:read'),
      reroute_shipment: t('logistics:reroute', 'confirm'),
    },
    resources: {},
  },
  returns: {
    domain: 'returns',
    tools: {
      list_returns: t('returns:read'),
      get_return: t('returns:read'),
      create_return: t('returns:create', 'confirm'),
      issue_refund: t('returns:refund', 'approver'),
    },
    resources: {},
  },
  payments: {
    domain: 'payments',
    tools: {
      get_payment: t('payments:read'),
      list_payments: t('payments:read'),
      release_payment: t('payments:release', 'approver'),
    },
    resources: {},
  },
};

export const SERVER_NAMES = Object.keys(SERVERS);

// Parses examples/reference.conf into the shape of {ROLES, SERVERS}: every `NAME = { scopes = [...];
// approval = "..."; }` (and `uri_prefix`) entry, attributed to its role or to its server.
export function parseReferenceConf(text = readFileSync(REFERENCE_CONF, 'utf8')) {
  const src = text.split('\n').map((l) => l.replace(/#.*$/, '')).join('\n');
  const rolesAt = src.search(/^roles\s*=\s*\{/m);
  const usersAt = src.search(/^users\s*=/m);
  const serversAt = src.search(/^servers\s*=\s*\{/m);
  assert.ok(rolesAt >= 0 && usersAt > rolesAt && serversAt > usersAt, 'reference.conf: sections not found');
  const scopesOf = (s) => [...s.matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  const entry = /([A-Za-z_][\w-]*)\s*=\s*\{\s*(?:uri_prefix\s*=\s*"([^"]*)";\s*)?scopes\s*=\s*\[([^\]]*)\];(?:\s*approval\s*=\s*"([^"]*)";)?/g;

  const roles = {};
  for (const m of src.slice(rolesAt, usersAt).matchAll(entry)) roles[m[1]] = scopesOf(m[3]);

  const body = src.slice(serversAt);
  const heads = [...body.matchAll(/([a-z][\w-]*)\s*=\s*\{\s*domain\s*=\s*"([^"]*)";/g)]
    .map((m) => ({ name: m[1], domain: m[2], at: m.index }));
  const servers = {};
  for (const h of heads) servers[h.name] = { domain: h.domain, tools: {}, resources: {} };
  for (const m of body.matchAll(entry)) {
    const owner = heads.filter((h) => h.at < m.index).pop();
    assert.ok(owner, `reference.conf: ${m[1]} is outside any server`);
    if (m[2] !== undefined) servers[owner.name].resources[m[1]] = { uri_prefix: m[2], scopes: scopesOf(m[3]) };
    else servers[owner.name].tools[m[1]] = { scopes: scopesOf(m[3]), approval: m[4] ?? 'none' };
  }
  return { roles, servers };
}

// Which tools of a server a role may see and call (scopes only; approval comes after).
export const holds = (role, scopes) => scopes.every((s) => ROLES[role].includes(s));
export const visibleTools = (role, server) =>
  Object.entries(SERVERS[server].tools).filter(([, p]) => holds(role, p.scopes)).map(([n]) => n).sort();

// ---- local test users ----

export const ADMIN_GROUP = 'bastion-t-admin';
export const USERS = {
  scm: { user: 'bastion-t-scm', role: 'supply-chain-manager' },
  fin1: { user: 'bastion-t-fin1', role: 'finance', admin: true },
  fin2: { user: 'bastion-t-fin2', role: 'finance', admin: true },
  acme: { user: 'bastion-t-acme', role: 'customer', tenant: 'acme' },
  globex: { user: 'bastion-t-globex', role: 'customer', tenant: 'globex' },
  aud: { user: 'bastion-t-aud', role: 'auditor' },
};
// One user per role, for the matrix.
export const ROLE_USER = { 'supply-chain-manager': 'scm', finance: 'fin1', customer: 'acme', auditor: 'aud' };

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const run = (cmd, args) => spawnSync(cmd, args, { encoding: 'utf8' });
export const uidOf = (user) => {
  const r = run('id', ['-u', user]);
  return r.status === 0 ? Number(r.stdout.trim()) : null;
};
const gidOf = (user) => {
  const r = run('id', ['-g', user]);
  return r.status === 0 ? Number(r.stdout.trim()) : null;
};
// setpriv arguments that run the rest of a command line as this local user (uid, gid and groups).
const asUser = (user) => ['--reuid', String(uidOf(user)), '--regid', String(gidOf(user)), '--init-groups', '--'];
const groupsOf = (user) => {
  const r = run('id', ['-nG', user]);
  return r.status === 0 ? r.stdout.trim().split(/\s+/) : [];
};

// Test files run in parallel and useradd/groupadd lock /etc/passwd: retry until the state is right.
export function ensureReferenceUsers() {
  for (let attempt = 0; ; attempt++) {
    let ok = true;
    if (run('getent', ['group', ADMIN_GROUP]).status !== 0) {
      run('groupadd', ['--system', ADMIN_GROUP]);
      ok = false;
    }
    for (const { user, admin } of Object.values(USERS)) {
      if (uidOf(user) === null) {
        run('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell',
          '/usr/sbin/nologin', ...(admin ? ['-G', ADMIN_GROUP] : []), user]);
        ok = false;
      } else if (admin && !groupsOf(user).includes(ADMIN_GROUP)) {
        run('usermod', ['-aG', ADMIN_GROUP, user]);
        ok = false;
      }
    }
    if (ok) return;
    assert.ok(attempt < 50, 'cannot create the reference test users');
    sleepSync(50 + Math.floor(Math.random() * 100));
  }
}

// ---- the configuration ----

const q = (s) => JSON.stringify(s);
const list = (a) => `[ ${a.map(q).join(', ')} ]`;

// credentials: {server: secret name} handed to that server's worker; secretsStore: the store's path;
// keyFromCredential: no secrets_key_file (the broker takes $CREDENTIALS_DIRECTORY/bastion.secrets-key).
export function referenceConfigText(d, { confirmTimeoutMs, approvalTtlMs, credentials = {}, secretsStore,
  keyFromCredential = false, adminGroup = ADMIN_GROUP } = {}) {
  const opt = [
    confirmTimeoutMs !== undefined ? `        confirm_timeout_ms = ${confirmTimeoutMs};\n` : '',
    approvalTtlMs !== undefined ? `        approval_ttl_ms = ${approvalTtlMs};\n` : '',
    secretsStore !== undefined ? `        secrets_store = ${q(secretsStore)};\n` : '',
  ].join('');
  const roles = Object.entries(ROLES).map(([r, s]) => `        ${r} = { scopes = ${list(s)}; };\n`).join('');
  const users = [`        { user = "root"; role = "supply-chain-manager"; }`,
    ...Object.values(USERS).map((u) =>
      `        { user = ${q(u.user)}; role = ${q(u.role)};${u.tenant ? ` tenant = ${q(u.tenant)};` : ''} }`)].join(',\n');
  const servers = Object.entries(SERVERS).map(([name, s]) => {
    const tools = Object.entries(s.tools).map(([tn, p]) =>
      `                        ${tn} = { scopes = ${list(p.scopes)}; approval = ${q(p.approval)}; };\n`).join('');
    const res = Object.entries(s.resources).map(([rn, p]) =>
      `                        ${rn} = { uri_prefix = ${q(p.uri_prefix)}; scopes = ${list(p.scopes)}; };\n`).join('');
    return `        ${name} = {
                domain = ${q(s.domain)};
                demo_data = true;
${credentials[name] ? `                credential = ${q(credentials[name])};\n` : ''}                tools = {
${tools}                };
${res ? `                resources = {\n${res}                };\n` : ''}        };
`;
  }).join('');
  return `# Generated by tests/integration/reference.mjs from the mirror of examples/reference.conf.
bastion = {
        socket = ${q(d.socket)};
        control_socket = ${q(d.controlSocket)};
        state_dir = ${q(d.stateDir)};
        runtime_dir = ${q(d.runtimeDir)};
        libexec_dir = ${q(BUILD_DIR)};
        audit_dir = ${q(d.auditDir)};
${keyFromCredential ? '' : `        secrets_key_file = ${q(join(d.dir, 'secrets.key'))};\n`}        worker_uids = [ ${d.uids.min}, ${d.uids.max} ];
        call_timeout_ms = 10000;
        max_inflight = 16;
        admin_group = ${q(adminGroup)};
${opt}};

roles = {
${roles}};

users = (
${users}
);

servers = {
${servers}};
`;
}

// ---- the daemon ----

export class ReferenceDaemon extends Daemon {
  // opts: {confirmTimeoutMs, approvalTtlMs, adminGroup}. Daemon's constructor hands them to writeConfig().
  static async start(opts = {}) {
    ensureReferenceUsers();
    const d = new ReferenceDaemon(opts);
    try {
      await d.waitReady(SERVER_NAMES);
    } catch (e) {
      d.kill();
      throw new Error(`${e.message}\nbastiond stderr:\n${d.stderr}`);
    }
    return d;
  }

  writeConfig(opts) {
    this.auditDir = join(this.dir, 'audit');
    writeFileSync(this.configPath, referenceConfigText(this, opts));
  }

  // A client of one server as one of USERS (key), in one era ('v1' | 'v2').
  connectAs(who, server, era = 'v1', onElicit) {
    const user = who === 'root' ? undefined : USERS[who].user;
    return era === 'v1' ? this.connectV1({ server, user, onElicit }) : this.connectV2({ server, user, onElicit });
  }

  // bastionctl on this daemon's control socket, as root or as one of USERS: {status, stdout, stderr}.
  ctl(args, who) {
    const argv = [bin('bastionctl'), '--socket', this.controlSocket, ...args];
    const cmd = who ? ['setpriv', ...asUser(USERS[who].user), ...argv] : argv;
    return new Promise((resolveP) => {
      const p = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '', stderr = '';
      p.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
      p.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
      p.on('close', (status) => resolveP({ status, stdout, stderr }));
    });
  }

  async approvals() {
    const r = await this.ctl(['approvals', 'list', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.ok, true, r.stdout);
    return j.approvals;
  }

  // Every audit record written so far (all files under audit_dir).
  auditRecords() {
    let files = [];
    try { files = readdirSync(this.auditDir).filter((f) => f.endsWith('.jsonl')).sort(); } catch { return []; }
    return files.flatMap((f) => readFileSync(join(this.auditDir, f), 'utf8').split('\n').filter(Boolean)
      .map((l) => JSON.parse(l)));
  }

  // A raw 2026-07-28 connection as one of USERS (or root): modern requests by hand.
  async rawModern(who, server, { elicitation = true } = {}) {
    const c = await rawConnectAs(this.socket, server, who === 'root' ? undefined : USERS[who].user);
    assert.equal(c.answer, 'ok');
    let id = 100;
    c.call = (name, args, extra = {}, caps = elicitation ? { elicitation: {} } : {}) => c.request({
      jsonrpc: '2.0', id: id++, method: 'tools/call',
      params: {
        name, arguments: args, ...extra,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientCapabilities': caps,
          'io.modelcontextprotocol/clientInfo': { name: 'bastion-it-raw', version: '1' },
        },
      },
    });
    this.raws = [...(this.raws ?? []), c];
    return c;
  }

  // Raw connections first: their bastion-stdio processes name this daemon's socket on their command
  // line, and Daemon.stop() counts any such process as left behind.
  async stop() {
    await this.closeRaws();
    return super.stop();
  }

  async closeRaws() {
    const procs = (this.raws ?? []).map((c) => c.proc).filter((p) => p && p.exitCode === null && !p.signalCode);
    for (const c of this.raws ?? []) c.close();
    this.raws = [];
    await Promise.all(procs.map((p) => new Promise((r) => p.once('exit', r))));
  }

  cleanup() {
    for (const c of this.raws ?? []) c.close();
    this.raws = [];
    super.cleanup();
  }
}

// A raw line connection for modern requests by hand. As root: the harness's rawConnect. As another
// local user: through bastion-stdio run as that user (SO_PEERCRED must name the user), which sends
// the preamble itself and relays lines both ways.
async function rawConnectAs(socketPath, server, user) {
  if (!user) return rawConnect(socketPath, server, 20000);
  const p = spawn('setpriv', [...asUser(user), bin('bastion-stdio'), server, '--socket', socketPath],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  let buf = '';
  const waiting = [], lines = [];
  p.stdout.setEncoding('utf8').on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (waiting.length) waiting.shift()(line);
      else lines.push(line);
    }
  });
  p.on('close', () => { while (waiting.length) waiting.shift()(null); });
  p.stdin.on('error', () => {});
  const next = () => new Promise((r) => (lines.length ? r(lines.shift()) : waiting.push(r)));
  return {
    answer: 'ok', proc: p, next,
    request: async (msg) => {
      p.stdin.write(JSON.stringify(msg) + '\n');
      const line = await next();
      return line === null ? null : JSON.parse(line);
    },
    close: () => p.kill(),
  };
}

export async function withReference(t, opts) {
  const d = await ReferenceDaemon.start(opts);
  t.after(() => d.kill());
  return d;
}

// The human at the host: answers every elicitation with `action` (and confirm=true on accept),
// recording each question.
export function human(action = 'accept') {
  const h = {
    action, asked: [],
    onElicit: (params) => {
      h.asked.push(params);
      return h.action === 'accept' ? { action: 'accept', content: { confirm: true } } : { action: h.action };
    },
  };
  return h;
}
