// A worker that stops reading its channel while clients keep sending: once the broker's queue to it
// passes BASTION_MAX_UPSTREAM_BACKLOG (64 MiB), the broker closes that channel. Every queued call is
// answered with an error, the broker itself stays up (same pid: no crash, no use after free — run this
// file against an --enable-sanitizers build to have ASan check the teardown), the supervisor restarts
// the worker, and calls work again. Issue #2.
import test from 'node:test';
import assert from 'node:assert/strict';
import { rawConnect, sleep, waitFor, withDaemon } from './harness.mjs';

const SERVER_UNAVAILABLE = -31001;
const CONNECTIONS = 6;          // × 16 calls in flight (the default per-connection bound) × ~0.9 MiB
const PER_CONNECTION = 16;
const PAD = 'A'.repeat(900 * 1024);

const brokerPid = (d) => d.tree().find((p) => p.argv.some((a) => a.includes('bastion-broker')))?.pid;

async function session(d) {
  const c = await rawConnect(d.socket, 'inventory', 60000);
  assert.equal(c.answer, 'ok');
  const init = await c.request({
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'backlog', version: '0' } },
  });
  assert.ok(init.result, JSON.stringify(init));
  c.sock.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');
  return c;
}

test('a worker that stops reading is closed at the backlog bound; the broker survives and every call is answered', async (t) => {
  const d = await withDaemon(t);
  const broker = brokerPid(d);
  const worker = d.workerPid('inventory');
  assert.ok(broker && worker, 'no broker or worker process');

  const conns = [];
  for (let i = 0; i < CONNECTIONS; i++) conns.push(await session(d));
  process.kill(worker, 'SIGSTOP');
  t.after(() => { try { process.kill(worker, 'SIGCONT'); } catch { /* gone */ } });

  // The padding travels in a non-protocol _meta key, which the broker forwards to the worker.
  for (const c of conns) {
    for (let i = 1; i <= PER_CONNECTION; i++) {
      c.sock.write(JSON.stringify({
        jsonrpc: '2.0', id: i, method: 'tools/call',
        params: { name: 'get_stock', arguments: { sku: 'SKU-1005' }, _meta: { 'x-pad': PAD } },
      }) + '\n');
    }
    // Cancel half of them too: the cancellations queue behind the calls.
    for (let i = 1; i <= PER_CONNECTION; i += 2) {
      c.sock.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: i } }) + '\n');
    }
  }
  // The broker gives up on the worker; calls it had queued are answered with an error at once. Calls it
  // read after that wait for the restarted worker, which comes once the stopped one is let go.
  await waitFor('the broker to close the channel', () => /worker inventory is not reading its channel; closing it/.test(d.stderr), 20000);
  assert.equal(brokerPid(d), broker, `the broker was restarted:\n${d.stderr}`);
  process.kill(worker, 'SIGCONT');

  // Every call that was not cancelled gets exactly one answer; a cancelled one may have been answered
  // before the broker read its cancellation (the channel closed first), but never twice.
  let errors = 0, results = 0;
  for (const c of conns) {
    const got = new Map();
    const uncancelledAnswered = () => [...got.keys()].filter((id) => id % 2 === 0).length;
    while (uncancelledAnswered() < PER_CONNECTION / 2) {
      const line = await Promise.race([c.next(), sleep(30000).then(() => 'timeout')]);
      assert.notEqual(line, 'timeout', `calls left unanswered: ${PER_CONNECTION / 2 - uncancelledAnswered()}\n${d.stderr}`);
      assert.notEqual(line, null, `connection ${conns.indexOf(c)} closed after answers to ${[...got.keys()]}\n${d.stderr}`);
      const m = JSON.parse(line);
      assert.ok(!got.has(m.id), `call ${m.id} answered twice`);
      got.set(m.id, m);
      if (m.error) {
        assert.equal(m.error.code, SERVER_UNAVAILABLE, JSON.stringify(m).slice(0, 300));
        assert.match(m.error.message, /\binventory\b/);
        errors++;
      } else {
        assert.equal(m.result?.structuredContent?.total, 49, JSON.stringify(m).slice(0, 300));
        results++;
      }
    }
  }
  assert.ok(errors > 0, 'no call was failed by the closed channel');
  assert.equal(brokerPid(d), broker, `the broker was restarted:\n${d.stderr}`);

  // The stopped worker lost its channel; the supervisor replaces it and the same connections work.
  const fresh = await waitFor('a new inventory worker', () => {
    const p = d.workerPid('inventory');
    return p && p !== worker ? p : null;
  }, 10000);
  assert.ok(fresh);
  const again = await Promise.race([
    conns[0].request({ jsonrpc: '2.0', id: 100, method: 'tools/call', params: { name: 'get_stock', arguments: { sku: 'SKU-1005' } } }),
    sleep(10000).then(() => 'timeout'),
  ]);
  assert.notEqual(again, 'timeout');
  assert.equal(again.result?.structuredContent?.total, 49, JSON.stringify(again));
  for (const c of conns) c.close();
  await d.stop();
});
