// The conformance worker through the real daemon over the local path (bastion-stdio, the unix socket):
// its fixtures listed and called with the official SDK clients, and the broker's pass-through of
// prompts, resource templates, completion, logging, progress, subscriptions, and the worker's own
// requests to the client (sampling, elicitation) in both protocol eras. The policy still decides:
// what it does not name is hidden, and one client never sees another's traffic.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';

import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as StdioTransportV1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CreateMessageRequestSchema, ElicitRequestSchema, LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioTransportV2 } from '@modelcontextprotocol/client/stdio';

import { Daemon, TEST_USER, bin, rawConnect, sleep } from './harness.mjs';

const q = JSON.stringify;
const SCOPE = 'conformance:use';
// Every fixture the worker has; the policy below names all but one tool and one prompt.
const TOOLS = [
  'test_simple_text', 'test_image_content', 'test_audio_content', 'test_embedded_resource',
  'test_multiple_content_types', 'test_error_handling', 'test_tool_with_progress', 'test_tool_with_logging',
  'test_logging_tool', 'test_sampling', 'test_elicitation', 'test_elicitation_sep1034_defaults',
  'test_elicitation_sep1330_enums', 'test_missing_capability', 'test_streaming_elicitation',
  'test_input_required_result_elicitation', 'test_input_required_result_sampling',
  'test_input_required_result_list_roots', 'test_input_required_result_request_state',
  'test_input_required_result_multiple_inputs', 'test_input_required_result_multi_round',
  'test_input_required_result_tampered_state', 'test_input_required_result_capabilities',
  'json_schema_2020_12_tool',
];
const UNNAMED_TOOL = 'test_audio_content';
const PROMPTS = ['test_simple_prompt', 'test_prompt_with_arguments', 'test_prompt_with_embedded_resource',
  'test_prompt_with_image', 'test_input_required_result_prompt'];
const UNNAMED_PROMPT = 'test_prompt_with_embedded_resource';
// Needs a scope the second user's role lacks.
const IMAGE_PROMPT = 'test_prompt_with_image';

function conformanceServer() {
  const tools = TOOLS.filter((t) => t !== UNNAMED_TOOL).map((t) => `                        ${t} = { scopes = [ ${q(SCOPE)} ]; };\n`).join('');
  const prompts = PROMPTS.filter((p) => p !== UNNAMED_PROMPT).map((p) =>
    `                        ${p} = { scopes = [ ${q(p === IMAGE_PROMPT ? 'conformance:images' : SCOPE)} ]; };\n`).join('');
  return `        conformance = {
                domain = "conformance";
                tools = {
${tools}                };
                resources = {
                        fixtures = { uri_prefix = "test://"; scopes = [ ${q(SCOPE)} ]; };
                };
                prompts = {
${prompts}                };
        };
`;
}

// The harness daemon with this file's roles: root may use everything, the test user all but images.
class ConformanceDaemon extends Daemon {
  static async start() {
    const d = new ConformanceDaemon([conformanceServer()]);
    try {
      await d.waitReady(['conformance']);
    } catch (e) {
      d.kill();
      throw new Error(`${e.message}\nbastiond stderr:\n${d.stderr}`);
    }
    return d;
  }

  writeConfig(servers) {
    writeFileSync(this.configPath, `bastion = {
        socket = ${q(this.socket)};
        control_socket = ${q(this.controlSocket)};
        state_dir = ${q(this.stateDir)};
        runtime_dir = ${q(this.runtimeDir)};
        libexec_dir = ${q(bin('.'))};
        audit_dir = ${q(join(this.dir, 'audit'))};
        secrets_key_file = ${q(join(this.dir, 'secrets.key'))};
        worker_uids = [ ${this.uids.min}, ${this.uids.max} ];
        call_timeout_ms = 10000;
        max_inflight = 16;
};
roles = {
        tester = { scopes = [ ${q(SCOPE)}, "conformance:images" ]; };
        limited = { scopes = [ ${q(SCOPE)} ]; };
};
users = (
        { user = "root"; role = "tester"; },
        { user = ${q(TEST_USER)}; role = "limited"; }
);
servers = {
${servers.join('')}};
`);
  }

  // A 2025-11-25 client that can be asked: sampling and elicitation answered by the given functions.
  async v1({ user, sampling, elicit, capabilities } = {}) {
    const transport = new StdioTransportV1({ ...this.shimCommand('conformance', user), stderr: 'pipe' });
    const caps = capabilities ?? { ...(sampling ? { sampling: {} } : {}), ...(elicit ? { elicitation: {} } : {}) };
    const client = new ClientV1({ name: 'conformance-it', version: '1.0.0' }, { capabilities: caps });
    if (sampling) client.setRequestHandler(CreateMessageRequestSchema, (req) => sampling(req.params));
    if (elicit) client.setRequestHandler(ElicitRequestSchema, (req) => elicit(req.params));
    return this.track(client, transport);
  }

  async v2({ elicit } = {}) {
    const transport = new StdioTransportV2({ ...this.shimCommand('conformance'), stderr: 'pipe' });
    const client = new ClientV2({ name: 'conformance-it-v2', version: '1.0.0' }, {
      capabilities: elicit ? { elicitation: { form: {} } } : {},
      versionNegotiation: { mode: { pin: '2026-07-28' } },
    });
    if (elicit) client.setRequestHandler('elicitation/create', (req) => elicit(req.params));
    return this.track(client, transport);
  }
}

let daemon;
test.before(async () => { daemon = await ConformanceDaemon.start(); });
test.after(async () => { if (daemon) await daemon.stop(); });

const textOf = (r) => r.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

test('capabilities: tools, resources with subscribe, prompts, completions and logging are declared', async () => {
  const c = await daemon.v1();
  assert.deepEqual(c.getServerCapabilities(), {
    tools: { listChanged: false },
    resources: { listChanged: false, subscribe: true },
    prompts: { listChanged: false },
    completions: {},
    logging: {},
  });
  await c.close();
});

test('tools/list: every fixture the policy names, and only those', async () => {
  const c = await daemon.v1();
  const { tools } = await c.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS.filter((t) => t !== UNNAMED_TOOL).sort());
  for (const t of tools) assert.equal(typeof t.description, 'string');
  await assert.rejects(c.callTool({ name: UNNAMED_TOOL, arguments: {} }), /Unknown tool/);
  await c.close();
});

test('a tool whose schema Bastion cannot enforce is listed verbatim and never runs', async () => {
  const c = await daemon.v1();
  const t = (await c.listTools()).tools.find((x) => x.name === 'json_schema_2020_12_tool');
  assert.equal(t.inputSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(t.inputSchema.$defs.address.$anchor, 'addressDef');
  assert.deepEqual(t.inputSchema.properties.address, { $ref: '#/$defs/address' });
  assert.deepEqual(t.inputSchema.else, { required: ['email'] });
  const r = await c.callTool({ name: 'json_schema_2020_12_tool', arguments: { name: 'x', email: 'e' } });
  assert.equal(r.isError, true);
  assert.match(textOf(r), /keyword the broker cannot check, so it is refused/);
  await c.close();
});

test('content fixtures come through unchanged', async () => {
  const c = await daemon.v1();
  assert.deepEqual(await c.callTool({ name: 'test_simple_text', arguments: {} }),
    { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] });
  const img = await c.callTool({ name: 'test_image_content', arguments: {} });
  assert.equal(img.content[0].type, 'image');
  assert.equal(img.content[0].mimeType, 'image/png');
  assert.equal(Buffer.from(img.content[0].data, 'base64').subarray(1, 4).toString(), 'PNG');
  assert.deepEqual(await c.callTool({ name: 'test_embedded_resource', arguments: {} }), {
    content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain',
      text: 'This is an embedded resource content.' } }],
  });
  const mixed = await c.callTool({ name: 'test_multiple_content_types', arguments: {} });
  assert.deepEqual(mixed.content.map((x) => x.type), ['text', 'image', 'resource']);
  assert.equal(mixed.content[2].resource.text, '{"test":"data","value":123}');
  assert.deepEqual(await c.callTool({ name: 'test_error_handling', arguments: {} }), {
    content: [{ type: 'text', text: 'This tool intentionally returns an error for testing' }], isError: true,
  });
  await c.close();
});

test('progress: 0, 50 and 100 of 100 reach the caller, under its own token, before the result', async () => {
  // Raw lines: the order on the wire is the property (an SDK client may run handlers later).
  const raw = await rawConnect(daemon.socket, 'conformance');
  await raw.request({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '0' } } });
  raw.sock.write(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: 'tok-1' } } }) + '\n');
  const frames = [];
  for (;;) {
    const line = JSON.parse(await raw.next());
    frames.push(line);
    if (line.id === 7) break;
  }
  assert.deepEqual(frames.slice(0, -1), [0, 50, 100].map((progress) =>
    ({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'tok-1', progress, total: 100 } })));
  assert.match(frames.at(-1).result.content[0].text, /Progress test completed/);
  raw.close();
  // And the SDK client sees the values.
  const c = await daemon.v1();
  const seen = [];
  await c.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, { onprogress: (p) => seen.push(p.progress) });
  await sleep(50);
  assert.ok(seen.length >= 2 && seen[0] === 0 && seen[1] === 50, `progress seen: ${seen}`);
  await c.close();
});

test('logging: the call\'s messages go to its client only, filtered by logging/setLevel', async () => {
  const c = await daemon.v1();
  const other = await daemon.v1();
  const got = [], otherGot = [];
  c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => got.push(n.params));
  other.setNotificationHandler(LoggingMessageNotificationSchema, (n) => otherGot.push(n.params));
  await c.callTool({ name: 'test_tool_with_logging', arguments: {} });
  assert.deepEqual(got, ['Tool execution started', 'Tool processing data', 'Tool execution completed']
    .map((data) => ({ level: 'info', data, logger: 'conformance' })));
  // Nothing of the worker's bookkeeping leaks, and the other connection heard nothing.
  assert.deepEqual(otherGot, []);
  await c.setLoggingLevel('warning');
  got.length = 0;
  await c.callTool({ name: 'test_tool_with_logging', arguments: {} });
  assert.deepEqual(got, []);
  await assert.rejects(c.request({ method: 'logging/setLevel', params: { level: 'loud' } },
    (await import('@modelcontextprotocol/sdk/types.js')).EmptyResultSchema), /unknown log level/);
  await c.close();
  await other.close();
});

test('sampling: the worker asks the calling client\'s model through the broker', async () => {
  const asked = [];
  const c = await daemon.v1({ sampling: (p) => { asked.push(p); return { role: 'assistant', model: 'm', content: { type: 'text', text: 'Paris' } }; } });
  const r = await c.callTool({ name: 'test_sampling', arguments: { prompt: 'Capital of France?' } });
  assert.deepEqual(r, { content: [{ type: 'text', text: 'LLM response: Paris' }] });
  assert.deepEqual(asked, [{ messages: [{ role: 'user', content: { type: 'text', text: 'Capital of France?' } }], maxTokens: 100 }]);
  await c.close();
});

test('sampling: a client without the capability is never asked; the tool says so', async () => {
  const c = await daemon.v1();
  const r = await c.callTool({ name: 'test_sampling', arguments: { prompt: 'x' } });
  assert.equal(r.isError, true);
  assert.match(textOf(r), /sampling capability/);
  await c.close();
});

test('elicitation: accept, decline, and the enum and default shapes reach the user intact', async () => {
  const asked = [];
  let answer = { action: 'accept', content: { username: 'ada', email: 'ada@example.com' } };
  const c = await daemon.v1({ elicit: (p) => { asked.push(p); return answer; } });
  let r = await c.callTool({ name: 'test_elicitation', arguments: { message: 'Who are you?' } });
  assert.equal(textOf(r), 'User response: action=accept, content={"username":"ada","email":"ada@example.com"}');
  assert.equal(asked[0].message, 'Who are you?');
  assert.deepEqual(asked[0].requestedSchema.required, ['username', 'email']);
  answer = { action: 'decline' };
  r = await c.callTool({ name: 'test_elicitation', arguments: { message: 'Again?' } });
  assert.equal(textOf(r), 'User response: action=decline, content=null');
  answer = { action: 'accept', content: {} };
  await c.callTool({ name: 'test_elicitation_sep1034_defaults', arguments: {} });
  const d = asked[2].requestedSchema.properties;
  assert.deepEqual([d.name.default, d.age.default, d.score.default, d.status.default, d.verified.default],
    ['John Doe', 30, 95.5, 'active', true]);
  assert.equal(d.age.type, 'integer');
  await c.callTool({ name: 'test_elicitation_sep1330_enums', arguments: {} });
  const e = asked[3].requestedSchema.properties;
  assert.deepEqual(e.legacyEnum.enumNames, ['Option One', 'Option Two', 'Option Three']);
  assert.deepEqual(e.titledMulti.items.anyOf[0], { const: 'value1', title: 'First Choice' });
  await c.close();
});

test('elicitation: a client that answers with an error fails the tool, not the connection', async () => {
  const c = await daemon.v1({ elicit: () => { throw new Error('no human here'); } });
  const r = await c.callTool({ name: 'test_elicitation', arguments: { message: 'x' } });
  assert.equal(r.isError, true);
  assert.match(textOf(r), /did not answer elicitation\/create/);
  assert.equal(textOf(await c.callTool({ name: 'test_simple_text', arguments: {} })),
    'This is a simple text response for testing.');
  await c.close();
});

test('a relayed request is answered by its own client only; other calls wait their turn', async () => {
  // The broker's id for its relayed request is per client: a raw second connection that answers the
  // same id cannot complete the first client's call.
  let release;
  const held = new Promise((r) => (release = r));
  const c = await daemon.v1({ elicit: async () => { await held; return { action: 'accept', content: { username: 'a', email: 'b' } }; } });
  const call = c.callTool({ name: 'test_elicitation', arguments: { message: 'x' } });
  await sleep(200);
  const raw = await rawConnect(daemon.socket, 'conformance');
  assert.equal(raw.answer, 'ok');
  await raw.request({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '0' } } });
  for (let i = 1; i < 50; i++)
    raw.sock.write(JSON.stringify({ jsonrpc: '2.0', id: `bastion-relay-${i}`, result: { action: 'accept', content: { username: 'mallory', email: 'm' } } }) + '\n');
  const ping = await raw.request({ jsonrpc: '2.0', id: 99, method: 'ping' });
  assert.deepEqual(ping.result, {});
  raw.close();
  // Another client's call reaches the worker while it waits for the answer: it is served right after.
  const other = await daemon.v1();
  let otherDone = false;
  const otherCall = other.callTool({ name: 'test_simple_text', arguments: {} }).then((r) => { otherDone = true; return r; });
  await sleep(200);
  assert.equal(otherDone, false, 'the worker serves one call at a time');
  release();
  assert.equal(textOf(await call), 'User response: action=accept, content={"username":"a","email":"b"}');
  assert.equal(textOf(await otherCall), 'This is a simple text response for testing.');
  await c.close();
  await other.close();
});

test('resources: list, read, templates and a template read', async () => {
  const c = await daemon.v1();
  const { resources } = await c.listResources();
  assert.deepEqual(resources.map((r) => r.uri).sort(), ['test://static-binary', 'test://static-text', 'test://watched-resource']);
  assert.deepEqual(await c.readResource({ uri: 'test://static-text' }), {
    contents: [{ uri: 'test://static-text', mimeType: 'text/plain', text: 'This is the content of the static text resource.' }],
  });
  const bin = await c.readResource({ uri: 'test://static-binary' });
  assert.equal(bin.contents[0].mimeType, 'image/png');
  const { resourceTemplates } = await c.listResourceTemplates();
  assert.deepEqual(resourceTemplates.map((t) => t.uriTemplate), ['test://template/{id}/data']);
  assert.deepEqual(await c.readResource({ uri: 'test://template/123/data' }), {
    contents: [{ uri: 'test://template/123/data', mimeType: 'application/json',
      text: '{"id":"123","templateTest":true,"data":"Data for ID: 123"}' }],
  });
  await assert.rejects(c.readResource({ uri: 'test://nope' }), (e) => e.code === -32002);
  await c.close();
});

test('resources/subscribe and unsubscribe answer {} for a resource the policy allows', async () => {
  const c = await daemon.v1();
  c.setNotificationHandler(ResourceUpdatedNotificationSchema, () => {});
  assert.deepEqual(await c.subscribeResource({ uri: 'test://watched-resource' }), {});
  assert.deepEqual(await c.unsubscribeResource({ uri: 'test://watched-resource' }), {});
  await assert.rejects(c.subscribeResource({ uri: 'file:///etc/passwd' }), (e) => e.code === -32002);
  await c.close();
});

test('prompts: listed by policy and role, fetched with arguments, unnamed ones do not exist', async () => {
  const c = await daemon.v1();
  const { prompts } = await c.listPrompts();
  assert.deepEqual(prompts.map((p) => p.name).sort(), PROMPTS.filter((p) => p !== UNNAMED_PROMPT).sort());
  assert.deepEqual(await c.getPrompt({ name: 'test_simple_prompt' }), {
    messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }],
  });
  const withArgs = await c.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'hello', arg2: 'world' } });
  assert.equal(withArgs.messages[0].content.text, "Prompt with arguments: arg1='hello', arg2='world'");
  const img = await c.getPrompt({ name: IMAGE_PROMPT });
  assert.deepEqual(img.messages.map((m) => m.content.type), ['image', 'text']);
  await assert.rejects(c.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'x' } }), (e) => e.code === -32602);
  await assert.rejects(c.getPrompt({ name: UNNAMED_PROMPT, arguments: { resourceUri: 'test://x' } }),
    (e) => e.code === -32602 && /unknown prompt/.test(e.message));
  await c.close();

  const limited = await daemon.v1({ user: TEST_USER });
  const seen = (await limited.listPrompts()).prompts.map((p) => p.name);
  assert.ok(!seen.includes(IMAGE_PROMPT), `${IMAGE_PROMPT} must be hidden from a role without its scope`);
  await assert.rejects(limited.getPrompt({ name: IMAGE_PROMPT }),
    (e) => e.code === -32602 && /requires scope conformance:images/.test(e.message));
  await limited.close();
});

test('completion/complete: values for a prompt argument; refused for a prompt the policy hides', async () => {
  const c = await daemon.v1();
  assert.deepEqual(await c.complete({ ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' }, argument: { name: 'arg1', value: 'par' } }),
    { completion: { values: ['paris', 'park', 'party'], total: 3, hasMore: false } });
  assert.deepEqual((await c.complete({ ref: { type: 'ref/resource', uri: 'test://template/{id}/data' }, argument: { name: 'id', value: '1' } })).completion.values, ['123']);
  await assert.rejects(c.complete({ ref: { type: 'ref/prompt', name: UNNAMED_PROMPT }, argument: { name: 'resourceUri', value: '' } }),
    (e) => e.code === -32602);
  await c.close();
});

test('2026-07-28: the worker asks through an InputRequiredResult and gets the answer on the retry', async () => {
  const asked = [];
  const c = await daemon.v2({ elicit: (p) => { asked.push(p.message); return { action: 'accept', content: { name: 'Ada' } }; } });
  const r = await c.callTool({ name: 'test_input_required_result_elicitation', arguments: {} });
  assert.equal(textOf(r), 'Hello, Ada!');
  assert.deepEqual(asked, ['What is your name?']);
  await c.close();
});

test('2026-07-28: a tampered requestState is refused by the worker', async () => {
  const raw = await rawConnect(daemon.socket, 'conformance');
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } };
  const name = 'test_input_required_result_tampered_state';
  const first = await raw.request({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: {}, _meta: meta } });
  assert.equal(first.result.resultType, 'input_required');
  const state = first.result.requestState;
  const answers = { confirm: { action: 'accept', content: { ok: true } } };
  const forged = state.slice(0, -1) + (state.endsWith('0') ? '1' : '0');
  const bad = await raw.request({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: {}, _meta: meta, inputResponses: answers, requestState: forged } });
  assert.equal(bad.error?.code, -32602);
  const good = await raw.request({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name, arguments: {}, _meta: meta, inputResponses: answers, requestState: state } });
  assert.equal(good.result.resultType, 'complete');
  assert.match(good.result.content[0].text, /state-ok/);
  raw.close();
});

test('2026-07-28: log messages only for a request that asks with a logLevel; -32021 passes its data', async () => {
  const raw = await rawConnect(daemon.socket, 'conformance');
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
  const frames = [];
  let r = await raw.request({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_logging_tool', arguments: {}, _meta: meta } });
  assert.equal(r.id, 1, 'the result is the first line: no log message before it');
  raw.sock.write(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'test_logging_tool', arguments: {}, _meta: { ...meta, 'io.modelcontextprotocol/logLevel': 'info' } } }) + '\n');
  for (;;) {
    const line = JSON.parse(await raw.next());
    frames.push(line);
    if (line.id === 2) break;
  }
  assert.deepEqual(frames.slice(0, 3).map((f) => [f.method, f.params.data]), [
    ['notifications/message', 'Tool execution started'], ['notifications/message', 'Tool processing data'],
    ['notifications/message', 'Tool execution completed']]);
  r = await raw.request({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'test_missing_capability', arguments: {}, _meta: meta } });
  assert.deepEqual(r.error, { code: -32021, message: 'Missing required client capability: sampling', data: { requiredCapabilities: { sampling: {} } } });
  r = await raw.request({ jsonrpc: '2.0', id: 4, method: 'prompts/get', params: { name: 'test_input_required_result_prompt', _meta: meta } });
  assert.equal(r.result.resultType, 'input_required');
  r = await raw.request({ jsonrpc: '2.0', id: 5, method: 'prompts/get', params: { name: 'test_input_required_result_prompt', _meta: meta, inputResponses: { user_context: { action: 'accept', content: { context: 'tests' } } } } });
  assert.equal(r.result.resultType, 'complete');
  assert.equal(r.result.messages[0].content.text, 'Use this context: tests');
  r = await raw.request({ jsonrpc: '2.0', id: 6, method: 'prompts/list', params: { _meta: meta } });
  assert.equal(r.result.ttlMs, 0);
  assert.equal(r.result.cacheScope, 'private');
  raw.close();
});
