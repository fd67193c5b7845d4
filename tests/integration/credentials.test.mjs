// Credential hand-over (issue #5): the broker hands each worker its own credential, and nothing else,
// as a sealed memfd at fd 4; the supervisor asks for it before every spawn (after a worker crash and
// after a broker restart too); a missing secret keeps the worker from starting, with the reason; the
// audit log names the credential and never holds its value. The store is made with `bastionctl secrets`
// (values through stdin) before the reference daemon starts, and everything is checked from outside,
// as root, through /proc.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { Daemon, bin, waitFor } from './harness.mjs';
import { ReferenceDaemon, SERVER_NAMES, ensureReferenceUsers } from './reference.mjs';

const SECRETS = {
  'payments-psp-key': `sk_live_PAYMENTS_${randomBytes(12).toString('hex')}`,
  'orders-db-token': `orders_token_${randomBytes(12).toString('hex')}`,
};
const CREDENTIALS = { payments: 'payments-psp-key', orders: 'orders-db-token', logistics: 'logistics-missing' };
const STARTED = SERVER_NAMES.filter((s) => s !== 'logistics');

// Runs bastionctl synchronously (before the daemon exists): {status, stdout, stderr}.
function ctlSync(args, input) {
  const r = spawnSync(bin('bastionctl'), args, { input: input ?? '', encoding: 'utf8' });
  assert.equal(r.status, 0, `bastionctl ${args.join(' ')}: ${r.stderr}`);
  return r;
}

class CredentialDaemon extends ReferenceDaemon {
  static async start(opts, wait = STARTED) {
    ensureReferenceUsers();
    const d = new this(opts);
    try {
      await d.waitReady(wait);
    } catch (e) {
      d.kill();
      throw new Error(`${e.message}\nbastiond stderr:\n${d.stderr}`);
    }
    return d;
  }

  // Called by the constructor before bastiond starts: the store must exist by then.
  writeConfig(opts) {
    this.store = join(this.dir, 'secrets.store');
    const keyArgs = ['--store', this.store, '--key-file', join(this.dir, 'secrets.key')];
    ctlSync(['secrets', 'init', ...keyArgs]);
    for (const [name, value] of Object.entries(opts.secrets)) ctlSync(['secrets', 'set', name, ...keyArgs], value);
    const list = ctlSync(['secrets', 'list', ...keyArgs]).stdout;
    for (const name of Object.keys(opts.secrets)) assert.match(list, new RegExp(`^${name}\\t`, 'm'));
    super.writeConfig({ ...opts, secretsStore: this.store });
  }

  brokerPid() {
    return this.tree().find((p) => p.argv[0]?.endsWith('/bastion-broker'))?.pid ?? null;
  }
}

// fd number -> link target, of a process seen from outside.
function fds(pid) {
  const out = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try { out[fd] = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { /* closed meanwhile */ }
  }
  return out;
}

const credentialOf = (pid) => readFileSync(`/proc/${pid}/fd/4`, 'utf8');
const handed = (d, server) => d.auditRecords().filter((r) => r.type === 'credential.handed' && r.server === server);

// A worker that runs again after a restart, with a pid other than `before`, holding its credential.
async function restarted(d, server, before) {
  return waitFor(`${server} to run again`, () => {
    const pid = d.workerPid(server);
    if (!pid || pid === before) return null;
    try { return credentialOf(pid) === SECRETS[CREDENTIALS[server]] ? pid : null; } catch { return null; }
  }, 10000, 50);
}

test('each worker gets its own credential at fd 4, again after a crash and after a broker restart', async (t) => {
  const d = await CredentialDaemon.start({ credentials: CREDENTIALS, secrets: SECRETS });
  t.after(() => d.kill());

  // payments and orders: exactly their own value, in a memfd named after the credential.
  for (const server of ['payments', 'orders']) {
    const pid = d.workerPid(server);
    assert.ok(pid, `no ${server} worker`);
    assert.equal(credentialOf(pid), SECRETS[CREDENTIALS[server]]);
    assert.match(fds(pid)['4'], new RegExp(`^/memfd:${CREDENTIALS[server]} \\(deleted\\)$`));
    const memfds = Object.values(fds(pid)).filter((l) => l.startsWith('/memfd:'));
    assert.equal(memfds.length, 1, `${server} holds ${JSON.stringify(memfds)}`);
  }
  // Workers without a credential hold no memfd at all, and no fd of theirs holds a secret.
  for (const server of ['returns', 'inventory']) {
    const pid = d.workerPid(server);
    assert.ok(pid, `no ${server} worker`);
    const links = fds(pid);
    assert.deepEqual(Object.values(links).filter((l) => l.startsWith('/memfd:')), [], `${server}: ${JSON.stringify(links)}`);
    if (links['4'] !== undefined) assert.ok(links['4'].startsWith(join(d.stateDir, server) + '/'), links['4']);
  }

  // The hand-over is audited by name; no audit file holds a value.
  assert.deepEqual(handed(d, 'payments').map((r) => r.credential), ['payments-psp-key']);
  assert.deepEqual(handed(d, 'orders').map((r) => r.credential), ['orders-db-token']);
  assert.deepEqual(handed(d, 'returns'), []);
  const auditText = readdirSync(d.auditDir).map((f) => readFileSync(join(d.auditDir, f), 'utf8')).join('');
  for (const v of Object.values(SECRETS)) assert.ok(!auditText.includes(v), 'a secret value is in the audit log');

  // kill -9 of the payments worker: its successor is handed the credential again.
  const pid1 = d.workerPid('payments');
  process.kill(pid1, 'SIGKILL');
  const pid2 = await restarted(d, 'payments', pid1);
  await waitFor('the second hand-over on record', () => handed(d, 'payments').length === 2, 5000);

  // kill -9 of the broker: every worker is restarted, and the new broker hands the credential over.
  const broker = d.brokerPid();
  assert.ok(broker, 'no broker process');
  process.kill(broker, 'SIGKILL');
  const pid3 = await restarted(d, 'payments', pid2);
  await d.waitReady(STARTED);
  assert.notEqual(d.brokerPid(), broker);
  await waitFor('the third hand-over on record', () => handed(d, 'payments').length === 3, 5000);
  assert.equal(handed(d, 'orders').length, 2);
  assert.equal(credentialOf(pid3), SECRETS['payments-psp-key']);

  // The restarted payments worker serves.
  const c = await d.connectAs('fin1', 'payments');
  const r = await c.callTool({ name: 'get_payment', arguments: { payment_id: 'PAY-3001' } });
  assert.equal(r.structuredContent.payment_id, 'PAY-3001', JSON.stringify(r));
  await c.close();

  for (const v of Object.values(SECRETS)) assert.ok(!d.stderr.includes(v), 'a secret value is in the daemon log');
  // Workers without a credential see nothing at fd 4 that they would take for one (their sandbox
  // filter socket sits there until their lockdown closes it).
  assert.doesNotMatch(d.stderr, /not a sealed credential memfd/);
  await d.stop();
});

test('a worker whose credential is missing is not started, and says why', async (t) => {
  const d = await CredentialDaemon.start({ credentials: CREDENTIALS, secrets: SECRETS });
  t.after(() => d.kill());
  const reason = 'credential logistics-missing is not available (no secret of that name in the secrets store)';

  assert.equal(d.workerPid('logistics'), null, 'the logistics worker runs without its credential');
  const w = await d.ctl(['--json', 'workers']);
  assert.equal(w.status, 0, w.stderr);
  const logistics = JSON.parse(w.stdout).workers.find((p) => p.name === 'logistics');
  assert.deepEqual({ state: logistics.state, pid: logistics.pid, reason: logistics.reason },
    { state: 'failed', pid: 0, reason });
  const table = await d.ctl(['workers']);
  assert.ok(table.stdout.includes(`logistics: ${reason}`), table.stdout);
  assert.ok(d.stderr.includes(`worker logistics not started: ${reason}`), d.stderr);

  // Its calls get that reason at once.
  const c = await d.connectAs('scm', 'logistics');
  const err = await c.callTool({ name: 'track_shipment', arguments: { shipment_id: 'SHP-2001' } }).then(
    (res) => ({ res }), (error) => ({ error }));
  assert.equal(err.res, undefined, JSON.stringify(err.res));
  assert.ok(err.error.message.includes(reason), err.error.message);
  await c.close();
  assert.deepEqual(handed(d, 'logistics'), []);

  // The next reload starts it again: here without a credential, so it runs, with no memfd.
  const { logistics: _, ...withoutLogistics } = CREDENTIALS;
  await d.reload({ credentials: withoutLogistics, secrets: SECRETS }, SERVER_NAMES);
  const pid = d.workerPid('logistics');
  assert.ok(pid, 'logistics did not start after the reload');
  assert.deepEqual(Object.values(fds(pid)).filter((l) => l.startsWith('/memfd:')), []);
  const after = JSON.parse((await d.ctl(['--json', 'workers'])).stdout).workers.find((p) => p.name === 'logistics');
  assert.deepEqual({ state: after.state, reason: after.reason }, { state: 'running', reason: undefined });
  await d.stop();
});

// setpriv arguments: uid:gid with no capability at all (no CAP_SYS_PTRACE).
const capless = (uid, gid) => ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--inh-caps=-all',
  '--bounding-set=-all', '--'];
const readWithoutCaps = (uid, gid, file) => spawnSync('setpriv', [...capless(uid, gid), 'cat', file]).status;

// The control of the dumpable check: a dumpable process of that uid, equally without capabilities, whose
// environ the same reader can read.
async function dumpableReadable(uid, gid) {
  const p = spawn('setpriv', [...capless(uid, gid), 'sleep', '30'], { stdio: 'ignore' });
  try {
    await waitFor('sleep to run', () => readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').startsWith('sleep'), 2000);
    return readWithoutCaps(uid, gid, `/proc/${p.pid}/environ`) === 0;
  } finally {
    p.kill('SIGKILL');
  }
}

const procUid = (pid) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const procGid = (pid) => Number(/^Gid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

test('no secret value reaches a log, an audit record, a command line or an environment; no core dumps', async (t) => {
  const d = await CredentialDaemon.start({ credentials: CREDENTIALS, secrets: SECRETS });
  t.after(() => d.kill());
  const storeKey = readFileSync(join(d.dir, 'secrets.key'), 'utf8').trim();
  const known = { ...SECRETS, 'store key': storeKey };
  assert.match(storeKey, /^[0-9a-f]{64}$/);

  // A run that exercises every path a value could leak through: calls, a worker crash, a broker
  // crash, a reload (new audit file), then the sweep while everything runs.
  const c = await d.connectAs('fin1', 'payments');
  assert.equal((await c.callTool({ name: 'list_payments', arguments: {} })).isError ?? false, false);
  await c.close();
  const pay = d.workerPid('payments');
  process.kill(pay, 'SIGKILL');
  await restarted(d, 'payments', pay);
  const broker = d.brokerPid();
  process.kill(broker, 'SIGKILL');
  await waitFor('a new broker', () => d.brokerPid() && d.brokerPid() !== broker, 10000);
  await d.waitReady(STARTED);
  process.kill(d.pid, 'SIGHUP');
  await waitFor('the reload on record', () => d.auditRecords().some((r) => r.type === 'config.reload'), 10000);
  await d.waitReady(STARTED);
  const o = await d.connectAs('scm', 'orders');
  assert.equal((await o.callTool({ name: 'list_orders', arguments: {} })).isError ?? false, false);
  await o.close();

  const procs = [{ pid: d.pid, argv: ['bastiond'] }, ...d.tree()];
  assert.ok(procs.length >= 6, JSON.stringify(procs));
  const places = {
    'bastiond log (stderr)': d.stderr,
    'audit files': readdirSync(d.auditDir).map((f) => readFileSync(join(d.auditDir, f), 'latin1')).join(''),
  };
  for (const p of procs) {
    for (const what of ['cmdline', 'environ']) {
      try { places[`/proc/${p.pid}/${what} (${p.argv[0]})`] = readFileSync(`/proc/${p.pid}/${what}`, 'latin1'); } catch { /* gone */ }
    }
  }
  assert.ok(places['audit files'].includes('"type":"credential.handed"'));
  for (const [where, text] of Object.entries(places))
    for (const [what, value] of Object.entries(known))
      assert.ok(!text.includes(value), `${what} found in ${where}`);

  // Broker and workers: RLIMIT_CORE 0, and not dumpable: a process of the same uid without
  // CAP_SYS_PTRACE cannot read their /proc/PID/environ (while it can read a dumpable one's).
  const confined = procs.filter((p) => p.argv[0]?.endsWith('/bastion-broker') || p.argv[0]?.endsWith('/bastion-worker'));
  assert.equal(confined.length, 1 + STARTED.length, JSON.stringify(confined.map((p) => p.argv[0])));
  for (const p of confined) {
    const limits = readFileSync(`/proc/${p.pid}/limits`, 'utf8');
    assert.match(limits, /^Max core file size\s+0\s+0\s+bytes\s*$/m, `${p.argv.join(' ')}\n${limits}`);
    const uid = procUid(p.pid), gid = procGid(p.pid);
    assert.ok(await dumpableReadable(uid, gid), `uid ${uid} cannot read a dumpable process's environ: the check proves nothing`);
    assert.notEqual(readWithoutCaps(uid, gid, `/proc/${p.pid}/environ`), 0,
      `${p.argv[0]} (pid ${p.pid}, uid ${uid}) is dumpable: its environ was read`);
  }
  await d.stop();
});

test('systemd credentials: the store key and plain credentials by name from $CREDENTIALS_DIRECTORY', async (t) => {
  // What LoadCredential= gives the service: a directory bastiond passes to the broker alone.
  const dir = mkdtempSync('/tmp/bastion-creds-');
  const fromSystemd = { 'orders-db-token': `systemd_orders_${randomBytes(12).toString('hex')}`,
    'logistics-missing': `systemd_logistics_${randomBytes(12).toString('hex')}` };
  for (const [name, value] of Object.entries(fromSystemd)) writeFileSync(join(dir, name), value, { mode: 0o400 });
  const saved = process.env.CREDENTIALS_DIRECTORY;
  process.env.CREDENTIALS_DIRECTORY = dir;
  let d;
  try {
    d = await (class extends CredentialDaemon {
      writeConfig(opts) {
        super.writeConfig(opts);
        // The store key comes from the credential too: the configuration names no key file.
        writeFileSync(join(dir, 'bastion.secrets-key'), readFileSync(join(this.dir, 'secrets.key')), { mode: 0o400 });
      }
    }).start({ credentials: CREDENTIALS, secrets: SECRETS, keyFromCredential: true }, SERVER_NAMES);
  } finally {
    if (saved === undefined) delete process.env.CREDENTIALS_DIRECTORY;
    else process.env.CREDENTIALS_DIRECTORY = saved;
  }
  t.after(() => { d.kill(); rmSync(dir, { recursive: true, force: true }); });
  assert.doesNotMatch(readFileSync(d.configPath, 'utf8'), /secrets_key_file/);

  // A credential wins over the store entry of the same name; one only systemd has works too; the rest
  // still comes from the store.
  assert.equal(credentialOf(d.workerPid('orders')), fromSystemd['orders-db-token']);
  assert.equal(credentialOf(d.workerPid('logistics')), fromSystemd['logistics-missing']);
  assert.equal(credentialOf(d.workerPid('payments')), SECRETS['payments-psp-key']);
  assert.deepEqual(handed(d, 'logistics').map((r) => r.credential), ['logistics-missing']);
  // No running child is told where the credentials are: bastiond hands the broker their fds (only the
  // broker's first start, long gone, may learn the directory).
  const tree = d.tree();
  assert.ok(tree.some((p) => p.argv[0]?.endsWith('/bastion-broker')), 'no broker in the tree');
  for (const p of tree) {
    const env = readFileSync(`/proc/${p.pid}/environ`, 'latin1');
    assert.equal(env.includes('CREDENTIALS_DIRECTORY='), false, p.argv.join(' '));
  }
  await d.stop();
});

// bastiond with a compromised broker (tests/fixtures/fake-broker): only payments, whose credential the
// fake answers with a memfd sealed against writing (sealWrite, the control) or not.
class FakeBrokerDaemon extends Daemon {
  writeConfig(servers) {
    super.writeConfig(servers);
    const libexec = join(this.dir, 'libexec');
    mkdirSync(libexec);
    symlinkSync(bin('bastion-worker'), join(libexec, 'bastion-worker'));
    symlinkSync(FAKE_BROKER, join(libexec, 'bastion-broker'));
    if (this.constructor.sealWrite) writeFileSync(join(libexec, 'SEAL_WRITE'), '');
    const text = readFileSync(this.configPath, 'utf8').replace(/libexec_dir = "[^"]*";/, `libexec_dir = ${JSON.stringify(libexec)};`);
    writeFileSync(this.configPath, text);
  }
}
const FAKE_BROKER = fileURLToPath(new URL('../fixtures/fake-broker/bastion-broker', import.meta.url));
const PAYMENTS_ONLY = `        payments = {
                domain = "payments";
                credential = "payments-psp-key";
                tools = { get_payment = { scopes = [ "inventory:read" ]; }; };
        };
`;

test('bastiond refuses a credential memfd the broker did not seal against writing', { skip: !existsSync('/usr/bin/python3') && 'no /usr/bin/python3 for the fake broker' }, async (t) => {
  // The control: the fake broker's fully sealed memfd reaches the worker at fd 4.
  const good = new (class extends FakeBrokerDaemon { static sealWrite = true; })([PAYMENTS_ONLY]);
  t.after(() => good.kill());
  const pid = await waitFor('the worker with the fake credential', () => {
    const p = good.workerPid('payments');
    try { return p && credentialOf(p) === 'fake-broker-value' ? p : null; } catch { return null; }
  }, 10000, 50).catch((e) => { throw new Error(`${e.message}\nbastiond stderr:\n${good.stderr}`); });
  assert.ok(pid);
  good.kill();

  // Writable: a channel into the worker. bastiond takes it as a protocol violation, kills the broker and
  // never starts the worker with it.
  const bad = new FakeBrokerDaemon([PAYMENTS_ONLY]);
  t.after(() => bad.kill());
  await waitFor('the fake broker to be killed twice', () =>
    (bad.stderr.match(/broker \(pid \d+\) broke the channel protocol; killing it/g) ?? []).length >= 2, 10000, 50);
  assert.match(bad.stderr, /Unexpected message type 67 from the broker/);
  assert.doesNotMatch(bad.stderr, /worker payments \(pid \d+\) started/);
  assert.equal(bad.workerPid('payments'), null);
  bad.kill();
});
