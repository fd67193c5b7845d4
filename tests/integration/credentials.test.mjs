// Credential hand-over (issue #5): the broker hands each worker its own credential, and nothing else,
// as a sealed memfd at fd 4; the supervisor asks for it before every spawn (after a worker crash and
// after a broker restart too); a missing secret keeps the worker from starting, with the reason; the
// audit log names the credential and never holds its value. The store is made with `bastionctl secrets`
// (values through stdin) before the reference daemon starts, and everything is checked from outside,
// as root, through /proc.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { bin, waitFor } from './harness.mjs';
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
  static async start(opts) {
    ensureReferenceUsers();
    const d = new CredentialDaemon(opts);
    try {
      await d.waitReady(STARTED);
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
  await d.stop();
});
