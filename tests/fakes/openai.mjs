// Fake OpenAI-compatible API (docs/protocols.md §7): streaming and non-streaming
// POST /v1/chat/completions and POST /v1/audio/speech (pcm), answered from a scripted queue.
// Every request is recorded with its parsed body and whether the client aborted it.

import { randomBytes } from 'node:crypto';
import { startStreamingHttp, sleep, untilAborted } from './stream-http.mjs';
import { countWords, pcm16Tone, MS_PER_WORD } from './audio.mjs';

/** The reply given when the queue is empty. */
export const DEFAULT_REPLY_TEXT = 'Sure, I can help with that.';

const rand = (n) => randomBytes(n).toString('base64url').slice(0, n);

/** OpenAI's error response: `{error: {message, type, param, code}}`. */
export function openaiError(status, message, { type, code = null, param = null, headers = {} } = {}) {
  const defaults = {
    400: ['invalid_request_error', null],
    401: ['invalid_request_error', 'invalid_api_key'],
    429: ['requests', 'rate_limit_exceeded'],
    500: ['server_error', null],
    503: ['server_error', null],
  }[status] ?? ['server_error', null];
  return {
    status,
    headers: { 'content-type': 'application/json', ...headers },
    body: { error: { message, type: type ?? defaults[0], param, code: code ?? defaults[1] } },
  };
}

/** Splits text into OpenAI-like deltas: word pieces with their leading space, or fixed `size` slices. */
export function splitDeltas(text, size) {
  if (size) return text.match(new RegExp(`[\\s\\S]{1,${size}}`, 'g')) ?? [];
  return text.match(/\s*\S+\s*$|\s*\S+/g) ?? [];
}

/** Parses an SSE body into the JSON payloads of its `data:` events (`[DONE]` kept as a string). */
export function parseSse(text) {
  return text
    .split(/\r?\n\r?\n/)
    .map((event) => event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n'))
    .filter(Boolean)
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}

/** OpenAI's 400s for a malformed tool-call history (a worker bug the real API would reject). */
function checkMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0) return "Invalid 'messages': empty array. Expected an array with minimum length 1.";
  const open = new Set();
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (!m || !['system', 'developer', 'user', 'assistant', 'tool'].includes(m.role)) return `Invalid value for 'messages[${i}].role'.`;
    if (m.role === 'tool') {
      if (!open.has(m.tool_call_id)) {
        return `Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.`;
      }
      open.delete(m.tool_call_id);
      continue;
    }
    if (open.size) {
      return `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...open].join(', ')}`;
    }
    if (m.role === 'assistant') for (const tc of m.tool_calls ?? []) open.add(tc.id);
  }
  return null;
}

/**
 * The 400 the API gives a `response_format` it refuses (structured outputs): a json_schema needs
 * a `name` and a `schema`; with `strict: true` every object lists all its properties in
 * `required` and sets `additionalProperties: false`.
 */
function checkResponseFormat(format) {
  if (format === undefined || format === null) return null;
  if (!['text', 'json_object', 'json_schema'].includes(format.type)) return `Invalid value: '${format.type}'. Supported values are: 'text', 'json_object', and 'json_schema'.`;
  if (format.type !== 'json_schema') return null;
  const js = format.json_schema;
  if (!js || typeof js !== 'object') return "Missing required parameter: 'response_format.json_schema'.";
  if (typeof js.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(js.name)) return "Invalid 'response_format.json_schema.name': string does not match pattern.";
  if (!js.schema || typeof js.schema !== 'object') return "Missing required parameter: 'response_format.json_schema.schema'.";
  if (js.strict !== true) return null;
  const check = (schema, context) => {
    const types = [].concat(schema.type ?? []);
    if (types.includes('object')) {
      if (schema.additionalProperties !== false) return `Invalid schema for response_format '${js.name}': In context=(${context}), 'additionalProperties' is required to be supplied and to be false.`;
      const keys = Object.keys(schema.properties ?? {});
      const required = Array.isArray(schema.required) ? schema.required : [];
      const missing = keys.filter((k) => !required.includes(k));
      if (missing.length) return `Invalid schema for response_format '${js.name}': In context=(${context}), 'required' is required to be supplied and to be an array including every key in properties. Missing '${missing[0]}'.`;
      for (const k of keys) {
        const bad = check(schema.properties[k], `${context ? `${context}, ` : ''}'properties', '${k}'`);
        if (bad) return bad;
      }
    }
    if (schema.enum !== undefined && !Array.isArray(schema.enum)) return `Invalid schema for response_format '${js.name}': In context=(${context}), 'enum' must be an array.`;
    if (!types.length && schema.enum === undefined) return `Invalid schema for response_format '${js.name}': In context=(${context}), schema must have a 'type' key.`;
    return null;
  };
  return check(js.schema, '');
}

/** A value that fits `schema` (what a model held to the schema by strict mode would send). */
export function instanceOf(schema) {
  if (Array.isArray(schema.enum)) return schema.enum.find((v) => v !== null) ?? null;
  const type = [].concat(schema.type).find((t) => t !== 'null');
  switch (type) {
    case 'object': return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, v]) => [k, instanceOf(v)]));
    case 'array': return [];
    case 'string': return '';
    case 'number': case 'integer': return 0;
    case 'boolean': return false;
    default: return null;
  }
}

const normalizeToolCalls = (calls) =>
  calls.map((c) => ({
    id: c.id ?? `call_${rand(24)}`,
    name: c.name,
    arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? {}),
  }));

/**
 * Starts the fake. Options: `apiKey` (if set, only this bearer key is accepted), `defaultReply`
 * (spec used when the queue is empty), `speechChunkDelayMs` (default 5). Latency profile of
 * streamed chat (0 = instant, the default): `firstTokenMs` before the first content delta
 * (time to first token) and `tokensPerSecond` pacing the deltas after it (one delta is one
 * token); a reply's own `chunkDelayMs` wins over the pacing.
 */
export async function startFakeOpenAI({
  apiKey, defaultReply = { text: DEFAULT_REPLY_TEXT }, speechChunkDelayMs = 5, firstTokenMs = 0, tokensPerSecond = 0,
} = {}) {
  const chatQueue = [];
  const speechQueue = [];
  const take = (queue, req, fallback) => {
    const i = queue.findIndex((s) => !s.match || s.match(req));
    return i >= 0 ? queue.splice(i, 1)[0] : fallback;
  };
  const authError = (req) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m) return openaiError(401, "You didn't provide an API key.", { code: null });
    if (apiKey !== undefined && m[1] !== apiKey) return openaiError(401, 'Incorrect API key provided.');
    return null;
  };
  const parse = (req) => {
    try {
      return req.json();
    } catch {
      return null;
    }
  };

  async function chat(req) {
    const err = authError(req);
    if (err) return err;
    const body = parse(req);
    req.kind = 'chat';
    req.parsed = body;
    if (!body) return openaiError(400, 'We could not parse the JSON body of your request.');
    if (!body.model) return openaiError(400, 'you must provide a model parameter');
    const bad = checkMessages(body.messages);
    if (bad) return openaiError(400, bad, { param: 'messages' });
    const badFormat = checkResponseFormat(body.response_format);
    if (badFormat) return openaiError(400, badFormat, { param: 'response_format' });
    const schema = body.response_format?.type === 'json_schema' ? body.response_format.json_schema.schema : null;

    const spec = take(chatQueue, req, schema ? { json: instanceOf(schema) } : defaultReply);
    req.reply = spec;
    if (spec.status) {
      const message = spec.message ?? (spec.status === 429 ? 'Rate limit reached for requests.' : 'The server had an error while processing your request. Sorry about that!');
      const headers = spec.status === 429 ? { 'retry-after': '1', 'x-ratelimit-remaining-requests': '0', ...spec.headers } : spec.headers;
      return { ...openaiError(spec.status, message, { headers }), delayMs: spec.delayMs };
    }
    const id = `chatcmpl-${rand(29)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model;
    // Structured outputs: the message content is the JSON text of the answer.
    const text = spec.json !== undefined ? JSON.stringify(spec.json) : (spec.text ?? '');
    const toolCalls = normalizeToolCalls(spec.toolCalls ?? []);
    const finishReason = spec.finishReason ?? (toolCalls.length ? 'tool_calls' : 'stop');
    const promptTokens = countWords(JSON.stringify(body.messages));
    const deltas = spec.deltas ?? splitDeltas(text, spec.deltaChars);
    const usage = { prompt_tokens: promptTokens, completion_tokens: deltas.length + toolCalls.length * 4, total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;

    if (!body.stream) {
      if (spec.stall) {
        await untilAborted(req.signal);
        return { destroy: true };
      }
      const message = { role: 'assistant', content: toolCalls.length && !text ? null : text, refusal: null, annotations: [] };
      if (toolCalls.length) {
        message.tool_calls = toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
      }
      return {
        status: 200,
        delayMs: spec.delayMs,
        body: {
          id, object: 'chat.completion', created, model,
          choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }],
          usage, service_tier: 'default', system_fingerprint: 'fp_fake0000',
        },
      };
    }

    const includeUsage = body.stream_options?.include_usage === true;
    const obfuscate = body.stream_options?.include_obfuscation !== false;
    const chunk = (delta, finish = null) => ({
      id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_fake0000',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
      ...(obfuscate ? { obfuscation: rand(8) } : {}),
    });
    return {
      status: 200,
      delayMs: spec.delayMs,
      headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': `req_${rand(24)}` },
      destroyAtEnd: Boolean(spec.drop),
      stream: async (write) => {
        const event = async (obj) => {
          const s = `data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`;
          if (!spec.fragmented) return write(s);
          // Split each event across two writes (and so, usually, two network reads).
          const cut = Math.max(1, Math.floor(s.length / 2));
          if (!(await write(s.slice(0, cut)))) return false;
          await sleep(1, req.signal);
          return write(s.slice(cut));
        };
        const perToken = spec.chunkDelayMs ?? (tokensPerSecond > 0 ? 1000 / tokensPerSecond : 0);
        const pause = () => (perToken ? sleep(perToken, req.signal) : Promise.resolve(true));
        req.deltasSent = 0;
        const first = text || !toolCalls.length ? { role: 'assistant', content: '', refusal: null } : null;
        if (first && !(await event(chunk(first)))) return;
        if (spec.comments) await write(': keep-alive\n\n');
        if (firstTokenMs > 0 && !(await sleep(firstTokenMs, req.signal))) return;
        for (const [i, d] of deltas.entries()) {
          // The first token's wait is the time to first token, not the pacing.
          if (!(firstTokenMs > 0 && i === 0) && !(await pause())) return;
          if (!(await event(chunk({ content: d })))) return;
          req.deltasSent += 1;
        }
        for (const [index, call] of toolCalls.entries()) {
          if (!(await pause())) return;
          const head = { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } };
          const delta = index === 0 && !first ? { role: 'assistant', content: null, tool_calls: [head] } : { tool_calls: [head] };
          if (!(await event(chunk(delta)))) return;
          for (const piece of splitDeltas(call.arguments, spec.argumentChars ?? 7)) {
            if (!(await pause())) return;
            if (!(await event(chunk({ tool_calls: [{ index, function: { arguments: piece } }] })))) return;
          }
        }
        if (spec.stall) return untilAborted(req.signal);
        if (spec.drop) return;
        if (!(await event(chunk({}, finishReason)))) return;
        if (includeUsage) {
          const u = { id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: 'fp_fake0000', choices: [], usage };
          if (!(await event(u))) return;
          // What the fake billed on this stream (the usage chunk as sent), for usage assertions.
          req.usageSent = usage;
        }
        await event('[DONE]');
      },
    };
  }

  async function speech(req) {
    const err = authError(req);
    if (err) return err;
    const body = parse(req);
    req.kind = 'speech';
    req.parsed = body;
    if (!body) return openaiError(400, 'We could not parse the JSON body of your request.');
    for (const f of ['model', 'input', 'voice']) {
      if (!body[f]) return openaiError(400, `Missing required parameter: '${f}'.`, { param: f, code: 'missing_required_parameter' });
    }
    if (body.input.length > 4096) return openaiError(400, "Invalid 'input': string too long.", { param: 'input', code: 'string_above_max_length' });
    if ((body.response_format ?? 'mp3') !== 'pcm') {
      return openaiError(400, `the fake serves only response_format "pcm", not ${JSON.stringify(body.response_format ?? 'mp3')}`, { param: 'response_format' });
    }
    const spec = take(speechQueue, req, {});
    req.reply = spec;
    if (spec.status) return { ...openaiError(spec.status, spec.message ?? 'scripted failure'), delayMs: spec.delayMs };
    const samples = Math.round((countWords(body.input) * MS_PER_WORD * 24000) / 1000);
    const audio = pcm16Tone(samples, { rate: 24000 });
    req.audioBytes = audio.length;
    const delay = spec.chunkDelayMs ?? speechChunkDelayMs;
    const chunkBytes = 4800; // 100 ms
    const sse = body.stream_format === 'sse';
    return {
      status: 200,
      delayMs: spec.delayMs,
      destroyAtEnd: Boolean(spec.drop),
      headers: { 'content-type': sse ? 'text/event-stream' : 'audio/pcm', 'x-request-id': `req_${rand(24)}` },
      stream: async (write) => {
        for (let i = 0; i < audio.length; i += chunkBytes) {
          if (spec.stall && i > 0) return untilAborted(req.signal);
          const piece = audio.subarray(i, i + chunkBytes);
          const ok = sse ? await write(`data: ${JSON.stringify({ type: 'speech.audio.delta', audio: piece.toString('base64') })}\n\n`) : await write(piece);
          if (!ok) return;
          if (delay && !(await sleep(delay, req.signal))) return;
        }
        if (spec.stall) return untilAborted(req.signal);
        if (sse && !spec.drop) {
          const n = countWords(body.input);
          await write(`data: ${JSON.stringify({ type: 'speech.audio.done', usage: { input_tokens: n, output_tokens: n * 7, total_tokens: n * 8 } })}\n\n`);
        }
      },
    };
  }

  const http = await startStreamingHttp({
    routes: [
      { method: 'POST', path: '/v1/chat/completions', handler: chat },
      { method: 'POST', path: '/v1/audio/speech', handler: speech },
    ],
  });

  return {
    /** Value for OPENAI_BASE_URL (http://127.0.0.1:port/v1). */
    url: `${http.url}/v1`,
    origin: http.url,
    port: http.port,
    /** Every request (recorded: path, headers, body, parsed, reply, aborted, finished, deltasSent…). */
    requests: http.requests,
    /** Recorded /v1/chat/completions requests. */
    get chatRequests() {
      return http.requests.filter((r) => r.path === '/v1/chat/completions');
    },
    /** Recorded /v1/audio/speech requests. */
    get speechRequests() {
      return http.requests.filter((r) => r.path === '/v1/audio/speech');
    },
    /**
     * Queues a chat reply: {text?, json? (the answer to a json_schema request, sent as the
     * message's JSON text), deltas?, deltaChars?, chunkDelayMs?, delayMs?, toolCalls?: [{name,
     * arguments, id?}], finishReason?, stall?, drop?, fragmented?, comments?, status?, message?,
     * headers?, match?: (req) => bool}. `stall`/`drop` apply after the text/tool fragments are sent.
     */
    reply(spec) {
      chatQueue.push(spec);
      return this;
    },
    /** Queues a speech reply: {status?, chunkDelayMs?, delayMs?, stall?, drop?, match?}. */
    speechReply(spec) {
      speechQueue.push(spec);
      return this;
    },
    /** Pending (unused) chat replies. */
    pending: chatQueue,
    waitFor: http.waitFor,
    close: http.close,
  };
}
