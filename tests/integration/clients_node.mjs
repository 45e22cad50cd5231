// One request from a real Node client, for tests/integration/test_clients_node.sh.
//
// usage: node clients_node.mjs LIB API STREAM PORT PROMPT
//   LIB     fetch (Node 20's built-in, undici) | ollama | openai (npm packages
//           installed by `npm ci --prefix tests/integration/node`)
//   API     ollama-generate | ollama-chat | openai-chat
//   STREAM  0 | 1
//
// Stdout: "status N", then for fetch the body exactly as read, for the npm
// packages every object they hand the program, one JSON line each (an
// error: the error body they parsed).  Stderr: "elapsed_ms X" and
// "fetch_calls N" — every library gets a counting fetch, so a retry by the
// library shows as fetch_calls > 1.  The openai client keeps its default
// maxRetries (2) on purpose.  Exit 0 when a response arrived, 1 on a
// transport error.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const requireNode = createRequire(path.join(here, 'node', 'package.json'));

const [lib, api, stream, port, prompt] = process.argv.slice(2);
const streaming = stream === '1';
const base = `http://127.0.0.1:${port}`;
const paths = { 'ollama-generate': '/api/generate', 'ollama-chat': '/api/chat',
                'openai-chat': '/v1/chat/completions' };
const messages = [{ role: 'system', content: 'be brief' }, { role: 'user', content: prompt }];

let calls = 0;
const countingFetch = (...args) => { calls++; return fetch(...args); };
const out = (s) => process.stdout.write(s);

async function viaFetch() {
  const body = api === 'ollama-generate'
    ? { model: 'm', prompt, stream: streaming }
    : { model: 'm', stream: streaming, messages };
  const r = await countingFetch(base + paths[api], {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  out(`status ${r.status}\n`);
  const reader = r.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    out(Buffer.from(value));
  }
}

// A stream the library ends by throwing: both packages turn an error event
// inside a 200 stream (Ollama's {"error":...} line, an OpenAI SSE error
// event) into an exception, which is what a guarded answer cut short looks
// like to the program.  Printed, not fatal.
async function drain(res) {
  try {
    for await (const part of res) out(JSON.stringify(part) + '\n');
  } catch (e) {
    if (e && e.name === 'TypeError') throw e;  // transport, not an error event
    out(`stream_error ${e && e.message}\n`);
  }
}

async function viaOllama() {
  const { Ollama } = libs.ollama;
  const client = new Ollama({ host: base, fetch: countingFetch });
  try {
    const res = api === 'ollama-generate'
      ? await client.generate({ model: 'm', prompt, stream: streaming })
      : await client.chat({ model: 'm', messages, stream: streaming });
    out('status 200\n');
    if (streaming) await drain(res);
    else out(JSON.stringify(res) + '\n');
  } catch (e) {
    if (e && e.name === 'ResponseError') {
      out(`status ${e.status_code}\n` + JSON.stringify({ error: e.error }) + '\n');
    } else throw e;
  }
}

async function viaOpenAI() {
  const mod = libs.openai;
  const OpenAI = mod.OpenAI || mod.default;
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'dummy', fetch: countingFetch });
  try {
    const res = await client.chat.completions.create({ model: 'm', messages, stream: streaming });
    out('status 200\n');
    if (streaming) await drain(res);
    else out(JSON.stringify(res) + '\n');
  } catch (e) {
    if (e instanceof mod.APIError && e.status) {
      out(`status ${e.status}\n` + JSON.stringify({ error: e.error }) + '\n');
    } else throw e;
  }
}

// Loaded before the clock starts: module loading is not request latency.
const libs = {};
if (lib === 'ollama' || lib === 'openai') libs[lib] = requireNode(lib);
// Warm up first: Node builds its HTTP machinery (undici, the llhttp wasm
// parser) on the first request, tens of ms that are neither the shim's nor
// the server's.  A GET /api/version on the same keep-alive connection pool,
// as real clients do before they chat; not counted.
// A POST to a path that is no model API warms the request-body path too.
try {
  await (await fetch(`${base}/api/version`)).arrayBuffer();
  await (await fetch(`${base}/api/warmup`, { method: 'POST', headers: { 'content-type': 'application/json' },
                                             body: '{}' })).arrayBuffer();
} catch { /* a dead server shows in the real request below */ }
const t0 = process.hrtime.bigint();
try {
  if (lib === 'fetch') await viaFetch();
  else if (lib === 'ollama') await viaOllama();
  else if (lib === 'openai') await viaOpenAI();
  else { process.stderr.write(`unknown LIB ${lib}\n`); process.exitCode = 2; }
} catch (e) {
  process.stderr.write(`error ${e && e.name}: ${e && e.message} ${e && e.cause ? e.cause : ''}\n`);
  process.exitCode = 1;
}
process.stderr.write(`elapsed_ms ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)}\n`);
process.stderr.write(`fetch_calls ${calls}\n`);
