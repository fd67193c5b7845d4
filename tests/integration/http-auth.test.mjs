// Streamable HTTP with OAuth bearer tokens, from the outside (issue #6): a real bastiond with the `http`,
// `oauth` and `rate_limits` groups, bastion-front on loopback (and once over TLS), keys generated here
// with node:crypto (RSA, EC P-256, Ed25519) in a JWKS file the supervisor reads, tokens signed here.
// Raw fetch() for the exact status codes and headers; the official SDK clients (v1 and v2) over
// StreamableHTTPClientTransport for the policy matrix.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac, generateKeyPairSync, sign as cryptoSign, constants as cc } from 'node:crypto';
import { readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';

import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as HttpTransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpTransportV2 } from '@modelcontextprotocol/client';

import { Daemon, bin, inventoryServer, waitFor } from './harness.mjs';
import { ROLES, ReferenceDaemon, SERVERS, SERVER_NAMES, ensureReferenceUsers, holds, visibleTools } from './reference.mjs';

const ISSUER = 'https://issuer.bastion.test';
const AS = 'https://as.bastion.test';

// ---- keys and tokens ----

const b64u = (b) => Buffer.from(b).toString('base64url');

function newKey(kind, kid) {
  const gen = {
    RS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
    PS256: () => generateKeyPairSync('rsa', { modulusLength: 2048 }),
    ES256: () => generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    EdDSA: () => generateKeyPairSync('ed25519'),
  }[kind]();
  return { alg: kind, kid, ...gen };
}

const jwk = (k) => ({ ...k.publicKey.export({ format: 'jwk' }), kid: k.kid, alg: k.alg, use: 'sig' });
const writeJwks = (path, keys) => {
  // Atomic replace, as an operator's rotation script would do it.
  writeFileSync(`${path}.tmp`, JSON.stringify({ keys: keys.map(jwk) }));
  renameSync(`${path}.tmp`, path);
};

function signWith(k, alg, input) {
  const data = Buffer.from(input);
  switch (alg) {
    case 'RS256': return cryptoSign('sha256', data, k.privateKey);
    case 'PS256': return cryptoSign('sha256', data, { key: k.privateKey, padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'ES256': return cryptoSign('sha256', data, { key: k.privateKey, dsaEncoding: 'ieee-p1363' });
    case 'EdDSA': return cryptoSign(null, data, k.privateKey);
  }
  throw new Error(`no signer for ${alg}`);
}

const now = () => Math.floor(Date.now() / 1000);

// A token signed with k (its own alg unless header.alg says otherwise).
function mint(k, claims, header = {}) {
  const h = { typ: 'at+jwt', alg: k.alg, kid: k.kid, ...header };
  const input = `${b64u(JSON.stringify(h))}.${b64u(JSON.stringify(claims))}`;
  return `${input}.${b64u(signWith(k, h.alg, input))}`;
}

const claimsFor = (base, server, { role, scope, tenant, sub = `user-${role}`, ...rest } = {}) => ({
  iss: ISSUER, aud: `${base}/mcp/${server}`, sub, iat: now(), exp: now() + 600,
  bastion_role: role, scope: scope ?? ROLES[role].join(' '), ...(tenant ? { tenant } : {}), ...rest,
});

// ---- the daemon ----

async function freePort() {
  return new Promise((resolveP) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolveP(port));
    });
  });
}

const q = (s) => JSON.stringify(s);

function httpGroups(d, { port, tls, rate }) {
  return `
http = {
        listen = "127.0.0.1:${port}";
${tls ? `        tls_cert = ${q(tls.cert)};\n        tls_key = ${q(tls.key)};\n` : '        plain = true;\n'}};

oauth = {
        issuer = ${q(ISSUER)};
        jwks_file = ${q(d.jwksPath)};
        role_claim = "bastion_role";
        tenant_claim = "tenant";
        authorization_servers = [ ${q(AS)} ];
};

rate_limits = {
        per_subject = { rate = ${rate?.rate ?? 1000}; burst = ${rate?.burst ?? 1000}; };
${rate?.tenant ? `        per_tenant = { rate = ${rate.tenant.rate}; burst = ${rate.tenant.burst}; };\n` : ''}};
`;
}

// The reference deployment (five servers, four roles) with HTTP in front.
class HttpReferenceDaemon extends ReferenceDaemon {
  writeConfig(opts) {
    this.jwksPath = join(this.dir, 'jwks.json');
    writeJwks(this.jwksPath, opts.keys);
    super.writeConfig({});
    writeFileSync(this.configPath, readFileSync(this.configPath, 'utf8') + httpGroups(this, opts));
  }
}

// One inventory server with HTTP in front (rate limits, rotation, TLS).
class HttpDaemon extends Daemon {
  auditRecords() {
    const dir = join(this.dir, 'audit');
    return readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort()
      .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
  }

  writeConfig(opts) {
    this.jwksPath = join(this.dir, 'jwks.json');
    writeJwks(this.jwksPath, opts.keys);
    super.writeConfig(opts.servers ?? [inventoryServer('inventory')]);
    writeFileSync(this.configPath, readFileSync(this.configPath, 'utf8') + httpGroups(this, opts));
  }
}

async function startHttp(t, Kind, opts) {
  if (Kind === HttpReferenceDaemon) ensureReferenceUsers();
  const port = await freePort();
  const d = new Kind({ ...opts, port });
  t.after(() => d.kill());
  d.base = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  try {
    const wait = opts.wait ?? (Kind === HttpReferenceDaemon ? SERVER_NAMES : ['inventory']);
    await d.waitReady(wait);
    if (!opts.tls) await waitFor('the front to answer', async () => (await fetch(`${d.base}/mcp/${wait[0]}`)).status === 405, 10000, 50);
  } catch (e) {
    d.kill();
    throw new Error(`${e.message}\nbastiond stderr:\n${d.stderr}`);
  }
  return d;
}

const INIT = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'http-auth-test', version: '1' } },
};

async function post(d, server, body, headers = {}) {
  const r = await fetch(`${d.base}/mcp/${server}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, headers: r.headers, text, json };
}

const bearer = (token) => ({ authorization: `Bearer ${token}` });

// A modern (2026-07-28) request with its headers.
function modern(method, params = {}, id = 7) {
  const body = {
    jsonrpc: '2.0', id, method,
    params: { ...params, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } },
  };
  const headers = { 'mcp-protocol-version': '2026-07-28', 'mcp-method': method };
  if (params.name) headers['mcp-name'] = params.name;
  return { body, headers };
}

// ---- the reference deployment over HTTP ----

test('tokens, sessions, scopes and the metadata documents over HTTP', async (t) => {
  const keys = [newKey('RS256', 'rsa1'), newKey('PS256', 'ps1'), newKey('ES256', 'ec1'), newKey('EdDSA', 'ed1')];
  const [rsa, ps] = keys;
  const d = await startHttp(t, HttpReferenceDaemon, { keys });
  const metaUrl = (s) => `${d.base}/.well-known/oauth-protected-resource/mcp/${s}`;

  await t.test('the RFC 9728 document of every server names its resource, issuer and scopes', async () => {
    for (const s of SERVER_NAMES) {
      const r = await fetch(metaUrl(s));
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const scopes = [...new Set([...Object.values(SERVERS[s].tools), ...Object.values(SERVERS[s].resources)]
        .flatMap((p) => p.scopes))];
      assert.deepEqual(await r.json(), {
        resource: `${d.base}/mcp/${s}`, authorization_servers: [AS], scopes_supported: scopes,
        bearer_methods_supported: ['header'], resource_name: s,
      });
    }
    assert.equal((await fetch(metaUrl('nosuch'))).status, 404);
  });

  await t.test('a correct token of each algorithm is accepted', async () => {
    for (const k of keys) {
      const r = await post(d, 'inventory', INIT, bearer(mint(k, claimsFor(d.base, 'inventory', { role: 'auditor' }))));
      assert.equal(r.status, 200, `${k.alg}: ${r.text}`);
      assert.equal(r.json.result.serverInfo.name, 'bastion/inventory');
      assert.match(r.headers.get('mcp-session-id'), /^[0-9a-f]{64}$/);
    }
  });

  await t.test('every token of the attack table is refused with 401 and the challenge', async () => {
    const good = claimsFor(d.base, 'payments', { role: 'finance' });
    const valid = mint(rsa, good);
    const [h, p, s] = valid.split('.');
    const hs256 = (() => {
      const hh = b64u(JSON.stringify({ typ: 'JWT', alg: 'HS256', kid: 'rsa1' }));
      const input = `${hh}.${p}`;
      const secret = rsa.publicKey.export({ type: 'spki', format: 'pem' });
      return `${input}.${b64u(createHmac('sha256', secret).update(input).digest())}`;
    })();
    const flip = (str, i) => str.slice(0, i) + (str[i] === 'A' ? 'B' : 'A') + str.slice(i + 1);
    const cases = {
      'no token': null,
      'alg none': `${b64u(JSON.stringify({ alg: 'none', kid: 'rsa1' }))}.${p}.`,
      'HS256 signed with the RSA public key': hs256,
      'unknown kid': mint({ ...rsa, kid: 'nosuch' }, good),
      'a kid whose key has another alg': mint({ ...ps, alg: 'RS256' }, good),
      'wrong iss': mint(rsa, { ...good, iss: `${ISSUER}/` }),
      'a token for inventory presented to payments': mint(rsa, { ...good, aud: `${d.base}/mcp/inventory` }),
      expired: mint(rsa, { ...good, exp: now() - 3600 }),
      'nbf in the future': mint(rsa, { ...good, nbf: now() + 3600 }),
      'tampered payload': `${h}.${b64u(JSON.stringify({ ...good, bastion_role: 'finance', sub: 'mallory' }))}.${s}`,
      'tampered signature': `${h}.${p}.${flip(s, 10)}`,
      truncated: valid.slice(0, -12),
      oversized: mint(rsa, { ...good, pad: 'x'.repeat(9000) }),
      'bad base64url': `${h}.${p}.${s.slice(0, 20)}+/${s.slice(22)}`,
    };
    for (const [name, token] of Object.entries(cases)) {
      const r = await post(d, 'payments', INIT, token ? bearer(token) : {});
      assert.equal(r.status, 401, `${name}: ${r.status} ${r.text}`);
      assert.equal(r.headers.get('www-authenticate'),
        `Bearer ${token ? 'error="invalid_token", ' : ''}resource_metadata="${metaUrl('payments')}", ` +
        'scope="payments:read payments:release"', name);
      assert.equal(r.headers.get('mcp-session-id'), null, name);
    }
    // The same valid token is accepted: the table is about the tokens, not the request.
    assert.equal((await post(d, 'payments', INIT, bearer(valid))).status, 200);
    // Audited with the reason, never the token.
    const records = d.auditRecords();
    const failures = records.filter((x) => x.type === 'auth.failure');
    assert.ok(failures.length >= Object.keys(cases).length, JSON.stringify(failures.slice(-3)));
    const reasons = failures.map((x) => x.reason.split(':')[0]);
    for (const why of ['missing', 'alg-mismatch', 'unknown-kid', 'issuer', 'audience', 'expired', 'not-yet-valid',
      'bad-signature', 'too-long', 'bad-base64url']) assert.ok(reasons.includes(why), `${why} in ${reasons}`);
    const all = JSON.stringify(records);
    for (const token of Object.values(cases)) if (token) assert.ok(!all.includes(token.split('.')[2] || token), 'a token in the audit log');
    assert.ok(!all.includes(s));
  });

  await t.test('a token in the query string is not a credential', async () => {
    const token = mint(rsa, claimsFor(d.base, 'inventory', { role: 'auditor' }));
    const r = await fetch(`${d.base}/mcp/inventory?access_token=${token}`, {
      method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify(INIT),
    });
    assert.ok(r.status === 400 || r.status === 401, String(r.status));
  });

  await t.test('a session id presented with another principal\'s token is refused like an unknown one', async () => {
    const alice = mint(rsa, claimsFor(d.base, 'inventory', { role: 'supply-chain-manager', sub: 'alice' }));
    const bob = mint(rsa, claimsFor(d.base, 'inventory', { role: 'supply-chain-manager', sub: 'bob' }));
    const init = await post(d, 'inventory', INIT, bearer(alice));
    const sid = init.headers.get('mcp-session-id');
    const list = { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} };
    const h = (tok, id = sid) => ({ ...bearer(tok), 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' });
    assert.equal((await post(d, 'inventory', { jsonrpc: '2.0', method: 'notifications/initialized' }, h(alice))).status, 202);
    const mine = await post(d, 'inventory', list, h(alice));
    assert.equal(mine.status, 200, mine.text);
    assert.equal(mine.json.result.tools.length, 5);
    const stolen = await post(d, 'inventory', list, h(bob));
    assert.equal(stolen.status, 404, stolen.text);
    assert.equal((await post(d, 'inventory', list, h(bob, 'f'.repeat(64)))).status, 404);
    // Without a session id a legacy request is a bad request.
    assert.equal((await post(d, 'inventory', list, { ...bearer(alice), 'mcp-protocol-version': '2025-11-25' })).status, 400);
    // Another server's token cannot use it either (401 before the session is even looked at).
    const other = mint(rsa, claimsFor(d.base, 'orders', { role: 'supply-chain-manager', sub: 'alice' }));
    assert.equal((await post(d, 'inventory', list, h(other))).status, 401);
    // DELETE ends it (only its owner can); afterwards it is 404.
    const del = (tok) => fetch(`${d.base}/mcp/inventory`, { method: 'DELETE', headers: h(tok) });
    assert.equal((await del(bob)).status, 404);
    assert.equal((await del(alice)).status, 200);
    assert.equal((await post(d, 'inventory', list, h(alice))).status, 404);
  });

  await t.test('a caller holds at most 64 sessions: one more ends its least recently used', async () => {
    const tok = mint(rsa, claimsFor(d.base, 'inventory', { role: 'auditor', sub: 'hoarder' }));
    const ids = [];
    for (let i = 0; i < 65; i++) ids.push((await post(d, 'inventory', INIT, bearer(tok))).headers.get('mcp-session-id'));
    assert.equal(new Set(ids).size, 65);
    const ping = { jsonrpc: '2.0', id: 5, method: 'ping' };
    const h = (id) => ({ ...bearer(tok), 'mcp-session-id': id, 'mcp-protocol-version': '2025-11-25' });
    assert.equal((await post(d, 'inventory', ping, h(ids[0]))).status, 404);
    for (const id of [ids[1], ids[64]]) assert.equal((await post(d, 'inventory', ping, h(id))).status, 200);
    // Another caller is not affected.
    const other = mint(rsa, claimsFor(d.base, 'inventory', { role: 'auditor', sub: 'modest' }));
    assert.equal((await post(d, 'inventory', INIT, bearer(other))).status, 200);
  });

  await t.test('a missing scope at call time is 403 with the insufficient_scope challenge', async () => {
    const challenge = `Bearer error="insufficient_scope", resource_metadata="${metaUrl('inventory')}", scope="inventory:reorder"`;
    // The role lacks it.
    const aud = mint(rsa, claimsFor(d.base, 'inventory', { role: 'auditor' }));
    const call = modern('tools/call', { name: 'create_reorder', arguments: { sku: 'SKU-1008', quantity: 4, warehouse: 'WH-CHI' } });
    let r = await post(d, 'inventory', call.body, { ...bearer(aud), ...call.headers });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.headers.get('www-authenticate'), challenge);
    assert.equal(r.json.error.data.missing, 'inventory:reorder');
    // The role has it but the token does not grant it: effective scopes are token ∩ role.
    const narrow = mint(rsa, claimsFor(d.base, 'inventory', { role: 'supply-chain-manager', scope: 'inventory:read' }));
    r = await post(d, 'inventory', call.body, { ...bearer(narrow), ...call.headers });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.headers.get('www-authenticate'), challenge);
    const read = modern('tools/call', { name: 'get_stock', arguments: { sku: 'SKU-1001' } });
    r = await post(d, 'inventory', read.body, { ...bearer(narrow), ...read.headers });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.result.isError ?? false, false);
    // "scp" (an array, as some authorization servers issue it) is read when there is no "scope".
    const { scope: _drop, ...noScope } = claimsFor(d.base, 'inventory', { role: 'supply-chain-manager' });
    const scp = mint(rsa, { ...noScope, scp: ['inventory:read'] });
    r = await post(d, 'inventory', call.body, { ...bearer(scp), ...call.headers });
    assert.equal(r.status, 403, r.text);
    r = await post(d, 'inventory', read.body, { ...bearer(scp), ...read.headers });
    assert.equal(r.status, 200, r.text);
    // A token scope the role does not hold grants nothing.
    const wide = mint(rsa, claimsFor(d.base, 'inventory', { role: 'auditor', scope: 'inventory:read inventory:reorder' }));
    r = await post(d, 'inventory', call.body, { ...bearer(wide), ...call.headers });
    assert.equal(r.status, 403);
    const list = modern('tools/list');
    r = await post(d, 'inventory', list.body, { ...bearer(narrow), ...list.headers });
    assert.deepEqual(r.json.result.tools.map((x) => x.name).sort(), ['get_reorder', 'get_stock', 'list_low_stock', 'list_reorders']);
    // The worker learns the effective scopes and the token's sub, never the token.
    const denied = d.auditRecords().filter((x) => x.type === 'call.denied' && x.principal?.sub === 'user-auditor');
    assert.ok(denied.length > 0, 'the 403 is audited with the token subject');
  });

  await t.test('2026-07-28 header validation', async () => {
    const tok = bearer(mint(rsa, claimsFor(d.base, 'inventory', { role: 'auditor' })));
    const list = modern('tools/list');
    let r = await post(d, 'inventory', list.body, { ...tok, ...list.headers, 'mcp-method': 'tools/call' });
    assert.deepEqual([r.status, r.json.error.code], [400, -32020]);
    r = await post(d, 'inventory', list.body, { ...tok, 'mcp-method': 'tools/list' });
    assert.deepEqual([r.status, r.json.error.code], [400, -32020]);
    const old = { ...list.body, params: { _meta: { ...list.body.params._meta, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } } };
    r = await post(d, 'inventory', old, { ...tok, ...list.headers, 'mcp-protocol-version': '2099-01-01' });
    assert.deepEqual([r.status, r.json.error.code], [400, -32022]);
    const call = modern('tools/call', { name: 'get_stock', arguments: { sku: 'SKU-1001' } });
    r = await post(d, 'inventory', call.body, { ...tok, ...call.headers, 'mcp-name': 'list_low_stock' });
    assert.deepEqual([r.status, r.json.error.code], [400, -32020]);
    r = await post(d, 'inventory', call.body, { ...tok, ...call.headers, 'mcp-name': `=?base64?${Buffer.from('get_stock').toString('base64')}?=` });
    assert.equal(r.status, 200, r.text);
    const ping = modern('ping');
    r = await post(d, 'inventory', ping.body, { ...tok, ...ping.headers });
    assert.deepEqual([r.status, r.json.error.code], [404, -32601]);
    const bare = { jsonrpc: '2.0', id: 3, method: 'tools/list', params: {} };
    r = await post(d, 'inventory', bare, { ...tok, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' });
    assert.deepEqual([r.status, r.json.error.code], [400, -32602]);
    assert.equal((await fetch(`${d.base}/mcp/inventory`, { headers: tok })).status, 405);
    assert.equal((await post(d, 'nosuch', list.body, { ...tok, ...list.headers })).status, 404);
  });

  for (const era of ['v1', 'v2']) {
    await t.test(`${era}: a correct token per role behaves like the local role in the policy matrix`, async () => {
      for (const role of Object.keys(ROLES)) {
        for (const server of SERVER_NAMES) {
          const tenant = role === 'customer' ? 'acme' : undefined;
          const token = mint(keys[(role.length + server.length) % keys.length], claimsFor(d.base, server, { role, tenant, sub: `${era}-${role}` }));
          // (one subject per era: an approver-level call of the other era would otherwise be pending already)
          const c = await connectHttp(d, server, era, token);
          const { tools } = await c.listTools();
          assert.deepEqual(tools.map((x) => x.name).sort(), visibleTools(role, server), `${era} ${role} ${server}`);
          for (const tool of Object.keys(SERVERS[server].tools)) await checkHttpCell(c, era, role, server, tool);
          await c.close();
        }
      }
    });
  }
  await t.test('2025-11-25: the question travels on the call\'s SSE stream; a cancelled call\'s stream ends unanswered', async () => {
    const tok = mint(rsa, claimsFor(d.base, 'inventory', { role: 'supply-chain-manager', sub: 'canceller' }));
    const init = await post(d, 'inventory', { ...INIT, params: { ...INIT.params, capabilities: { elicitation: {} } } }, bearer(tok));
    const h = { ...bearer(tok), 'mcp-session-id': init.headers.get('mcp-session-id'), 'mcp-protocol-version': '2025-11-25' };
    const res = await fetch(`${d.base}/mcp/inventory`, {
      method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...h },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call',
        params: { name: 'create_reorder', arguments: { sku: 'SKU-1008', quantity: 1, warehouse: 'WH-CHI' } } }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const reader = res.body.getReader();
    let seen = '';
    while (!seen.includes('elicitation/create')) {
      const { value, done } = await reader.read();
      assert.ok(!done, `stream ended early: ${seen}`);
      seen += Buffer.from(value).toString('utf8');
    }
    const cancel = await post(d, 'inventory', { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 9 } }, h);
    assert.equal(cancel.status, 202);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += Buffer.from(value).toString('utf8');
    }
    assert.ok(!seen.includes('"id":9'), seen);
  });

  // After the matrix: these reorders would change what its cells see.
  for (const era of ['v1', 'v2']) {
    await t.test(`${era}: a confirm tool asks the human over HTTP and runs exactly once on accept`, async () => {
      // 2025-11-25: elicitation/create on the call's SSE stream, the answer POSTed back (202);
      // 2026-07-28: InputRequiredResult and a retry with the sealed requestState.
      const token = mint(rsa, claimsFor(d.base, 'inventory', { role: 'supply-chain-manager', sub: `confirmer-${era}` }));
      const asked = [];
      const c = await connectHttp(d, 'inventory', era, token, (params) => {
        asked.push(params);
        return { action: 'accept', content: { confirm: true } };
      });
      const before = (await c.callTool({ name: 'list_reorders', arguments: {} })).structuredContent.count;
      const r = await c.callTool({ name: 'create_reorder', arguments: { sku: 'SKU-1008', quantity: 4, warehouse: 'WH-CHI' } });
      assert.equal(r.isError ?? false, false, text(r));
      assert.equal(asked.length, 1);
      assert.match(asked[0].message, /create_reorder/);
      assert.match(asked[0].message, new RegExp(`confirmer-${era}`));
      assert.equal((await c.callTool({ name: 'list_reorders', arguments: {} })).structuredContent.count, before + 1);
      await c.close();
    });
  }

  await d.stop();
});

async function connectHttp(d, server, era, token, onElicit) {
  const url = new URL(`${d.base}/mcp/${server}`);
  const requestInit = { headers: { authorization: `Bearer ${token}` } };
  const capabilities = onElicit ? { elicitation: { form: {} } } : {};
  if (era === 'v1') {
    const c = new ClientV1({ name: 'bastion-it-http-v1', version: '1.0.0' }, { capabilities });
    if (onElicit) c.setRequestHandler(ElicitRequestSchema, (req) => onElicit(req.params));
    await c.connect(new HttpTransportV1(url, { requestInit }));
    return c;
  }
  const c = new ClientV2({ name: 'bastion-it-http-v2', version: '1.0.0' },
    { capabilities, versionNegotiation: { mode: { pin: '2026-07-28' } } });
  if (onElicit) c.setRequestHandler('elicitation/create', (req) => onElicit(req.params));
  await c.connect(new HttpTransportV2(url, { requestInit }));
  return c;
}

// Valid arguments from the demo data (as in matrix.test.mjs) and the exact domain errors.
const CALLS = {
  get_stock: { args: { sku: 'SKU-1001' } },
  list_low_stock: { args: {} },
  get_reorder: { args: { reorder_id: 1 }, error: 'unknown reorder: 1' },
  list_reorders: { args: {} },
  create_reorder: { args: { sku: 'SKU-1008', quantity: 4, warehouse: 'WH-CHI' } },
  list_orders: { args: {} },
  get_order: { args: { order_id: 'ORD-1001' } },
  my_orders: { args: {} },
  track_shipment: { args: { shipment_id: 'SHP-2001' } },
  reroute_shipment: { args: { shipment_id: 'SHP-2002', warehouse: 'WH-CHI' } },
  list_returns: { args: {} },
  get_return: { args: { rma_id: 'RMA-4001' } },
  create_return: { args: { order_id: 'ORD-1001', reason: 'http matrix test' } },
  issue_refund: { args: { rma_id: 'RMA-4001', amount: 10 } },
  get_payment: { args: { payment_id: 'PAY-3001' } },
  list_payments: { args: {} },
  release_payment: { args: { payment_id: 'PAY-3002' } },
};

const text = (r) => r.content.map((c) => c.text).join('');

async function checkHttpCell(c, era, role, server, tool) {
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
    // Over HTTP a missing scope is 403 insufficient_scope (the local transport answers isError).
    // SDK v1 surfaces the HTTP status, v2 reads the challenge.
    assert.ok(r.thrown, `${cell}: ${JSON.stringify(r)}`);
    if (era === 'v1') assert.equal(r.thrown.code, 403, `${cell}: ${r.thrown.message}`);
    else assert.equal(r.thrown.message, `Insufficient scope: required "${policy.scopes.join(' ')}"`, cell);
    return;
  }
  if (policy.approval === 'confirm') {
    if (era === 'v1') {
      assert.equal(r.isError, true, cell);
      assert.equal(text(r), `Refused: ${tool} needs your confirmation, but this client did not declare the ` +
        'elicitation capability, so it cannot be asked; nothing was done', cell);
    } else {
      assert.equal(r.thrown?.code, -32021, `${cell}: ${r.thrown?.message ?? JSON.stringify(r)}`);
    }
    return;
  }
  assert.equal(r.thrown, undefined, `${cell}: ${r.thrown?.message}`);
  if (policy.approval === 'approver') {
    assert.equal(r.isError, true, cell);
    assert.match(text(r), new RegExp(`^Not run yet: ${server}\\.${tool} needs approval by a second person\\. `), cell);
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

// ---- rate limits and key rotation ----

test('rate limit per subject: 429 with Retry-After, audited; other subjects unaffected', async (t) => {
  const k = newKey('ES256', 'ec1');
  const d = await startHttp(t, HttpDaemon, { keys: [k], rate: { rate: 0.5, burst: 3, tenant: { rate: 0.5, burst: 5 } } });
  const tok = (sub, tenant) => bearer(mint(k, claimsFor(d.base, 'inventory', { role: 'auditor', sub, tenant, scope: 'inventory:read' })));
  const list = modern('tools/list');
  const statuses = [];
  let last;
  for (let i = 0; i < 4; i++) {
    last = await post(d, 'inventory', list.body, { ...tok('greedy'), ...list.headers });
    statuses.push(last.status);
  }
  assert.deepEqual(statuses, [200, 200, 200, 429]);
  assert.equal(last.headers.get('retry-after'), '2');
  assert.equal((await post(d, 'inventory', list.body, { ...tok('modest'), ...list.headers })).status, 200);
  const denied = d.auditRecords().filter((x) => x.type === 'call.denied' && x.reason === 'rate limit per_subject');
  assert.equal(denied.length, 1);
  assert.equal(denied[0].principal.sub, 'greedy');
  // Per tenant: two subjects of one tenant share its bucket of 5.
  const got = [];
  for (const sub of ['t-x', 't-x', 't-x', 't-y', 't-y', 't-y']) {
    got.push((await post(d, 'inventory', list.body, { ...tok(sub, 'acme'), ...list.headers })).status);
  }
  assert.deepEqual(got, [200, 200, 200, 200, 200, 429]);
  const byTenant = d.auditRecords().filter((x) => x.type === 'call.denied' && x.reason === 'rate limit per_tenant');
  assert.deepEqual(byTenant.map((x) => [x.principal.sub, x.principal.tenant]), [['t-y', 'acme']]);
  await d.stop();
});

test('JWKS rotation: a new key is accepted once the file changes, a removed one refused; SIGHUP re-reads', async (t) => {
  const k1 = newKey('EdDSA', 'k1'), k2 = newKey('RS256', 'k2');
  const d = await startHttp(t, HttpDaemon, { keys: [k1] });
  const status = async (k) => (await post(d, 'inventory', INIT, bearer(mint(k, claimsFor(d.base, 'inventory', { role: 'auditor' }))))).status;
  assert.equal(await status(k1), 200);
  assert.equal(await status(k2), 401);
  writeJwks(d.jwksPath, [k2]);
  await waitFor('the new key', async () => (await status(k2)) === 200, 5000, 100);
  // k1 left the file: refused at once, even though its token was verified (and cached) before.
  assert.equal(await status(k1), 401);
  const sent = () => (d.stderr.match(/sent the JWKS/g) ?? []).length;
  const before = sent();
  process.kill(d.pid, 'SIGHUP');
  await waitFor('the JWKS to be sent again on SIGHUP', () => sent() > before, 5000, 50);
  assert.equal(await status(k2), 200);
  // A broken file is refused by the broker, which keeps the keys it has.
  writeFileSync(d.jwksPath, '{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}]}');
  await waitFor('the broken JWKS to be refused', () => /JWKS .* is refused/.test(d.stderr), 5000, 50);
  assert.equal(await status(k2), 200);
  await d.stop();
});

// A self-signed P-256 certificate for 127.0.0.1 in a directory of its own, removed after the test.
function selfSignedCert(t, name) {
  const dir = `/tmp/${name}-${process.pid}`;
  spawnSync('mkdir', ['-p', dir]);
  const cert = join(dir, 'cert.pem'), key = join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
  { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  t.after(() => spawnSync('rm', ['-rf', dir]));
  return { cert, key };
}

test('over TLS: a valid token is served, none gets 401', async (t) => {
  const k = newKey('ES256', 'ec1');
  const port = await freePort();
  const { cert, key } = selfSignedCert(t, 'broker-http-tls');
  const d = new HttpDaemon({ keys: [k], port, tls: { cert, key } });
  t.after(() => d.kill());
  d.base = `https://127.0.0.1:${port}`;
  await d.waitReady(['inventory']);
  const ca = readFileSync(cert);
  const tlsPost = (headers) => new Promise((resolveP, reject) => {
    const body = JSON.stringify(INIT);
    const req = httpsRequest(`${d.base}/mcp/inventory`, {
      method: 'POST', ca,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body), ...headers },
    }, (res) => {
      let s = '';
      res.setEncoding('utf8').on('data', (c) => (s += c)).on('end', () => resolveP({ status: res.statusCode, headers: res.headers, text: s }));
    });
    req.on('error', reject);
    req.end(body);
  });
  await waitFor('the TLS front', async () => (await tlsPost({})).status === 401, 10000, 100);
  const ok = await tlsPost(bearer(mint(k, claimsFor(d.base, 'inventory', { role: 'auditor' }))));
  assert.equal(ok.status, 200, ok.text);
  assert.equal(JSON.parse(ok.text).result.serverInfo.name, 'bastion/inventory');
  await d.stop();
});

test('2026-07-28: progress goes on the request\'s own SSE stream; closing it cancels the call', async (t) => {
  const k = newKey('ES256', 'ec1');
  const conformance = `        conformance = {
                domain = "conformance";
                tools = {
                        test_tool_with_progress = { scopes = [ "inventory:read" ]; };
                };
        };
`;
  const d = await startHttp(t, HttpDaemon, { keys: [k], servers: [conformance], wait: ['conformance'] });
  const tok = bearer(mint(k, claimsFor(d.base, 'conformance', { role: 'auditor', scope: 'inventory:read' })));
  const call = modern('tools/call', { name: 'test_tool_with_progress', arguments: {} });
  call.body.params._meta.progressToken = 'p-1';
  const stream = async (signal) => {
    const res = await fetch(`${d.base}/mcp/conformance`, {
      method: 'POST', signal, body: JSON.stringify(call.body),
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...tok, ...call.headers },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    return res.body.getReader();
  };
  // Whole: progress events for this request's token, then the result, then the end of the stream.
  let reader = await stream();
  let seen = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += Buffer.from(value).toString('utf8');
  }
  const events = seen.split('\n').filter((l) => l.startsWith('data:')).map((l) => JSON.parse(l.slice(5)));
  assert.deepEqual(events.filter((e) => e.method === 'notifications/progress').map((e) => [e.params.progressToken, e.params.progress]),
    [['p-1', 0], ['p-1', 50], ['p-1', 100]]);
  assert.equal(events.at(-1).id, 7);
  assert.equal(events.at(-1).result.isError ?? false, false);
  // Cut after the first progress event: the call is cancelled at the worker and recorded so.
  const ac = new AbortController();
  reader = await stream(ac.signal);
  seen = '';
  while (!seen.includes('notifications/progress')) seen += Buffer.from((await reader.read()).value).toString('utf8');
  ac.abort();
  const results = () => d.auditRecords().filter((x) => x.type === 'call.result' && x.tool === 'test_tool_with_progress');
  await waitFor('the cancelled call on record', () => results().length === 2, 5000, 50);
  assert.deepEqual(results().map((x) => [x.status, x.error ?? null]),
    [['ok', null], ['error', 'cancelled: the client went away or cancelled']]);
  await d.stop();
});

// The front reads a TLS connection only when epoll says it is readable or OpenSSL holds bytes it read
// ahead, and hands OpenSSL's buffers back once a connection has been idle: requests that arrive as
// several TLS records in one segment are all answered, a client that leaves while its call is with the
// broker has the call cancelled at the worker, and a kept-open connection that idled serves on.
test('over TLS: pipelined calls in several records are all answered; a client that leaves has its call cancelled', async (t) => {
  const k = newKey('ES256', 'ec1');
  const port = await freePort();
  const { cert, key } = selfSignedCert(t, 'broker-http-tls-pipe');
  const conformance = `        conformance = {
                domain = "conformance";
                tools = { slow_compute = { scopes = [ "inventory:read" ]; }; };
        };
`;
  const d = new HttpDaemon({ keys: [k], port, tls: { cert, key }, servers: [conformance] });
  t.after(() => d.kill());
  d.base = `https://127.0.0.1:${port}`;
  await d.waitReady(['conformance']);
  const ca = readFileSync(cert);
  const auth = `Bearer ${mint(k, claimsFor(d.base, 'conformance', { role: 'auditor', scope: 'inventory:read' }))}`;
  const request = (body, sid, headers = {}) => {
    const text = JSON.stringify(body);
    return `POST /mcp/conformance HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
      `Accept: application/json, text/event-stream\r\nAuthorization: ${auth}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      (sid ? `Mcp-Session-Id: ${sid}\r\nMCP-Protocol-Version: 2025-11-25\r\n` : '') +
      Object.entries(headers).map(([h, v]) => `${h}: ${v}\r\n`).join('') + `\r\n${text}`;
  };
  // A TLS connection that collects complete Content-Length responses as they arrive.
  const open = () => new Promise((resolveP, reject) => {
    const sock = tlsConnect({ host: '127.0.0.1', port, ca, ALPNProtocols: ['http/1.1'] }, () => resolveP(sock));
    let buf = Buffer.alloc(0);
    sock.answers = [];
    sock.on('error', reject);
    sock.on('data', (b) => {
      buf = Buffer.concat([buf, b]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const len = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        sock.answers.push({ status: Number(head.split(' ')[1]), sid: /\r\nmcp-session-id: (\S+)/i.exec(head)?.[1],
          body: buf.subarray(end + 4, end + 4 + len).toString('utf8') });
        buf = buf.subarray(end + 4 + len);
      }
    });
  });
  const answers = (sock, n) => waitFor(`${n} answers`, () => sock.answers.length >= n ? sock.answers : null, 10000, 20);
  const call = (id, seconds, label) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'slow_compute', arguments: { seconds, label } } });

  await waitFor('the TLS front', async () => {
    const s = await open().catch(() => null);
    if (!s) return false;
    s.write(request(INIT));
    const ok = await answers(s, 1).then((a) => a[0].status === 200).catch(() => false);
    s.destroy();
    return ok;
  }, 10000, 100);
  const sock = await open();
  t.after(() => sock.destroy());
  sock.write(request(INIT));
  const [init] = await answers(sock, 1);
  assert.equal(init.status, 200, init.body);
  const sid = init.sid;
  sock.write(request({ jsonrpc: '2.0', method: 'notifications/initialized' }, sid));
  await answers(sock, 2);
  // Three writes in one tick: three TLS records that reach the front together, the first two calls in one.
  sock.write(request(call(11, 0, 'a'), sid) + request(call(12, 0, 'b'), sid));
  sock.write(request(call(13, 0, 'c'), sid));
  sock.write(request(call(14, 0, 'd'), sid));
  const got = (await answers(sock, 6)).slice(2);
  assert.deepEqual(got.map((a) => [a.status, JSON.parse(a.body).id, JSON.parse(a.body).result?.content?.[0]?.text]),
    [11, 12, 13, 14].map((id, i) => [200, id, `Computed for 0 second(s): ${'abcd'[i]}`]));
  // The connection idles past the buffer release, then carries the next call.
  await new Promise((res) => setTimeout(res, 1500));
  sock.write(request(call(15, 0, 'e'), sid));
  const [after] = (await answers(sock, 7)).slice(6);
  assert.equal(JSON.parse(after.body).result?.content?.[0]?.text, 'Computed for 0 second(s): e');

  // A 2026-07-28 call that would work for a minute (closing its request is cancellation in that
  // revision); its client goes away while the call is with the broker.
  const leaving = await open();
  const modernCall = modern('tools/call', { name: 'slow_compute', arguments: { seconds: 60, label: 'left' } }, 21);
  leaving.write(request(modernCall.body, null, modernCall.headers));
  const intent = await waitFor('the call at the worker', () => d.auditRecords().find((x) => x.type === 'call.intent' &&
    x.tool === 'slow_compute' && x.arguments?.label === 'left'), 10000, 20);
  leaving.end();                // close_notify, then FIN
  const result = await waitFor('the cancelled call on record', () => d.auditRecords().find((x) => x.type === 'call.result' &&
    x.intent_seq === intent.seq), 5000, 50);
  assert.deepEqual([result.status, result.error], ['error', 'cancelled: the client went away or cancelled']);
  // The front's log line travels through bastiond's pipe: it may come a moment after the record.
  await waitFor('the front to log the close', () => /conn \d+ closed: the client went away before the answer/.test(d.stderr), 5000, 20);
  assert.equal(leaving.answers.length, 0);
  sock.destroy();
  await d.stop();
});

// ---- configuration errors (bastiond --check-config): FILE:LINE: PATH: message ----

test('oauth and rate_limits configuration errors name the file, line and setting', () => {
  const dir = `/tmp/broker-http-conf-${process.pid}`;
  spawnSync('mkdir', ['-p', dir]);
  const check = (text) => {
    const path = join(dir, 'bastion.conf');
    writeFileSync(path, text);
    const r = spawnSync(bin('bastiond'), ['--config', path, '--check-config'], { encoding: 'utf8' });
    return { status: r.status, out: (r.stdout + r.stderr).trim().replaceAll(`${dir}/`, '') };
  };
  const oauth = (extra = '') => `oauth = {\n  issuer = "${ISSUER}";\n  jwks_file = "jwks.json";\n  authorization_servers = [ "${AS}" ];\n${extra}};\n`;
  const roles = 'roles = { auditor = { scopes = [ "inventory:read" ]; }; };\n';
  try {
    assert.deepEqual(check(roles + oauth()), { status: 0, out: 'bastion.conf: ok' });
    assert.deepEqual(check(roles + 'oauth = {\n  jwks_file = "jwks.json";\n  authorization_servers = [ "x" ];\n};\n'),
      { status: 1, out: 'bastion.conf:2: oauth: missing key "issuer"' });
    assert.deepEqual(check(roles + oauth('  leeway = 5;\n')),
      { status: 1, out: 'bastion.conf:6: oauth: unknown key "leeway"' });
    assert.deepEqual(check(roles + oauth('  anonymous_role = "nobody";\n')),
      { status: 1, out: 'bastion.conf:6: oauth.anonymous_role: unknown role "nobody"' });
    // The switch for protocol tests: only with plain HTTP on loopback.
    assert.deepEqual(check(roles + oauth('  anonymous_role = "auditor";\n')),
      { status: 1, out: 'bastion.conf:6: oauth.anonymous_role: is only allowed with plain HTTP on a loopback address ' +
        '(http.plain); it lets requests without a token in' });
    assert.equal(check(roles + oauth('  anonymous_role = "auditor";\n') +
      'http = { listen = "127.0.0.1:18080"; plain = true; };\n').status, 0);
    assert.deepEqual(check(roles + 'rate_limits = { per_subject = { rate = 0; }; };\n'),
      { status: 1, out: 'bastion.conf:2: rate_limits.per_subject.rate: must be above 0 and at most 1000000' });
    assert.deepEqual(check(roles + 'rate_limits = { per_user = { rate = 1; }; };\n'),
      { status: 1, out: 'bastion.conf:2: rate_limits: unknown key "per_user"' });
  } finally {
    spawnSync('rm', ['-rf', dir]);
  }
});
