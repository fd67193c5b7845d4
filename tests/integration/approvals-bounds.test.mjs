// Bounds of the four-eyes approvals (issue #2 review): one requester cannot fill the broker's table,
// listing pending requests (which carry their arguments) is for approvers and root only, and the list
// always fits the supervisor channel.
import test from 'node:test';
import assert from 'node:assert/strict';
import { USERS, uidOf, withReference } from './reference.mjs';

const PER_PRINCIPAL = 32; // BASTION_MAX_APPROVALS_PER_PRINCIPAL
const text = (r) => r.content.map((c) => c.text).join('');
const sub = (who) => `uid:${uidOf(USERS[who].user)}`;
const pay = (i) => ({ payment_id: `PAY-${String(i).padStart(4, '0')}` });

test('approver: at most 32 waiting requests per requester; listing needs approvals:grant or root', async (t) => {
  const d = await withReference(t);
  const fin1 = await d.connectAs('fin1', 'payments');
  for (let i = 1; i <= PER_PRINCIPAL; i++) {
    const r = await fin1.callTool({ name: 'release_payment', arguments: pay(i) });
    assert.match(text(r), /^Not run yet: payments\.release_payment needs approval by a second person\. Approval apr-[0-9a-f]{12} was requested/);
  }
  const over = await fin1.callTool({ name: 'release_payment', arguments: pay(PER_PRINCIPAL + 1) });
  assert.equal(over.isError, true);
  assert.equal(text(over), `Not run: ${sub('fin1')} already has ${PER_PRINCIPAL} approvals waiting (the limit); nothing was done`);

  // Another requester is not starved by fin1.
  const fin2 = await d.connectAs('fin2', 'payments');
  const other = await fin2.callTool({ name: 'release_payment', arguments: pay(PER_PRINCIPAL + 1) });
  assert.match(text(other), /^Not run yet: .* Approval apr-[0-9a-f]{12} was requested/);

  const listed = await d.approvals();
  assert.equal(listed.length, PER_PRINCIPAL + 1);
  assert.equal(listed.filter((a) => a.requester === sub('fin1')).length, PER_PRINCIPAL);
  assert.deepEqual(listed.filter((a) => a.requester === sub('fin2')).map((a) => a.arguments), [pay(PER_PRINCIPAL + 1)]);

  // Deciding one frees a slot for its requester.
  const first = listed.find((a) => a.requester === sub('fin1'));
  const denied = await d.ctl(['approvals', 'deny', first.id], 'fin2');
  assert.equal(denied.status, 0, denied.stderr);
  const again = await fin1.callTool({ name: 'release_payment', arguments: pay(PER_PRINCIPAL + 2) });
  assert.match(text(again), /^Not run yet: .* Approval apr-[0-9a-f]{12} was requested/);

  const fin = await d.ctl(['approvals', 'list', '--json'], 'fin2');
  assert.equal(fin.status, 0, fin.stderr);
  const j = JSON.parse(fin.stdout);
  assert.equal(j.omitted, 0);
  assert.equal(j.approvals.length, PER_PRINCIPAL + 2);
  await d.stop();
});

test('approvals list: a control-socket user whose role lacks approvals:grant is refused', async (t) => {
  // The auditor's own group is the admin group here, so the control socket lets it in and the broker decides.
  const d = await withReference(t, { adminGroup: USERS.aud.user });
  const fin1 = await d.connectAs('fin1', 'payments');
  await fin1.callTool({ name: 'release_payment', arguments: pay(1) });
  const aud = await d.ctl(['approvals', 'list'], 'aud');
  assert.equal(aud.stderr, `bastionctl: refused: listing approvals needs approvals:grant (${sub('aud')})\n`);
  assert.equal(aud.status, 1);
  assert.equal(aud.stdout, '');
  assert.equal((await d.approvals()).length, 1); // root still sees it
  await d.stop();
});

// A used requestState is remembered until it expires (so it works once); one principal may hold at most
// 256 of those places, so no one can fill the table and lock the others out of confirming.
test('confirm (2026-07-28): one principal cannot use up everyone\'s confirmations', async (t) => {
  const d = await withReference(t);
  const REORDER = { sku: 'SKU-1008', quantity: 4, warehouse: 'WH-CHI' };
  const DECLINE = { 'dev.bastion/confirm': { action: 'decline' } };
  const ask = async (raw) => {
    const r = await raw.call('create_reorder', REORDER);
    assert.equal(r.result?.resultType, 'input_required', JSON.stringify(r));
    return r.result.requestState;
  };
  const scm = await d.rawModern('scm', 'inventory');
  for (let i = 0; i < 256; i++) {
    const r = await scm.call('create_reorder', REORDER, { requestState: await ask(scm), inputResponses: DECLINE });
    assert.equal(r.result?.isError, true, JSON.stringify(r)); // declined: nothing runs, the state is used up
  }
  const over = await scm.call('create_reorder', REORDER, { requestState: await ask(scm), inputResponses: DECLINE });
  assert.equal(over.error?.code, -32602, JSON.stringify(over));
  assert.equal(over.error.message, 'Invalid params: too many confirmations outstanding; try again later; nothing was done');

  // Someone else still confirms, and the reorder runs.
  const root = await d.rawModern('root', 'inventory');
  const ok = await root.call('create_reorder', REORDER, {
    requestState: await ask(root), inputResponses: { 'dev.bastion/confirm': { action: 'accept', content: { confirm: true } } },
  });
  assert.equal(ok.result?.resultType, 'complete', JSON.stringify(ok));
  assert.equal(ok.result.isError ?? false, false, JSON.stringify(ok));
  await d.stop();
});
