// The broker's own uid (bastion.conf broker_uid, docs/sandbox.md "The broker's uid"), from the outside:
// an audit log written by an older, root-owned broker is handed to the broker's uid (the append-only
// flag survives the change of owner) and its chain continues and verifies; the broker checks the key
// file it is handed as an fd (a key file readable by its group is refused, naming the mode); a first
// start that cannot create the store ends in an error that names `bastionctl secrets init`, and that
// command, run by hand, lets the broker start; a first start that hangs is killed after 10 s.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon, bin, inventoryServer, removeDaemonDir, waitFor, withDaemon } from './harness.mjs';

const AUDIT_FILE = /^audit-\d{20}\.jsonl$/;
const auditFiles = (dir) => readdirSync(dir).filter((f) => AUDIT_FILE.test(f)).sort().map((f) => join(dir, f));
const run = (cmd, ...args) => spawnSync(cmd, args, { encoding: 'utf8' });
const appendOnly = (path) => run('lsattr', path).stdout.split(/\s+/)[0].includes('a');
const flagsWork = (() => {
  const probe = `/tmp/bastion-uid-flags-probe-${process.pid}`;
  writeFileSync(probe, '');
  const ok = run('chattr', '+a', probe).status === 0;
  run('chattr', '-a', probe);
  run('rm', '-f', probe);
  return ok;
})();

async function stopKeepingFiles(d) {
  const cleanup = d.cleanup;
  d.cleanup = () => {};
  try { await d.stop(); } finally { d.cleanup = cleanup; }
}

// A daemon whose directory is prepared (by `seed`) before bastiond starts.
class SeededDaemon extends Daemon {
  static seed = null;

  writeConfig(servers) {
    super.writeConfig(servers);
    SeededDaemon.seed?.(this);
  }
}

function startSeeded(t, seed, servers = [inventoryServer('inventory')]) {
  SeededDaemon.seed = seed;
  try {
    const d = new SeededDaemon(servers);
    t.after(() => d.kill());
    return d;
  } finally {
    SeededDaemon.seed = null;
  }
}

test('an audit log from a root-owned broker is handed to the broker uid, stays append-only and verifies',
  { skip: !flagsWork && '/tmp has no inode flags' }, async (t) => {
    // The older run: its log, its key and its store.
    const a = await withDaemon(t);
    const c = await a.connectV1();
    await c.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001' } });
    await stopKeepingFiles(a);
    t.after(() => removeDaemonDir(a.dir));

    const d = startSeeded(t, (b) => {
      mkdirSync(join(b.dir, 'audit'), { mode: 0o700 });
      mkdirSync(b.stateDir, { recursive: true });
      copyFileSync(join(a.dir, 'secrets.key'), join(b.dir, 'secrets.key'));
      chmodSync(join(b.dir, 'secrets.key'), 0o400);
      copyFileSync(join(a.stateDir, 'secrets.store'), join(b.stateDir, 'secrets.store'));
      // As a broker running as root left them: root's, append-only.
      for (const f of auditFiles(join(a.dir, 'audit'))) {
        const to = join(b.dir, 'audit', f.split('/').pop());
        copyFileSync(f, to);
        assert.equal(run('chattr', '+a', to).status, 0);
        assert.ok(statSync(to).uid === 0 && appendOnly(to), 'the seed is root-owned and append-only');
      }
    });
    const auditDir = join(d.dir, 'audit');
    const seeded = auditFiles(auditDir);
    assert.ok(seeded.length >= 1);
    await d.waitReady(['inventory']);

    const uid = d.uids.min - 1;
    assert.equal(statSync(auditDir).uid, uid);
    assert.equal(statSync(auditDir).gid, uid);
    assert.equal(statSync(auditDir).mode & 0o777, 0o700);
    await waitFor('every audit file to be the broker uid\'s and append-only', () =>
      auditFiles(auditDir).every((f) => statSync(f).uid === uid && statSync(f).gid === uid && appendOnly(f)), 5000);
    // The key and the store stay root's.
    assert.equal(statSync(join(d.dir, 'secrets.key')).uid, 0);
    assert.equal(statSync(join(d.stateDir, 'secrets.store')).uid, 0);

    const c2 = await d.connectV1();
    const r = await c2.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001' } });
    assert.equal(r.isError ?? false, false);
    await stopKeepingFiles(d);
    t.after(() => removeDaemonDir(d.dir));

    // One chain across both runs: the new broker continued the old broker's log (appending to its
    // newest file, which it could only open because that file is now its own).
    const v = run(bin('bastionctl'), 'audit', 'verify', '--dir', auditDir, '--store', join(d.stateDir, 'secrets.store'),
      '--key-file', join(d.dir, 'secrets.key'));
    assert.equal(v.status, 0, v.stdout + v.stderr);
    const records = auditFiles(auditDir).flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
    assert.equal(records.filter((x) => x.type === 'start').length, 2);
  });

// bastiond hands the audit directory's files to the broker uid at every start; a file someone planted
// there (a hard link to a root-owned file elsewhere, under an audit file's name) must not be given away.
// The broker then cannot open what looks like its newest file, and refuses to run without its log.
test('a hard link planted in the audit directory is not handed to the broker uid; the broker fails closed', async (t) => {
  const victim = `/tmp/bastion-uid-victim-${process.pid}`;
  writeFileSync(victim, 'root only\n', { mode: 0o600 });
  t.after(() => rmSync(victim, { force: true }));
  const planted = 'audit-00000000000000000000.jsonl';
  const d = startSeeded(t, (b) => {
    mkdirSync(join(b.dir, 'audit'), { mode: 0o700 });
    linkSync(victim, join(b.dir, 'audit', planted));
  });
  await waitFor('the broker to refuse', () => /broker: Failed to open the audit log in \S+: Permission denied/.test(d.stderr), 15000);
  assert.match(d.stderr, new RegExp(`${planted} has 2 links and owner 0: not an audit file of ours; left as it is`));
  assert.equal(statSync(join(d.dir, 'audit')).uid, d.uids.min - 1);
  assert.equal(statSync(victim).uid, 0, 'the linked file was given to the broker uid');
  assert.equal(statSync(victim).mode & 0o777, 0o600);
  assert.equal(readFileSync(victim, 'utf8'), 'root only\n');
  rmSync(join(d.dir, 'audit', planted));
  d.kill();
  t.after(() => removeDaemonDir(d.dir));
});

// The broker keeps its uid for its lifetime; a reload whose worker range would take that uid in is
// refused (a worker could otherwise be given the broker's uid), and the broker serves on.
test('a reload whose worker_uids would include the running broker\'s uid is refused', async (t) => {
  const d = await withDaemon(t);
  const brokerUid = d.uids.min - 1;
  const broker = d.tree().find((p) => p.argv[0]?.endsWith('/bastion-broker'));
  assert.ok(broker);
  const conf = readFileSync(d.configPath, 'utf8');
  const from = `worker_uids = [ ${d.uids.min}, ${d.uids.max} ];`;
  assert.ok(conf.includes(from), conf);
  writeFileSync(d.configPath, conf.replace(from, `worker_uids = [ ${brokerUid}, ${d.uids.max} ]; broker_uid = ${brokerUid - 1};`));
  process.kill(d.pid, 'SIGHUP');
  await waitFor('the refusal', () => d.stderr.includes(`would include uid ${brokerUid}, which the running broker uses; ` +
    'restart bastiond to change both'), 5000);
  assert.equal(d.tree().find((p) => p.argv[0]?.endsWith('/bastion-broker'))?.pid, broker.pid);
  const c = await d.connectV1();
  assert.equal((await c.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001' } })).isError ?? false, false);
  writeFileSync(d.configPath, conf);
  await d.stop();
});

test('the broker checks the key file it is handed: group-readable is refused, with its mode', async (t) => {
  const a = await withDaemon(t);
  await stopKeepingFiles(a);
  t.after(() => removeDaemonDir(a.dir));

  const d = startSeeded(t, (b) => {
    mkdirSync(b.stateDir, { recursive: true });
    copyFileSync(join(a.dir, 'secrets.key'), join(b.dir, 'secrets.key'));
    chmodSync(join(b.dir, 'secrets.key'), 0o440);
    copyFileSync(join(a.stateDir, 'secrets.store'), join(b.stateDir, 'secrets.store'));
  });
  await waitFor('the broker to refuse the key file', () => /Refusing key file .*secrets\.key.*mode 0440, owner 0/.test(d.stderr), 10000)
    .catch((e) => { throw new Error(`${e.message}\n${d.stderr}`); });
  assert.ok(!auditFiles(join(d.dir, 'audit')).length, 'an audit log was opened with a refused key');
  d.kill();
});

test('a first start that cannot create the store names `bastionctl secrets init`, which then lets the broker start', async (t) => {
  let store;
  const d = startSeeded(t, (b) => {
    store = join(b.dir, 'not-yet', 'secrets.store');
    const text = readFileSync(b.configPath, 'utf8');
    writeFileSync(b.configPath, text.replace(/(secrets_key_file = )/, `secrets_store = "${store}";\n        $1`));
  });
  await waitFor('the broker to name the command', () =>
    d.stderr.includes(`No secrets store ${store}: \`bastionctl secrets init\` creates it`), 10000)
    .catch((e) => { throw new Error(`${e.message}\n${d.stderr}`); });
  assert.match(d.stderr, /Creating the secrets store .* failed/);

  mkdirSync(join(d.dir, 'not-yet'));
  const init = run(bin('bastionctl'), 'secrets', 'init', '--store', store, '--key-file', join(d.dir, 'secrets.key'));
  assert.equal(init.status, 0, init.stderr);
  assert.match(init.stdout, /^audit public key: [0-9a-f]{64}\n$/);
  await d.waitReady(['inventory']);
  await d.stop();
});

test('a first start that hangs is killed after 10 s and named; the broker then says what is missing', async (t) => {
  // A bastion-broker whose --first-start never returns (the real one for everything else).
  const libexec = mkdtempSync('/tmp/bastion-hang-libexec-');
  chmodSync(libexec, 0o755);
  symlinkSync(bin('bastion-worker'), join(libexec, 'bastion-worker'));
  writeFileSync(join(libexec, 'bastion-broker'),
    `#!/bin/sh\n[ "$1" = --first-start ] && exec sleep 600\nexec ${bin('bastion-broker')} "$@"\n`, { mode: 0o755 });
  t.after(() => rmSync(libexec, { recursive: true, force: true }));
  let store;
  SeededDaemon.seed = (b) => {
    store = join(b.dir, 'not-yet', 'secrets.store');
    const text = readFileSync(b.configPath, 'utf8');
    writeFileSync(b.configPath, text.replace(/(secrets_key_file = )/, `secrets_store = "${store}";\n        $1`));
  };
  let d;
  try {
    d = new SeededDaemon([inventoryServer('inventory')], { libexecDir: libexec });
  } finally {
    SeededDaemon.seed = null;
  }
  t.after(() => d.kill());
  const started = Date.now();
  await waitFor('bastiond to give up on the first start', () =>
    d.stderr.includes(`Creating the secrets store ${store} did not finish within 10 s: killed`), 25000)
    .catch((e) => { throw new Error(`${e.message}\n${d.stderr}`); });
  const waited = Date.now() - started;
  assert.ok(waited >= 9000, `gave up after ${waited} ms`);
  assert.ok(!d.tree().some((p) => p.argv[0] === 'sleep'), 'the hung first start is still running');
  await waitFor('the broker to name the command', () =>
    d.stderr.includes(`No secrets store ${store}: \`bastionctl secrets init\` creates it`), 10000)
    .catch((e) => { throw new Error(`${e.message}\n${d.stderr}`); });
  d.kill();
});
