// A client built on the official MCP TypeScript SDK that declares
// sampling, elicitation (form and url) and roots, with a handler for each,
// driving mcp-gate over stdio for relay_test.go. It prints one JSON object
// per line on stdout.
//
//   node relay.mjs -- GATE_ARGV...
//     Lists the tools ({"event":"listed","tools":[...]}), calls each tool
//     of server-everything that asks its client something, printing what
//     each handler was asked ({"event":"asked","method":...,"params":...})
//     and each result ({"event":"result","tool":...,"result":...}), then
//     tells the gate its roots changed and prints the next roots/list it
//     is asked ({"event":"rootsAgain"}) or {"event":"error"} after 10 s.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

const argv = process.argv.slice(2);
if (argv[0] !== '--' || argv.length < 2) {
  console.error('usage: relay.mjs -- GATE_ARGV...');
  process.exit(2);
}
const [command, ...args] = argv.slice(1);
const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const client = new Client(
  { name: 'ts-relay-client', version: '1.0.0' },
  { capabilities: { sampling: {}, elicitation: { form: {}, url: {} }, roots: { listChanged: true } } },
);

client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  emit({ event: 'asked', method: req.method, params: req.params });
  return { role: 'assistant', content: { type: 'text', text: 'sampled by the TS client' }, model: 'ts-client-model' };
});
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  emit({ event: 'asked', method: req.method, params: req.params });
  if (req.params.mode === 'url') {
    return { action: 'accept' };
  }
  return { action: 'accept', content: { name: 'Ada Through-The-Gate', check: true } };
});
let rootsAsked = 0;
let onRoots = () => {};
client.setRequestHandler(ListRootsRequestSchema, async (req) => {
  rootsAsked++;
  emit({ event: 'asked', method: req.method, n: rootsAsked });
  onRoots();
  return { roots: [{ uri: 'file:///ts-client/workspace', name: 'TS client workspace' }] };
});

await client.connect(new StdioClientTransport({ command, args, stderr: 'inherit' }));
const listed = await client.listTools();
emit({ event: 'listed', tools: listed.tools.map((t) => t.name) });

const calls = [
  ['trigger-sampling-request', { prompt: 'relay me', maxTokens: 20 }],
  ['trigger-elicitation-request', {}],
  ['trigger-url-elicitation', { url: 'https://example.com/consent', message: 'Consent, please' }],
  ['get-roots-list', {}],
];
for (const [tool, a] of calls) {
  try {
    emit({ event: 'result', tool, result: await client.callTool({ name: tool, arguments: a }) });
  } catch (err) {
    emit({ event: 'error', tool, message: String(err?.message ?? err) });
  }
}

const again = new Promise((resolve) => {
  onRoots = resolve;
});
await client.sendRootsListChanged();
const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 10000));
if ((await Promise.race([again.then(() => 'again'), timeout])) === 'again') {
  emit({ event: 'rootsAgain' });
} else {
  emit({ event: 'error', message: 'no roots/list after notifications/roots/list_changed within 10 s' });
}
await client.close();
process.exit(0);
