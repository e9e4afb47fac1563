// A client built on the official MCP TypeScript SDK that declares
// sampling, elicitation (form and url) and roots, with a handler for each,
// driving mcp-gate over stdio for relay_test.go. It prints one JSON object
// per line on stdout.
//
//   node relay.mjs [--describe] -- SERVER_ARGV...
//     Right after connecting, gets a prompt and reads a resource at once
//     ({"event":"early","what":"prompt"|"resource","ok":...,"message":...}),
//     then prints the server's instructions and tools with their schemas
//     ({"event":"described","instructions":...,"described":[{name,
//     inputSchema,outputSchema}]}) and the tool names ({"event":"listed"}).
//     With --describe it stops there (run directly against
//     server-everything, for comparison). Otherwise it calls each tool of
//     server-everything that asks its client something, printing what each
//     handler was asked ({"event":"asked","method":...,"params":...}) and
//     each result ({"event":"result","tool":...,"result":...}), then tells
//     the server its roots changed and prints the next roots/list it is
//     asked ({"event":"rootsAgain"}), or {"event":"error"} after 10 s.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from '@modelcontextprotocol/sdk/types.js';

let argv = process.argv.slice(2);
const describeOnly = argv[0] === '--describe';
if (describeOnly) {
  argv = argv.slice(1);
}
if (argv[0] !== '--' || argv.length < 2) {
  console.error('usage: relay.mjs [--describe] -- SERVER_ARGV...');
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
// rootsAsked counts roots/list requests; waitRoots(n) resolves once
// there have been more than n, or 'timeout' after 10 s.
let rootsAsked = 0;
let rootsWaiters = [];
const waitRoots = (n) =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), 10000);
    rootsWaiters.push({ n, resolve: () => (clearTimeout(timer), resolve('asked')) });
    wakeRoots();
  });
const wakeRoots = () => {
  rootsWaiters = rootsWaiters.filter((w) => rootsAsked <= w.n || (w.resolve(), false));
};
client.setRequestHandler(ListRootsRequestSchema, async (req) => {
  rootsAsked++;
  emit({ event: 'asked', method: req.method, n: rootsAsked });
  wakeRoots();
  return { roots: [{ uri: 'file:///ts-client/workspace', name: 'TS client workspace' }] };
});

await client.connect(new StdioClientTransport({ command, args, stderr: 'inherit' }));
// Before anything else, while the server may still be starting.
const early = async (what, request) => {
  try {
    const res = await request();
    emit({ event: 'early', what, ok: true, result: res });
  } catch (err) {
    emit({ event: 'early', what, ok: false, message: String(err?.message ?? err) });
  }
};
await Promise.all([
  early('prompt', () => client.getPrompt({ name: 'simple-prompt' })),
  early('resource', () => client.readResource({ uri: 'demo://resource/dynamic/text/2' })),
]);
const listed = await client.listTools();
emit({
  event: 'described',
  instructions: client.getInstructions() ?? null,
  described: listed.tools.map((t) => ({ name: t.name, inputSchema: t.inputSchema, outputSchema: t.outputSchema ?? null })),
});
emit({ event: 'listed', tools: listed.tools.map((t) => t.name) });
if (describeOnly) {
  await client.close();
  process.exit(0);
}

// server-everything asks for the roots once on its own after initialize
// (and from get-roots-list if that comes first): waiting for that request
// before get-roots-list, whose result follows any request it causes,
// leaves no roots/list of the initial sync to arrive after the roots
// change below and pass for the one the change causes.
if ((await waitRoots(0)) === 'timeout') {
  emit({ event: 'error', message: 'server-everything did not ask for the roots within 10 s of initialize' });
}

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

const before = rootsAsked;
await client.sendRootsListChanged();
if ((await waitRoots(before)) === 'asked') {
  emit({ event: 'rootsAgain' });
} else {
  emit({ event: 'error', message: 'no roots/list after notifications/roots/list_changed within 10 s' });
}
await client.close();
process.exit(0);
