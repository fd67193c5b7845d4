// Crash safety of the audit log (issue #5): the broker is killed with SIGKILL during a run of 1,000
// side-effecting calls (create_reorder with approval "none"). After the supervisor restarted it and the
// daemon stopped, `bastionctl audit verify` passes and every call whose result a client received has
// its intent record and its result record, counted one by one. (Each call's quantity is unique, so its
// intent is found by its arguments and its result by the intent's seq.)
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { Daemon, bin, inventoryServer, sleep, waitFor } from './harness.mjs';

const CALLS = 1000;
const CONNECTIONS = 4;
const DEPTH = 4;                // calls in flight per connection (max_inflight is 16)
const KILL_AFTER = 300;         // acknowledged calls before the broker is killed
const SERVER_UNAVAILABLE = -31001;

const auditRecords = (dir) => readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()
  .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));

// SIGTERM as Daemon.stop() checks it, but the files stay for the checks that follow.
async function stopKeepingFiles(d) {
  const cleanup = d.cleanup;
  d.cleanup = () => {};
  try { await d.stop(); } finally { d.cleanup = cleanup; }
}

// One local MCP connection (2025-11-25, as root) with several requests in flight; answers are matched
// by id. Every pending call is rejected when the connection closes.
function connect(socketPath) {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    const pending = new Map();
    let buf = '', first = true, nextId = 1;
    sock.setEncoding('utf8');
    sock.on('error', (e) => { if (first) reject(e); });
    sock.on('connect', () => sock.write('server inventory\n'));
    sock.on('close', () => {
      if (first) reject(new Error('closed before the preamble answer'));
      for (const p of pending.values()) p.reject(new Error('connection closed'));
      pending.clear();
    });
    const request = (method, params) => new Promise((res, rej) => {
      const id = nextId++;
      pending.set(id, { resolve: res, reject: rej });
      sock.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
    });
    sock.on('data', async (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (first) {
          first = false;
          if (line !== 'ok') return reject(new Error(`preamble refused: ${line}`));
          try {
            await request('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'crash', version: '1' } });
            sock.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');
            resolve({ request, close: () => sock.destroy() });
          } catch (e) { reject(e); }
          continue;
        }
        const msg = JSON.parse(line);
        const p = pending.get(msg.id);
        if (!p) continue;
        pending.delete(msg.id);
        p.resolve(msg);
      }
    });
  });
}

test('kill -9 of the broker during 1,000 side-effecting calls loses no acknowledged call from the audit log', { timeout: 240000 }, async (t) => {
  const d = await Daemon.start({ servers: [inventoryServer('inventory', { approval: 'none' })] });
  t.after(() => d.kill());
  const brokerPid = () => d.tree().find((p) => p.argv[0]?.endsWith('/bastion-broker'))?.pid ?? null;
  const firstBroker = brokerPid();
  assert.ok(firstBroker);

  // Quantities still to call. A call the restarted broker refuses because the worker is not back yet
  // ("server is starting") never ran and is asked again; one lost with the broker is not (it may have
  // run: only the log can say).
  const todo = Array.from({ length: CALLS }, (_, i) => i + 1);
  const acked = new Map();      // quantity -> reorder_id: a result the client received
  let killed = false, errors = 0, lost = 0, retried = 0;

  async function lane() {
    while (todo.length) {
      let c;
      try { c = await connect(d.socket); } catch { await sleep(20); continue; }
      const inflight = new Set();
      let broken = false;
      while (!broken && (todo.length || inflight.size)) {
        while (!broken && todo.length && inflight.size < DEPTH) {
          const quantity = todo.shift();
          const p = c.request('tools/call', { name: 'create_reorder',
            arguments: { sku: 'SKU-1001', quantity, warehouse: 'WH-BER' } }).then((msg) => {
            if (msg.result && !msg.result.isError) acked.set(quantity, msg.result.structuredContent.reorder_id);
            else if (msg.error?.code === SERVER_UNAVAILABLE && /starting/.test(msg.error.message)) {
              retried++;
              todo.push(quantity);
            } else {
              errors++;
              console.log(`# call ${quantity}: ${JSON.stringify(msg)}`);
            }
          }, () => { lost++; broken = true; }).finally(() => inflight.delete(p));
          inflight.add(p);
        }
        if (inflight.size) await Promise.race(inflight);
        else await sleep(20);
        if (!killed && acked.size >= KILL_AFTER) {
          killed = true;
          process.kill(firstBroker, 'SIGKILL');
        }
      }
      await Promise.allSettled(inflight);
      c.close();
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS }, lane));

  assert.ok(killed, 'the broker was never killed');
  const secondBroker = brokerPid();
  assert.ok(secondBroker && secondBroker !== firstBroker, 'the broker was not restarted');
  console.log(`# ${acked.size} acknowledged, ${lost} lost with the broker, ${errors} errors, ${retried} asked again`);
  assert.equal(errors, 0);
  assert.equal(acked.size + lost, CALLS);
  assert.ok(acked.size >= CALLS - CONNECTIONS * DEPTH, `only ${acked.size} calls acknowledged`);
  assert.match(d.stderr, /broker \(pid \d+\) killed by signal 9/);

  // A clean stop writes the closing checkpoint; then the whole log must verify without any excuse.
  const auditDir = join(d.dir, 'audit');
  await stopKeepingFiles(d);
  const v = spawnSync(bin('bastionctl'), ['audit', 'verify', '--dir', auditDir,
    '--store', join(d.stateDir, 'secrets.store'), '--key-file', join(d.dir, 'secrets.key')], { encoding: 'utf8' });
  assert.equal(v.status, 0, `audit verify: ${v.stdout}${v.stderr}`);
  assert.match(v.stdout, /^OK: /);

  const records = auditRecords(auditDir);
  const intents = new Map(), results = new Map();
  for (const r of records) {
    if (r.type === 'call.intent' && r.tool === 'create_reorder') {
      assert.ok(!intents.has(r.arguments.quantity), `two intents for quantity ${r.arguments.quantity}`);
      intents.set(r.arguments.quantity, r);
    } else if (r.type === 'call.result' && r.tool === 'create_reorder') {
      results.set(r.intent_seq, r);
    }
  }
  assert.equal(records.filter((r) => r.type === 'recovered').length, 1, 'the restart did not record its recovery');
  let withIntent = 0, withResult = 0;
  for (const quantity of acked.keys()) {
    const intent = intents.get(quantity);
    if (!intent) continue;
    withIntent++;
    const result = results.get(intent.seq);
    if (result?.status === 'ok') withResult++;
  }
  console.log(`# ${withIntent} of ${acked.size} acknowledged calls have their intent, ${withResult} their result`);
  assert.equal(withIntent, acked.size, 'acknowledged calls without an intent record');
  assert.equal(withResult, acked.size, 'acknowledged calls without a result record');
  // Every intent is a call the worker may have acted on: none may be missing an answer that was given.
  assert.ok(intents.size >= acked.size);
  d.cleanup();
});

// The broker writes the audit records of one batch of messages (here: the lines of one read from a
// local connection) with one write(2) and lets nothing of the batch leave before it
// (docs/audit-secrets.md). When that write fails — the audit directory is a small tmpfs, filled up from
// outside — none of the batch's calls may run: the worker the batch would have written to is dropped
// with its requests unsent, every call of the batch gets an error, every later call is refused, and
// every call that was answered with a result has its intent and its result in the file.
const AUDIT_REFUSED = -31004;

test('an audit write that fails for a batch: its calls fail without reaching the worker, later calls are refused', { timeout: 60000 }, async (t) => {
  const d = await Daemon.start({ prepare: (d) => d.mount('audit', '1m') });
  t.after(() => d.kill());
  const c = await connect(d.socket);
  t.after(() => c.close());
  const stock = (i) => c.request('tools/call', { name: 'get_stock', arguments: { sku: 'SKU-1001' }, _meta: { n: i } });
  const first = await stock(0);
  assert.ok(first.result && !first.result.isError, JSON.stringify(first));

  // Fill the file system: from now on the log can grow only into the slack of its last page.
  const auditDir = join(d.dir, 'audit');
  const filler = openSync(join(auditDir, 'filler'), 'w');
  for (let chunk = 65536; chunk >= 1;) {
    try { writeSync(filler, Buffer.alloc(chunk)); } catch (e) { if (e.code !== 'ENOSPC') throw e; chunk >>= 1; }
  }
  closeSync(filler);

  let ok = 1;
  const failed = [];
  for (let round = 0; round < 20 && !failed.length; round++) {
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => stock(round * 8 + i + 1)));
    for (const a of answers) {
      if (a.result && !a.result.isError) ok++;
      else failed.push(a);
    }
  }
  assert.ok(failed.length > 0, 'the audit log never ran out of room');
  for (const a of failed)
    assert.ok([SERVER_UNAVAILABLE, AUDIT_REFUSED].includes(a.error?.code), JSON.stringify(a));
  await waitFor('the broker to say why', () => /AUDIT LOG WRITE FAILED/.test(d.stderr), 5000);
  // A batch whose write failed was taken from the worker unsent.
  if (failed.some((a) => a.error.code === SERVER_UNAVAILABLE))
    assert.match(d.stderr, /worker inventory down: the audit log cannot be written/);
  const later = await stock(1000);
  assert.equal(later.error?.code, AUDIT_REFUSED, JSON.stringify(later));
  assert.match(later.error.message, /audit log cannot be written/);

  // Every call that ran (its client got a result) has its intent on file: the intent's batch was written
  // before the worker heard of it. Its result record may be missing only if it was in the batch whose
  // write failed — the answer still went out, as for any failed result record (bastion-audit(5)).
  const lines = readFileSync(join(auditDir, readdirSync(auditDir).filter((f) => f.endsWith('.jsonl')).sort().pop()), 'utf8')
    .split('\n');
  lines.pop();          // after the last newline: nothing, or a torn piece the next open cuts off
  const records = lines.map((l) => JSON.parse(l));
  const intents = new Set(records.filter((r) => r.type === 'call.intent' && r.tool === 'get_stock').map((r) => r.seq));
  const results = records.filter((r) => r.type === 'call.result' && r.tool === 'get_stock');
  assert.ok(intents.size >= ok, `${intents.size} intent records for ${ok} calls that ran`);
  assert.ok(results.length <= ok && results.length >= ok - 8, `${results.length} result records for ${ok} calls that ran`);
  for (const r of results) assert.ok(intents.has(r.intent_seq), `result ${r.seq} without its intent`);
});

// A file-size limit on the service (systemd's LimitFSIZE=, here prlimit on bastiond, inherited by every
// process) that the audit log reaches: the broker is not killed by SIGXFSZ (it would be restarted into
// the same wall, again and again) but fails closed, saying why, and refuses calls from then on.
test('an audit log that reaches the file-size limit fails closed with EFBIG; the broker is not killed', { timeout: 60000 }, async (t) => {
  const d = await Daemon.start({ fileSizeLimit: 64 * 1024 });
  t.after(() => d.kill());
  const broker = d.tree().find((p) => p.argv[0]?.endsWith('/bastion-broker'))?.pid;
  assert.ok(broker);
  const c = await connect(d.socket);
  t.after(() => c.close());
  let ok = 0, refused = null;
  for (let i = 0; i < 400 && !refused; i++) {
    const a = await c.request('tools/call', { name: 'get_stock', arguments: { sku: 'SKU-1001' } });
    if (a.result && !a.result.isError) ok++;
    else refused = a;
  }
  assert.ok(refused, `${ok} calls and the log never reached 64 KiB`);
  assert.ok(ok > 10, `only ${ok} calls before the limit`);
  assert.ok([SERVER_UNAVAILABLE, AUDIT_REFUSED].includes(refused.error?.code), JSON.stringify(refused));
  await waitFor('the broker to say why', () => /AUDIT LOG WRITE FAILED.*File too large/.test(d.stderr), 5000);
  const later = await c.request('tools/call', { name: 'get_stock', arguments: { sku: 'SKU-1001' } });
  assert.equal(later.error?.code, AUDIT_REFUSED, JSON.stringify(later));
  assert.equal(d.tree().find((p) => p.argv[0]?.endsWith('/bastion-broker'))?.pid, broker, 'the broker was restarted');
  assert.doesNotMatch(d.stderr, /broker \(pid \d+\) killed by signal/);
});
