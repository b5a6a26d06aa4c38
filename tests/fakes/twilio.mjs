// Fake Twilio REST (docs/protocols.md §9.1) and Twilio's signed webhooks (§1.3, §4).
// POST /2010-04-01/Accounts/{AccountSid}/Calls.json creates a call (201 + call resource);
// POST/GET .../Calls/{CallSid}.json modifies / fetches it. The fake can then play Twilio's part
// in the call's life: signed status callbacks and async AMD results to the URLs the worker gave.
// POST .../Calls/{CallSid}/Recordings.json starts a call recording (201 + recording resource);
// GET .../Recordings/{RecordingSid}.mp3|.wav serves its media (HTTP Basic like the rest), and
// sendRecordingStatus plays Twilio's signed RecordingStatusCallback once it is "completed".
// POST .../Messages.json sends a text message (201 + message resource, `status: queued`);
// sendMessageStatus plays its signed StatusCallback (MessageStatus sent|delivered|failed|...).

import { createHash, createHmac, randomBytes } from 'node:crypto';
import { startStreamingHttp, formToObject } from './stream-http.mjs';

/** A Twilio SID: `prefix` + 32 lowercase hex digits. */
export const twilioSid = (prefix) => prefix + randomBytes(16).toString('hex');

/** Twilio's date format, e.g. "Tue, 31 Aug 2010 20:36:28 +0000". */
export const twilioDate = (d = new Date()) => d.toUTCString().replace('GMT', '+0000');

/** Twilio's error body: `{code, message, more_info, status}`. */
export function twilioError(status, code, message) {
  return { status, body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status } };
}

/** Normalizes params (object with string/array values, URLSearchParams or [k, v] pairs) to [k, v] pairs. */
function pairs(params) {
  if (params instanceof URLSearchParams || Array.isArray(params)) return [...params];
  return Object.entries(params ?? {}).flatMap(([k, v]) => [].concat(v).map((x) => [k, String(x)]));
}

/** X-Twilio-Signature: base64 HMAC-SHA1(authToken, url + sorted names, each + its sorted distinct values). */
export function twilioSignature(authToken, url, params = {}) {
  const byName = new Map();
  for (const [k, v] of pairs(params)) byName.set(k, (byName.get(k) ?? new Set()).add(v));
  let data = url;
  for (const name of [...byName.keys()].sort()) {
    for (const value of [...byName.get(name)].sort()) data += name + value;
  }
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

/**
 * POSTs `params` form-encoded to `url` with the X-Twilio-Signature Twilio would send for `url`.
 * `via` (an origin such as worker.url) delivers the request there while still signing `url`.
 * Resolves to {status, headers, text}.
 */
export async function sendStatusCallback(url, authToken, params, { via, headers = {} } = {}) {
  const target = via ? new URL(new URL(url).pathname + new URL(url).search, via).toString() : url;
  const body = new URLSearchParams(pairs(params)).toString();
  const res = await fetch(target, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      'x-twilio-signature': twilioSignature(authToken, url, params),
      'user-agent': 'TwilioProxy/1.1',
      'i-twilio-idempotency-token': randomBytes(16).toString('hex'),
      ...headers,
    },
    body,
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/**
 * An incoming-message webhook (the form Twilio POSTs for an SMS from `from` to our number `to`)
 * sent to `url`, signed with `authToken`. Resolves like sendStatusCallback.
 */
export function sendTwilioText(url, authToken, { from, to, body, accountSid, sid = twilioSid('SM') }) {
  const params = {
    ToCountry: 'US', SmsMessageSid: sid, NumMedia: '0', SmsSid: sid, SmsStatus: 'received', Body: body, To: to,
    NumSegments: '1', MessageSid: sid, AccountSid: accountSid, From: from, ApiVersion: '2010-04-01',
  };
  return sendStatusCallback(url, authToken, params);
}

/**
 * POSTs `json` as a JSON body the way Twilio sends JSON-bodied webhooks: the hex SHA-256 of the
 * exact body is appended to `url` as `bodySHA256`, and X-Twilio-Signature signs that URL with no
 * parameters (twilio-node's `validateRequestWithBody` checks exactly this). `via` as in
 * sendStatusCallback; `tamper` changes the body after signing. Resolves to {status, text, url}.
 */
export async function sendJsonCallback(url, authToken, json, { via, tamper } = {}) {
  const body = JSON.stringify(json);
  const signed = new URL(url);
  signed.searchParams.append('bodySHA256', createHash('sha256').update(body, 'utf8').digest('hex'));
  const signedUrl = signed.toString();
  const target = via ? new URL(signed.pathname + signed.search, via).toString() : signedUrl;
  const res = await fetch(target, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-twilio-signature': twilioSignature(authToken, signedUrl, {}),
      'user-agent': 'TwilioProxy/1.1',
      'i-twilio-idempotency-token': randomBytes(16).toString('hex'),
    },
    body: tamper ? tamper(body) : body,
  });
  return { status: res.status, text: await res.text(), url: signedUrl };
}

/** Standard voice-webhook parameters for a call (override or add any with `extra`). */
export function twilioCallParams({ callSid = twilioSid('CA'), accountSid = twilioSid('AC'), from = '+15017122661', to = '+15558675310', status = 'ringing', direction = 'inbound', ...extra } = {}) {
  return {
    AccountSid: accountSid, ApiVersion: '2010-04-01', CallSid: callSid, CallStatus: status, Called: to, Caller: from,
    Direction: direction, From: from, To: to, CallerName: '', FromCountry: 'US', ToCountry: 'US', ...extra,
  };
}

const EVENT_OF_STATUS = {
  initiated: 'initiated', ringing: 'ringing', 'in-progress': 'answered', answered: 'answered',
  completed: 'completed', busy: 'completed', 'no-answer': 'completed', failed: 'completed', canceled: 'completed',
};

/**
 * Starts the fake Twilio REST API. Options: `accountSid` / `authToken` — when set, requests must use
 * them (HTTP Basic `AccountSid:AuthToken`, path AccountSid) or get Twilio's 401 (code 20003).
 * `authToken` also signs the status callbacks; `via` (e.g. worker.url) is where callbacks are sent.
 */
export async function startFakeTwilio({ accountSid, authToken, via } = {}) {
  const calls = new Map();
  const modifications = [];
  const callbacks = [];

  function resource(call) {
    const base = `/2010-04-01/Accounts/${call.accountSid}/Calls/${call.sid}`;
    const fmt = (n) => (/^\+1\d{10}$/.test(n ?? '') ? `(${n.slice(2, 5)}) ${n.slice(5, 8)}-${n.slice(8)}` : n ?? null);
    return {
      sid: call.sid, account_sid: call.accountSid, to: call.to, to_formatted: fmt(call.to), from: call.from,
      from_formatted: fmt(call.from), status: call.status, direction: call.direction, answered_by: null,
      api_version: '2010-04-01', caller_name: null, duration: null, start_time: null, end_time: null, price: null,
      price_unit: 'USD', parent_call_sid: null, phone_number_sid: call.phoneNumberSid, forwarded_from: null,
      group_sid: null, queue_time: '0', trunk_sid: null, annotation: null,
      date_created: call.dateCreated, date_updated: twilioDate(), uri: `${base}.json`,
      subresource_uris: {
        notifications: `${base}/Notifications.json`, recordings: `${base}/Recordings.json`,
        payments: `${base}/Payments.json`, events: `${base}/Events.json`, siprec: `${base}/Siprec.json`,
        streams: `${base}/Streams.json`, transcriptions: `${base}/Transcriptions.json`,
        user_defined_message_subscriptions: `${base}/UserDefinedMessageSubscriptions.json`,
        user_defined_messages: `${base}/UserDefinedMessages.json`,
      },
    };
  }

  function authenticate(req) {
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    const [user, ...rest] = m ? Buffer.from(m[1], 'base64').toString('utf8').split(':') : [];
    req.auth = m ? { user, password: rest.join(':') } : null;
    req.accountSid = req.params.account;
    req.fields = formToObject(req.body);
    if (!req.auth) return twilioError(401, 20003, 'Authenticate');
    if (accountSid !== undefined && (req.params.account !== accountSid || user !== accountSid)) return twilioError(401, 20003, 'Authenticate');
    if (authToken !== undefined && req.auth.password !== authToken) return twilioError(401, 20003, 'Authenticate');
    return null;
  }

  function create(req) {
    const err = authenticate(req);
    if (err) return err;
    const p = req.fields;
    if (!p.To) return twilioError(400, 21201, "No 'To' number is specified");
    if (!p.From) return twilioError(400, 21603, "A 'From' phone number is required.");
    if (!p.Url && !p.Twiml && !p.ApplicationSid) return twilioError(400, 21205, 'Url parameter is required.');
    if (!p.Url && p.Twiml && p.Twiml.length > 4000) return twilioError(400, 21236, 'Twiml exceeds the maximum length of 4000 characters.');
    const call = {
      sid: twilioSid('CA'), accountSid: req.params.account, to: p.To, from: p.From, status: 'queued',
      direction: 'outbound-api', phoneNumberSid: twilioSid('PN'), dateCreated: twilioDate(), params: p, sequence: 0,
      statusCallback: p.StatusCallback ?? null,
      statusCallbackEvents: [].concat(p.StatusCallbackEvent ?? []).flatMap((e) => e.split(' ')).filter(Boolean),
    };
    calls.set(call.sid, call);
    req.callSid = call.sid;
    return { status: 201, body: resource(call) };
  }

  function callFor(req) {
    let call = calls.get(req.params.call);
    if (!call) {
      // A call the fake did not create (e.g. an inbound one): Twilio would know it, so adopt it.
      call = { sid: req.params.call, accountSid: req.params.account, status: 'in-progress', direction: 'inbound', phoneNumberSid: twilioSid('PN'), dateCreated: twilioDate(), params: {}, sequence: 0, statusCallbackEvents: [] };
      calls.set(call.sid, call);
    }
    return call;
  }

  function modify(req) {
    const err = authenticate(req);
    if (err) return err;
    const call = callFor(req);
    const p = req.fields;
    req.callSid = call.sid;
    if (p.Status && !['completed', 'canceled'].includes(p.Status)) return twilioError(400, 21218, `Invalid value for Status: ${p.Status}`);
    if (p.Status) call.status = p.Status === 'canceled' && call.status === 'in-progress' ? call.status : p.Status;
    modifications.push({ callSid: call.sid, params: p, at: Date.now() });
    return { status: 200, body: resource(call) };
  }

  function fetchCall(req) {
    return authenticate(req) ?? { status: 200, body: resource(callFor(req)) };
  }

  const recordings = new Map();

  function recordingResource(rec) {
    const base = `/2010-04-01/Accounts/${rec.accountSid}/Recordings/${rec.sid}`;
    return {
      sid: rec.sid, account_sid: rec.accountSid, call_sid: rec.callSid, conference_sid: null,
      status: rec.status, channels: rec.params.RecordingChannels === 'dual' ? 2 : 1, source: 'StartCallRecordingAPI',
      start_time: rec.dateCreated, date_created: rec.dateCreated, date_updated: twilioDate(), duration: rec.status === 'completed' ? String(rec.duration) : null,
      price: null, price_unit: 'USD', api_version: '2010-04-01', error_code: null, track: 'both', encryption_details: null,
      uri: `/2010-04-01/Accounts/${rec.accountSid}/Calls/${rec.callSid}/Recordings/${rec.sid}.json`,
      media_url: `${http.url}${base}`,
    };
  }

  function startRecording(req) {
    const err = authenticate(req);
    if (err) return err;
    const call = callFor(req);
    const rec = {
      sid: twilioSid('RE'), accountSid: req.params.account, callSid: call.sid, status: 'in-progress',
      params: req.fields, dateCreated: twilioDate(), duration: 7, audio: null,
    };
    recordings.set(rec.sid, rec);
    return { status: 201, body: recordingResource(rec) };
  }

  function media(req) {
    const err = authenticate(req);
    if (err) return err;
    const rec = recordings.get(req.params.recording);
    if (!rec || rec.status !== 'completed' || rec.accountSid !== req.params.account) return twilioError(404, 20404, 'The requested resource was not found');
    const type = req.params.ext === 'mp3' ? 'audio/mpeg' : 'audio/x-wav';
    return { status: 200, headers: { 'content-type': type, 'content-length': String(rec.audio.length) }, body: rec.audio };
  }

  const messages = new Map();

  function sendMessage(req) {
    const err = authenticate(req);
    if (err) return err;
    const p = req.fields;
    if (!p.To) return twilioError(400, 21604, "A 'To' phone number is required.");
    if (!p.From) return twilioError(400, 21603, "A 'From' phone number is required.");
    if (!p.Body) return twilioError(400, 21602, 'Message body is required.');
    if ([...p.Body].length > 1600) return twilioError(400, 21617, 'The concatenated message body exceeds the 1600 character limit.');
    const sid = twilioSid('SM');
    const base = `/2010-04-01/Accounts/${req.params.account}/Messages/${sid}`;
    const message = { sid, accountSid: req.params.account, to: p.To, from: p.From, body: p.Body, status: 'queued', statusCallback: p.StatusCallback ?? null, params: p };
    messages.set(sid, message);
    return {
      status: 201,
      body: {
        account_sid: req.params.account, api_version: '2010-04-01', body: p.Body, date_created: twilioDate(), date_sent: null,
        date_updated: twilioDate(), direction: 'outbound-api', error_code: null, error_message: null, from: p.From,
        messaging_service_sid: null, num_media: '0', num_segments: String(Math.max(1, Math.ceil([...p.Body].length / 153))),
        price: null, price_unit: 'USD', sid, status: 'queued', subresource_uris: { media: `${base}/Media.json` }, to: p.To, uri: `${base}.json`,
      },
    };
  }

  const http = await startStreamingHttp({
    routes: [
      { method: 'POST', path: /^\/2010-04-01\/Accounts\/(?<account>AC[^/]+)\/Messages\.json$/, handler: sendMessage },
      { method: 'POST', path: /^\/2010-04-01\/Accounts\/(?<account>AC[^/]+)\/Calls\/(?<call>CA[^/]+)\/Recordings\.json$/, handler: startRecording },
      { method: 'GET', path: /^\/2010-04-01\/Accounts\/(?<account>AC[^/]+)\/Recordings\/(?<recording>RE[0-9a-f]+)\.(?<ext>mp3|wav)$/, handler: media },
      { method: 'POST', path: /^\/2010-04-01\/Accounts\/(?<account>AC[^/]+)\/Calls\.json$/, handler: create },
      { method: 'POST', path: /^\/2010-04-01\/Accounts\/(?<account>AC[^/]+)\/Calls\/(?<call>CA[^/]+)\.json$/, handler: modify },
      { method: 'GET', path: /^\/2010-04-01\/Accounts\/(?<account>AC[^/]+)\/Calls\/(?<call>CA[^/]+)\.json$/, handler: fetchCall },
    ],
  });

  return {
    /** Value for TWILIO_API_URL. */
    url: http.url,
    port: http.port,
    /** Every request (recorded: accountSid, auth {user, password}, fields (form as object; repeated keys → arrays), callSid). */
    requests: http.requests,
    /** Calls created (or adopted) by sid: {sid, status, to, from, params, statusCallback, statusCallbackEvents}. */
    calls,
    /** Live-call modifications: {callSid, params: {Twiml|Url|Status}}. */
    modifications,
    /** Status/AMD callbacks the fake sent: {url, params, status}. */
    callbacks,
    /** POST .../Calls.json requests only. */
    get createRequests() {
      return http.requests.filter((r) => /\/Calls\.json$/.test(r.path) && r.method === 'POST');
    },
    /**
     * Sends the call's StatusCallback for `status` (initiated|ringing|in-progress|completed|busy|
     * no-answer|failed|canceled) if the call subscribed to that event (or `force`). Resolves to the
     * worker's {status, text}, or null when Twilio would not have sent it.
     */
    async sendStatus(callSid, status, extra = {}, { force = false } = {}) {
      const call = calls.get(callSid);
      if (!call?.statusCallback) throw new Error(`fake twilio: call ${callSid} has no StatusCallback`);
      const event = EVENT_OF_STATUS[status];
      const subscribed = call.statusCallbackEvents.length ? call.statusCallbackEvents : ['completed'];
      if (!force && !subscribed.includes(event)) return null;
      call.sequence += 1;
      const callStatus = status === 'answered' ? 'in-progress' : status;
      call.status = callStatus === 'initiated' ? 'queued' : callStatus;
      const params = {
        ...twilioCallParams({ callSid, accountSid: call.accountSid, from: call.from, to: call.to, status: callStatus, direction: call.direction }),
        CallbackSource: 'call-progress-events', SequenceNumber: String(call.sequence - 1), Timestamp: twilioDate(),
        ...(event === 'completed' ? { CallDuration: '42', Duration: '1', SipResponseCode: callStatus === 'completed' ? '200' : '487' } : {}),
        ...extra,
      };
      const res = await sendStatusCallback(call.statusCallback, authToken ?? 'unset-auth-token', params, { via });
      callbacks.push({ url: call.statusCallback, params, status: res.status });
      return res;
    },
    /** Sends the async AMD result (AnsweredBy: human|machine_start|…) to the call's AsyncAmdStatusCallback. */
    async sendAmd(callSid, answeredBy = 'human', extra = {}) {
      const call = calls.get(callSid);
      const url = call?.params.AsyncAmdStatusCallback;
      if (!url) throw new Error(`fake twilio: call ${callSid} has no AsyncAmdStatusCallback`);
      const params = { AccountSid: call.accountSid, CallSid: callSid, AnsweredBy: answeredBy, MachineDetectionDuration: '2140', ...extra };
      const res = await sendStatusCallback(url, authToken ?? 'unset-auth-token', params, { via });
      callbacks.push({ url, params, status: res.status });
      return res;
    },
    /** Recordings started through the REST API, by sid: {sid, callSid, status, params, audio}. */
    recordings,
    /**
     * Completes recording `sid` with the bytes `audio` and sends its RecordingStatusCallback
     * (signed like every Twilio webhook; `authToken` overrides the signing token, `extra` adds or
     * replaces parameters). Resolves to the worker's {status, text}.
     */
    async sendRecordingStatus(sid, audio, { extra = {}, authToken: token } = {}) {
      const rec = recordings.get(sid);
      const url = rec?.params.RecordingStatusCallback;
      if (!url) throw new Error(`fake twilio: recording ${sid} has no RecordingStatusCallback`);
      rec.status = 'completed';
      rec.audio = audio;
      const params = {
        AccountSid: rec.accountSid, CallSid: rec.callSid, RecordingSid: sid,
        RecordingUrl: `${http.url}/2010-04-01/Accounts/${rec.accountSid}/Recordings/${sid}`,
        RecordingStatus: 'completed', RecordingDuration: String(rec.duration), RecordingChannels: '2',
        RecordingSource: 'StartCallRecordingAPI', RecordingStartTime: rec.dateCreated, ErrorCode: '0', RecordingTrack: 'both', ...extra,
      };
      const res = await sendStatusCallback(url, token ?? authToken ?? 'unset-auth-token', params, { via });
      callbacks.push({ url, params, status: res.status });
      return res;
    },
    /** Messages sent through the REST API, by sid: {sid, to, from, body, status, statusCallback, params}. */
    messages,
    /** POST .../Messages.json requests only. */
    get messageRequests() {
      return http.requests.filter((r) => /\/Messages\.json$/.test(r.path) && r.method === 'POST');
    },
    /**
     * Sends message `sid`'s StatusCallback for `status` (sent|delivered|undelivered|failed), signed
     * like every Twilio webhook. Resolves to the worker's {status, text}.
     */
    async sendMessageStatus(sid, status, extra = {}) {
      const message = messages.get(sid);
      if (!message?.statusCallback) throw new Error(`fake twilio: message ${sid} has no StatusCallback`);
      message.status = status;
      const params = {
        AccountSid: message.accountSid, ApiVersion: '2010-04-01', From: message.from, MessageSid: sid,
        MessageStatus: status, SmsSid: sid, SmsStatus: status, To: message.to,
        ...(['failed', 'undelivered'].includes(status) ? { ErrorCode: '30003' } : {}), ...extra,
      };
      const res = await sendStatusCallback(message.statusCallback, authToken ?? 'unset-auth-token', params, { via });
      callbacks.push({ url: message.statusCallback, params, status: res.status });
      return res;
    },
    /** Answers the next `n` REST requests (those `match(request)` accepts, if given) with HTTP `status` and Twilio's error body. */
    failNext(n, status = 500, code = 20500, match = undefined) {
      http.failNext(n, twilioError(status, status === 429 ? 20429 : code, status === 429 ? 'Too Many Requests' : 'Internal Server Error'), match);
    },
    waitFor: http.waitFor,
    close: http.close,
  };
}
