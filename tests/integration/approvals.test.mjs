// Approvals in the reference deployment (issue #4): confirm (the human at the client confirms the exact
// arguments, in both MCP revisions, including attacks on the 2026-07-28 requestState) and approver
// (four eyes through bastionctl approvals). Every side effect is read back from the worker's database
// through the read tools, so "nothing happened" is checked, not assumed.
import test from 'node:test';
import assert from 'node:assert/strict';
import { sleep } from './harness.mjs';
import { USERS, human, uidOf, withReference } from './reference.mjs';

const REORDER = { sku: 'SKU-1008', quantity: 4, warehouse: 'WH-CHI' };
const REROUTE = { shipment_id: 'SHP-2002', warehouse: 'WH-CHI' }; // in transit via WH-BER in the demo data
const text = (r) => r.content.map((c) => c.text).join('');
const sub = (who) => `uid:${uidOf(USERS[who].user)}`;

// The side effects of the two confirm tools, read back.
async function reorders(d) {
  const c = await d.connectAs('aud', 'inventory');
  const r = await c.callTool({ name: 'list_reorders', arguments: {} });
  await c.close();
  return r.structuredContent.reorders;
}
async function reroutes(d) {
  const c = await d.connectAs('aud', 'logistics');
  const r = (await c.callTool({ name: 'track_shipment', arguments: { shipment_id: 'SHP-2002' } })).structuredContent;
  await c.close();
  return { warehouse: r.warehouse, events: r.events.filter((e) => e.kind === 'rerouted') };
}

const CONFIRM_TOOLS = [
  {
    server: 'inventory', tool: 'create_reorder', args: REORDER,
    question: '{"quantity":4,"sku":"SKU-1008","warehouse":"WH-CHI"}',
    none: async (d) => assert.deepEqual(await reorders(d), []),
    once: async (d) => {
      const rows = await reorders(d);
      assert.equal(rows.length, 1);
      assert.deepEqual({ ...rows[0], created_at: undefined }, {
        reorder_id: 1, sku: 'SKU-1008', warehouse: 'WH-CHI', quantity: 4, status: 'requested',
        requested_by: sub('scm'), created_at: undefined,
      });
    },
  },
  {
    server: 'logistics', tool: 'reroute_shipment', args: REROUTE,
    question: '{"shipment_id":"SHP-2002","warehouse":"WH-CHI"}',
    none: async (d) => assert.deepEqual(await reroutes(d), { warehouse: 'WH-BER', events: [] }),
    once: async (d) => {
      const r = await reroutes(d);
      assert.equal(r.warehouse, 'WH-CHI');
      assert.equal(r.events.length, 1);
      assert.equal(r.events[0].actor, sub('scm'));
    },
  },
];

// ---- confirm through the SDK clients ----

for (const era of ['v1', 'v2']) {
  for (const ct of CONFIRM_TOOLS) {
    test(`${era}: ${ct.tool}: decline and cancel write nothing, accept writes exactly one row`, async (t) => {
      const d = await withReference(t);
      const h = human('decline');
      const c = await d.connectAs('scm', ct.server, era, h.onElicit);
      for (const action of ['decline', 'cancel']) {
        h.action = action;
        const r = await c.callTool({ name: ct.tool, arguments: ct.args });
        assert.equal(r.isError, true);
        assert.equal(text(r), `Not confirmed (${action}): ${ct.tool} was not run; nothing was done`);
        await ct.none(d);
      }
      // The question names the exact action, every argument and the caller.
      assert.equal(h.asked.length, 2);
      assert.equal(h.asked[0].message, `Bastion asks you to confirm a real action: ${ct.server}.${ct.tool} with ` +
        `arguments ${ct.question}, requested as ${sub('scm')}. Nothing happens unless you accept.`);
      assert.deepEqual(h.asked[0].requestedSchema.required, ['confirm']);

      h.action = 'accept';
      const ok = await c.callTool({ name: ct.tool, arguments: ct.args });
      assert.equal(ok.isError ?? false, false, text(ok));
      assert.equal(h.asked.length, 3);
      await ct.once(d);
      await d.stop();
    });
  }
}

test('v1: accept without confirm=true is not a confirmation', async (t) => {
  const d = await withReference(t);
  const c = await d.connectAs('scm', 'inventory', 'v1', () => ({ action: 'accept', content: { confirm: false } }));
  const r = await c.callTool({ name: 'create_reorder', arguments: REORDER });
  assert.equal(r.isError, true);
  assert.equal(text(r), 'Not confirmed (accepted without confirm=true): create_reorder was not run; nothing was done');
  assert.deepEqual(await reorders(d), []);
  await d.stop();
});

test('v1: a client without the elicitation capability is refused and nothing is written', async (t) => {
  const d = await withReference(t);
  for (const ct of CONFIRM_TOOLS) {
    const c = await d.connectAs('scm', ct.server, 'v1');
    const r = await c.callTool({ name: ct.tool, arguments: ct.args });
    assert.equal(r.isError, true);
    assert.equal(text(r), `Refused: ${ct.tool} needs your confirmation, but this client did not declare the ` +
      'elicitation capability, so it cannot be asked; nothing was done');
    await ct.none(d);
  }
  await d.stop();
});

test('v1: no answer within confirm_timeout_ms is not a confirmation', async (t) => {
  const d = await withReference(t, { confirmTimeoutMs: 500 });
  let late;
  const c = await d.connectAs('scm', 'inventory', 'v1',
    () => new Promise((r) => (late = setTimeout(r, 1500, { action: 'accept', content: { confirm: true } }))));
  const r = await c.callTool({ name: 'create_reorder', arguments: REORDER });
  assert.equal(r.isError, true);
  assert.equal(text(r), 'Not confirmed (no answer in time): create_reorder was not run; nothing was done');
  await sleep(1500); // the late accept arrives and must not run the held call
  clearTimeout(late);
  assert.deepEqual(await reorders(d), []);
  await d.stop();
});

// ---- confirm on the raw 2026-07-28 protocol: the requestState ----

const ACCEPT = { 'dev.bastion/confirm': { action: 'accept', content: { confirm: true } } };
const answer = (state, inputResponses = ACCEPT) => ({ requestState: state, inputResponses });

// First round of a confirm call: an InputRequiredResult with a sealed state.
async function ask(raw, tool, args) {
  const r = await raw.call(tool, args);
  assert.equal(r.error, undefined, JSON.stringify(r));
  assert.equal(r.result.resultType, 'input_required');
  assert.equal(r.result.inputRequests['dev.bastion/confirm'].method, 'elicitation/create');
  assert.match(r.result.inputRequests['dev.bastion/confirm'].params.message, new RegExp(`\\.${tool} with arguments `));
  assert.match(r.result.requestState, /^[A-Za-z0-9_-]{40,}$/);
  return r.result.requestState;
}

const invalid = (r, why) => {
  assert.equal(r.result, undefined, JSON.stringify(r));
  assert.equal(r.error.code, -32602);
  assert.equal(r.error.message, `Invalid params: ${why}; nothing was done`);
};

for (const ct of CONFIRM_TOOLS) {
  test(`modern: ${ct.tool}: accept runs once; a replayed state is refused and writes no second row`, async (t) => {
    const d = await withReference(t);
    const raw = await d.rawModern('scm', ct.server);
    const state = await ask(raw, ct.tool, ct.args);
    await ct.none(d); // asking does nothing

    const ok = await raw.call(ct.tool, ct.args, answer(state));
    assert.equal(ok.error, undefined, JSON.stringify(ok));
    assert.equal(ok.result.resultType, 'complete');
    assert.equal(ok.result.isError ?? false, false, JSON.stringify(ok));
    await ct.once(d);

    invalid(await raw.call(ct.tool, ct.args, answer(state)), 'requestState was already used');
    await ct.once(d);
    await d.stop();
  });
}

test('modern: decline, cancel and accept without confirm=true with a valid state write nothing', async (t) => {
  const d = await withReference(t);
  const raw = await d.rawModern('scm', 'inventory');
  for (const [why, response] of [['decline', { action: 'decline' }], ['cancel', { action: 'cancel' }],
    ['accepted without confirm=true', { action: 'accept', content: { confirm: false } }]]) {
    const state = await ask(raw, 'create_reorder', REORDER);
    const r = await raw.call('create_reorder', REORDER, answer(state, { 'dev.bastion/confirm': response }));
    assert.equal(r.result.isError, true, JSON.stringify(r));
    assert.equal(text(r.result), `Not confirmed (${why}): create_reorder was not run; nothing was done`);
    // The answer used the state: it cannot be turned into an accept afterwards.
    invalid(await raw.call('create_reorder', REORDER, answer(state)), 'requestState was already used');
  }
  assert.deepEqual(await reorders(d), []);
  await d.stop();
});

test('modern: a tampered requestState is refused with -32602 and writes nothing', async (t) => {
  const d = await withReference(t);
  const raw = await d.rawModern('scm', 'inventory');
  const state = await ask(raw, 'create_reorder', REORDER);
  // Flip one character in the middle (of the ciphertext), keeping valid base64url.
  const i = Math.floor(state.length / 2);
  const tampered = state.slice(0, i) + (state[i] === 'A' ? 'B' : 'A') + state.slice(i + 1);
  invalid(await raw.call('create_reorder', REORDER, answer(tampered)), 'requestState failed verification');
  invalid(await raw.call('create_reorder', REORDER, answer(state.slice(0, -4))), 'requestState failed verification');
  invalid(await raw.call('create_reorder', REORDER, answer('not-a-state')), 'requestState failed verification');
  assert.deepEqual(await reorders(d), []);
  // The untampered state still works: the refusals above did not consume it.
  const ok = await raw.call('create_reorder', REORDER, answer(state));
  assert.equal(ok.result.isError ?? false, false, JSON.stringify(ok));
  assert.equal((await reorders(d)).length, 1);
  await d.stop();
});

test('modern: arguments changed between ask and answer are refused, naming the arguments', async (t) => {
  const d = await withReference(t);
  const raw = await d.rawModern('scm', 'inventory');
  const state = await ask(raw, 'create_reorder', REORDER);
  invalid(await raw.call('create_reorder', { ...REORDER, quantity: 5000 }, answer(state)),
    'the arguments differ from the ones that were confirmed');
  invalid(await raw.call('create_reorder', { ...REORDER, warehouse: 'WH-BER' }, answer(state)),
    'the arguments differ from the ones that were confirmed');
  assert.deepEqual(await reorders(d), []);
  await d.stop();
});

test('modern: a state issued to another caller or for another tool is refused', async (t) => {
  const d = await withReference(t);
  const scm = await d.rawModern('scm', 'inventory');
  const state = await ask(scm, 'create_reorder', REORDER);
  const root = await d.rawModern('root', 'inventory'); // same role, another uid
  invalid(await root.call('create_reorder', REORDER, answer(state)),
    'requestState was issued for another caller or tool');
  const logistics = await d.rawModern('scm', 'logistics');
  invalid(await logistics.call('reroute_shipment', REROUTE, answer(state)),
    'requestState was issued for another caller or tool');
  assert.deepEqual(await reorders(d), []);
  await CONFIRM_TOOLS[1].none(d); // no reroute either
  await d.stop();
});

test('modern: an expired requestState is refused with -32602', async (t) => {
  const d = await withReference(t, { confirmTimeoutMs: 600 });
  const raw = await d.rawModern('scm', 'inventory');
  const state = await ask(raw, 'create_reorder', REORDER);
  await sleep(1200);
  invalid(await raw.call('create_reorder', REORDER, answer(state)), 'requestState has expired');
  assert.deepEqual(await reorders(d), []);
  await d.stop();
});

test('modern: a request without the elicitation capability gets -32021 and writes nothing', async (t) => {
  const d = await withReference(t);
  const raw = await d.rawModern('scm', 'inventory', { elicitation: false });
  const r = await raw.call('create_reorder', REORDER);
  assert.equal(r.result, undefined, JSON.stringify(r));
  assert.equal(r.error.code, -32021);
  assert.equal(r.error.message, 'Refused: create_reorder needs your confirmation, but this request did not declare ' +
    'the elicitation capability, so you cannot be asked; nothing was done');
  assert.deepEqual(r.error.data, { requiredCapabilities: { elicitation: {} } });
  assert.deepEqual(await reorders(d), []);
  await d.stop();
});

// ---- approver: four eyes ----

const APR = /apr-[0-9a-f]{12}/;
const aprOf = (r) => {
  assert.equal(r.isError, true, JSON.stringify(r));
  const m = text(r).match(APR);
  assert.ok(m, text(r));
  return m[0];
};
async function payment(d, id) {
  const c = await d.connectAs('aud', 'payments');
  const r = (await c.callTool({ name: 'get_payment', arguments: { payment_id: id } })).structuredContent;
  await c.close();
  return r;
}
const intents = (d, tool) => d.auditRecords().filter((r) => r.type === 'call.intent' && r.tool === tool);

test('approver: another finance user approves, the identical repeat runs exactly once', async (t) => {
  const d = await withReference(t);
  const fin1 = await d.connectAs('fin1', 'payments');
  const args = { payment_id: 'PAY-3002' };
  const first = await fin1.callTool({ name: 'release_payment', arguments: args });
  const id = aprOf(first);
  assert.equal(text(first), `Not run yet: payments.release_payment needs approval by a second person. Approval ${id} ` +
    'was requested (valid 3600 s). Someone whose role holds approvals:grant runs `bastionctl approvals approve ' +
    `${id}\`; then repeat exactly this call, which will run once.`);

  const listed = await d.approvals();
  assert.equal(listed.length, 1);
  assert.deepEqual({ ...listed[0], created_ms: 0, expires_ms: 0 }, {
    id, state: 'pending', requester: sub('fin1'), server: 'payments', tool: 'release_payment',
    arguments: args, created_ms: 0, expires_ms: 0, decided_by: null,
  });
  assert.equal(listed[0].expires_ms - listed[0].created_ms, 3600000);

  // Repeating before the decision: still waiting, no second request.
  const waiting = await fin1.callTool({ name: 'release_payment', arguments: args });
  assert.equal(text(waiting), `Not run: approval ${id} for this exact call is still waiting for a second person; ` +
    'nothing was done');
  assert.equal((await d.approvals()).length, 1);

  // Four eyes: the requester cannot approve, even holding approvals:grant and the admin group.
  const self = await d.ctl(['approvals', 'approve', id], 'fin1');
  assert.equal(self.status, 1);
  assert.equal(self.stderr, `bastionctl: refused: ${sub('fin1')} cannot approve their own request (four eyes)\n`);
  assert.equal((await payment(d, 'PAY-3002')).status, 'held');

  const ok = await d.ctl(['approvals', 'approve', id], 'fin2');
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout, `approval ${id} approved by ${sub('fin2')}\n`);
  const approved = (await d.approvals()).find((a) => a.id === id);
  assert.equal(approved.state, 'approved');
  assert.equal(approved.decided_by, sub('fin2'));
  const again = await d.ctl(['approvals', 'deny', id], 'fin2');
  assert.equal(again.status, 1);
  assert.equal(again.stderr, `bastionctl: approval ${id} was already decided\n`);
  assert.equal((await payment(d, 'PAY-3002')).status, 'held'); // approving runs nothing by itself

  const ran = await fin1.callTool({ name: 'release_payment', arguments: args });
  assert.equal(ran.isError ?? false, false, text(ran));
  assert.equal(ran.structuredContent.status, 'released');
  assert.equal(ran.structuredContent.released_by, sub('fin1'));
  assert.deepEqual((await d.approvals()).map((a) => a.id), []); // consumed

  // A second repeat does not run again: it is a new request with a new id.
  const second = await fin1.callTool({ name: 'release_payment', arguments: args });
  const id2 = aprOf(second);
  assert.notEqual(id2, id);
  assert.match(text(second), /^Not run yet: /);
  const p = await payment(d, 'PAY-3002');
  assert.equal(p.status, 'released');
  assert.equal(p.released_by, sub('fin1'));
  // The used approval cannot be decided again either.
  const used = await d.ctl(['approvals', 'approve', id], 'fin2');
  assert.equal(used.status, 1);
  assert.equal(used.stderr, `bastionctl: no approval ${id} is waiting (unknown, expired or already decided)\n`);
  // Exactly one call reached the worker, and it carried the approval.
  const sent = intents(d, 'release_payment');
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].arguments, args);
  assert.equal(sent[0].approval.how, 'approver');
  assert.equal(sent[0].approval.who, sub('fin2'));
  await d.stop();
});

test('approver: issue_refund with changed arguments after approval does not run; the approved one runs once',
  async (t) => {
    const d = await withReference(t);
    const fin1 = await d.connectAs('fin1', 'returns', 'v2');
    const args = { rma_id: 'RMA-4001', amount: 10 };
    const id = aprOf(await fin1.callTool({ name: 'issue_refund', arguments: args }));
    const ok = await d.ctl(['approvals', 'approve', id], 'fin2');
    assert.equal(ok.status, 0, ok.stderr);

    // The approval is bound to the arguments: a larger amount is a new request, not this approval.
    const changed = await fin1.callTool({ name: 'issue_refund', arguments: { ...args, amount: 1299 } });
    const other = aprOf(changed);
    assert.notEqual(other, id);
    assert.match(text(changed), /^Not run yet: returns\.issue_refund needs approval/);
    const aud = await d.connectAs('aud', 'returns');
    const before = (await aud.callTool({ name: 'get_return', arguments: { rma_id: 'RMA-4001' } })).structuredContent;
    assert.equal(before.status, 'requested');
    assert.equal(before.refund, null);
    assert.deepEqual((await d.approvals()).map((a) => `${a.id} ${a.state} ${a.arguments.amount}`).sort(),
      [`${id} approved 10`, `${other} pending 1299`].sort());

    const ran = await fin1.callTool({ name: 'issue_refund', arguments: args });
    assert.equal(ran.isError ?? false, false, text(ran));
    const after = (await aud.callTool({ name: 'get_return', arguments: { rma_id: 'RMA-4001' } })).structuredContent;
    assert.equal(after.status, 'refunded');
    assert.equal(after.refund, 10);
    assert.equal(intents(d, 'issue_refund').length, 1);
    await d.stop();
  });

test('approver: an approval that expired before the repeat is refused', async (t) => {
  const d = await withReference(t, { approvalTtlMs: 3000 });
  const fin1 = await d.connectAs('fin1', 'payments');
  const args = { payment_id: 'PAY-3005' };
  const id = aprOf(await fin1.callTool({ name: 'release_payment', arguments: args }));
  const ok = await d.ctl(['approvals', 'approve', id], 'fin2');
  assert.equal(ok.status, 0, ok.stderr);
  await sleep(3500);
  assert.deepEqual(await d.approvals(), []); // expired ones vanish
  const late = await fin1.callTool({ name: 'release_payment', arguments: args });
  assert.notEqual(aprOf(late), id);
  assert.match(text(late), /^Not run yet: /);
  assert.equal((await payment(d, 'PAY-3005')).status, 'held');
  assert.equal(intents(d, 'release_payment').length, 0);
  // A pending one that expires cannot be approved any more.
  const id3 = aprOf(await fin1.callTool({ name: 'release_payment', arguments: { payment_id: 'PAY-3008' } }));
  await sleep(3500);
  const tooLate = await d.ctl(['approvals', 'approve', id3], 'fin2');
  assert.equal(tooLate.status, 1);
  assert.equal(tooLate.stderr, `bastionctl: no approval ${id3} is waiting (unknown, expired or already decided)\n`);
  assert.equal((await payment(d, 'PAY-3008')).status, 'held');
  await d.stop();
});

test('approver: a denied request is reported to the requester and nothing runs', async (t) => {
  const d = await withReference(t);
  const fin1 = await d.connectAs('fin1', 'payments');
  const args = { payment_id: 'PAY-3008' };
  const id = aprOf(await fin1.callTool({ name: 'release_payment', arguments: args }));
  const no = await d.ctl(['approvals', 'deny', id], 'fin2');
  assert.equal(no.status, 0, no.stderr);
  assert.equal(no.stdout, `approval ${id} denied by ${sub('fin2')}\n`);
  const r = await fin1.callTool({ name: 'release_payment', arguments: args });
  assert.equal(r.isError, true);
  assert.equal(text(r), `Not run: approval ${id} for this exact call was denied by ${sub('fin2')}; nothing was done`);
  assert.equal((await payment(d, 'PAY-3008')).status, 'held');
  assert.equal(intents(d, 'release_payment').length, 0);
  await d.stop();
});

test('approver: a supply-chain manager cannot call release_payment, a customer or a role without ' +
  'approvals:grant cannot approve', async (t) => {
  const d = await withReference(t);
  const scm = await d.connectAs('scm', 'payments');
  const r = await scm.callTool({ name: 'release_payment', arguments: { payment_id: 'PAY-3002' } });
  assert.equal(r.isError, true);
  assert.equal(text(r), 'Permission denied: tool release_payment requires scope payments:release, which role ' +
    'supply-chain-manager does not grant');
  assert.deepEqual(await d.approvals(), []); // no approval was even requested

  const fin1 = await d.connectAs('fin1', 'payments');
  const id = aprOf(await fin1.callTool({ name: 'release_payment', arguments: { payment_id: 'PAY-3002' } }));
  // The customer is not in the admin group: the control socket itself refuses.
  const acme = await d.ctl(['approvals', 'approve', id], 'acme');
  assert.equal(acme.status, 1);
  assert.equal(acme.stderr, `bastionctl: cannot connect to ${d.controlSocket}: Permission denied (root or the admin ` +
    'group only)\n');
  // root may use the control socket, but its role (supply-chain-manager) does not hold approvals:grant.
  const root = await d.ctl(['approvals', 'approve', id]);
  assert.equal(root.status, 1);
  assert.equal(root.stderr, 'bastionctl: refused: your role does not hold approvals:grant (uid:0)\n');
  assert.equal((await d.approvals())[0].state, 'pending');
  assert.equal((await payment(d, 'PAY-3002')).status, 'held');
  await d.stop();
});

// ---- races: a single use must stay single under concurrency ----

test('approver: identical repeats sent at once after the approval run exactly once', async (t) => {
  const d = await withReference(t);
  const fin1 = await d.connectAs('fin1', 'payments');
  const other = await d.connectAs('fin1', 'payments', 'v2'); // same requester, second connection
  const args = { payment_id: 'PAY-3005' };
  const id = aprOf(await fin1.callTool({ name: 'release_payment', arguments: args }));
  assert.equal((await d.ctl(['approvals', 'approve', id], 'fin2')).status, 0);
  const results = await Promise.all([
    ...Array.from({ length: 3 }, () => fin1.callTool({ name: 'release_payment', arguments: args })),
    ...Array.from({ length: 3 }, () => other.callTool({ name: 'release_payment', arguments: args })),
  ]);
  const ran = results.filter((r) => !r.isError);
  assert.equal(ran.length, 1, JSON.stringify(results.map(text)));
  assert.equal(ran[0].structuredContent.status, 'released');
  for (const r of results.filter((x) => x.isError)) assert.match(text(r), /^Not run/);
  assert.equal(intents(d, 'release_payment').length, 1);
  await d.stop();
});

test('modern: one requestState answered on several connections at once runs exactly once', async (t) => {
  const d = await withReference(t);
  const raws = [];
  for (let i = 0; i < 4; i++) raws.push(await d.rawModern('scm', 'inventory'));
  const state = await ask(raws[0], 'create_reorder', REORDER);
  const results = await Promise.all(raws.map((r) => r.call('create_reorder', REORDER, answer(state))));
  const ran = results.filter((r) => r.result && !r.result.isError);
  assert.equal(ran.length, 1, JSON.stringify(results));
  for (const r of results.filter((x) => x !== ran[0])) invalid(r, 'requestState was already used');
  assert.equal((await reorders(d)).length, 1);
  await d.stop();
});

test('modern: a retry that carries the state but no answer is asked again with a fresh state', async (t) => {
  const d = await withReference(t);
  const raw = await d.rawModern('scm', 'inventory');
  const state = await ask(raw, 'create_reorder', REORDER);
  const again = await raw.call('create_reorder', REORDER, { requestState: state });
  assert.equal(again.result.resultType, 'input_required');
  assert.notEqual(again.result.requestState, state);
  assert.deepEqual(await reorders(d), []);
  const ok = await raw.call('create_reorder', REORDER, answer(again.result.requestState));
  assert.equal(ok.result.isError ?? false, false, JSON.stringify(ok));
  assert.equal((await reorders(d)).length, 1);
  await d.stop();
});
