// The tasks extension (io.modelcontextprotocol/tasks, SEP-2663) from the outside: a real bastiond with
// the sandboxed conformance worker, spoken to in raw 2026-07-28 JSON-RPC over the local socket (root),
// through bastion-stdio as another local user, and over HTTP through bastion-front (the anonymous
// principal). The broker keeps the tasks: what is asserted is what a client sees and what the audit
// log says.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, createConnection } from 'node:net';
import { join } from 'node:path';
import test from 'node:test';

import { Daemon, TEST_USER, sleep, waitFor } from './harness.mjs';

const q = JSON.stringify;
const EXT = 'io.modelcontextprotocol/tasks';
const SCOPE = 'conformance:use';
const TOOLS = ['greet', 'slow_compute', 'confirm_delete', 'multi_input', 'failing_job', 'protocol_error_job'];
// broker/mcp/tasks.h
const PER_PRINCIPAL = 32;
const TTL_MS = 3600000;
const POLL_MS = 500;

async function freePort() {
  return new Promise((resolveP) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolveP(port));
    });
  });
}

class TasksDaemon extends Daemon {
  static async start(port) {
    const d = new TasksDaemon({ port });
    try {
      await d.waitReady(['conformance']);
    } catch (e) {
      d.kill();
      throw new Error(`${e.message}\nbastiond stderr:\n${d.stderr}`);
    }
    d.base = `http://127.0.0.1:${port}`;
    await waitFor('the front to answer', async () => (await fetch(`${d.base}/mcp/conformance`).catch(() => null))?.status === 405,
      10000, 50);
    return d;
  }

  // revoked: tools whose scope becomes one no role has (a reload that takes them away).
  writeConfig({ port, revoked = [] }) {
    this.port = port;
    const tools = TOOLS.map((t) => `                        ${t} = { scopes = [ ${q(revoked.includes(t) ? 'conformance:nobody' : SCOPE)} ]; };\n`).join('');
    const jwks = join(this.dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [] }));
    writeFileSync(this.configPath, `bastion = {
        socket = ${q(this.socket)};
        control_socket = ${q(this.controlSocket)};
        state_dir = ${q(this.stateDir)};
        runtime_dir = ${q(this.runtimeDir)};
        libexec_dir = ${q(this.libexecDir)};
        audit_dir = ${q(join(this.dir, 'audit'))};
        secrets_key_file = ${q(join(this.dir, 'secrets.key'))};
        worker_uids = [ ${this.uids.min}, ${this.uids.max} ];
        call_timeout_ms = 120000;
        max_inflight = 64;
};
roles = {
        tester = { scopes = [ ${q(SCOPE)} ]; };
};
users = (
        { user = "root"; role = "tester"; },
        { user = ${q(TEST_USER)}; role = "tester"; }
);
servers = {
        conformance = {
                domain = "conformance";
                tools = {
${tools}                };
        };
};
`);
    // Plain loopback HTTP without tokens: the anonymous principal, a third caller.
    appendFileSync(this.configPath, `http = {\n        listen = "127.0.0.1:${port}";\n        plain = true;\n};\n` +
      `oauth = {\n        issuer = "https://issuer.bastion.test";\n        jwks_file = ${q(jwks)};\n` +
      '        authorization_servers = [ "https://as.bastion.test" ];\n        anonymous_role = "tester";\n};\n');
  }

  auditRecords() {
    const dir = join(this.dir, 'audit');
    return readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()
      .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
  }
}

// JSON-RPC lines over a stream: answers are matched to requests by id (a task's CreateTaskResult may
// come after a later request's answer).
function lineClient(input, output, close) {
  const pending = new Map();
  let buf = '', nextId = 1;
  output.setEncoding('utf8');
  output.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.trim()) continue;
      const msg = JSON.parse(line);
      const p = pending.get(msg.id);
      if (p) {
        pending.delete(msg.id);
        p(msg);
      }
    }
  });
  return {
    // The whole response: {result} or {error}.
    send(method, params) {
      const id = nextId++;
      return new Promise((r) => {
        pending.set(id, r);
        input.write(q({ jsonrpc: '2.0', id, method, params }) + '\n');
      });
    },
    close,
  };
}

function connectLocal(d) {
  return new Promise((resolveP, reject) => {
    const sock = createConnection(d.socket);
    sock.once('error', reject);
    sock.once('connect', () => sock.write('server conformance\n'));
    sock.setEncoding('utf8');
    let pre = '';
    const onPreamble = (s) => {
      pre += s;
      const i = pre.indexOf('\n');
      if (i < 0) return;
      sock.off('data', onPreamble);
      assert.equal(pre.slice(0, i), 'ok');
      const c = lineClient(sock, sock, () => sock.destroy());
      if (pre.length > i + 1) sock.emit('data', pre.slice(i + 1));
      resolveP(c);
    };
    sock.on('data', onPreamble);
  });
}

// bastion-stdio run as another local user: a second principal on the same server.
function connectAs(d, user) {
  const { command, args } = d.shimCommand('conformance', user);
  const p = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  return lineClient(p.stdin, p.stdout, () => p.kill());
}

// Over HTTP through bastion-front: every request on its own, with the headers the 2026-07-28 wire wants.
function connectHttp(d) {
  return {
    async send(method, params, headers = {}) {
      const name = params?.taskId ?? params?.name;
      const res = await fetch(`${d.base}/mcp/conformance`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json', accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2026-07-28', 'mcp-method': method, ...(name ? { 'mcp-name': name } : {}), ...headers,
        },
        body: q({ jsonrpc: '2.0', id: 1, method, params }),
      });
      const text = await res.text();
      const body = res.headers.get('content-type')?.includes('text/event-stream') ?
        JSON.parse(text.split('\n').filter((l) => l.startsWith('data:')).at(-1).slice(5)) : JSON.parse(text);
      return { status: res.status, ...body };
    },
    close() {},
  };
}

const meta = (tasks = true) => ({
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': tasks ? { extensions: { [EXT]: {} } } : {},
});
const call = (c, name, args, tasks = true) => c.send('tools/call', { name, arguments: args, _meta: meta(tasks) });
const tasks = (c, method, params, ext = true) => c.send(method, { ...params, _meta: meta(ext) });

async function untilStatus(c, taskId, want, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await tasks(c, 'tasks/get', { taskId });
    assert.ok(r.result, `tasks/get failed: ${q(r)}`);
    if (want.includes(r.result.status)) return r.result;
    assert.ok(Date.now() < end, `task ${taskId} still ${r.result.status}, wanted ${want}`);
    await sleep(100);
  }
}

const NOT_FOUND = { code: -32602, message: 'Invalid params: task not found' };
const MISSING = {
  code: -32021, message: `Missing required client capability: ${EXT}`,
  data: { requiredCapabilities: { extensions: { [EXT]: {} } } },
};

let daemon, root;
test.before(async () => {
  daemon = await TasksDaemon.start(await freePort());
  root = await connectLocal(daemon);
});
test.after(async () => {
  root?.close();
  if (daemon) await daemon.stop();
});

test('discovery offers the extension; a 2025-11-25 client is told nothing of tasks', async () => {
  const d = await root.send('server/discover', { _meta: meta(false) });
  assert.deepEqual(d.result.capabilities.extensions, { [EXT]: {} });
  assert.equal(d.result.capabilities.tasks, undefined);
  const list = await root.send('tools/list', { _meta: meta() });
  const byName = Object.fromEntries(list.result.tools.map((t) => [t.name, t]));
  assert.deepEqual(byName.slow_compute.execution, { taskSupport: 'optional' });
  assert.deepEqual(byName.failing_job.execution, { taskSupport: 'required' });
  assert.equal(byName.greet.execution, undefined);

  const legacy = await connectLocal(daemon);
  await legacy.send('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '0' } });
  const old = await legacy.send('tools/list', {});
  assert.deepEqual(old.result.tools.filter((t) => 'execution' in t), []);
  assert.equal((await legacy.send('tasks/get', { taskId: 'x' })).error.code, -32601);
  legacy.close();
});

test('a task is created, polled to completion, and the tool result is inlined', async () => {
  const before = Date.now();
  const created = await call(root, 'slow_compute', { seconds: 1, label: 'poll' });
  const t = created.result;
  assert.equal(t.resultType, 'task');
  assert.match(t.taskId, /^[0-9a-f]{32}$/);
  assert.equal(t.status, 'working');
  assert.equal(t.ttlMs, TTL_MS);
  assert.equal(t.pollIntervalMs, POLL_MS);
  assert.ok(Date.parse(t.createdAt) >= before - 1000 && Date.parse(t.createdAt) <= Date.now());
  for (const k of ['result', 'error', 'inputRequests', 'requestState', 'task']) assert.equal(k in t, false, k);

  const working = (await tasks(root, 'tasks/get', { taskId: t.taskId })).result;
  assert.equal(working.status, 'working');
  assert.equal(working.resultType, 'complete');
  assert.equal('result' in working, false);

  const done = await untilStatus(root, t.taskId, ['completed', 'failed', 'cancelled']);
  assert.equal(done.status, 'completed');
  assert.equal(done.taskId, t.taskId);
  assert.deepEqual(done.result.content, [{ type: 'text', text: 'Computed for 1 second(s): poll' }]);
  assert.equal('requestState' in done, false);
});

test('an optional-task tool that finishes at once answers synchronously; a tool error completes the task, a protocol error fails it', async () => {
  const quick = await call(root, 'slow_compute', { seconds: 0 });
  assert.equal(quick.result.resultType, 'complete');
  assert.deepEqual(quick.result.content, [{ type: 'text', text: 'Computed for 0 second(s)' }]);

  const failing = (await call(root, 'failing_job', {})).result;
  assert.equal(failing.resultType, 'task');
  const f = await untilStatus(root, failing.taskId, ['completed', 'failed', 'cancelled']);
  assert.equal(f.status, 'completed');
  assert.equal(f.result.isError, true);

  const crashing = (await call(root, 'protocol_error_job', {})).result;
  assert.equal(crashing.resultType, 'task');
  const p = await untilStatus(root, crashing.taskId, ['completed', 'failed', 'cancelled']);
  assert.equal(p.status, 'failed');
  assert.deepEqual(p.error, { code: -32603, message: 'Internal error: the job crashed' });
  assert.equal('result' in p, false);
});

test('cancelling a running task: cancelled at once, the worker is told and free for the next call', async () => {
  const t = (await call(root, 'slow_compute', { seconds: 60, label: 'cancel-me' })).result;
  const ack = await tasks(root, 'tasks/cancel', { taskId: t.taskId });
  assert.equal(ack.result.resultType, 'complete');
  for (const k of ['taskId', 'status', 'result', 'error', 'inputRequests']) assert.equal(k in ack.result, false, k);
  const got = (await tasks(root, 'tasks/get', { taskId: t.taskId })).result;
  assert.equal(got.status, 'cancelled');
  assert.equal('result' in got, false);
  // The worker is serial: greet answers in time only because the 60 s computation was cancelled there.
  const started = Date.now();
  const greet = await call(root, 'greet', { name: 'next' });
  assert.deepEqual(greet.result.content, [{ type: 'text', text: 'Hello, next!' }]);
  assert.ok(Date.now() - started < 5000, `greet took ${Date.now() - started} ms`);
  // Cancelling again, or a finished task, is acknowledged alike and changes nothing.
  assert.equal((await tasks(root, 'tasks/cancel', { taskId: t.taskId })).result.resultType, 'complete');
  assert.equal((await tasks(root, 'tasks/get', { taskId: t.taskId })).result.status, 'cancelled');
});

test('an unknown task id is invalid params on every task method', async () => {
  for (const id of ['0123456789abcdef0123456789abcdef', 'nonexistent', '']) {
    assert.deepEqual((await tasks(root, 'tasks/get', { taskId: id })).error, NOT_FOUND);
    assert.deepEqual((await tasks(root, 'tasks/cancel', { taskId: id })).error, NOT_FOUND);
    assert.deepEqual((await tasks(root, 'tasks/update', { taskId: id, inputResponses: {} })).error, NOT_FOUND);
  }
  assert.equal((await tasks(root, 'tasks/result', { taskId: 'x' })).error.code, -32601);
  assert.equal((await tasks(root, 'tasks/list', {})).error.code, -32601);
});

test("another principal's task id is refused exactly like an unknown one", async () => {
  const t = (await call(root, 'slow_compute', { seconds: 60, label: 'mine' })).result;
  const other = connectAs(daemon, TEST_USER);
  const web = connectHttp(daemon);
  try {
    for (const c of [other, web]) {
      assert.deepEqual((await tasks(c, 'tasks/get', { taskId: t.taskId })).error, NOT_FOUND);
      assert.deepEqual((await tasks(c, 'tasks/cancel', { taskId: t.taskId })).error, NOT_FOUND);
      assert.deepEqual((await tasks(c, 'tasks/update', { taskId: t.taskId, inputResponses: {} })).error, NOT_FOUND);
    }
    // Their cancel did nothing: the owner still sees it running.
    assert.equal((await tasks(root, 'tasks/get', { taskId: t.taskId })).result.status, 'working');
    // And a task of theirs is theirs alone.
    const theirs = (await call(other, 'slow_compute', { seconds: 60 })).result;
    assert.match(theirs.taskId, /^[0-9a-f]{32}$/);
    assert.deepEqual((await tasks(root, 'tasks/get', { taskId: theirs.taskId })).error, NOT_FOUND);
    assert.equal((await tasks(other, 'tasks/get', { taskId: theirs.taskId })).result.status, 'working');
    await tasks(other, 'tasks/cancel', { taskId: theirs.taskId });
  } finally {
    other.close();
  }
  await tasks(root, 'tasks/cancel', { taskId: t.taskId });
});

test('without the extension: the task methods and a task-only tool are refused with -32021, other tools run synchronously', async () => {
  for (const [method, params] of [['tasks/get', { taskId: 'x' }], ['tasks/cancel', { taskId: 'x' }],
    ['tasks/update', { taskId: 'x', inputResponses: {} }]])
    assert.deepEqual((await tasks(root, method, params, false)).error, MISSING);
  const required = await call(root, 'failing_job', {}, false);
  assert.equal(required.error.code, -32021);
  assert.deepEqual(required.error.data, MISSING.data);
  const sync = await call(root, 'slow_compute', { seconds: 1 }, false);
  assert.equal(sync.result.resultType, 'complete');
  assert.deepEqual(sync.result.content, [{ type: 'text', text: 'Computed for 1 second(s)' }]);
  // A task id is refused alike over HTTP, with the status code of the error (400).
  const web = await tasks(connectHttp(daemon), 'tasks/get', { taskId: 'x' }, false);
  assert.equal(web.status, 400);
  assert.equal(web.error.code, -32021);
});

test('an official SDK client that knows nothing of tasks (v2, 2026-07-28) is served synchronously', async () => {
  const c = await daemon.connectV2({ server: 'conformance' });
  const { tools } = await c.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), [...TOOLS].sort());
  const r = await c.callTool({ name: 'slow_compute', arguments: { seconds: 1, label: 'sdk' } });
  assert.deepEqual(r.content, [{ type: 'text', text: 'Computed for 1 second(s): sdk' }]);
  await assert.rejects(c.callTool({ name: 'failing_job', arguments: {} }), (e) => e.code === -32021);
  await c.close();
});

test('input within a task: tasks/update answers part of it, the task waits for the rest, then resumes', async () => {
  const t = (await call(root, 'multi_input', {})).result;
  assert.equal(t.resultType, 'task');
  const asking = await untilStatus(root, t.taskId, ['input_required', 'completed', 'failed', 'cancelled']);
  assert.equal(asking.status, 'input_required');
  assert.deepEqual(Object.keys(asking.inputRequests).sort(), ['confirm', 'name']);
  assert.equal(asking.inputRequests.name.method, 'elicitation/create');
  assert.equal('requestState' in asking, false);

  const ack = await tasks(root, 'tasks/update', { taskId: t.taskId, inputResponses: {
    name: { action: 'accept', content: { name: 'Ann' } }, stray: { action: 'accept', content: {} } } });
  assert.equal(ack.result.resultType, 'complete');
  for (const k of ['taskId', 'status', 'inputRequests']) assert.equal(k in ack.result, false, k);
  const half = (await tasks(root, 'tasks/get', { taskId: t.taskId })).result;
  assert.equal(half.status, 'input_required');
  assert.deepEqual(Object.keys(half.inputRequests), ['confirm']);

  await tasks(root, 'tasks/update', { taskId: t.taskId, inputResponses: { confirm: { action: 'accept', content: { confirm: true } } } });
  const done = await untilStatus(root, t.taskId, ['completed', 'failed', 'cancelled']);
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.result.content, [{ type: 'text', text: 'Got both inputs: Ann' }]);
  // An answer to a request already answered is ignored, and still acknowledged.
  assert.equal((await tasks(root, 'tasks/update', { taskId: t.taskId, inputResponses: { name: { action: 'decline' } } }))
    .result.resultType, 'complete');
});

test('over HTTP: a task end to end, and Mcp-Name must name the task (-32020, 400)', async () => {
  const web = connectHttp(daemon);
  const created = await call(web, 'slow_compute', { seconds: 1, label: 'web' });
  assert.equal(created.status, 200);
  const id = created.result.taskId;
  assert.match(id, /^[0-9a-f]{32}$/);
  const wrong = await web.send('tasks/get', { taskId: id, _meta: meta() }, { 'mcp-name': 'another-task' });
  assert.equal(wrong.status, 400);
  assert.equal(wrong.error.code, -32020);
  const missing = await fetch(`${daemon.base}/mcp/conformance`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', 'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tasks/get' },
    body: q({ jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { taskId: id, _meta: meta() } }),
  });
  assert.equal(missing.status, 400);
  assert.equal((await missing.json()).error.code, -32020);
  const done = await untilStatus(web, id, ['completed', 'failed', 'cancelled']);
  assert.deepEqual(done.result.content, [{ type: 'text', text: 'Computed for 1 second(s): web' }]);
  // The local root user is another principal than the anonymous HTTP caller.
  assert.deepEqual((await tasks(root, 'tasks/get', { taskId: id })).error, NOT_FOUND);
});

test('the task table is bounded: a caller holding the limit of unfinished tasks is refused "Too many tasks"', async () => {
  const created = await Promise.all(Array.from({ length: PER_PRINCIPAL }, (_, i) =>
    call(root, 'slow_compute', { seconds: 60, label: `fill-${i}` })));
  const ids = created.map((r) => r.result?.taskId);
  assert.equal(ids.filter((x) => /^[0-9a-f]{32}$/.test(x ?? '')).length, PER_PRINCIPAL, q(created.find((r) => !r.result)));
  const refused = await call(root, 'slow_compute', { seconds: 60, label: 'one-too-many' });
  assert.equal(refused.error.code, -31003);
  assert.equal(refused.error.message,
    `Too many tasks: this caller holds ${PER_PRINCIPAL} unfinished tasks, the limit; cancel one or wait for one to finish`);
  assert.deepEqual(refused.error.data, { limit: 'tasks_per_principal', max: PER_PRINCIPAL });
  // The limit is per caller: someone else still gets a task.
  const other = connectAs(daemon, TEST_USER);
  try {
    const theirs = (await call(other, 'slow_compute', { seconds: 60 })).result;
    assert.equal(theirs.resultType, 'task');
    await tasks(other, 'tasks/cancel', { taskId: theirs.taskId });
  } finally {
    other.close();
  }
  // Finished tasks make room, oldest first (they are forgotten); unfinished ones never do.
  await tasks(root, 'tasks/cancel', { taskId: ids[0] });
  const again = (await call(root, 'slow_compute', { seconds: 60, label: 'room' })).result;
  assert.equal(again.resultType, 'task');
  assert.deepEqual((await tasks(root, 'tasks/get', { taskId: ids[0] })).error, NOT_FOUND);
  assert.equal((await tasks(root, 'tasks/get', { taskId: ids[1] })).result.status, 'working');
  for (const id of [...ids.slice(1), again.taskId]) await tasks(root, 'tasks/cancel', { taskId: id });
  assert.deepEqual((await call(root, 'greet', { name: 'after' })).result.content, [{ type: 'text', text: 'Hello, after!' }]);
});

test('the audit log records each task: created, updated, cancelled, and the refusal', async () => {
  const t = (await call(root, 'slow_compute', { seconds: 60, label: 'audited' })).result;
  await tasks(root, 'tasks/update', { taskId: t.taskId, inputResponses: {} });
  await tasks(root, 'tasks/cancel', { taskId: t.taskId });
  let records;
  await waitFor('the task records', () => {
    records = daemon.auditRecords().filter((r) => r.task_id === t.taskId);
    return records.length === 3;
  }, 5000);
  const who = { sub: 'uid:0', uid: 0, tenant: null, role: 'tester' };
  assert.deepEqual(records.map((r) => [r.type, r.principal, r.server, r.tool, r.detail]), [
    ['task.created', who, 'conformance', 'slow_compute', 'working'],
    ['task.updated', who, 'conformance', 'slow_compute', '0 answer(s) accepted'],
    ['task.cancelled', who, 'conformance', 'slow_compute', 'working'],
  ]);
  const all = daemon.auditRecords();
  // The worker call behind it is audited like any call, and ends as cancelled.
  const intent = all.findLast((r) => r.type === 'call.intent' && r.tool === 'slow_compute' && r.arguments?.label === 'audited');
  assert.ok(intent && intent.seq < records[0].seq);
  await waitFor('the call result', () => daemon.auditRecords().some((r) => r.type === 'call.result' && r.intent_seq === intent.seq),
    5000);
  assert.ok(all.some((r) => r.type === 'call.denied' && r.tool === 'slow_compute' && /^Too many tasks/.test(r.reason)));
});

// Last: it reloads the configuration. A task parked for input is resumed as the caller and the policy
// are *now*: a reload that takes the tool away fails the task when the answer comes, and the worker is
// not called again.
test('a task resumed after a reload that took the tool away fails "Permission denied"; the worker is not called again', async () => {
  const t = (await call(root, 'confirm_delete', { filename: 'revoked.txt' })).result;
  assert.equal(t.resultType, 'task');
  const asking = await untilStatus(root, t.taskId, ['input_required', 'completed', 'failed', 'cancelled']);
  assert.equal(asking.status, 'input_required');
  const intents = () => daemon.auditRecords().filter((r) => r.type === 'call.intent' && r.tool === 'confirm_delete' &&
    r.arguments?.filename === 'revoked.txt').length;
  assert.equal(intents(), 1);

  await daemon.reload({ port: daemon.port, revoked: ['confirm_delete'] }, ['conformance']);
  // The broker has the new policy once a plain call of the tool is refused.
  // The broker has the new policy once a plain call of the tool is refused (a tool error, as MCP has it).
  await waitFor('the reloaded policy', async () => {
    const r = await call(root, 'confirm_delete', { filename: 'probe.txt' }, false);
    return r.result?.isError && /^Permission denied: tool confirm_delete requires scope conformance:nobody/.test(r.result.content[0].text);
  }, 10000, 100);

  const ack = await tasks(root, 'tasks/update', { taskId: t.taskId,
    inputResponses: { confirm: { action: 'accept', content: { confirm: true } } } });
  assert.equal(ack.result.resultType, 'complete');
  const done = await untilStatus(root, t.taskId, ['completed', 'failed', 'cancelled']);
  assert.equal(done.status, 'failed');
  assert.equal('result' in done, false);
  assert.match(done.error.message, /^Permission denied: the policy no longer lets this caller run the tool/);
  await sleep(300);
  assert.equal(intents(), 1, 'the worker was called again for a revoked tool');
});
