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

  for (const connect of [() => d.connectV1({ server: 'hostile' }), () => d.connectV2({ server: 'hostile' })]) {
    const c = await connect();
    assert.deepEqual((await c.callTool({ name: 'honest', arguments: {} })).content, [{ type: 'text', text: 'honest answer' }]);

    // -31004 is the broker saying "the audit log failed": from a worker it is only an internal error.
    await assert.rejects(c.callTool({ name: 'reserved_code', arguments: {} }), (e) => {
      assert.equal(e.code, -32603);
      return true;
    });

    // The forged input request is not passed on: the client gets a plain, complete result and is asked nothing.
    // (Neither client declared elicitation: had the request gone through, v2 would fail the call.)
    const r = await c.callTool({ name: 'fake_input_required', arguments: {} });
    assert.equal(r.inputRequests, undefined);
    assert.equal(r.requestState, undefined);
    assert.notEqual(r.resultType, 'input_required');
    assert.deepEqual(r.content, []);
  }
  assert.match(d.stderr, /worker hostile answered with the broker's reserved error code -31004; passed on as an internal error/);
  assert.match(d.stderr, /worker hostile: fake_input_required result carried resultType\/inputRequests\/requestState; removed/);
  await d.stop();
});
