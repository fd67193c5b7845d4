// Both MCP revisions reach a real inventory worker through bastion-stdio and the broker (issue #2):
// the 2025-11-25 client (SDK v1) and the 2026-07-28 client (SDK v2, pinned).
import test from 'node:test';
import assert from 'node:assert/strict';
import { INVENTORY_TOOLS, withDaemon } from './harness.mjs';

const PALLET_JACK = {
  sku: 'SKU-1001',
  name: 'Pallet jack',
  reorder_point: 5,
  warehouses: [
    { warehouse: 'WH-BER', on_hand: 12 },
    { warehouse: 'WH-CHI', on_hand: 8 },
    { warehouse: 'WH-RTM', on_hand: 3 },
  ],
  total: 23,
};

for (const era of ['v1', 'v2']) {
  test(`${era} client lists the inventory tools and calls get_stock`, async (t) => {
    const d = await withDaemon(t);
    const c = era === 'v1' ? await d.connectV1() : await d.connectV2();
    const { tools } = await c.listTools();
    assert.deepEqual(tools.map((x) => x.name).sort(), INVENTORY_TOOLS);
    const getStock = tools.find((x) => x.name === 'get_stock');
    assert.deepEqual(getStock.inputSchema.required, ['sku']);

    const r = await c.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001' } });
    assert.equal(r.isError ?? false, false);
    assert.deepEqual(r.structuredContent, PALLET_JACK);
    assert.equal(r.content[0].text,
      'SKU-1001 (Pallet jack): 23 on hand in total — WH-BER 12, WH-CHI 8, WH-RTM 3; reorder point 5.');

    const one = await c.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001', warehouse: 'WH-RTM' } });
    assert.deepEqual(one.structuredContent.warehouses, [{ warehouse: 'WH-RTM', on_hand: 3 }]);
    assert.equal(one.structuredContent.total, 3);
    await d.stop();
  });
}

test('create_reorder writes a row that get_reorder and list_reorders read back', async (t) => {
  const d = await withDaemon(t);
  const writer = await d.connectV1();
  const created = await writer.callTool({
    name: 'create_reorder', arguments: { sku: 'SKU-1008', quantity: 4, warehouse: 'WH-RTM' },
  });
  assert.equal(created.isError ?? false, false, JSON.stringify(created));
  const row = created.structuredContent;
  assert.equal(row.reorder_id, 1);
  assert.equal(row.sku, 'SKU-1008');
  assert.equal(row.warehouse, 'WH-RTM');
  assert.equal(row.quantity, 4);
  assert.equal(row.status, 'requested');
  // The worker records the principal the broker vouched for, not anything the client said.
  assert.equal(row.requested_by, 'uid:0');
  assert.match(row.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

  // Read back on another connection, in the other protocol revision: the row is in SQLite.
  const reader = await d.connectV2();
  const got = await reader.callTool({ name: 'get_reorder', arguments: { reorder_id: row.reorder_id } });
  assert.deepEqual(got.structuredContent, row);
  const list = await reader.callTool({ name: 'list_reorders', arguments: { sku: 'SKU-1008' } });
  assert.deepEqual(list.structuredContent, { count: 1, reorders: [row] });

  const bad = await writer.callTool({
    name: 'create_reorder', arguments: { sku: 'SKU-9999', quantity: 4, warehouse: 'WH-RTM' },
  });
  assert.equal(bad.isError, true);
  assert.match(bad.content[0].text, /SKU-9999/);
  const after = await reader.callTool({ name: 'list_reorders', arguments: {} });
  assert.equal(after.structuredContent.count, 1);
  await d.stop();
});

test('concurrent calls through one bastion-stdio each get their own reply', async (t) => {
  const d = await withDaemon(t);
  const c = await d.connectV1();
  const skus = Array.from({ length: 10 }, (_, i) => `SKU-${1001 + i}`);
  const results = await Promise.all(skus.map((sku) => c.callTool({ name: 'get_stock', arguments: { sku } })));
  assert.deepEqual(results.map((r) => r.structuredContent.sku), skus);
  assert.deepEqual(results.map((r) => r.structuredContent.total), [23, 1420, 7300, 1840, 49, 2800, 1110, 10, 615, 21]);
  await d.stop();
});
