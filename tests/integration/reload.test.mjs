// SIGHUP applies a changed configuration: a server added to the file appears, without disturbing the
// servers that were already running (issue #2).
import test from 'node:test';
import assert from 'node:assert/strict';
import { INVENTORY_TOOLS, inventoryServer, rawConnect, withDaemon } from './harness.mjs';

test('SIGHUP after adding a second server makes it reachable and leaves the first alone', async (t) => {
  const d = await withDaemon(t);
  const before = await rawConnect(d.socket, 'depot');
  assert.equal(before.answer, 'error unknown server "depot"');
  before.close();
  const inventoryPid = d.workerPid('inventory');
  assert.ok(inventoryPid, 'no inventory worker');

  const first = await d.connectV1();
  await d.reload([inventoryServer('inventory'), inventoryServer('depot')], ['inventory', 'depot']);

  const depot = await d.connectV1({ server: 'depot' });
  const { tools } = await depot.listTools();
  assert.deepEqual(tools.map((x) => x.name).sort(), INVENTORY_TOOLS);
  const stock = await depot.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1003', warehouse: 'WH-CHI' } });
  assert.equal(stock.structuredContent.total, 3100);

  // A second worker of the same domain has its own database.
  const created = await depot.callTool({
    name: 'create_reorder', arguments: { sku: 'SKU-1003', quantity: 2000, warehouse: 'WH-CHI' },
  });
  assert.equal(created.structuredContent.reorder_id, 1);
  const mine = await first.callTool({ name: 'list_reorders', arguments: {} });
  assert.deepEqual(mine.structuredContent, { count: 0, reorders: [] });

  // The first server kept its worker and its client connection across the reload.
  assert.equal(d.workerPid('inventory'), inventoryPid);
  const depotPid = d.workerPid('depot');
  assert.ok(depotPid && depotPid !== inventoryPid);
  await d.stop();
});
