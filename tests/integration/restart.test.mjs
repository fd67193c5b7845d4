// kill -9 of a worker during a call: the caller gets an error within a second, the supervisor restarts
// the worker, and the next call on the same connection succeeds (issue #2).
import test from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { sleep, waitFor, withDaemon } from './harness.mjs';

const SERVER_UNAVAILABLE = -31001;

test('a worker killed during a call fails that call within 1 s and is restarted', async (t) => {
  const d = await withDaemon(t);
  const c = await d.connectV1();
  const args = { name: 'get_stock', arguments: { sku: 'SKU-1005' } };
  assert.equal((await c.callTool(args)).structuredContent.total, 49);

  const pid = d.workerPid('inventory');
  assert.ok(pid, 'no worker process found');
  // Stopped first, so the call is surely in flight at the worker when it dies.
  process.kill(pid, 'SIGSTOP');
  const pending = c.callTool(args).then((result) => ({ result }), (error) => ({ error }));
  await sleep(200);
  const killedAt = performance.now();
  process.kill(pid, 'SIGKILL');
  const outcome = await pending;
  const elapsed = performance.now() - killedAt;

  assert.ok(elapsed < 1000, `the caller waited ${Math.round(elapsed)} ms for its error`);
  assert.equal(outcome.result, undefined, `the call succeeded: ${JSON.stringify(outcome.result)}`);
  assert.equal(outcome.error.code, SERVER_UNAVAILABLE, String(outcome.error));
  assert.match(outcome.error.message, /\binventory\b/);

  // The next call waits for the restarted worker (within its deadline) and gets the real answer.
  const next = await c.callTool(args);
  assert.equal(next.isError ?? false, false, JSON.stringify(next));
  assert.equal(next.structuredContent.total, 49);
  const newPid = await waitFor('the restarted worker', () => d.workerPid('inventory'), 5000);
  assert.notEqual(newPid, pid);
  assert.match(d.stderr, /inventory/);
  await d.stop();
});
