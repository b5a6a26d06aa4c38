//! The Deepgram live STT socket of a call: connected (authenticated upgrade), reconnected
//! with backoff while the call lasts (audio is buffered meanwhile), kept alive in silence, its
//! transcripts fed back as inputs.

use crate::live::session::Session;
use crate::platform::http::{log_line, now_ms};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use phone_agent_core::live::stt_input;
use phone_agent_core::providers::deepgram::{
    auth_header, keep_alive, listen_url, parse_message, SttMessage,
};
use phone_agent_core::providers::http_url;
use serde_json::json;
use std::rc::Rc;
use std::time::Duration;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit, WebSocket, WebsocketEvent};

/// Longest wait for the STT upgrade.
const STT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deepgram closes after 10 s without audio; a KeepAlive goes out after this much silence.
const KEEP_ALIVE_AFTER_MS: i64 = 3_000;
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
