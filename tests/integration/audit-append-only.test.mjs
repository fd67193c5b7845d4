// The append-only inode flag on the audit log (issue #5): bastiond sets it on every audit file (the
// broker has no capability to), on each file a rotation creates, and again after a broker crash whose
// recovery needed it off. Root without CAP_LINUX_IMMUTABLE can then neither rewrite, truncate, remove
// nor un-flag a file; the log still grows and verifies. Needs a filesystem with inode flags (the
// tests' /tmp is ext4 here; the test skips elsewhere).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bin, inventoryServer, waitFor, withDaemon } from './harness.mjs';

// Root with every capability but CAP_LINUX_IMMUTABLE (uid 0, so file permissions are no obstacle).
const withoutImmutable = (cmd, ...args) => spawnSync('setpriv', ['--inh-caps=-linux_immutable',
  '--bounding-set=-linux_immutable', '--', cmd, ...args], { encoding: 'utf8' });

const appendOnly = (path) => {
  const r = spawnSync('lsattr', [path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split(/\s+/)[0].includes('a');
};
const sha = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

function filesystemHasFlags() {
  const probe = join('/tmp', `bastion-flags-probe-${process.pid}`);
  writeFileSync(probe, '');
  const r = spawnSync('chattr', ['+a', probe]);
  spawnSync('chattr', ['-a', probe]);
  spawnSync('rm', ['-f', probe]);
  return r.status === 0;
}

async function stopKeepingFiles(d) {
  const cleanup = d.cleanup;
  d.cleanup = () => {};
  try { await d.stop(); } finally { d.cleanup = cleanup; }
}

test('audit files are append-only for root without CAP_LINUX_IMMUTABLE, across rotation and broker restart',
  { skip: !filesystemHasFlags() && '/tmp has no inode flags' }, async (t) => {
    const d = await withDaemon(t, { servers: [inventoryServer('inventory', { approval: 'none' })] });
    const auditDir = join(d.dir, 'audit');
    const files = () => readdirSync(auditDir).filter((f) => /^audit-\d{20}\.jsonl$/.test(f)).sort().map((f) => join(auditDir, f));
    await waitFor('the audit file to be append-only', () => files().length === 1 && appendOnly(files()[0]), 5000);
    const c = await d.connectV1();
    await c.callTool({ name: 'create_reorder', arguments: { sku: 'SKU-1001', quantity: 7, warehouse: 'WH-BER' } });

    // The control: the same privileges can truncate and rewrite a file without the flag.
    const control = join(d.dir, 'control');
    writeFileSync(control, 'history');
    assert.equal(withoutImmutable('truncate', '-s', '0', control).status, 0, 'the control failed: the checks prove nothing');

    const file = files()[0], before = sha(file);
    const attempts = {
      'truncate': withoutImmutable('truncate', '-s', '0', file),
      'write at offset 0': withoutImmutable('dd', 'if=/dev/zero', `of=${file}`, 'bs=1', 'count=1', 'seek=0', 'conv=notrunc'),
      'clear the flag': withoutImmutable('chattr', '-a', file),
      'remove': withoutImmutable('rm', '-f', file),
      'rename': withoutImmutable('mv', file, `${file}.old`),
    };
    for (const [what, r] of Object.entries(attempts)) {
      assert.notEqual(r.status, 0, `${what} succeeded`);
      assert.match(r.stderr, /Operation not permitted/, `${what}: ${r.stderr}`);
    }
    assert.equal(sha(file), before);
    assert.ok(appendOnly(file));

    // The log still grows; a rotation (SIGHUP) creates a file that becomes append-only too.
    process.kill(d.pid, 'SIGHUP');
    await waitFor('the rotated file to be append-only', () => files().length === 2 && files().every(appendOnly), 5000);

    // A broker killed inside a write leaves a torn line (made here by hand while bastiond is stopped:
    // appending is what the flag allows). Its successor must cut it, which it can only do because
    // bastiond lifts the flag of the newest files before it starts a broker; once that broker is
    // ready every file is append-only again.
    const broker = d.tree().find((p) => p.argv[0]?.endsWith('/bastion-broker')).pid;
    process.kill(d.pid, 'SIGSTOP');
    process.kill(broker, 'SIGKILL');
    await waitFor('the broker to die', () => !d.tree().some((p) => p.pid === broker && p.state !== 'Z'), 5000);
    const torn = withoutImmutable('sh', '-c', `printf '{"seq":999999,"ts":"torn' >> '${files()[1]}'`);
    assert.equal(torn.status, 0, torn.stderr);
    process.kill(d.pid, 'SIGCONT');
    await d.waitReady(['inventory']);
    await waitFor('every file append-only after the restart', () => files().every(appendOnly), 5000);
    const r = await c.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001' } }).catch(async () => {
      const c2 = await d.connectV1();
      return c2.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001' } });
    });
    assert.equal(r.isError ?? false, false);

    await stopKeepingFiles(d);
    const records = files().flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
    assert.deepEqual(records.filter((x) => x.type === 'recovered').map((x) => x.reason), ['torn tail']);
    const v = spawnSync(bin('bastionctl'), ['audit', 'verify', '--dir', auditDir, '--store', join(d.stateDir, 'secrets.store'),
      '--key-file', join(d.dir, 'secrets.key')], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stdout + v.stderr);
    assert.ok(files().every(appendOnly));
    d.cleanup();
  });
