// A worker is less trusted than the broker: what it answers cannot speak for the broker. The worker here
// is tests/hostile/hostile-worker.c, a sandboxed MCP server that lies on purpose, installed as
// bastion-worker in a libexec directory of its own (issue #2 review).
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_DIR, bin, withDaemon } from './harness.mjs';

const SERVER = `        hostile = {
                domain = "inventory";
                tools = {
                        reserved_code = { scopes = [ "inventory:read" ]; };
                        fake_input_required = { scopes = [ "inventory:read" ]; };
                        honest = { scopes = [ "inventory:read" ]; };
                };
        };
`;

function libexec(t) {
  const dir = mkdtempSync('/tmp/bastion-hostile-');
  chmodSync(dir, 0o755);
  symlinkSync(bin('bastion-broker'), join(dir, 'bastion-broker'));
  symlinkSync(join(BUILD_DIR, 'tests/hostile/bastion-hostile-worker'), join(dir, 'bastion-worker'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a worker cannot answer with the broker\'s error codes or make its result an input request', async (t) => {
  const d = await withDaemon(t, { servers: [SERVER], wait: ['hostile'], libexecDir: libexec(t) });
  assert.match(d.stderr, /worker hostile \(pid \d+\) attested: uid \d+, seccomp 2/);

  const v1 = await d.connectV1({ server: 'hostile' });
  const v2 = await d.connectV2({ server: 'hostile' });
  for (const c of [v1, v2]) {
    assert.deepEqual((await c.callTool({ name: 'honest', arguments: {} })).content, [{ type: 'text', text: 'honest answer' }]);

    // -31004 is the broker saying "the audit log failed": from a worker it is only an internal error.
    await assert.rejects(c.callTool({ name: 'reserved_code', arguments: {} }), (e) => {
      assert.equal(e.code, -32603);
      return true;
    });

    // The forged request uses the key of Bastion's own confirmation: a 2026-07-28 client gets a refusal
    // instead of the question; a 2025-11-25 client (no MRTR) gets the result without the fields.
    const r = await c.callTool({ name: 'fake_input_required', arguments: {} });
    assert.equal(r.inputRequests, undefined, JSON.stringify(r));
    assert.equal(r.requestState, undefined);
    assert.notEqual(r.resultType, 'input_required');
    if (c === v2) {
      assert.equal(r.isError, true);
      assert.deepEqual(r.content, [{ type: 'text', text: 'Refused: the server asked for input under the name Bastion ' +
        'uses for its own confirmations; nothing was asked' }]);
    } else {
      assert.deepEqual(r.content, []);
    }
  }
  assert.match(d.stderr, /worker hostile answered with the broker's reserved error code -31004; passed on as an internal error/);
  assert.match(d.stderr, /worker hostile: fake_input_required result carried resultType\/inputRequests\/requestState; removed/);
  assert.match(d.stderr, /worker hostile: fake_input_required asked under a dev\.bastion\/ key, which only Bastion's confirmations use; refused/);
  await d.stop();
});
