// Tenant isolation in the reference deployment (issue #4): the acme customer never sees globex's (or
// initech's) orders, returns or payments through any tool or resource, also not by guessing ids, and
// another tenant's object is answered exactly like one that does not exist. Staff see every tenant.
import test from 'node:test';
import assert from 'node:assert/strict';
import { human, withReference } from './reference.mjs';

const text = (r) => r.content.map((c) => c.text).join('');
const NOTE_URIS = {
  acme: ['orders://ORD-1001/note', 'orders://ORD-1002/note'],
  globex: ['orders://ORD-1004/note'],
};

// A failed call, with the id it names replaced, so "another tenant's" and "does not exist" compare equal.
const shape = (r, id) => ({ ...r, content: r.content.map((c) => ({ ...c, text: c.text.replaceAll(id, 'ID') })) });
async function sameAsMissing(c, tool, key, theirs, missing, base = {}) {
  const a = await c.callTool({ name: tool, arguments: { ...base, [key]: theirs } });
  const b = await c.callTool({ name: tool, arguments: { ...base, [key]: missing } });
  assert.equal(a.isError, true, `${tool} ${theirs}: ${JSON.stringify(a)}`);
  assert.equal(a.structuredContent, undefined);
  assert.deepEqual(shape(a, theirs), shape(b, missing));
  return text(a);
}

// The error of a resources/read, as a plain object (the v1 SDK prefixes the message with
// "MCP error CODE: ", the v2 SDK does not).
async function readError(c, uri) {
  try {
    const r = await c.readResource({ uri });
    return { unexpected: r };
  } catch (e) {
    return { code: e.code, message: e.message.replace(/^MCP error -?\d+: /, ''), data: e.data };
  }
}

test('a customer lists only its own tenant\'s orders and returns, and cannot widen the query', async (t) => {
  const d = await withReference(t);
  for (const [who, orders, returns] of [['acme', ['ORD-1001', 'ORD-1002', 'ORD-1003'], ['RMA-4001']],
    ['globex', ['ORD-1004', 'ORD-1005', 'ORD-1006'], ['RMA-4002']]]) {
    const o = await d.connectAs(who, 'orders');
    const mine = (await o.callTool({ name: 'my_orders', arguments: {} })).structuredContent;
    assert.deepEqual(mine.orders.map((x) => x.order_id), orders);
    assert.deepEqual([...new Set(mine.orders.map((x) => x.tenant))], [who]);
    assert.equal(mine.count, 3);
    // No argument names a tenant: the schema refuses one, and nothing comes back.
    const widen = await o.callTool({ name: 'my_orders', arguments: { tenant: 'initech' } });
    assert.equal(widen.isError, true);
    assert.equal(widen.structuredContent, undefined);
    assert.match(text(widen), /tenant/);
    assert.doesNotMatch(text(widen), /ORD-100[7-9]/);

    const r = await d.connectAs(who, 'returns');
    const list = (await r.callTool({ name: 'list_returns', arguments: {} })).structuredContent;
    assert.deepEqual(list.returns.map((x) => x.rma_id), returns);
    assert.deepEqual([...new Set(list.returns.map((x) => x.tenant))], [who]);
    const widenR = await r.callTool({ name: 'list_returns', arguments: { tenant: 'initech' } });
    assert.equal(widenR.isError, true);
    assert.equal(widenR.structuredContent, undefined);
  }
  // Within the tenant, a status filter narrows (and never widens).
  const o = await d.connectAs('acme', 'orders');
  const delivered = (await o.callTool({ name: 'my_orders', arguments: { status: 'delivered' } })).structuredContent;
  assert.deepEqual(delivered.orders.map((x) => x.order_id), ['ORD-1001']);
  await d.stop();
});

test('another tenant\'s order, return or payment is answered exactly like one that does not exist', async (t) => {
  const d = await withReference(t);
  const r = await d.connectAs('acme', 'returns');
  // Own return: readable (so the refusals below are about the tenant).
  const own = await r.callTool({ name: 'get_return', arguments: { rma_id: 'RMA-4001' } });
  assert.equal(own.structuredContent.tenant, 'acme');
  for (const theirs of ['RMA-4002', 'RMA-4003']) { // globex's and initech's
    assert.equal(await sameAsMissing(r, 'get_return', 'rma_id', theirs, 'RMA-4999'), `unknown return: ${theirs}`);
  }

  // create_return on another tenant's order, even confirmed by the human: not found, nothing written.
  const h = human('accept');
  const rc = await d.connectAs('acme', 'returns', 'v1', h.onElicit);
  assert.equal(await sameAsMissing(rc, 'create_return', 'order_id', 'ORD-1004', 'ORD-9999', { reason: 'broken' }),
    'unknown order: ORD-1004');
  const staff = await d.connectAs('scm', 'returns');
  const all = (await staff.callTool({ name: 'list_returns', arguments: {} })).structuredContent;
  assert.deepEqual(all.returns.map((x) => x.rma_id), ['RMA-4001', 'RMA-4002', 'RMA-4003']);
  // Its own order works through the same path: one new return of acme.
  const made = await rc.callTool({ name: 'create_return', arguments: { order_id: 'ORD-1002', reason: 'broken' } });
  assert.equal(made.isError ?? false, false, text(made));
  assert.equal(made.structuredContent.rma_id, 'RMA-4004');
  assert.equal(made.structuredContent.tenant, 'acme');
  assert.equal(h.asked.length, 3);

  // Orders by id and payments are not the customer's tools at all: the refusal does not depend on the
  // id (own, another tenant's, missing), so it tells nothing either.
  const o = await d.connectAs('acme', 'orders');
  const answers = [];
  for (const id of ['ORD-1001', 'ORD-1004', 'ORD-9999']) answers.push(await o.callTool({ name: 'get_order', arguments: { order_id: id } }));
  assert.deepEqual(answers[1], answers[0]);
  assert.deepEqual(answers[2], answers[0]);
  assert.equal(text(answers[0]), 'Permission denied: tool get_order requires scope orders:read, which role customer ' +
    'does not grant');
  const p = await d.connectAs('acme', 'payments');
  assert.deepEqual((await p.listTools()).tools, []);
  const pays = [];
  for (const id of ['PAY-3001', 'PAY-3004', 'PAY-3999']) pays.push(await p.callTool({ name: 'get_payment', arguments: { payment_id: id } }));
  assert.deepEqual(pays[1], pays[0]);
  assert.deepEqual(pays[2], pays[0]);
  assert.equal(pays[0].isError, true);
  const lp = await p.callTool({ name: 'list_payments', arguments: {} });
  assert.equal(lp.isError, true);
  assert.equal(lp.structuredContent, undefined);
  const l = await d.connectAs('acme', 'logistics');
  assert.deepEqual((await l.listTools()).tools, []);
  await d.stop();
});

for (const era of ['v1', 'v2']) {
  test(`${era}: resources: a customer lists only its notes; another tenant's note reads like a missing one`, async (t) => {
    const d = await withReference(t);
    for (const who of ['acme', 'globex']) {
      const c = await d.connectAs(who, 'orders', era);
      const { resources } = await c.listResources();
      assert.deepEqual(resources.map((x) => x.uri).sort(), NOTE_URIS[who]);
    }
    const c = await d.connectAs('acme', 'orders', era);
    const own = await c.readResource({ uri: 'orders://ORD-1002/note' });
    assert.equal(JSON.parse(own.contents[0].text).tenant, 'acme');

    const notFound = era === 'v1' ? -32002 : -32602;
    const theirs = await readError(c, 'orders://ORD-1004/note'); // globex's note
    const missing = await readError(c, 'orders://ORD-9999/note');
    const noNote = await readError(c, 'orders://ORD-1003/note'); // acme's own order, without a note
    for (const e of [theirs, missing, noNote]) {
      assert.equal(e.unexpected, undefined, JSON.stringify(e));
      assert.equal(e.code, notFound);
      assert.equal(e.message, 'Resource not found');
    }
    // The same answer, naming only the URI asked for (docs/broker.md: data {uri}).
    assert.deepEqual(theirs.data, { uri: 'orders://ORD-1004/note' });
    assert.deepEqual(missing.data, { uri: 'orders://ORD-9999/note' });
    assert.deepEqual(noNote.data, { uri: 'orders://ORD-1003/note' });
    const strip = (e) => ({ ...e, data: { ...e.data, uri: undefined } });
    assert.deepEqual(strip(theirs), strip(missing));
    assert.deepEqual(strip(theirs), strip(noNote));
    // Nothing of globex's note leaks into the error.
    assert.doesNotMatch(JSON.stringify(theirs), /front desk|globex/i);
    await d.stop();
  });
}

test('staff see every tenant', async (t) => {
  const d = await withReference(t);
  const o = await d.connectAs('scm', 'orders');
  const orders = (await o.callTool({ name: 'list_orders', arguments: {} })).structuredContent;
  assert.deepEqual(orders.orders.map((x) => x.order_id),
    ['ORD-1001', 'ORD-1002', 'ORD-1003', 'ORD-1004', 'ORD-1005', 'ORD-1006', 'ORD-1007', 'ORD-1008', 'ORD-1009']);
  assert.deepEqual([...new Set(orders.orders.map((x) => x.tenant))], ['acme', 'globex', 'initech']);
  assert.equal((await o.callTool({ name: 'get_order', arguments: { order_id: 'ORD-1004' } })).structuredContent.tenant,
    'globex');
  assert.deepEqual((await o.listResources()).resources.map((x) => x.uri).sort(),
    ['orders://ORD-1001/note', 'orders://ORD-1002/note', 'orders://ORD-1004/note', 'orders://ORD-1007/note']);
  const note = await o.readResource({ uri: 'orders://ORD-1004/note' });
  assert.equal(JSON.parse(note.contents[0].text).tenant, 'globex');
  // Staff are not customers: my_orders is not theirs (no orders:read:own).
  const mine = await o.callTool({ name: 'my_orders', arguments: {} });
  assert.equal(mine.isError, true);

  const r = await d.connectAs('scm', 'returns');
  assert.deepEqual((await r.callTool({ name: 'list_returns', arguments: {} })).structuredContent.returns
    .map((x) => `${x.rma_id} ${x.tenant}`), ['RMA-4001 acme', 'RMA-4002 globex', 'RMA-4003 initech']);
  const p = await d.connectAs('scm', 'payments');
  const pays = (await p.callTool({ name: 'list_payments', arguments: {} })).structuredContent;
  assert.equal(pays.count, 9);
  assert.deepEqual([...new Set(pays.payments.map((x) => x.tenant))], ['acme', 'globex', 'initech']);
  const l = await d.connectAs('scm', 'logistics');
  assert.equal((await l.callTool({ name: 'track_shipment', arguments: { shipment_id: 'SHP-2005' } }))
    .structuredContent.tenant, 'globex');
  await d.stop();
});
