// The full role × tool matrix of the reference deployment (issue #4), table-driven from the policy in
// examples/reference.conf: for every role and server, tools/list shows exactly the tools whose scopes
// the role holds, and tools/call of every tool is refused naming the missing scope exactly when the
// policy says so, and otherwise gets past the scope check to its approval level or to the worker.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  ROLES, ROLE_USER, SERVERS, SERVER_NAMES, USERS, holds, parseReferenceConf, visibleTools, withReference,
} from './reference.mjs';

test('the policy table of reference.mjs is exactly examples/reference.conf', () => {
  const parsed = parseReferenceConf();
  assert.deepEqual(parsed, { roles: ROLES, servers: SERVERS });
  // The parser does see everything: 4 roles, 5 servers, 17 tools, 2 resource entries.
  assert.equal(Object.keys(parsed.roles).length, 4);
  assert.deepEqual(Object.keys(parsed.servers), ['inventory', 'orders', 'logistics', 'returns', 'payments']);
  assert.equal(Object.values(parsed.servers).reduce((n, s) => n + Object.keys(s.tools).length, 0), 17);
  assert.equal(Object.values(parsed.servers).reduce((n, s) => n + Object.keys(s.resources).length, 0), 2);
});

// Valid arguments from the demo data, and what a caller who passes the scope check gets from a tool
// that runs without approval: ok (a result) or this exact domain error.
const CALLS = {
  get_stock: { args: { sku: 'SKU-1001' } },
  list_low_stock: { args: {} },
  get_reorder: { args: { reorder_id: 1 }, error: 'unknown reorder: 1' }, // the demo data has no reorder
  list_reorders: { args: {} },
  create_reorder: { args: { sku: 'SKU-1008', quantity: 4, warehouse: 'WH-CHI' } },
  list_orders: { args: {} },
  get_order: { args: { order_id: 'ORD-1001' } },
  // Staff hold orders:read:own nowhere, so only a customer (with a tenant) reaches my_orders.
  my_orders: { args: {} },
  track_shipment: { args: { shipment_id: 'SHP-2001' } },
  reroute_shipment: { args: { shipment_id: 'SHP-2002', warehouse: 'WH-CHI' } },
  list_returns: { args: {} },
  get_return: { args: { rma_id: 'RMA-4001' } }, // acme's, so the acme customer reads it too
  create_return: { args: { order_id: 'ORD-1001', reason: 'matrix test' } },
  issue_refund: { args: { rma_id: 'RMA-4001', amount: 10 } },
  get_payment: { args: { payment_id: 'PAY-3001' } },
  list_payments: { args: {} },
  release_payment: { args: { payment_id: 'PAY-3002' } },
};

test('CALLS covers every tool of the policy', () => {
  assert.deepEqual(Object.keys(CALLS).sort(),
    Object.values(SERVERS).flatMap((s) => Object.keys(s.tools)).sort());
});

const text = (r) => r.content.map((c) => c.text).join('');
const missing = (role, scopes) => scopes.find((s) => !ROLES[role].includes(s));

// One cell: the call's outcome, checked against the policy.
async function checkCell(c, era, role, server, tool) {
  const policy = SERVERS[server].tools[tool];
  const { args, error } = CALLS[tool];
  const cell = `${era} ${role} ${server}.${tool}`;
  let r;
  try {
    r = await c.callTool({ name: tool, arguments: args });
  } catch (e) {
    r = { thrown: e };
  }
  if (!holds(role, policy.scopes)) {
    assert.equal(r.thrown, undefined, `${cell}: ${r.thrown?.message}`);
    assert.equal(r.isError, true, cell);
    assert.equal(text(r), `Permission denied: tool ${tool} requires scope ${missing(role, policy.scopes)}, ` +
      `which role ${role} does not grant`, cell);
    assert.equal(r.structuredContent, undefined, cell);
    return;
  }
  if (policy.approval === 'confirm') {
    // These clients declare no elicitation: refused, saying why, never auto-approved.
    if (era === 'v1') {
      assert.equal(r.isError, true, cell);
      assert.equal(text(r), `Refused: ${tool} needs your confirmation, but this client did not declare the ` +
        'elicitation capability, so it cannot be asked; nothing was done', cell);
    } else {
      assert.equal(r.thrown?.code, -32021, `${cell}: ${JSON.stringify(r)}`);
      assert.equal(r.thrown.message, `Refused: ${tool} needs your confirmation, but this request did not ` +
        'declare the elicitation capability, so you cannot be asked; nothing was done');
      assert.deepEqual(r.thrown.data, { requiredCapabilities: { elicitation: {} } });
    }
    return;
  }
  assert.equal(r.thrown, undefined, `${cell}: ${r.thrown?.message}`);
  if (policy.approval === 'approver') {
    assert.equal(r.isError, true, cell);
    assert.match(text(r), new RegExp(`^Not run yet: ${server}\\.${tool} needs approval by a second person\\. ` +
      'Approval apr-[0-9a-f]{12} was requested '), cell);
    return;
  }
  if (error) {
    assert.equal(r.isError, true, cell);
    assert.equal(text(r), error, cell);
  } else {
    assert.equal(r.isError ?? false, false, `${cell}: ${text(r)}`);
    assert.equal(typeof r.structuredContent, 'object', cell);
  }
}

for (const era of ['v1', 'v2']) {
  test(`${era}: every role × server × tool is listed and callable exactly as the reference policy says`, async (t) => {
    const d = await withReference(t);
    for (const role of Object.keys(ROLES)) {
      for (const server of SERVER_NAMES) {
        await t.test(`${role} on ${server}`, async () => {
          const c = await d.connectAs(ROLE_USER[role], server, era);
          const { tools } = await c.listTools();
          assert.deepEqual(tools.map((x) => x.name).sort(), visibleTools(role, server));
          for (const tool of Object.keys(SERVERS[server].tools)) await checkCell(c, era, role, server, tool);
          await c.close();
        });
      }
    }
    // Nothing in the matrix had a side effect: every side-effecting cell stopped at scope or approval.
    const c = await d.connectAs('scm', 'inventory', 'v1');
    assert.deepEqual((await c.callTool({ name: 'list_reorders', arguments: {} })).structuredContent,
      { count: 0, reorders: [] });
    const p = await d.connectAs('fin2', 'payments', 'v1');
    assert.equal((await p.callTool({ name: 'get_payment', arguments: { payment_id: 'PAY-3002' } }))
      .structuredContent.status, 'held');
    // Only finance holds payments:release and returns:refund: exactly its two requests are pending.
    const pending = await d.approvals();
    assert.deepEqual(pending.map((a) => `${a.state} ${a.server}.${a.tool}`).sort(),
      ['pending payments.release_payment', 'pending returns.issue_refund']);
    await d.stop();
  });
}

// Resources: the orders notes are allowed by two alternative entries (staff orders:read, customers
// orders:read:own, confined to their tenant by the worker); no other server has resources.
const ALL_NOTES = ['orders://ORD-1001/note', 'orders://ORD-1002/note', 'orders://ORD-1004/note',
  'orders://ORD-1007/note'];
const TENANT_NOTES = { acme: ['orders://ORD-1001/note', 'orders://ORD-1002/note'] };
const NOTE = 'orders://ORD-1001/note'; // acme's

function expectedNotes(role, who) {
  const entries = Object.values(SERVERS.orders.resources);
  const allowed = entries.filter((e) => holds(role, e.scopes));
  if (allowed.some((e) => e.scopes.includes('orders:read'))) return { list: ALL_NOTES, read: true };
  if (allowed.length) return { list: TENANT_NOTES[USERS[who].tenant], read: true };
  return { list: [], read: false, missing: missing(role, entries[0].scopes) };
}

for (const era of ['v1', 'v2']) {
  test(`${era}: every role × server: resources/list and resources/read exactly as the reference policy says`,
    async (t) => {
      const d = await withReference(t);
      const notFound = era === 'v1' ? -32002 : -32602;
      for (const role of Object.keys(ROLES)) {
        const who = ROLE_USER[role];
        for (const server of SERVER_NAMES) {
          const c = await d.connectAs(who, server, era);
          const cell = `${era} ${role} ${server}`;
          const want = server === 'orders' ? expectedNotes(role, who) : { list: [], read: false };
          const { resources } = await c.listResources();
          assert.deepEqual(resources.map((r) => r.uri).sort(), want.list, cell);
          let got;
          try {
            got = { ok: await c.readResource({ uri: NOTE }) };
          } catch (e) {
            got = { code: e.code, message: e.message.replace(/^MCP error -?\d+: /, ''), data: e.data };
          }
          if (want.read) {
            assert.equal(JSON.parse(got.ok?.contents[0].text ?? '{}').order_id, 'ORD-1001', `${cell}: ${JSON.stringify(got)}`);
          } else if (want.missing) {
            assert.deepEqual(got, { code: -32602, message: `Permission denied: this resource requires scope ${want.missing}`,
              data: { uri: NOTE } }, cell);
          } else {
            assert.deepEqual(got, { code: notFound, message: 'Resource not found', data: { uri: NOTE } }, cell);
          }
          await c.close();
        }
      }
      await d.stop();
    });
}
