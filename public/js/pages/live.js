// Live call view: a WebSocket to the call's Durable Object (GET /api/v1/calls/{id}/live).
//
// Browsers cannot set headers on a WebSocket, and an API key in a URL ends up in access logs, so
// each connection first asks for a single-use ticket (POST /api/v1/calls/{id}/live-ticket, with
// the key in the Authorization header; valid 60 s, one upgrade, this call only) and opens
//   new WebSocket(url + '?ticket=' + ticket, ['phone-agent.live.v1'])
// to which the server answers `Sec-WebSocket-Protocol: phone-agent.live.v1`. Every reconnect
// gets a fresh ticket.
//
// Messages are JSON objects with a `type` (and `at`, ms since epoch):
//   hello      {phase, turns: [Turn], call_id}           current state on connect
//   transcript {speaker: "caller"|"agent", text, final, turn?}
//   state      {state: "started"|"thinking"|"listening"|"interrupted"|"ended", reason?, turn?}
//   turn       {turn: Turn}                              a finished turn (interrupted flag)
//   metrics    {turn, metrics: {llm_first_token_ms, tts_first_byte_ms, first_audio_ms, first_mark_ms}}
//   barge_in   {turn?}                                   the caller interrupted the agent
//   event      {event: "user_turn"|"resumed"|"upstream_failed", turn, ...}
// Turn = {id, user_text?, agent_text, unheard_text?, interrupted, metrics}: agent_text is what the
// caller heard (whole sentences whose playout finished), unheard_text what the agent said that a
// barge-in cut. Agent `transcript` lines go out as each sentence is sent to the carrier, so a turn
// with unheard_text turns its lines into one: the heard text, then the cut part struck through.
import { api } from '../api.js';
import { h, badge, fmtMs, pageHeader, announce } from '../dom.js';
import { latencyChart } from '../chart.js';
import { cutPart } from './call-detail.js';
import { directionLabel } from './calls.js';

export const LIVE_SUBPROTOCOL = 'phone-agent.live.v1';

export async function livePage(ctx, id) {
  const call = await api('GET', `/calls/${encodeURIComponent(id)}`);
  const connection = h('span', { class: 'conn', id: 'live-connection' }, 'connecting…');
  const state = h('span', { id: 'live-state' }, badge(call.status));
  const lines = h('ol', { class: 'transcript live', id: 'live-transcript', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': 'Transcript' });
  const interim = h('p', { class: 'interim', id: 'live-interim', 'aria-hidden': 'true' });
  const empty = h('p', { class: 'empty', id: 'live-empty' }, 'Waiting for the conversation…');
  const chartBox = h('div', { id: 'live-metrics' }, h('p', { class: 'empty' }, 'No turn measured yet.'));
  const lastLatency = h('span', { id: 'live-latency' }, '—');

  const metrics = new Map(); // turn id → metrics
  const interrupted = new Set(); // turn ids cut short by a barge-in
  const cut = new Set(); // turn ids shown as one line with their unheard part struck
  let ended = false;

  const line = (role, text, { turn, interrupted: cut } = {}) => h('li', { class: `line ${role}${cut ? ' interrupted' : ''}`, dataset: turn != null ? { turn: String(turn) } : {} },
    h('span', { class: 'speaker' }, role === 'caller' ? 'Caller' : 'Agent'),
    h('span', { class: 'text' }, text),
    cut ? h('span', { class: 'tag' }, 'cut short by barge-in') : null);
  const addLine = (role, text, options) => {
    empty.remove();
    const li = line(role, text, options);
    lines.append(li);
    li.scrollIntoView?.({ block: 'nearest' });
  };
  /**
   * A stored turn: the caller lines shown live for it take its id, and a caller line this view
   * missed is drawn before the turn's agent lines (a reconnect's hello holds only stored turns,
   * so what the caller said in the turn under way when the socket dropped came only live).
   */
  const settleCaller = (turn) => {
    const said = turn?.user_text?.trim();
    if (!said || lines.querySelector(`li.caller[data-turn="${turn.id}"]`)) return;
    const shown = [...lines.querySelectorAll('li.caller:not([data-turn])')]
      .filter((li) => said.includes(li.querySelector('.text').textContent.trim()));
    for (const li of shown) li.dataset.turn = String(turn.id);
    if (shown.length) return;
    empty.remove();
    const li = line('caller', said, { turn: turn.id });
    const answer = lines.querySelector(`li.agent[data-turn="${turn.id}"]`);
    if (answer) answer.before(li);
    else lines.append(li);
  };
  /** One line for a turn whose end was not heard: the heard text, then the cut part. */
  const cutLine = (turn) => h('li', { class: 'line agent interrupted', dataset: { turn: String(turn.id) } },
    h('span', { class: 'speaker' }, 'Agent'),
    h('span', { class: 'text' }, turn.agent_text ?? '', cutPart(turn.unheard_text)),
    h('span', { class: 'tag' }, turn.interrupted ? 'cut by barge-in: struck text not heard' : 'struck text not heard'));
  /** A finished turn with unheard text: its agent lines so far become its cut line. */
  const markCut = (turn) => {
    if (!turn?.unheard_text) return;
    cut.add(turn.id);
    const shown = [...lines.querySelectorAll('li.agent')].filter((li) => li.dataset.turn === String(turn.id));
    const line = cutLine(turn);
    if (shown.length) {
      shown[0].replaceWith(line);
      for (const li of shown.slice(1)) li.remove();
    } else {
      empty.remove();
      lines.append(line);
    }
  };
  const addNote = (cls, text) => {
    empty.remove();
    lines.append(h('li', { class: `note ${cls}` }, h('span', { class: 'speaker' }, '•'), h('span', { class: 'text' }, text)));
  };
  const setState = (s, extra = '') => {
    state.replaceChildren(badge(s), extra ? ` ${extra}` : '');
  };
  const drawMetrics = () => {
    const turns = [...metrics].sort((a, b) => a[0] - b[0]).map(([turn, m]) => ({ turn, metrics: m }));
    chartBox.replaceChildren(latencyChart(turns));
    const last = turns.at(-1)?.metrics;
    lastLatency.textContent = fmtMs(last?.first_audio_ms);
  };
  const fromTurns = (turns = []) => {
    lines.replaceChildren();
    for (const t of turns) {
      if (t.user_text) addLine('caller', t.user_text, { turn: t.id });
      if (t.unheard_text) markCut(t);
      else if (t.agent_text) addLine('agent', t.agent_text, { turn: t.id, interrupted: t.interrupted });
      if (t.interrupted) interrupted.add(t.id);
      if (t.metrics) metrics.set(t.id, t.metrics);
    }
    drawMetrics();
  };
  const bargeIn = (turn) => {
    if (turn != null) interrupted.add(turn);
    addNote('barge-in', 'Barge-in: the caller interrupted the agent');
    announce('The caller interrupted the agent.');
  };

  const handle = (msg) => {
    switch (msg.type) {
      case 'hello':
        fromTurns(msg.turns);
        if (msg.phase === 'ended') {
          ended = true;
          setState('ended');
        } else if (msg.phase && msg.phase !== 'none') setState(msg.phase);
        break;
      case 'transcript':
        if (msg.speaker === 'caller' && !msg.final) {
          interim.textContent = `Caller (speaking): ${msg.text}`;
          break;
        }
        if (msg.speaker === 'caller') interim.textContent = '';
        // A late sentence of a turn already shown with its cut part is in that line.
        if (msg.speaker === 'agent' && cut.has(msg.turn)) break;
        addLine(msg.speaker === 'caller' || msg.speaker === 'user' ? 'caller' : 'agent', msg.text,
          { turn: msg.turn, interrupted: msg.speaker === 'agent' && interrupted.has(msg.turn) });
        break;
      case 'turn':
        if (msg.turn?.interrupted) interrupted.add(msg.turn.id);
        settleCaller(msg.turn);
        markCut(msg.turn);
        if (msg.turn?.metrics) {
          metrics.set(msg.turn.id, msg.turn.metrics);
          drawMetrics();
        }
        break;
      case 'metrics':
        if (msg.metrics) {
          metrics.set(msg.turn, msg.metrics);
          drawMetrics();
        }
        break;
      case 'barge_in':
        bargeIn(msg.turn);
        break;
      case 'state':
        if (msg.state === 'interrupted') bargeIn(msg.turn);
        setState(msg.state, msg.reason ? `(${msg.reason})` : '');
        if (msg.state === 'ended') {
          ended = true;
          interim.textContent = '';
          addNote('ended', `Call ended${msg.reason ? `: ${msg.reason}` : ''}`);
          announce('The call ended.');
        }
        break;
      case 'event':
        if (msg.event === 'resumed') addNote('resumed', 'False interruption: the agent carries on');
        else if (msg.event === 'upstream_failed') addNote('failure', `Upstream failure: ${msg.failure ?? 'unknown'}`);
        break;
      default:
        break;
    }
  };

  // ---- the socket: a fresh ticket per connection, and reconnects ------------------------------
  let socket = null;
  let closedByUs = false;
  let retries = 0;
  let timer = null;
  const base = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/calls/${encodeURIComponent(id)}/live`;
  /** After a close (or a failed ticket request): try again, unless it never opened thrice. */
  const retry = ({ opened, reason }) => {
    connection.className = 'conn fail';
    if (ended) {
      connection.textContent = 'closed (call ended)';
      return;
    }
    if (!opened && retries >= 2) {
      connection.textContent = `could not connect (${reason})`;
      return;
    }
    retries += 1;
    const wait = Math.min(5000, 500 * 2 ** retries);
    connection.textContent = `disconnected; retrying in ${Math.round(wait / 1000)} s`;
    timer = setTimeout(open, wait);
  };
  const open = async () => {
    let ticket;
    try {
      ({ ticket } = await api('POST', `/calls/${encodeURIComponent(id)}/live-ticket`));
    } catch (e) {
      if (closedByUs) return;
      if (e.status === 401 || e.status === 403 || e.status === 404) {
        connection.className = 'conn fail';
        connection.textContent = `cannot watch: ${e.message}`;
        return;
      }
      retry({ opened: false, reason: e.message });
      return;
    }
    if (closedByUs) return;
    let opened = false;
    try {
      socket = new WebSocket(`${base}?ticket=${encodeURIComponent(ticket)}`, [LIVE_SUBPROTOCOL]);
    } catch (e) {
      connection.textContent = `cannot connect: ${e.message}`;
      return;
    }
    socket.addEventListener('open', () => {
      opened = true;
      retries = 0;
      connection.textContent = 'connected';
      connection.className = 'conn ok';
    });
    socket.addEventListener('message', (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      handle(msg);
    });
    socket.addEventListener('close', (e) => {
      if (closedByUs) return;
      retry({ opened, reason: `code ${e.code}` });
    });
  };
  open();
  ctx.onTeardown(() => {
    closedByUs = true;
    clearTimeout(timer);
    socket?.close(1000, 'left the live view');
  });

  return h('section', { 'aria-labelledby': 'page-title' },
    pageHeader(`Live: ${call.id}`, h('a', { class: 'button secondary', href: `#/calls/${encodeURIComponent(id)}` }, 'Call details')),
    h('dl', { class: 'facts inline' },
      h('dt', {}, 'Direction'), h('dd', {}, directionLabel(call.direction)),
      h('dt', {}, 'From'), h('dd', {}, call.from ?? '—'),
      h('dt', {}, 'To'), h('dd', {}, call.to ?? '—'),
      h('dt', {}, 'Socket'), h('dd', {}, connection),
      h('dt', {}, 'State'), h('dd', {}, state),
      h('dt', {}, 'Last turn latency'), h('dd', {}, lastLatency)),
    h('section', { class: 'card', 'aria-labelledby': 'live-transcript-title' },
      h('h3', { id: 'live-transcript-title' }, 'Transcript'),
      empty, lines, interim),
    h('section', { class: 'card', 'aria-labelledby': 'live-latency-title' },
      h('h3', { id: 'live-latency-title' }, 'Per-turn latency'),
      chartBox));
}
