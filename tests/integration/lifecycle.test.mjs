// SIGTERM stops everything with exit status 0, and bastion-stdio explains itself when it cannot reach a
// server: the daemon is down, or the server is unknown (issue #2).
import test from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Daemon, runShim, sleep, waitFor, withDaemon } from './harness.mjs';

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'shim-test', version: '0' } },
});

test('SIGTERM with a client connected exits 0 and leaves no process behind', async (t) => {
  const d = await withDaemon(t);
  const c = await d.connectV1();
  assert.equal((await c.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001' } })).structuredContent.total, 23);
  const kinds = d.tree().map((p) => p.argv[0].split('/').pop());
  assert.ok(kinds.includes('bastion-broker'), `no broker in ${kinds}`);
  assert.ok(kinds.includes('bastion-worker'), `no worker in ${kinds}`);
  await d.stop();
});

test('SIGTERM drains the call in flight and refuses new calls meanwhile; exit 0', async (t) => {
  const d = await withDaemon(t);
  const c = await d.connectV1();
  const args = { name: 'get_stock', arguments: { sku: 'SKU-1001' } };
  assert.equal((await c.callTool(args)).structuredContent.total, 23);
  const worker = d.workerPid('inventory');
  process.kill(worker, 'SIGSTOP'); // the next call stays in flight until SIGCONT
  t.after(() => { try { process.kill(worker, 'SIGCONT'); } catch { /* gone */ } });
  const inflight = c.callTool(args);
  await sleep(200);
  process.kill(d.pid, 'SIGTERM');
  await waitFor('the broker to begin its stop', () => /stop requested; 1 call\(s\) in flight/.test(d.stderr), 3000);
  await assert.rejects(c.callTool(args), (e) => {
    assert.equal(e.code, -31001);
    assert.match(e.message, /Not run: Bastion is stopping; nothing was done/);
    return true;
  });
  process.kill(worker, 'SIGCONT');
  assert.equal((await inflight).structuredContent.total, 23);
  assert.deepEqual(await d.exit, { code: 0, signal: null }, d.stderr);
  assert.equal(d.stderr.match(/no calls in flight; stopping/g)?.length, 1);
  d.cleanup();
});

test('bastion-stdio relays until stdin ends, drains every reply and exits 0', async (t) => {
  const d = await withDaemon(t);
  // All requests, then end of input at once: the replies still in flight must all come back.
  const skus = Array.from({ length: 10 }, (_, i) => `SKU-${1001 + i}`);
  const calls = skus.map((sku, i) => JSON.stringify({
    jsonrpc: '2.0', id: 100 + i, method: 'tools/call', params: { name: 'get_stock', arguments: { sku } },
  }));
  const initialized = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' });
  const r = await runShim(d.stdioArgs('inventory'), [INITIALIZE, initialized, ...calls].join('\n') + '\n');
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
  assert.ok(r.stdout.endsWith('\n'));
  const replies = r.stdout.slice(0, -1).split('\n').map((l) => JSON.parse(l));
  assert.equal(replies.length, 11);
  const init = replies.find((m) => m.id === 1);
  assert.equal(init.result.protocolVersion, '2025-11-25');
  const stock = replies.filter((m) => m.id >= 100).sort((a, b) => a.id - b.id);
  assert.deepEqual(stock.map((m) => m.result.structuredContent.sku), skus);
  await d.stop();
});

test('bastion-stdio names an unknown server and exits 2', async (t) => {
  const d = await withDaemon(t);
  const r = await runShim(d.stdioArgs('payroll'), INITIALIZE + '\n');
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'bastion-stdio: unknown server "payroll"\n');
  assert.equal(r.status, 2);
  await d.stop();
});

test('bastion-stdio says bastiond is not running when its socket is missing, exit 1', async () => {
  const path = join('/tmp', `bastion-no-such-${process.pid}.sock`);
  const r = await runShim(['inventory', '--socket', path], INITIALIZE + '\n');
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `bastion-stdio: cannot connect to ${path}: No such file or directory (is bastiond running?)\n`);
  assert.equal(r.status, 1);
});

test('bastion-stdio after the daemon stopped: cannot connect, exit 1', async (t) => {
  const d = await withDaemon(t);
  const args = d.stdioArgs('inventory');
  await d.stop();
  const r = await runShim(args, INITIALIZE + '\n');
  assert.equal(r.stdout, '');
  assert.match(r.stderr,
    /^bastion-stdio: cannot connect to \S+: (No such file or directory|Connection refused) \(is bastiond running\?\)\n$/);
  assert.equal(r.status, 1);
});

test('Daemon harness refuses to hide a daemon that exits at start', async () => {
  await assert.rejects(Daemon.start({ servers: ['        bad = { domain = "no-such-domain"; };\n'], wait: ['bad'] }),
    /bastiond exited early: \{"code":[1-9]/);
});

// Every child dies with bastiond even when it cannot notice its channel closing: each is stopped
// (SIGSTOP) before bastiond is killed, so only the parent-death signal can end it. A change of uid
// clears that signal in the kernel, and every child changes uid (broker_uid, the workers' and the
// front's uids): the spawn path arms it again after the switch.
test('kill -9 of bastiond takes every child with it, even a stopped one', async (t) => {
  const d = await withDaemon(t);
  const children = d.tree();
  assert.ok(children.some((p) => p.argv[0]?.endsWith('/bastion-broker')), JSON.stringify(children));
  assert.ok(children.some((p) => p.argv.some((a) => a.includes('bastion-worker'))), JSON.stringify(children));
  for (const p of children) process.kill(p.pid, 'SIGSTOP');
  process.kill(d.pid, 'SIGKILL');
  const alive = (pid) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  await waitFor('every child gone', () => children.every((p) => !alive(p.pid)), 2000, 20).catch(() => {
    throw new Error(`still alive after bastiond died: ${children.filter((p) => alive(p.pid)).map((p) => `${p.pid} ${p.argv[0]}`).join(', ')}`);
  });
});
