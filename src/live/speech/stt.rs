//! The Deepgram live STT socket of a call (Nova `/v1/listen` or Flux `/v2/listen`, as the
//! agent's model says): connected (authenticated upgrade), reconnected with backoff while the
//! call lasts (audio is buffered meanwhile), kept alive over short gaps in the carrier's audio
//! and closed over long ones (the next audio reopens it: see `core::live::stt_upkeep`), its
//! transcripts fed back as inputs.

use crate::live::session::{LiveMessage, Session};
use crate::platform::http::{log_line, now_ms};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use phone_agent_core::live::{stt_input, stt_upkeep, SttUpkeep, STT_IDLE_CLOSE_MS};
use phone_agent_core::providers::deepgram::{
    auth_header, close_stream, keep_alive, listen_url, parse_message, SttMessage, TurnEvent,
};
use phone_agent_core::providers::http_url;
use serde_json::json;
use std::rc::Rc;
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, WebSocket, WebsocketEvent};

/// Longest wait for the STT upgrade.
const STT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff bounds.
const RECONNECT_MIN_MS: u64 = 100;
const RECONNECT_MAX_MS: u64 = 5_000;

/// Starts the STT connection task unless one runs (it reconnects by itself until the call ends).
pub fn start_stt(session: &Rc<Session>) {
    let start = session.with_live(|live| {
        if live.stt.running || live.stt.closing || live.ended {
            false
        } else {
            live.stt.running = true;
            live.stt.parked = false;
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
            live.stt.last_audio_ms = live.stt.last_audio_ms.max(now_ms());
        });
        if attempt > 1 {
            session.count("stt_reconnects");
        }
        session.record("stt_connected", json!({"attempt": attempt}));
        backoff = RECONNECT_MIN_MS;
        // Read until the socket closes; check its upkeep once a second.
        let mut close_sent = false;
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
                    // Completes the closing handshake (Deepgram waits for our close frame, and
                    // a half-closed socket would keep the object in memory).
                    let _ = ws.close(Some(1000), Some("closed"));
                    break json!({"code": close.code(), "reason": close.reason()});
                }
                Either::Left((Some(Err(e)), _)) => break json!({"error": e.to_string()}),
                Either::Left((None, _)) => break json!({"ended": true}),
                Either::Right(((), _)) => {
                    if close_sent {
                        // Deepgram answers CloseStream by closing; it did not within a second.
                        let _ = ws.close(Some(1000), Some("stream closed"));
                        break json!({"closed_by": "session"});
                    }
                    close_sent = upkeep(session, &ws);
                }
            }
        };
        let parked = session
            .with_live(|live| {
                live.stt.ws = None;
                live.stt.parked
            })
            .unwrap_or(false);
        session.record("stt_closed", closed);
        if parked {
            // The TTS socket too, or it alone would keep the object in memory.
            super::park_tts(session);
        }
        if stt_closing(session) || parked {
            return;
        }
        // Closed under a live call (provider hiccup, workerd's 1005 after a fetch): reconnect
        // at once; audio is buffered meanwhile.
        log_line(json!({"level": "warn", "msg": "stt socket closed mid-call; reconnecting"}));
    }
}

/// Once a second on an open stream: a KeepAlive over a short gap in the carrier's audio; over a
/// long one the stream is closed and parked (audio from then on waits for the next stream, which
/// the next audio opens), so nothing keeps the object in memory while the call has no audio.
/// Whether `CloseStream` was sent.
fn upkeep(session: &Rc<Session>, ws: &WebSocket) -> bool {
    let now = now_ms();
    let step = session
        .with_live(|live| {
            if live.stt.closing {
                return SttUpkeep::Nothing;
            }
            if live.stt.batch.flush_due(now, live.stt.last_audio_ms) {
                // The carrier paused: what the batch holds must not wait for more audio.
                let held = live.stt.batch.take();
                if ws.send_with_bytes(&held).is_ok() {
                    live.stt.last_sent_ms = now;
                }
            }
            let step = stt_upkeep(now, live.stt.last_audio_ms, live.stt.last_sent_ms);
            match step {
                SttUpkeep::KeepAlive => live.stt.last_sent_ms = now,
                SttUpkeep::Close => {
                    live.stt.parked = true;
                    live.stt.ws = None;
                }
                SttUpkeep::Nothing => {}
            }
            step
        })
        .unwrap_or(SttUpkeep::Nothing);
    match step {
        SttUpkeep::KeepAlive => {
            if ws.send_with_str(keep_alive()).is_ok() {
                session.count("stt_keepalives");
            }
            false
        }
        SttUpkeep::Close => {
            session.record("stt_parked", json!({"idle_ms": STT_IDLE_CLOSE_MS}));
            let _ = ws.send_with_str(close_stream());
            true
        }
        SttUpkeep::Nothing => false,
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
            session.broadcast(&LiveMessage::Transcript {
                speaker: "caller",
                text: transcript,
                complete: *is_final,
                turn: None,
            });
        }
    }
    if let SttMessage::TurnInfo {
        event, transcript, ..
    } = &message
    {
        if !transcript.trim().is_empty() {
            session.broadcast(&LiveMessage::Transcript {
                speaker: "caller",
                text: transcript,
                complete: *event == TurnEvent::EndOfTurn,
                turn: None,
            });
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
pub(super) async fn connect_websocket(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<WebSocket, String> {
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
