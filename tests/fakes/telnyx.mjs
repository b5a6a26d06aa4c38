// Fake Telnyx Call Control REST API (v2), as the worker calls it: `POST /v2/calls` dials
// (answers the new call's ids), `POST /v2/calls/{call_control_id}/actions/{action}` acts on a
// live call (`hangup`, `transfer`; answers `{"data": {"result": "ok"}}`). Requests must carry
// `Authorization: Bearer <API key>` or get Telnyx's 401 error body. Every request is recorded;
// `actions` lists the call actions with the call control id decoded from the path.

import { randomUUID } from 'node:crypto';
import { startStreamingHttp } from './stream-http.mjs';

/** Telnyx's error body: `{errors: [{code, title, detail}]}`. */
export function telnyxError(status, code, title, detail) {
  return { status, body: { errors: [{ code, title, detail }] } };
}

/** Starts the fake; `apiKey` is the key requests must present. */
export async function startFakeTelnyx({ apiKey }) {
  const actions = [];

  function authenticate(req) {
    if (req.headers.authorization === `Bearer ${apiKey}`) return null;
    return telnyxError(401, '10009', 'Authentication failed', 'The API key you provided is invalid.');
  }

  function parseBody(req) {
    try {
      return { body: JSON.parse(req.body || '{}') };
    } catch {
      return { error: telnyxError(400, '10015', 'Invalid JSON', 'The request body is not valid JSON.') };
    }
  }

  function dial(req) {
    const { body, error } = parseBody(req);
    const refused = authenticate(req) ?? error;
    if (refused) return refused;
    if (!body.to) return telnyxError(422, '10032', 'Missing required parameter', "The 'to' parameter is required.");
    return {
      status: 200,
      body: { data: { record_type: 'call', call_control_id: `v3:${randomUUID()}`, call_leg_id: randomUUID(), call_session_id: randomUUID(), is_alive: false } },
    };
  }

  function act(req) {
    const { body, error } = parseBody(req);
    const refused = authenticate(req) ?? error;
    if (refused) return refused;
    const { action } = req.params;
    if (action === 'transfer' && !body.to) return telnyxError(422, '10032', 'Missing required parameter', "The 'to' parameter is required.");
    actions.push({ callControlId: decodeURIComponent(req.params.call), action, body, request: req });
    return { status: 200, body: { data: { result: 'ok' } } };
  }

  const http = await startStreamingHttp({
    routes: [
      { method: 'POST', path: '/v2/calls', handler: dial },
      { method: 'POST', path: /^\/v2\/calls\/(?<call>[^/]+)\/actions\/(?<action>hangup|transfer)$/, handler: act },
    ],
  });

  return {
    /** Value for TELNYX_API_URL. */
    url: http.url,
    /** Every request (method, path, headers, body, at). */
    requests: http.requests,
    /** Call actions accepted: {callControlId, action, body (parsed JSON), request}. */
    actions,
    waitFor: http.waitFor,
    close: http.close,
  };
}
