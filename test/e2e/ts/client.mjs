// A client built on the official MCP TypeScript SDK, driving mcp-gate over
// stdio for the Go e2e tests (ts_test.go). It prints one JSON object per
// line on stdout: what the SDK handed it, as it happened.
//
//   node client.mjs receipt TOOL ARGS_JSON -- GATE_ARGV...
//     Calls TOOL the way Claude Desktop does: clientInfo.name "claude-ai"
//     and the SDK's default request timeout (60 s).
//   node client.mjs task TOOL ARGS_JSON -- GATE_ARGV...
//     Calls TOOL as a task (the SDK's experimental callToolStream), which
//     polls tasks/get until the task ends, then reads tasks/result.
//   node client.mjs cancel TOOL ARGS_JSON -- GATE_ARGV...
//     As task, but cancels the task (tasks/cancel) once its status message
//     names the PIM request.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { DEFAULT_REQUEST_TIMEOUT_MSEC } from '@modelcontextprotocol/sdk/shared/protocol.js';

const argv = process.argv.slice(2);
const sep = argv.indexOf('--');
if (sep < 3 || sep === argv.length - 1) {
  console.error('usage: client.mjs receipt|task|cancel TOOL ARGS_JSON -- GATE_ARGV...');
  process.exit(2);
}
const [mode, tool, argsJSON] = argv;
const [command, ...args] = argv.slice(sep + 1);
const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const client = new Client(
  { name: mode === 'receipt' ? 'claude-ai' : 'ts-tasks-client', version: '0.14.1' },
  { defaultTaskPollInterval: 200 },
);
await client.connect(new StdioClientTransport({ command, args, stderr: 'inherit' }));
const listed = await client.listTools();
const t = listed.tools.find((x) => x.name === tool);
emit({ event: 'listed', execution: t?.execution ?? null, tasks: client.getServerCapabilities()?.tasks ?? null });

const started = Date.now();
const params = { name: tool, arguments: JSON.parse(argsJSON) };
try {
  if (mode === 'receipt') {
    const result = await client.callTool(params);
    emit({ event: 'result', result, ms: Date.now() - started, timeoutMs: DEFAULT_REQUEST_TIMEOUT_MSEC });
  } else {
    for await (const m of client.experimental.tasks.callToolStream(params)) {
      switch (m.type) {
        case 'taskCreated':
        case 'taskStatus':
          emit({ event: m.type, task: m.task });
          if (mode === 'cancel' && m.task.status === 'working' && /request \S+/.test(m.task.statusMessage ?? '')) {
            const cancelled = await client.experimental.tasks.cancelTask(m.task.taskId);
            emit({ event: 'cancelled', task: cancelled });
          }
          break;
        case 'result':
          emit({ event: 'result', result: m.result, ms: Date.now() - started });
          break;
        case 'error':
          emit({ event: 'error', message: String(m.error?.message ?? m.error), ms: Date.now() - started });
          break;
      }
    }
  }
} catch (err) {
  emit({ event: 'error', message: String(err?.message ?? err), ms: Date.now() - started });
}
await client.close();
