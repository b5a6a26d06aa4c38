//! The provider side of a live call, as tasks of the call's `CallSession`: the Deepgram STT
//! socket (with reconnect and keep-alive), the streaming LLM request, and the TTS queue that
//! turns each spoken segment into carrier frames. Each task owns what it reads (a socket clone,
//! a response body) and reports back through `Session::feed`; cancelling aborts the request
//! through its `AbortController`, so the provider sees the connection go away.

use crate::live::session::{Session, TtsJob};
use crate::platform::http::{log_line, now_ms};
use crate::platform::outbound::{self, Failure};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use phone_agent_core::live::{chat_body, llm_input, stt_input};
use phone_agent_core::media::carrier::OutFrame;
use phone_agent_core::media::codec::AudioFormat;
use phone_agent_core::media::framing::Framer;
use phone_agent_core::media::transcode::Transcoder;
use phone_agent_core::providers::deepgram::{
    auth_header, keep_alive, listen_url, parse_message, SttMessage,
};
use phone_agent_core::providers::http_url;
use phone_agent_core::providers::openai::ChatStream;
use phone_agent_core::providers::sse::SseParser;
use phone_agent_core::providers::tts::{tts_request, TtsOutput};
use phone_agent_core::session::{Input, Message, ToolCall};
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::Duration;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, WebSocket, WebsocketEvent,
};

/// Longest wait for a provider's response head (the conversation's own timeout covers tokens).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the STT upgrade.
const STT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deepgram closes after 10 s without audio; a KeepAlive goes out after this much silence.
const KEEP_ALIVE_AFTER_MS: i64 = 3_000;
/// Reconnect backoff bounds.
const RECONNECT_MIN_MS: u64 = 100;
const RECONNECT_MAX_MS: u64 = 5_000;

// ---- STT ---------------------------------------------------------------------------------

/// Starts the STT connection task unless one runs (it reconnects by itself until the call ends).
pub fn start_stt(session: &Rc<Session>) {
    let start = session.with_live(|live| {
        if live.stt.running || live.stt.closing || live.ended {
            false
        } else {
            live.stt.running = true;
            true
        }
    });
    if start != Some(true) {
        return;
    }
    let session = session.clone();
    wasm_bindgen_futures::spawn_local(async move {
        run_stt(&session).await;
        session.with_live(|live| {
            live.stt.running = false;
            live.stt.ws = None;
        });
    });
}

fn stt_closing(session: &Session) -> bool {
    session
        .with_live(|live| live.stt.closing || live.ended)
        .unwrap_or(true)
}

async fn run_stt(session: &Rc<Session>) {
    let Some(config) = session.config.as_ref() else {
        return;
    };
    let Some(key) = config.providers.deepgram_api_key.clone() else {
        log_line(
            json!({"level": "error", "msg": "DEEPGRAM_API_KEY is not set: the call has no STT"}),
        );
        return;
    };
    let mut backoff = RECONNECT_MIN_MS;
    let mut attempt: u32 = 0;
    loop {
        if stt_closing(session) {
            return;
        }
        let Some(Some(params)) = session.with_live(|live| live.stt.params.clone()) else {
            return;
        };
        let url = listen_url(&config.providers.deepgram_url, &params);
        let (name, value) = auth_header(&key);
        attempt += 1;
        let ws = match connect_websocket(&url, &[(name, &value)]).await {
            Ok(ws) => ws,
            Err(e) => {
                log_line(
                    json!({"level": "warn", "msg": "stt connect failed", "error": e,
                    "attempt": attempt}),
                );
                session.count("stt_connect_failures");
                Delay::from(Duration::from_millis(backoff)).await;
                backoff = (backoff * 2).min(RECONNECT_MAX_MS);
                continue;
            }
        };
        let Ok(mut events) = ws.events() else {
            continue;
        };
        if ws.accept().is_err() {
            continue;
        }
        // Audio that arrived while disconnected goes first, in order.
        session.with_live(|live| {
            let pending: Vec<u8> = live.stt.pending.drain(..).collect();
            for chunk in pending.chunks(8_000) {
                let _ = ws.send_with_bytes(chunk);
            }
            live.stt.ws = Some(ws.clone());
            live.stt.last_sent_ms = now_ms();
        });
        if attempt > 1 {
            session.count("stt_reconnects");
        }
        session.record("stt_connected", json!({"attempt": attempt}));
        backoff = RECONNECT_MIN_MS;
        // Read until the socket closes; check for a needed KeepAlive once a second.
        let closed = loop {
            let tick = Delay::from(Duration::from_secs(1));
            let next = events.next();
            futures_util::pin_mut!(tick);
            match select(next, tick).await {
                Either::Left((Some(Ok(WebsocketEvent::Message(message))), _)) => {
                    if let Some(text) = message.text() {
                        on_stt_text(session, &text);
                    }
                }
                Either::Left((Some(Ok(WebsocketEvent::Close(close))), _)) => {
                    break json!({"code": close.code(), "reason": close.reason()});
                }
                Either::Left((Some(Err(e)), _)) => break json!({"error": e.to_string()}),
                Either::Left((None, _)) => break json!({"ended": true}),
                Either::Right(((), _)) => {
                    let idle = session
                        .with_live(|live| {
                            let idle = now_ms() - live.stt.last_sent_ms >= KEEP_ALIVE_AFTER_MS;
                            if idle && !live.stt.closing {
                                live.stt.last_sent_ms = now_ms();
                            }
                            idle && !live.stt.closing
                        })
                        .unwrap_or(false);
                    if idle && ws.send_with_str(keep_alive()).is_ok() {
                        session.count("stt_keepalives");
                    }
                }
            }
        };
        session.with_live(|live| live.stt.ws = None);
        session.record("stt_closed", closed);
        if stt_closing(session) {
            return;
        }
        // Closed under a live call (provider hiccup, workerd's 1005 after a fetch): reconnect
        // at once; audio is buffered meanwhile.
        log_line(json!({"level": "warn", "msg": "stt socket closed mid-call; reconnecting"}));
    }
}

fn on_stt_text(session: &Rc<Session>, text: &str) {
    let message = match parse_message(text) {
        Ok(m) => m,
        Err(e) => {
            log_line(
                json!({"level": "warn", "msg": "malformed stt message", "error": e.to_string()}),
            );
            session.count("stt_malformed");
            return;
        }
    };
    if let SttMessage::Transcript {
        transcript,
        is_final,
        ..
    } = &message
    {
        if !transcript.trim().is_empty() {
            session.broadcast(json!({"type": "transcript", "speaker": "caller",
                "text": transcript, "final": is_final}));
        }
    }
    if let SttMessage::Error { description, .. } = &message {
        log_line(json!({"level": "warn", "msg": "stt error", "description": description}));
    }
    if let Some(input) = stt_input(message) {
        session.feed(input);
    }
}

/// Opens an authenticated outbound WebSocket: `fetch` of the http(s) form of the URL with
/// `Upgrade: websocket` plus the auth headers (the steps of workers-rs `connect_with_protocols`,
/// which cannot add headers).
async fn connect_websocket(url: &str, headers: &[(&str, &str)]) -> Result<WebSocket, String> {
    let request_headers = Headers::new();
    request_headers
        .set("upgrade", "websocket")
        .map_err(|e| e.to_string())?;
    for (name, value) in headers {
        request_headers
            .set(name, value)
            .map_err(|e| e.to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(request_headers);
    let request = Request::new_with_init(&http_url(url), &init).map_err(|e| e.to_string())?;
    let fetch = Fetch::Request(request);
    let upgrade = fetch.send();
    let timer = Delay::from(STT_CONNECT_TIMEOUT);
    futures_util::pin_mut!(upgrade);
    let response = match select(upgrade, timer).await {
        Either::Left((result, _)) => result.map_err(|e| e.to_string())?,
        Either::Right(((), _)) => return Err("upgrade timed out".to_owned()),
    };
    let status = response.status_code();
    response
        .websocket()
        .ok_or_else(|| format!("upgrade refused: HTTP {status}"))
}

// ---- LLM ---------------------------------------------------------------------------------

/// Starts the streaming chat request of `turn`; its deltas are fed back as `Llm*` inputs.
pub fn start_llm(session: &Rc<Session>, turn: u32, messages: &[Message], tools: &[Value]) {
    let Some(config) = session.config.as_ref() else {
        session.feed(Input::LlmFailed { turn });
        return;
    };
    let model = session
        .with_live(|live| live.setup.llm_model.clone())
        .flatten()
        .unwrap_or_else(|| config.providers.openai_model.clone());
    let body = chat_body(&model, messages, tools).to_string();
    let controller = AbortController::default();
    let signal = controller.signal();
    let id = session.with_live(|live| {
        live.next_llm_id += 1;
        let id = live.next_llm_id;
        if let Some((_, _, old)) = live.llm.replace((id, turn, controller)) {
            old.abort();
        }
        id
    });
    let Some(id) = id else { return };
    let url = format!("{}/chat/completions", config.providers.openai_base_url);
    let key = config.providers.openai_api_key.clone();
    let session = session.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let outcome = match key {
            Some(key) => stream_chat(&session, id, turn, &url, &key, &body, &signal).await,
            None => Err("OPENAI_API_KEY is not set".to_owned()),
        };
        let still_ours = session
            .with_live(|live| {
                let ours = live.llm.as_ref().is_some_and(|(i, _, _)| *i == id);
                if ours {
                    live.llm = None;
                }
                ours
            })
            .unwrap_or(false);
        if let (Err(e), true) = (outcome, still_ours) {
            log_line(
                json!({"level": "warn", "msg": "llm request failed", "turn": turn, "error": e}),
            );
            session.feed(Input::LlmFailed { turn });
        }
    });
}

fn llm_current(session: &Session, id: u64) -> bool {
    session
        .with_live(|live| live.llm.as_ref().is_some_and(|(i, _, _)| *i == id))
        .unwrap_or(false)
}

async fn stream_chat(
    session: &Rc<Session>,
    id: u64,
    turn: u32,
    url: &str,
    key: &str,
    body: &str,
    signal: &worker::AbortSignal,
) -> Result<(), String> {
    let auth = format!("Bearer {key}");
    let mut reply = outbound::open_stream(
        Method::Post,
        url,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Accept", "text/event-stream"),
        ],
        Some(body.as_bytes()),
        signal,
        HEAD_TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    if !(200..300).contains(&reply.status) {
        return Err(format!("HTTP {}", reply.status));
    }
    let mut sse = SseParser::new();
    let mut chat = ChatStream::new();
    let mut deliver = |data: &str| -> Result<(), String> {
        for delta in chat.push_data(data).map_err(|e| e.to_string())? {
            if !llm_current(session, id) {
                return Ok(());
            }
            if let Some(input) = llm_input(turn, delta) {
                session.feed(input);
            }
        }
        Ok(())
    };
    while let Some(chunk) = reply.body.next().await {
        if !llm_current(session, id) {
            // Cancelled: whatever is left of the body is not ours to read.
            return Ok(());
        }
        let chunk = chunk.map_err(|e| e.to_string())?;
        for event in sse.push(&chunk) {
            deliver(&event.data)?;
        }
    }
    if let Some(event) = sse.finish() {
        deliver(&event.data)?;
    }
    if !llm_current(session, id) {
        return Ok(());
    }
    for delta in chat.finish().map_err(|e| e.to_string())? {
        if let Some(input) = llm_input(turn, delta) {
            session.feed(input);
        }
    }
    Ok(())
}

// ---- tools -------------------------------------------------------------------------------

/// Runs a tool the edge implements and feeds its result.
pub fn run_tool(session: &Rc<Session>, turn: u32, call: ToolCall) {
    let session = session.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let content = crate::live::callbacks::run(&session, &call).await;
        session.record("tool", json!({"name": call.name, "result": content}));
        session.feed(Input::ToolResult {
            turn,
            id: call.id,
            content,
        });
    });
}

// ---- TTS ---------------------------------------------------------------------------------

/// Queues a segment; the TTS task sends segments one after another in this order.
pub fn queue_tts(session: &Rc<Session>, turn: u32, segment: usize, text: String) {
    let start = session.with_live(|live| {
        live.tts.next_id += 1;
        let id = live.tts.next_id;
        live.tts.queue.push_back(TtsJob {
            id,
            turn,
            segment,
            text,
        });
        !std::mem::replace(&mut live.tts.running, true)
    });
    if start == Some(true) {
        let session = session.clone();
        wasm_bindgen_futures::spawn_local(async move {
            run_tts(&session).await;
        });
    }
}

/// Drops queued segments of `turn` (all with `None`) and aborts the one being synthesized.
pub fn cancel_tts(session: &Rc<Session>, turn: Option<u32>) {
    let aborted = session
        .with_live(|live| {
            live.tts
                .queue
                .retain(|job| turn.is_some_and(|t| t != job.turn));
            match &live.tts.current {
                Some((_, t, _)) if turn.is_none_or(|turn| turn == *t) => live.tts.current.take(),
                _ => None,
            }
        })
        .flatten();
    if let Some((_, _, controller)) = aborted {
        controller.abort();
    }
}

fn tts_current(session: &Session, id: u64) -> bool {
    session
        .with_live(|live| live.tts.current.as_ref().is_some_and(|(i, _, _)| *i == id))
        .unwrap_or(false)
}

async fn run_tts(session: &Rc<Session>) {
    loop {
        let next = session.with_live(|live| {
            let job = live.tts.queue.pop_front();
            match job {
                Some(job) => {
                    let controller = AbortController::default();
                    let signal = controller.signal();
                    live.tts.current = Some((job.id, job.turn, controller));
                    Some((job, signal))
                }
                None => {
                    live.tts.running = false;
                    None
                }
            }
        });
        let Some(Some((job, signal))) = next else {
            return;
        };
        let (turn, segment, id) = (job.turn, job.segment, job.id);
        match speak(session, &job, &signal).await {
            Ok(()) if tts_current(session, id) => {
                session.with_live(|live| live.tts.current = None);
                session.broadcast(json!({"type": "transcript", "speaker": "agent",
                    "text": job.text, "final": true, "turn": turn}));
                session.feed(Input::TtsDone { turn, segment });
            }
            Ok(()) => {}
            Err(e) => {
                if tts_current(session, id) {
                    session.with_live(|live| live.tts.current = None);
                    log_line(json!({"level": "warn", "msg": "tts failed", "turn": turn,
                        "segment": segment, "error": e}));
                    session.feed(Input::TtsFailed { turn, segment });
                }
            }
        }
    }
}

/// Synthesizes one segment and sends its audio as carrier frames, reporting bytes sent.
async fn speak(
    session: &Rc<Session>,
    job: &TtsJob,
    signal: &worker::AbortSignal,
) -> Result<(), String> {
    let config = session.config.as_ref().ok_or("configuration is invalid")?;
    let setup = session
        .with_live(|live| (live.setup.tts_provider(), live.setup.voice_id.clone()))
        .ok_or("no live call")?;
    let request = tts_request(&config.providers, setup.0, setup.1.as_deref(), &job.text)
        .map_err(|e| e.to_string())?;
    let (carrier_format, frame_bytes) = session
        .with_live(|live| (live.carrier.format(), live.carrier.frame_bytes()))
        .ok_or("no live call")?;
    let source = match request.output {
        TtsOutput::Mulaw8k => AudioFormat::Mulaw8k,
        TtsOutput::Pcm16Le24k => AudioFormat::Pcm16Le { rate: 24000 },
    };
    // Same format (μ-law from ElevenLabs/Aura to Twilio/Telnyx PCMU): bytes pass untouched.
    let mut transcoder = if source == carrier_format {
        None
    } else {
        Some(Transcoder::new(source, carrier_format).map_err(|e| e.to_string())?)
    };
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut reply = outbound::open_stream(
        Method::Post,
        &request.url,
        &headers,
        Some(request.body.as_bytes()),
        signal,
        HEAD_TIMEOUT,
    )
    .await
    .map_err(|e: Failure| e.to_string())?;
    if !(200..300).contains(&reply.status) {
        return Err(format!("HTTP {}", reply.status));
    }
    let mut framer = Framer::new(frame_bytes, carrier_format.silence_byte());
    let mut converted = Vec::new();
    while let Some(chunk) = reply.body.next().await {
        if !tts_current(session, job.id) {
            return Ok(());
        }
        let chunk = chunk.map_err(|e| e.to_string())?;
        let audio: &[u8] = match transcoder.as_mut() {
            Some(t) => {
                converted.clear();
                t.push(&chunk, &mut converted);
                &converted
            }
            None => &chunk,
        };
        send_audio(session, job, framer.push(audio));
    }
    if !tts_current(session, job.id) {
        return Ok(());
    }
    let mut frames = Vec::new();
    if let Some(t) = transcoder.as_mut() {
        converted.clear();
        t.flush(&mut converted);
        frames.extend(framer.push(&converted));
    }
    frames.extend(framer.flush());
    send_audio(session, job, frames);
    Ok(())
}

/// Sends frames to the carrier and tells the conversation how much went out.
fn send_audio(session: &Rc<Session>, job: &TtsJob, frames: Vec<Vec<u8>>) {
    if frames.is_empty() {
        return;
    }
    let out: Vec<OutFrame> = session
        .with_live(|live| {
            frames
                .iter()
                .filter_map(|f| live.carrier.audio_frame(f))
                .collect()
        })
        .unwrap_or_default();
    let mut bytes = 0;
    for (frame, raw) in out.into_iter().zip(frames.iter()) {
        if session.send_carrier(Some(frame)) {
            bytes += raw.len();
            session.count("audio_frames_out");
        }
    }
    if bytes > 0 {
        session.feed(Input::TtsAudio {
            turn: job.turn,
            segment: job.segment,
            bytes,
        });
    }
}
