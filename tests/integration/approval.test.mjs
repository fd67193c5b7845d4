// create_reorder with approval = "confirm" (as in examples/demo.conf), through the whole chain: the
// human at the host is asked about the exact arguments, in both protocol revisions, and nothing is
// written unless they accept.
import test from 'node:test';
import assert from 'node:assert/strict';
import { inventoryServer, withDaemon } from './harness.mjs';

const ORDER = { sku: 'SKU-1008', quantity: 4, warehouse: 'WH-CHI' };
const confirmed = () => ({ servers: [inventoryServer('inventory', { approval: 'confirm' })] });

for (const era of ['v1', 'v2']) {
  test(`${era}: confirm asks the human with the exact arguments; accept writes, decline does not`, async (t) => {
    const d = await withDaemon(t, confirmed());
    const asked = [];
    let answer = 'decline';
    const onElicit = (params) => {
      asked.push(params.message);
      return answer === 'accept' ? { action: 'accept', content: { confirm: true } } : { action: 'decline' };
    };
    const c = era === 'v1' ? await d.connectV1({ onElicit }) : await d.connectV2({ onElicit });

    const declined = await c.callTool({ name: 'create_reorder', arguments: ORDER });
    assert.equal(declined.isError, true);
    assert.match(declined.content[0].text, /^Not confirmed \(decline\): create_reorder was not run; nothing was done/);
    assert.equal(asked.length, 1);
    assert.match(asked[0], /create_reorder/);
    assert.ok(asked[0].includes('"quantity":4') && asked[0].includes('"sku":"SKU-1008"') &&
      asked[0].includes('"warehouse":"WH-CHI"'), asked[0]);
    const none = await c.callTool({ name: 'list_reorders', arguments: {} });
    assert.deepEqual(none.structuredContent, { count: 0, reorders: [] });

    answer = 'accept';
    const created = await c.callTool({ name: 'create_reorder', arguments: ORDER });
    assert.equal(created.isError ?? false, false, JSON.stringify(created));
    assert.equal(asked.length, 2);
    assert.equal(created.structuredContent.reorder_id, 1);
    const list = await c.callTool({ name: 'list_reorders', arguments: {} });
    assert.equal(list.structuredContent.count, 1);
    await d.stop();
  });
}

test('confirm refuses a client that cannot be asked, and writes nothing', async (t) => {
  const d = await withDaemon(t, confirmed());
  const c = await d.connectV1();
  const r = await c.callTool({ name: 'create_reorder', arguments: ORDER });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /^Refused: create_reorder needs your confirmation, .* nothing was done$/);
  const list = await c.callTool({ name: 'list_reorders', arguments: {} });
  assert.deepEqual(list.structuredContent, { count: 0, reorders: [] });
  await d.stop();
});
