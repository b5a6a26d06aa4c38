//! The call's TTS WebSocket (Deepgram Aura, ElevenLabs multi-context): opened while the call is
//! set up, kept for every turn, cut at the provider on barge-in (the core's `SocketSpeech` says
//! which audio is stale), and reopened when it closes. A segment never waits for the socket's
//! set-up: until it is open (the greeting, due as the call starts, while the socket opens)
//! segments are spoken over HTTP, and the socket takes over at the next segment once HTTP has
//! nothing left to send. When it cannot be opened or dies, the segments it had not finished are
//! spoken over HTTP (`tts.rs`), with a log line.

use super::stt::connect_websocket;
use super::tts::{queue_http, send_audio};
use crate::live::session::{LiveMessage, Session};
use crate::platform::http::{log_line, now_ms};
use futures_util::StreamExt;
use phone_agent_core::media::codec::AudioFormat;
use phone_agent_core::media::framing::Framer;
use phone_agent_core::media::transcode::Transcoder;
use phone_agent_core::providers::tts::TtsProvider;
use phone_agent_core::providers::tts_socket::{
    close_message, tts_socket_request, upgrade_url, SocketSegment, SocketSpeech, SpeechEvent,
    TtsSocketRequest, TtsTransport,
};
use phone_agent_core::session::Input;
use serde_json::json;
use std::rc::Rc;
use worker::{WebSocket, WebsocketEvent};

/// After a refused or failed socket the call speaks over HTTP this long before trying again
/// (a provider that refuses would otherwise cost an upgrade round trip per segment).
const RETRY_AFTER_MS: i64 = 30_000;
/// A socket that closes sooner than this after opening counts as a quick close; after two in a
/// row the call speaks over HTTP for `RETRY_AFTER_MS` (no reconnect loop with a flaky provider).
const MIN_LIFETIME_MS: i64 = 2_000;
const MAX_QUICK_CLOSES: u32 = 2;

#[derive(Default, PartialEq, Eq, Clone, Copy)]
enum LinkState {
    #[default]
    Closed,
    Connecting,
    Open,
}

/// The framing of the segment whose audio is going out.
struct Outgoing {
    turn: u32,
    segment: usize,
    framer: Framer,
    transcoder: Option<Transcoder>,
}

/// The call's TTS socket and what is in flight on it.
#[derive(Default)]
pub struct TtsLink {
    state: LinkState,
    ws: Option<WebSocket>,
    speech: Option<SocketSpeech>,
    out: Option<Outgoing>,
    /// No socket before this time (one was refused or failed): HTTP meanwhile.
    down_until_ms: i64,
    opened_at_ms: i64,
    /// Sockets in a row that closed sooner than `MIN_LIFETIME_MS` after opening.
    quick_closes: u32,
    /// Which socket is current: a reader of an older one stops.
    generation: u64,
}

/// The socket the call's voice uses, if the call speaks over one.
fn socket_request(session: &Session) -> Option<(TtsProvider, TtsSocketRequest)> {
    let config = session.config.as_ref()?;
    if config.providers.tts_transport != TtsTransport::WebSocket {
        return None;
    }
    let (provider, voice) =
        session.with_live(|live| (live.setup.tts_provider(), live.setup.voice_id.clone()))?;
    // Refusals (no key, bad voice) are reported by the HTTP path that then speaks the segment.
    let request = tts_socket_request(&config.providers, provider, voice.as_deref()).ok()??;
    Some((provider, request))
}

enum Route {
    Http,
    /// Over HTTP while the socket opens (`true`: open it now) for the segments after it.
    Opening(bool),
    Send(Option<WebSocket>, Vec<String>),
}

/// Speaks a segment over the socket; `false` when it must go over HTTP (no socket for this
/// voice or transport, the socket is down or not open yet, or HTTP segments are still going
/// out: order first).
pub(super) fn try_speak(session: &Rc<Session>, turn: u32, segment: usize, text: &str) -> bool {
    if socket_request(session).is_none() {
        return false;
    }
    let now = now_ms();
    let seg = SocketSegment {
        turn,
        segment,
        text: text.to_owned(),
    };
    let route = session.with_live(|live| {
        if live.ended || live.tts.running || !live.tts.queue.is_empty() {
            return Route::Http;
        }
        let link = &mut live.tts.link;
        match link.state {
            LinkState::Open => match link.speech.as_mut() {
                Some(speech) => Route::Send(link.ws.clone(), speech.speak(seg)),
                None => Route::Http,
            },
            // Waiting for the upgrade would put it on this segment's path: HTTP is as quick.
            LinkState::Connecting => Route::Opening(false),
            LinkState::Closed if now < link.down_until_ms => Route::Http,
            LinkState::Closed => {
                link.state = LinkState::Connecting;
                Route::Opening(true)
            }
        }
    });
    match route {
        None | Some(Route::Http) => false,
        Some(Route::Opening(connect)) => {
            session.count("tts_http_while_opening");
            if connect {
                spawn_socket(session);
            }
            false
        }
        Some(Route::Send(ws, messages)) => {
            send(session, ws.as_ref(), &messages);
            true
        }
    }
}

/// Opens the call's TTS socket ahead of the first segment (while the call is set up, in
/// parallel with the STT socket), if the call speaks over one.
pub fn prewarm_tts(session: &Rc<Session>) {
    if socket_request(session).is_none() {
        return;
    }
    let now = now_ms();
    let start = session.with_live(|live| {
        let link = &mut live.tts.link;
        let start = !live.ended && link.state == LinkState::Closed && now >= link.down_until_ms;
        if start {
            link.state = LinkState::Connecting;
        }
        start
    });
    if start == Some(true) {
        spawn_socket(session);
    }
}

/// Cuts `turn` (all with `None`) on the socket: the provider is told (`Clear` /
/// `close_context`), the audio still coming for it is dropped, the socket stays for the next turn.
pub(super) fn cancel(session: &Rc<Session>, turn: Option<u32>) {
    let sent = session.with_live(|live| {
        let link = &mut live.tts.link;
        if link
            .out
            .as_ref()
            .is_some_and(|o| turn.is_none_or(|t| t == o.turn))
        {
            link.out = None;
        }
        let messages = link
            .speech
            .as_mut()
            .map(|s| s.cancel(turn))
            .unwrap_or_default();
        (link.ws.clone(), messages)
    });
    if let Some((ws, messages)) = sent {
        if !messages.is_empty() {
            session.count("tts_socket_cancels");
        }
        send(session, ws.as_ref(), &messages);
    }
}

/// Closes the socket for good (the call ended).
pub fn close_tts(session: &Rc<Session>) {
    close_socket(session, "call ended");
}

/// Closes the socket while the call has no audio and nothing to say (with the STT stream, see
/// `stt::upkeep`): an open socket would keep the object in memory, so it could never hibernate.
/// The next caller audio opens it again ([`prewarm_tts`]), ahead of the next reply.
pub fn park_tts(session: &Rc<Session>) {
    let idle = session.with_live(|live| {
        let link = &live.tts.link;
        link.ws.is_some()
            && link.out.is_none()
            && link.speech.as_ref().is_none_or(SocketSpeech::idle)
    });
    if idle == Some(true) {
        session.record("tts_parked", json!({}));
        close_socket(session, "idle");
    }
}

fn close_socket(session: &Rc<Session>, reason: &str) {
    let closing = session.with_live(|live| {
        let link = &mut live.tts.link;
        link.generation += 1;
        link.state = LinkState::Closed;
        link.out = None;
        link.speech = None;
        link.ws.take()
    });
    let Some(Some(ws)) = closing else {
        return;
    };
    if let Some((provider, _)) = socket_request(session) {
        let _ = ws.send_with_str(close_message(provider));
    }
    let _ = ws.close(Some(1000), Some(reason));
}

fn send(session: &Rc<Session>, ws: Option<&WebSocket>, messages: &[String]) {
    let Some(ws) = ws else {
        return;
    };
    for message in messages {
        if let Err(e) = ws.send_with_str(message) {
            log_line(json!({"level": "warn", "msg": "tts socket send failed",
                "error": e.to_string()}));
            let _ = ws.close(Some(1011), Some("send failed"));
            return;
        }
        session.count("tts_socket_messages");
    }
}

fn spawn_socket(session: &Rc<Session>) {
    let session = session.clone();
    wasm_bindgen_futures::spawn_local(async move {
        run_socket(&session).await;
    });
}

async fn run_socket(session: &Rc<Session>) {
    let generation = session
        .with_live(|live| {
            live.tts.link.generation += 1;
            live.tts.link.generation
        })
        .unwrap_or_default();
    let Some((provider, request)) = socket_request(session) else {
        gone(
            session,
            generation,
            json!({"error": "no socket for this voice"}),
            true,
        );
        return;
    };
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ws = match connect_websocket(&upgrade_url(&request), &headers).await {
        Ok(ws) => ws,
        Err(e) => {
            session.count("tts_socket_failures");
            gone(session, generation, json!({"error": e}), true);
            return;
        }
    };
    let (Ok(mut events), Ok(())) = (ws.events(), ws.accept()) else {
        gone(session, generation, json!({"error": "accept failed"}), true);
        return;
    };
    let opened = session.with_live(|live| {
        let link = &mut live.tts.link;
        if live.ended || link.generation != generation {
            return None;
        }
        link.speech = Some(SocketSpeech::new(provider));
        link.ws = Some(ws.clone());
        link.state = LinkState::Open;
        link.opened_at_ms = now_ms();
        Some(())
    });
    if opened != Some(Some(())) {
        let _ = ws.close(Some(1000), Some("not needed"));
        return;
    }
    session.record(
        "tts_socket_open",
        json!({"provider": provider.as_str(), "generation": generation}),
    );
    let (closed, errored) = loop {
        let Some(event) = events.next().await else {
            break (json!({"ended": true}), false);
        };
        if !current(session, generation) {
            return;
        }
        match event {
            Ok(WebsocketEvent::Message(message)) => {
                let (out, messages) = session
                    .with_live(|live| {
                        let Some(speech) = live.tts.link.speech.as_mut() else {
                            return (Vec::new(), Vec::new());
                        };
                        if let Some(bytes) = message.bytes() {
                            (speech.on_binary(&bytes), Vec::new())
                        } else if let Some(text) = message.text() {
                            speech.on_text(&text)
                        } else {
                            (Vec::new(), Vec::new())
                        }
                    })
                    .unwrap_or_default();
                send(session, Some(&ws), &messages);
                if let Some(reason) = apply(session, out) {
                    let _ = ws.close(Some(1000), Some("provider error"));
                    break (json!({"error": reason}), true);
                }
            }
            Ok(WebsocketEvent::Close(close)) => {
                break (
                    json!({"code": close.code(), "reason": close.reason()}),
                    false,
                );
            }
            Err(e) => break (json!({"error": e.to_string()}), true),
        }
    };
    gone(session, generation, closed, errored);
}

fn current(session: &Session, generation: u64) -> bool {
    session
        .with_live(|live| !live.ended && live.tts.link.generation == generation)
        .unwrap_or(false)
}

/// Executes the socket's output in order; returns the provider's error, if it reported one.
fn apply(session: &Rc<Session>, events: Vec<SpeechEvent>) -> Option<String> {
    for event in events {
        match event {
            SpeechEvent::Audio {
                turn,
                segment,
                audio,
            } => {
                let frames = session
                    .with_live(|live| {
                        let (format, frame_bytes) =
                            (live.carrier.format(), live.carrier.frame_bytes());
                        let link = &mut live.tts.link;
                        let fresh = link
                            .out
                            .as_ref()
                            .is_none_or(|o| (o.turn, o.segment) != (turn, segment));
                        if fresh {
                            link.out = Some(Outgoing {
                                turn,
                                segment,
                                framer: Framer::new(frame_bytes, format.silence_byte()),
                                // Sockets send μ-law 8 kHz; only other carrier formats convert.
                                transcoder: (format != AudioFormat::Mulaw8k)
                                    .then(|| Transcoder::new(AudioFormat::Mulaw8k, format).ok())
                                    .flatten(),
                            });
                        }
                        let out = link.out.as_mut()?;
                        Some(match out.transcoder.as_mut() {
                            Some(t) => {
                                let mut converted = Vec::new();
                                t.push(&audio, &mut converted);
                                out.framer.push(&converted)
                            }
                            None => out.framer.push(&audio),
                        })
                    })
                    .flatten()
                    .unwrap_or_default();
                send_audio(session, turn, segment, frames);
            }
            SpeechEvent::Done(seg) => {
                let frames = session
                    .with_live(|live| {
                        let link = &mut live.tts.link;
                        let mut out = link
                            .out
                            .take_if(|o| (o.turn, o.segment) == (seg.turn, seg.segment))?;
                        let mut frames = Vec::new();
                        if let Some(t) = out.transcoder.as_mut() {
                            let mut converted = Vec::new();
                            t.flush(&mut converted);
                            frames.extend(out.framer.push(&converted));
                        }
                        frames.extend(out.framer.flush());
                        Some(frames)
                    })
                    .flatten()
                    .unwrap_or_default();
                send_audio(session, seg.turn, seg.segment, frames);
                session.broadcast(&LiveMessage::Transcript {
                    speaker: "agent",
                    text: &seg.text,
                    complete: true,
                    turn: Some(seg.turn),
                });
                session.feed(Input::TtsDone {
                    turn: seg.turn,
                    segment: seg.segment,
                });
            }
            SpeechEvent::Warning(warning) => {
                log_line(json!({"level": "warn", "msg": "tts socket warning",
                    "warning": warning}));
            }
            SpeechEvent::Failed(error) => return Some(error),
        }
    }
    None
}

/// The socket is gone (or never opened): what it had not finished is spoken over HTTP, and it
/// is reopened for the next turn unless it never opened, reported an error or keeps closing
/// quickly (then HTTP for `RETRY_AFTER_MS`).
fn gone(session: &Rc<Session>, generation: u64, detail: serde_json::Value, failed: bool) {
    let now = now_ms();
    let left = session.with_live(|live| {
        let link = &mut live.tts.link;
        if link.generation != generation {
            return None;
        }
        let was_open = link.state == LinkState::Open;
        if was_open && now - link.opened_at_ms < MIN_LIFETIME_MS {
            link.quick_closes += 1;
        } else if was_open {
            link.quick_closes = 0;
        }
        let down = failed || !was_open || link.quick_closes >= MAX_QUICK_CLOSES;
        let left: Vec<SocketSegment> = link
            .speech
            .take()
            .map(|mut s| s.take_unfinished())
            .unwrap_or_default();
        link.ws = None;
        link.out = None;
        link.state = LinkState::Closed;
        if down {
            link.down_until_ms = now + RETRY_AFTER_MS;
            link.quick_closes = 0;
        }
        Some((left, live.ended, down))
    });
    let Some(Some((left, ended, down))) = left else {
        return;
    };
    if ended {
        return;
    }
    session.record("tts_socket_closed", detail.clone());
    if !left.is_empty() || down {
        log_line(json!({"level": "warn",
            "msg": "tts socket unavailable; speaking over HTTP", "detail": detail,
            "segments": left.len()}));
    }
    for seg in left {
        session.count("tts_http_fallbacks");
        queue_http(session, seg.turn, seg.segment, seg.text);
    }
    if !down {
        // Closed under a live call (the provider's idle timeout): ready again for the next turn.
        prewarm_tts(session);
    }
}
