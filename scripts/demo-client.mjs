// The demo's MCP host: the official SDK client (2025-11-25) runs `bastion-stdio inventory` and walks
// through a short session, printing each request and what came back.
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The SDK is installed in tests/node_modules (npm ci in tests/), not next to this script.
const sdk = (p) => pathToFileURL(join(fileURLToPath(new URL('..', import.meta.url)),
  'tests/node_modules/@modelcontextprotocol/sdk/dist/esm', p)).href;
const { Client } = await import(sdk('client/index.js'));
const { StdioClientTransport } = await import(sdk('client/stdio.js'));
const { ElicitRequestSchema } = await import(sdk('types.js'));

const socket = process.argv[2] ?? '/run/bastion/mcp.sock';
const show = (label, value) => console.log(`${label ? `${label}\n` : ''}${String(value).replace(/^/gm, '    ')}`);
const text = (r) => r.content.map((c) => c.text).join('\n');

const client = new Client({ name: 'bastion-demo', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } });
// A tool configured with approval = "confirm" asks the human at the host; the demo's human says yes.
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  show('  Bastion asks the human at the host (elicitation/create):', req.params.message);
  console.log('  the human accepts');
  return { action: 'accept', content: { confirm: true } };
});

console.log(`$ bastion-stdio inventory --socket ${socket}`);
await client.connect(new StdioClientTransport({ command: 'bastion-stdio', args: ['inventory', '--socket', socket] }));
const server = client.getServerVersion();
console.log(`connected: ${server.name} ${server.version}, protocol 2025-11-25, as root (role supply-chain-manager)`);

console.log('\n1. tools/list');
const { tools } = await client.listTools();
for (const t of tools) console.log(`    ${t.name.padEnd(15)} ${t.description}`);

console.log('\n2. tools/call get_stock {"sku":"SKU-1001"}');
show('', text(await client.callTool({ name: 'get_stock', arguments: { sku: 'SKU-1001' } })));

console.log('\n3. tools/call list_low_stock {"warehouse":"WH-RTM"}');
show('', text(await client.callTool({ name: 'list_low_stock', arguments: { warehouse: 'WH-RTM' } })));

const order = { sku: 'SKU-1001', quantity: 10, warehouse: 'WH-RTM' };
console.log(`\n4. tools/call create_reorder ${JSON.stringify(order)}`);
const created = await client.callTool({ name: 'create_reorder', arguments: order });
show('', text(created));
if (created.isError) process.exit(1);

const id = created.structuredContent.reorder_id;
console.log(`\n5. tools/call get_reorder {"reorder_id":${id}}  (read it back from SQLite)`);
const back = await client.callTool({ name: 'get_reorder', arguments: { reorder_id: id } });
show('', text(back));

await client.close();
console.log('\nsession closed (bastion-stdio saw end of input and exited)');
process.exit(back.isError ? 1 : 0);
