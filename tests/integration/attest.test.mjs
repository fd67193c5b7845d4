// Attestation from the outside (issue #3): the reference deployment is started, and for every child
// bastiond has (the broker and each worker, pids from `bastionctl workers --json`) this test reads
// /proc itself, like an administrator would, instead of trusting bastiond's own verdict: seccomp
// filter mode, no_new_privs, all five capability sets empty, the expected host uid (all four uids),
// no core dumps, and namespaces — a worker's all differ from bastiond's (and from every other
// worker's), the broker keeps the host's by design (docs/sandbox.md). Then a worker and the broker
// are killed with SIGKILL and the restarted processes are checked the same way.
// Second part: a worker that skips its lockdown (it even claims to be ready by closing the socket its
// filter came on) is never routed to, and is killed at the attestation deadline with the reason.
import test from 'node:test';
import { execFile, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Daemon, bin, inventoryServer, sleep, waitFor } from './harness.mjs';
import { SERVER_NAMES, withReference } from './reference.mjs';

const NAMESPACES = ['user', 'mnt', 'net', 'pid', 'ipc', 'uts'];
const CAP_SETS = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'];
// The broker's host uid (docs/sandbox.md, "The broker's uid"): bastion.broker_uid, by default the uid
// right below the worker range — never root, never a worker's, never the front's (the last of the range).
const brokerUid = (d) => d.uids.min - 1;
const ATTEST_TIMEOUT_MS = 5000; // BASTION_ATTEST_TIMEOUT_MS
const SERVER_UNAVAILABLE = -31001;

function status(pid) {
  const fields = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return fields;
}

const namespaces = (pid) => Object.fromEntries(NAMESPACES.map((n) => [n, readlinkSync(`/proc/${pid}/ns/${n}`)]));

function coreLimit(pid) {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max core file size'));
  assert.ok(line, `no core limit in /proc/${pid}/limits`);
  return line.trim().split(/\s+/).slice(4, 6);
}

// `bastionctl workers --json` on the daemon's control socket, as root.
async function children(d) {
  const r = await new Promise((resolveP) => execFile(bin('bastionctl'), ['--socket', d.controlSocket, 'workers', '--json'],
    (error, stdout, stderr) => resolveP({ status: error ? error.code : 0, stdout, stderr })));
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.ok, true, r.stdout);
  return j.workers;
}

// Waits until bastionctl shows the broker and every reference server running with a pid, attested.
async function allRunning(d, notPids = []) {
  return waitFor('every child running and attested', async () => {
    const list = await children(d);
    const ok = list.length === SERVER_NAMES.length + 1 &&
      list.every((c) => c.state === 'running' && c.pid > 0 && c.attestation?.ok === true && !notPids.includes(c.pid));
    return ok && list;
  }, 15000, 50);
}

// What the kernel says about one child, checked against what its kind requires. Returns its
// namespaces for the cross-checks.
function checkChild(d, c, expectedUid) {
  const what = `${c.kind} ${c.name} (pid ${c.pid})`;
  const s = status(c.pid);
  assert.equal(s.Seccomp, '2', `${what}: Seccomp ${s.Seccomp}`);
  assert.equal(s.NoNewPrivs, '1', `${what}: NoNewPrivs ${s.NoNewPrivs}`);
  for (const set of CAP_SETS) assert.equal(BigInt(`0x${s[set]}`), 0n, `${what}: ${set} ${s[set]}`);
  assert.deepEqual(s.Uid.split(/\s+/).map(Number), Array(4).fill(expectedUid), `${what}: Uid ${s.Uid}`);
  assert.deepEqual(s.Gid.split(/\s+/).map(Number), Array(4).fill(expectedUid), `${what}: Gid ${s.Gid}`);
  assert.equal(s.Groups, '', `${what}: supplementary groups ${s.Groups}`);
  assert.deepEqual(coreLimit(c.pid), ['0', '0'], `${what}: core dumps allowed`);
  // Seccomp and no_new_privs are per thread: every thread (the broker's audit sync thread) must be confined.
  for (const tid of readdirSync(`/proc/${c.pid}/task`)) {
    const ts = status(`${c.pid}/task/${tid}`);
    assert.equal(ts.Seccomp, '2', `${what}, thread ${tid}: Seccomp ${ts.Seccomp}`);
    assert.equal(ts.NoNewPrivs, '1', `${what}, thread ${tid}: NoNewPrivs ${ts.NoNewPrivs}`);
    for (const set of CAP_SETS) assert.equal(BigInt(`0x${ts[set]}`), 0n, `${what}, thread ${tid}: ${set} ${ts[set]}`);
  }
  // It is bastiond's own child, not some process that took its pid.
  assert.equal(Number(s.PPid), d.pid, `${what}: parent ${s.PPid}`);
  const ns = namespaces(c.pid), ours = namespaces(d.pid);
  for (const n of NAMESPACES) {
    if (c.kind === 'worker') assert.notEqual(ns[n], ours[n], `${what} shares bastiond's ${n} namespace ${ns[n]}`);
    else assert.equal(ns[n], ours[n], `${what}: ${n} namespace ${ns[n]}, bastiond's ${ours[n]}`);
  }
  return ns;
}

// Every child of the list, plus: workers have pairwise different uids (from the configured range) and
// namespaces. uids: server name → the uid it had before (kept across restarts).
function checkAll(d, list, uids = {}) {
  const seen = new Map();
  const uidOwner = new Map();
  for (const c of list) {
    let expected = brokerUid(d);
    if (c.kind === 'broker') assert.equal(c.uid, expected, `bastionctl workers: broker uid ${c.uid}`);
    if (c.kind === 'worker') {
      assert.ok(c.uid >= d.uids.min && c.uid <= d.uids.max, `${c.name}: uid ${c.uid} outside ${d.uids.min}-${d.uids.max}`);
      if (uids[c.name] !== undefined) assert.equal(c.uid, uids[c.name], `${c.name} changed its uid`);
      assert.ok(!uidOwner.has(c.uid), `${c.name} and ${uidOwner.get(c.uid)} share uid ${c.uid}`);
      uidOwner.set(c.uid, c.name);
      expected = c.uid;
    }
    const ns = checkChild(d, c, expected);
    if (c.kind !== 'worker') continue;
    for (const n of NAMESPACES) {
      assert.ok(!seen.has(ns[n]), `${c.name} shares its ${n} namespace with ${seen.get(ns[n])}`);
      seen.set(ns[n], c.name);
    }
  }
  return Object.fromEntries(list.filter((c) => c.kind === 'worker').map((c) => [c.name, c.uid]));
}

test('every child is confined as /proc shows it, before and after kill -9 of a worker and of the broker', async (t) => {
  const d = await withReference(t);
  const before = await allRunning(d);
  assert.deepEqual(before.map((c) => c.name), ['broker', ...SERVER_NAMES]);
  const uids = checkAll(d, before);
  const brokerUidNow = brokerUid(d);
  assert.ok(brokerUidNow > 0 && brokerUidNow < d.uids.min, `broker uid ${brokerUidNow}`);

  // The store key stays root's alone, and the broker's uid cannot read it by path: a process with the
  // broker's credentials (not even confined) is refused. The broker got it as an fd from bastiond.
  const keyFile = join(d.dir, 'secrets.key');
  const st = statSync(keyFile);
  assert.equal(st.uid, 0);
  assert.equal(st.mode & 0o777, 0o400);
  const asBroker = ['--reuid', String(brokerUidNow), '--regid', String(brokerUidNow), '--clear-groups'];
  const cat = spawnSync('setpriv', [...asBroker, 'cat', keyFile], { encoding: 'utf8' });
  assert.notEqual(cat.status, 0, 'the broker uid read the key file');
  assert.match(cat.stderr, /Permission denied/);
  const store = spawnSync('setpriv', [...asBroker, 'cat', join(d.stateDir, 'secrets.store')], { encoding: 'utf8' });
  assert.notEqual(store.status, 0, 'the broker uid read the store');
  // Its audit directory and files are its own (bastiond gives them to it at every start).
  const audit = statSync(d.auditDir);
  assert.equal(audit.uid, brokerUidNow);
  assert.equal(audit.mode & 0o777, 0o700);
  for (const f of readdirSync(d.auditDir)) assert.equal(statSync(join(d.auditDir, f)).uid, brokerUidNow, f);

  const victim = before.find((c) => c.name === 'payments');
  process.kill(victim.pid, 'SIGKILL');
  const afterWorker = await allRunning(d, [victim.pid]);
  const payments = afterWorker.find((c) => c.name === 'payments');
  assert.notEqual(payments.pid, victim.pid);
  assert.equal(payments.restarts, 1);
  checkAll(d, afterWorker, uids);

  const broker = afterWorker.find((c) => c.kind === 'broker');
  process.kill(broker.pid, 'SIGKILL');
  const afterBroker = await allRunning(d, [victim.pid, broker.pid]);
  assert.notEqual(afterBroker.find((c) => c.kind === 'broker').pid, broker.pid);
  checkAll(d, afterBroker, uids);

  // And they serve: a call through the restarted broker to the restarted worker.
  const c = await d.connectAs('aud', 'payments');
  const r = await c.callTool({ name: 'list_payments', arguments: {} });
  assert.equal(r.isError ?? false, false, JSON.stringify(r));
  // The broker's group commit now runs on a thread it starts after its lockdown: it is there, and it
  // is as confined as the broker (checkChild looks at every thread).
  const b = afterBroker.find((x) => x.kind === 'broker');
  await waitFor('the broker\'s audit sync thread', () => readdirSync(`/proc/${b.pid}/task`).length === 2, 5000, 50);
  checkChild(d, b, brokerUid(d));
  await d.stop();
});

// A bastion-worker wrapper in a libexec dir of the test's own: the server `liar` runs the real worker
// without --sandbox (no lockdown at all) after closing the socket its filter came on, which is what
// tells bastiond to attest; every other server runs the real worker unchanged.
class LiarDaemon extends Daemon {
  writeConfig(servers) {
    super.writeConfig(servers);
    const lib = join(this.dir, 'libexec');
    mkdirSync(lib, { recursive: true });
    chmodSync(lib, 0o755);
    symlinkSync(bin('bastion-broker'), join(lib, 'bastion-broker'));
    writeFileSync(join(lib, 'bastion-worker'), `#!/bin/sh
case "$*" in
*/liar/*) ;;
*) exec ${bin('bastion-worker')} "$@" ;;
esac
[ -n "$BASTION_SANDBOX_FILTER_FD" ] || exit 97
eval "exec $BASTION_SANDBOX_FILTER_FD<&-"
for a do shift; [ "$a" = --sandbox ] || set -- "$@" "$a"; done
exec ${bin('bastion-worker')} "$@"
`, { mode: 0o755 });
    const text = readFileSync(this.configPath, 'utf8');
    assert.match(text, /libexec_dir = [^;]*;/);
    writeFileSync(this.configPath, text.replace(/libexec_dir = [^;]*;/, `libexec_dir = "${lib}";`));
  }
}

test('a worker that skips its lockdown is never routed to and is killed at the attestation deadline', async (t) => {
  const d = new LiarDaemon([inventoryServer('inventory'), inventoryServer('liar')]);
  t.after(() => d.kill());
  await d.waitReady(['inventory']);
  const started = Date.now();

  const liar = await waitFor('the liar to run', async () => (await children(d)).find((c) => c.name === 'liar' && c.pid > 0), 5000);
  // It runs, unconfined, and bastiond knows it: starting, not attested, and why.
  const s = status(liar.pid);
  assert.equal(s.Seccomp, '0');
  assert.notEqual(BigInt(`0x${s.CapBnd}`), 0n);
  assert.equal(liar.state, 'starting');
  assert.equal(liar.attestation.ok, false);
  assert.match(liar.attestation.reason, /seccomp mode is 0/);

  // Calls to it are not routed, however often they come, until it is killed at its deadline: each
  // fails at once with "starting", none reaches the worker.
  const killed = () => /worker liar \(pid \d+\) failed attestation: lockdown not complete/.test(d.stderr);
  const c = await d.connectV1({ server: 'liar' });
  let calls = 0;
  while (!killed() && Date.now() - started < ATTEST_TIMEOUT_MS + 5000) {
    const outcome = await c.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1005' } })
      .then((result) => ({ result }), (error) => ({ error }));
    assert.equal(outcome.result, undefined, `a call was answered by the unconfined worker: ${JSON.stringify(outcome.result)}`);
    assert.equal(outcome.error.code, SERVER_UNAVAILABLE, String(outcome.error));
    assert.match(outcome.error.message, /server is starting/);
    calls++;
    await sleep(250);
  }
  assert.ok(calls >= 5, `only ${calls} calls were tried`);
  assert.ok(killed(), `the liar was not killed; bastiond stderr:\n${d.stderr}`);
  assert.ok(Date.now() - started >= ATTEST_TIMEOUT_MS - 1000, 'killed before its deadline');
  assert.doesNotMatch(d.stderr, /worker liar \(pid \d+\) attested/);
  await waitFor('the killed liar to be reaped', () => !existsSync(`/proc/${liar.pid}`), 5000);

  // The honest neighbour was not disturbed.
  const honest = await d.connectV1({ server: 'inventory' });
  assert.equal((await honest.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1005' } })).structuredContent.total, 49);
  await d.stop();
});
