// A local user whose role lacks inventory:reorder neither sees create_reorder nor can call it
// (issue #2). The user is a real second account; its bastion-stdio runs under its own uid, and the
// broker identifies it by SO_PEERCRED.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { READ_TOOLS, TEST_USER, runShim, withDaemon } from './harness.mjs';

for (const era of ['v1', 'v2']) {
  test(`${era}: a user without inventory:reorder neither sees nor can call create_reorder`, async (t) => {
    const d = await withDaemon(t);
    const c = era === 'v1' ? await d.connectV1({ user: TEST_USER }) : await d.connectV2({ user: TEST_USER });
    const { tools } = await c.listTools();
    assert.deepEqual(tools.map((x) => x.name).sort(), READ_TOOLS);

    // The role may read: the denial below is about the scope, not a broken connection.
    const stock = await c.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001', warehouse: 'WH-BER' } });
    assert.equal(stock.structuredContent.total, 12);

    const r = await c.callTool({
      name: 'create_reorder', arguments: { sku: 'SKU-1001', quantity: 10, warehouse: 'WH-BER' },
    });
    assert.equal(r.isError, true);
    assert.equal(r.content.length, 1);
    assert.match(r.content[0].text, /\binventory:reorder\b/);
    assert.equal(r.structuredContent, undefined);

    // Nothing reached the database.
    const root = await d.connectV1();
    const list = await root.callTool({ name: 'list_reorders', arguments: {} });
    assert.deepEqual(list.structuredContent, { count: 0, reorders: [] });
    await d.stop();
  });
}

test('a local user mapped to no role is refused at the preamble', async (t) => {
  const d = await withDaemon(t);
  const uid = Number(spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).stdout);
  assert.ok(uid > 0, 'no user "nobody"');
  const r = await runShim(d.stdioArgs('inventory'), '', { user: 'nobody' });
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `bastion-stdio: uid:${uid} is not mapped to a role in ${d.configPath}\n`);
  assert.equal(r.status, 2);
  await d.stop();
});
