//! Text-to-speech over a WebSocket kept open for the whole call (Deepgram Aura `/v1/speak`,
//! ElevenLabs `multi-stream-input`): the upgrade to open, the messages that speak a segment or
//! cut a turn, and [`SocketSpeech`], which matches what the provider sends back to the segments
//! in flight so that audio of a cut turn never reaches the carrier.
//!
//! Wire formats and their sources are in docs/protocols.md ("TTS over WebSocket").

use super::tts::{TtsError, TtsProvider, ELEVENLABS_MODEL};
use super::{encode_component, http_url};
use crate::config::Providers;
use crate::voice::websocket_base;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use std::collections::VecDeque;

/// How a live call reaches its TTS provider (`TTS_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtsTransport {
    /// One socket per call, text streamed in as the conversation produces it (falls back to
    /// HTTP per segment when the socket cannot be opened or dies).
    #[default]
    WebSocket,
    /// One HTTP request per segment.
    Http,
}

impl TtsTransport {
    /// Parses `websocket` or `http`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "websocket" => Some(TtsTransport::WebSocket),
            "http" => Some(TtsTransport::Http),
            _ => None,
        }
    }
}

/// A TTS socket to open: `fetch` of `url` (http form) with `Upgrade: websocket` and `headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsSocketRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// Segments sent to the provider and not yet finished, at most: ElevenLabs allows 5 contexts
/// per connection and a cut context that was flushed keeps generating until it is done, so two
/// cut plus two new stay within it; Aura limits flushes. The next sentence is always one ahead.
pub const MAX_IN_FLIGHT: usize = 2;

/// ElevenLabs closes a socket after this many idle seconds (its maximum): calls pause.
const ELEVENLABS_INACTIVITY_S: u32 = 180;

/// The socket that speaks with `voice` (or the provider's default); `Ok(None)` when the
/// provider has no streaming socket (OpenAI), so the call speaks over HTTP.
pub fn tts_socket_request(
    providers: &Providers,
    provider: TtsProvider,
    voice: Option<&str>,
) -> Result<Option<TtsSocketRequest>, TtsError> {
    let voice = super::tts::checked_voice(provider, voice)?;
    match provider {
        TtsProvider::DeepgramAura => {
            let auth = super::tts::auth_header(providers, provider)?;
            let base = websocket_base(providers.deepgram_url.trim_end_matches('/'));
            Ok(Some(TtsSocketRequest {
                // The socket sends raw audio: no `container` (it takes none).
                url: format!("{base}/v1/speak?model={voice}&encoding=mulaw&sample_rate=8000"),
                headers: vec![auth],
            }))
        }
        TtsProvider::ElevenLabs => {
            let auth = super::tts::auth_header(providers, provider)?;
            let base = websocket_base(providers.elevenlabs_url.trim_end_matches('/'));
            Ok(Some(TtsSocketRequest {
                url: format!(
                    "{base}/v1/text-to-speech/{voice}/multi-stream-input?model_id={}\
                     &output_format=ulaw_8000&inactivity_timeout={ELEVENLABS_INACTIVITY_S}",
                    encode_component(ELEVENLABS_MODEL)
                ),
                headers: vec![auth],
            }))
        }
        TtsProvider::OpenAi => Ok(None),
    }
}

/// The http form of a socket URL, for the upgrade `fetch`.
pub fn upgrade_url(request: &TtsSocketRequest) -> String {
    http_url(&request.url)
}

/// The message that ends the socket politely (the call is over).
pub fn close_message(provider: TtsProvider) -> String {
    match provider {
        TtsProvider::ElevenLabs => json!({"close_socket": true}).to_string(),
        _ => json!({"type": "Close"}).to_string(),
    }
}

/// One segment of a reply, as handed to the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSegment {
    pub turn: u32,
    pub segment: usize,
    pub text: String,
}

/// What the edge does with the socket's output, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeechEvent {
    /// Audio (μ-law 8 kHz) of a segment, to frame and send to the carrier now.
    Audio {
        turn: u32,
        segment: usize,
        audio: Vec<u8>,
    },
    /// All of a segment's audio was handed over.
    Done(SocketSegment),
    /// The provider warned (logged, nothing stops).
    Warning(String),
    /// The provider reported an error for the socket: it is not to be trusted any more.
    Failed(String),
}

/// A segment sent to the provider.
#[derive(Debug)]
struct InFlight {
    seg: SocketSegment,
    /// ElevenLabs context (one per segment, so its `isFinal` marks the segment's end).
    context: String,
    /// Audio that arrived before the segments ahead of it finished (ElevenLabs contexts may
    /// generate side by side; the carrier must hear them in order).
    held: Vec<u8>,
    /// The provider said it is complete (waiting for the segments ahead of it).
    finished: bool,
    /// Some of its audio has been handed over.
    started: bool,
}

/// The speech state of one TTS socket: which segment the provider's output belongs to, which
/// output is stale. Pure: the edge feeds it what it reads and sends what it returns.
#[derive(Debug)]
pub struct SocketSpeech {
    provider: TtsProvider,
    in_flight: VecDeque<InFlight>,
    /// Segments waiting for room in flight.
    waiting: VecDeque<SocketSegment>,
    /// Aura `Clear`s whose `Cleared` has not come back: until then every audio frame and
    /// `Flushed` belongs to cut text.
    clearing: u32,
    next_context: u64,
}

/// An ElevenLabs server message (`AudioOutputMulti` / `FinalOutputMulti`, or an error).
#[derive(Deserialize)]
struct ElevenLabsMessage {
    audio: Option<String>,
    #[serde(rename = "isFinal")]
    is_final: Option<bool>,
    #[serde(rename = "contextId")]
    context_id: Option<String>,
    error: Option<String>,
    message: Option<String>,
}

/// An Aura server JSON message (`Metadata`, `Flushed`, `Cleared`, `Warning`, `Error`).
#[derive(Deserialize)]
struct AuraMessage {
    #[serde(rename = "type")]
    kind: String,
    description: Option<String>,
    code: Option<String>,
}

impl SocketSpeech {
    /// A fresh socket's state.
    pub fn new(provider: TtsProvider) -> Self {
        SocketSpeech {
            provider,
            in_flight: VecDeque::new(),
            waiting: VecDeque::new(),
            clearing: 0,
            next_context: 0,
        }
    }

    /// Queues a segment; returns the messages to send now (none while the socket is full).
    pub fn speak(&mut self, seg: SocketSegment) -> Vec<String> {
        self.waiting.push_back(seg);
        self.fill()
    }

    /// Whether nothing is in flight or waiting.
    pub fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.waiting.is_empty()
    }

    /// Sends waiting segments while there is room.
    fn fill(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some(seg) = self.waiting.pop_front() else {
                break;
            };
            self.next_context += 1;
            let context = format!("c{}", self.next_context);
            out.extend(self.segment_messages(&seg.text, &context));
            self.in_flight.push_back(InFlight {
                seg,
                context,
                held: Vec::new(),
                finished: false,
                started: false,
            });
        }
        out
    }

    fn segment_messages(&self, text: &str, context: &str) -> Vec<String> {
        match self.provider {
            // Flush at once: the conversation hands over whole sentences, and the `Flushed`
            // answer is what marks the segment's end.
            TtsProvider::DeepgramAura => vec![
                json!({"type": "Speak", "text": text}).to_string(),
                json!({"type": "Flush"}).to_string(),
            ],
            // A context per segment: the text (ending with a space, as the API asks) flushed,
            // then the context closed so that its `isFinal` comes once its audio is out.
            _ => vec![
                json!({"text": format!("{} ", text.trim_end()), "context_id": context,
                       "flush": true})
                .to_string(),
                json!({"context_id": context, "close_context": true}).to_string(),
            ],
        }
    }

    /// Cuts `turn` (every turn with `None`): its segments are forgotten, their audio from now
    /// on dropped. Returns the messages that stop the provider: Aura's `Clear` (which empties
    /// everything, so segments of other turns are sent again), ElevenLabs' `close_context` per
    /// cut context.
    pub fn cancel(&mut self, turn: Option<u32>) -> Vec<String> {
        let cut = |s: &SocketSegment| turn.is_none_or(|t| t == s.turn);
        self.waiting.retain(|s| !cut(s));
        let (gone, kept): (Vec<InFlight>, Vec<InFlight>) =
            self.in_flight.drain(..).partition(|f| cut(&f.seg));
        if gone.is_empty() {
            self.in_flight = kept.into();
            return self.fill();
        }
        let mut out = Vec::new();
        match self.provider {
            TtsProvider::DeepgramAura => {
                out.push(json!({"type": "Clear"}).to_string());
                self.clearing += 1;
                // Clear drops all of the provider's text: what is kept is spoken again.
                for f in kept.into_iter().rev() {
                    self.waiting.push_front(f.seg);
                }
            }
            _ => {
                for f in &gone {
                    out.push(json!({"context_id": f.context, "close_context": true}).to_string());
                }
                self.in_flight = kept.into();
            }
        }
        out.extend(self.fill());
        out
    }

    /// Everything not yet finished, in order, for the HTTP path (the socket is gone).
    pub fn take_unfinished(&mut self) -> Vec<SocketSegment> {
        let mut out: Vec<SocketSegment> = self.in_flight.drain(..).map(|f| f.seg).collect();
        out.extend(self.waiting.drain(..));
        out
    }

    /// Whether the head segment already sent audio (a fallback would repeat its start).
    pub fn head_started(&self) -> bool {
        self.in_flight.front().is_some_and(|f| f.started)
    }

    /// A binary frame (Aura's audio): it belongs to the head segment unless a `Clear` is
    /// still being answered.
    pub fn on_binary(&mut self, audio: &[u8]) -> Vec<SpeechEvent> {
        if self.clearing > 0 || audio.is_empty() {
            return Vec::new();
        }
        match self.in_flight.front_mut() {
            Some(head) => {
                head.started = true;
                vec![SpeechEvent::Audio {
                    turn: head.seg.turn,
                    segment: head.seg.segment,
                    audio: audio.to_vec(),
                }]
            }
            None => Vec::new(),
        }
    }

    /// A text frame. Returns what to do, and the messages to send (segments that now fit).
    pub fn on_text(&mut self, text: &str) -> (Vec<SpeechEvent>, Vec<String>) {
        match self.provider {
            TtsProvider::DeepgramAura => self.on_aura(text),
            _ => self.on_elevenlabs(text),
        }
    }

    fn on_aura(&mut self, text: &str) -> (Vec<SpeechEvent>, Vec<String>) {
        let Ok(message) = serde_json::from_str::<AuraMessage>(text) else {
            return (
                vec![SpeechEvent::Warning(format!("unreadable message: {text}"))],
                Vec::new(),
            );
        };
        match message.kind.as_str() {
            "Flushed" if self.clearing == 0 => {
                let mut events = Vec::new();
                if let Some(head) = self.in_flight.pop_front() {
                    events.push(SpeechEvent::Done(head.seg));
                }
                (events, self.fill())
            }
            "Cleared" => {
                self.clearing = self.clearing.saturating_sub(1);
                (Vec::new(), Vec::new())
            }
            "Warning" => (vec![SpeechEvent::Warning(describe(&message))], Vec::new()),
            "Error" => (vec![SpeechEvent::Failed(describe(&message))], Vec::new()),
            // Metadata, or a Flushed for cut text.
            _ => (Vec::new(), Vec::new()),
        }
    }

    fn on_elevenlabs(&mut self, text: &str) -> (Vec<SpeechEvent>, Vec<String>) {
        let Ok(message) = serde_json::from_str::<ElevenLabsMessage>(text) else {
            return (
                vec![SpeechEvent::Warning(format!("unreadable message: {text}"))],
                Vec::new(),
            );
        };
        if let Some(error) = message.error {
            let detail = message.message.unwrap_or_default();
            return (
                vec![SpeechEvent::Failed(format!("{error}: {detail}"))],
                Vec::new(),
            );
        }
        // No context id: the default context, which this client never uses.
        let Some(context) = message.context_id else {
            return (Vec::new(), Vec::new());
        };
        let Some(index) = self.in_flight.iter().position(|f| f.context == context) else {
            // A cut (closed) context: stale.
            return (Vec::new(), Vec::new());
        };
        let mut events = Vec::new();
        if let Some(audio) = message.audio.filter(|a| !a.is_empty()) {
            let Ok(bytes) = BASE64.decode(audio.as_bytes()) else {
                return (
                    vec![SpeechEvent::Warning("audio is not base64".to_owned())],
                    Vec::new(),
                );
            };
            let entry = &mut self.in_flight[index];
            if index == 0 {
                entry.started = true;
                events.push(SpeechEvent::Audio {
                    turn: entry.seg.turn,
                    segment: entry.seg.segment,
                    audio: bytes,
                });
            } else {
                entry.held.extend_from_slice(&bytes);
            }
        }
        if message.is_final == Some(true) {
            self.in_flight[index].finished = true;
        }
        // Finished heads leave; the next one's held audio goes out behind them.
        while self.in_flight.front().is_some_and(|f| f.finished) {
            let Some(head) = self.in_flight.pop_front() else {
                break;
            };
            events.push(SpeechEvent::Done(head.seg));
            if let Some(next) = self.in_flight.front_mut() {
                if !next.held.is_empty() {
                    next.started = true;
                    events.push(SpeechEvent::Audio {
                        turn: next.seg.turn,
                        segment: next.seg.segment,
                        audio: std::mem::take(&mut next.held),
                    });
                }
            }
        }
        (events, self.fill())
    }
}

fn describe(message: &AuraMessage) -> String {
    format!(
        "{}: {}",
        message.code.as_deref().unwrap_or("-"),
        message.description.as_deref().unwrap_or("-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn providers(vars: &[(&str, &str)]) -> Providers {
        crate::config::from_pairs(vars).unwrap().providers
    }

    fn seg(turn: u32, segment: usize, text: &str) -> SocketSegment {
        SocketSegment {
            turn,
            segment,
            text: text.to_owned(),
        }
    }

    fn parsed(messages: &[String]) -> Vec<Value> {
        messages
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect()
    }

    #[test]
    fn transport_names() {
        assert_eq!(
            TtsTransport::from_name("websocket"),
            Some(TtsTransport::WebSocket)
        );
        assert_eq!(TtsTransport::from_name("HTTP"), Some(TtsTransport::Http));
        assert_eq!(TtsTransport::from_name("grpc"), None);
        assert_eq!(TtsTransport::default(), TtsTransport::WebSocket);
    }

    #[test]
    fn socket_urls_derive_from_the_http_base_urls() {
        let p = providers(&[("DEEPGRAM_API_KEY", "dg"), ("ELEVENLABS_API_KEY", "xi")]);
        let aura = tts_socket_request(&p, TtsProvider::DeepgramAura, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            aura.url,
            "wss://api.deepgram.com/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000"
        );
        assert_eq!(
            aura.headers,
            vec![("Authorization".into(), "Token dg".into())]
        );
        assert_eq!(
            upgrade_url(&aura),
            "https://api.deepgram.com/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000"
        );
        let eleven = tts_socket_request(&p, TtsProvider::ElevenLabs, Some("rachel"))
            .unwrap()
            .unwrap();
        assert_eq!(
            eleven.url,
            "wss://api.elevenlabs.io/v1/text-to-speech/rachel/multi-stream-input?model_id=eleven_flash_v2_5&output_format=ulaw_8000&inactivity_timeout=180"
        );
        assert_eq!(eleven.headers, vec![("xi-api-key".into(), "xi".into())]);

        let local = providers(&[
            ("ELEVENLABS_API_KEY", "xi"),
            ("ELEVENLABS_URL", "http://127.0.0.1:9100/"),
        ]);
        let req = tts_socket_request(&local, TtsProvider::ElevenLabs, None)
            .unwrap()
            .unwrap();
        assert!(req
            .url
            .starts_with("ws://127.0.0.1:9100/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/"));
        assert!(upgrade_url(&req).starts_with("http://127.0.0.1:9100/"));
    }

    #[test]
    fn openai_has_no_socket_and_refusals_match_http() {
        let p = providers(&[("OPENAI_API_KEY", "sk")]);
        assert_eq!(tts_socket_request(&p, TtsProvider::OpenAi, None), Ok(None));
        assert_eq!(
            tts_socket_request(&p, TtsProvider::DeepgramAura, None),
            Err(TtsError::MissingApiKey("DEEPGRAM_API_KEY"))
        );
        let p = providers(&[("ELEVENLABS_API_KEY", "xi")]);
        assert_eq!(
            tts_socket_request(&p, TtsProvider::ElevenLabs, Some("a/b")),
            Err(TtsError::InvalidVoice("a/b".into()))
        );
    }

    #[test]
    fn aura_speaks_segments_in_order_and_flushed_ends_each() {
        let mut s = SocketSpeech::new(TtsProvider::DeepgramAura);
        let sent = s.speak(seg(1, 0, "Hello there."));
        assert_eq!(
            parsed(&sent),
            vec![
                json!({"type": "Speak", "text": "Hello there."}),
                json!({"type": "Flush"})
            ]
        );
        assert_eq!(s.speak(seg(1, 1, "How can I help?")).len(), 2);
        assert_eq!(
            s.on_binary(&[1, 2, 3]),
            vec![SpeechEvent::Audio {
                turn: 1,
                segment: 0,
                audio: vec![1, 2, 3]
            }]
        );
        assert!(s.head_started());
        let (events, _) = s.on_text(r#"{"type":"Metadata","request_id":"r"}"#);
        assert!(events.is_empty());
        let (events, _) = s.on_text(r#"{"type":"Flushed","sequence_id":0}"#);
        assert_eq!(events, vec![SpeechEvent::Done(seg(1, 0, "Hello there."))]);
        assert_eq!(
            s.on_binary(&[9]),
            vec![SpeechEvent::Audio {
                turn: 1,
                segment: 1,
                audio: vec![9]
            }]
        );
        let (events, _) = s.on_text(r#"{"type":"Flushed","sequence_id":1}"#);
        assert_eq!(
            events,
            vec![SpeechEvent::Done(seg(1, 1, "How can I help?"))]
        );
        assert!(s.idle());
        // Audio nobody asked for is dropped.
        assert!(s.on_binary(&[7]).is_empty());
    }

    #[test]
    fn aura_clear_drops_everything_until_cleared() {
        let mut s = SocketSpeech::new(TtsProvider::DeepgramAura);
        s.speak(seg(2, 0, "A long sentence."));
        s.speak(seg(2, 1, "Another one."));
        assert_eq!(s.on_binary(&[1]).len(), 1);
        assert_eq!(parsed(&s.cancel(Some(2))), vec![json!({"type": "Clear"})]);
        // The next turn is spoken at once, but what arrives before `Cleared` is the cut text.
        let sent = s.speak(seg(3, 0, "Sure."));
        assert_eq!(sent.len(), 2);
        assert!(s.on_binary(&[5, 5]).is_empty());
        assert!(s
            .on_text(r#"{"type":"Flushed","sequence_id":0}"#)
            .0
            .is_empty());
        assert!(s
            .on_text(r#"{"type":"Cleared","sequence_id":0}"#)
            .0
            .is_empty());
        assert_eq!(
            s.on_binary(&[6]),
            vec![SpeechEvent::Audio {
                turn: 3,
                segment: 0,
                audio: vec![6]
            }]
        );
        assert_eq!(
            s.on_text(r#"{"type":"Flushed","sequence_id":1}"#).0,
            vec![SpeechEvent::Done(seg(3, 0, "Sure."))]
        );
    }

    #[test]
    fn aura_clear_resends_segments_of_other_turns() {
        let mut s = SocketSpeech::new(TtsProvider::DeepgramAura);
        s.speak(seg(4, 0, "Old."));
        s.speak(seg(5, 0, "New."));
        let sent = parsed(&s.cancel(Some(4)));
        assert_eq!(
            sent,
            vec![
                json!({"type": "Clear"}),
                json!({"type": "Speak", "text": "New."}),
                json!({"type": "Flush"})
            ]
        );
        // Nothing of another turn: no message at all.
        assert!(s.cancel(Some(9)).is_empty());
    }

    #[test]
    fn aura_warning_and_error() {
        let mut s = SocketSpeech::new(TtsProvider::DeepgramAura);
        let (events, _) =
            s.on_text(r#"{"type":"Warning","description":"Flush limit","code":"W1"}"#);
        assert_eq!(events, vec![SpeechEvent::Warning("W1: Flush limit".into())]);
        let (events, _) = s.on_text(r#"{"type":"Error","description":"bad","code":"E"}"#);
        assert_eq!(events, vec![SpeechEvent::Failed("E: bad".into())]);
        let (events, _) = s.on_text("not json");
        assert!(matches!(events[0], SpeechEvent::Warning(_)));
    }

    fn eleven_audio(context: &str, bytes: &[u8]) -> String {
        json!({"audio": BASE64.encode(bytes), "isFinal": null, "contextId": context,
               "alignment": null})
        .to_string()
    }

    fn eleven_final(context: &str) -> String {
        json!({"isFinal": true, "contextId": context}).to_string()
    }

    #[test]
    fn elevenlabs_context_per_segment_in_order() {
        let mut s = SocketSpeech::new(TtsProvider::ElevenLabs);
        assert_eq!(
            parsed(&s.speak(seg(1, 0, "Hi."))),
            vec![
                json!({"text": "Hi. ", "context_id": "c1", "flush": true}),
                json!({"context_id": "c1", "close_context": true})
            ]
        );
        s.speak(seg(1, 1, "Bye."));
        // The second context's audio arrives first: held until the first is done.
        assert!(s.on_text(&eleven_audio("c2", &[2, 2])).0.is_empty());
        let (events, _) = s.on_text(&eleven_audio("c1", &[1]));
        assert_eq!(
            events,
            vec![SpeechEvent::Audio {
                turn: 1,
                segment: 0,
                audio: vec![1]
            }]
        );
        assert!(s.on_text(&eleven_final("c2")).0.is_empty());
        let (events, _) = s.on_text(&eleven_final("c1"));
        assert_eq!(
            events,
            vec![
                SpeechEvent::Done(seg(1, 0, "Hi.")),
                SpeechEvent::Audio {
                    turn: 1,
                    segment: 1,
                    audio: vec![2, 2]
                },
                SpeechEvent::Done(seg(1, 1, "Bye.")),
            ]
        );
        assert!(s.idle());
    }

    #[test]
    fn elevenlabs_barge_in_closes_the_cut_contexts_and_drops_their_audio() {
        let mut s = SocketSpeech::new(TtsProvider::ElevenLabs);
        s.speak(seg(1, 0, "One."));
        s.speak(seg(1, 1, "Two."));
        assert_eq!(s.on_text(&eleven_audio("c1", &[1])).0.len(), 1);
        assert_eq!(
            parsed(&s.cancel(Some(1))),
            vec![
                json!({"context_id": "c1", "close_context": true}),
                json!({"context_id": "c2", "close_context": true})
            ]
        );
        assert!(s.on_text(&eleven_audio("c1", &[1])).0.is_empty());
        assert!(s.on_text(&eleven_final("c2")).0.is_empty());
        s.speak(seg(2, 0, "Next."));
        assert_eq!(
            s.on_text(&eleven_audio("c3", &[3])).0,
            vec![SpeechEvent::Audio {
                turn: 2,
                segment: 0,
                audio: vec![3]
            }]
        );
        let (events, _) =
            s.on_text(r#"{"error":"quota_exceeded","message":"no credits","code":1008}"#);
        assert_eq!(
            events,
            vec![SpeechEvent::Failed("quota_exceeded: no credits".into())]
        );
    }

    #[test]
    fn a_full_socket_holds_segments_back_and_hands_back_the_unfinished() {
        let mut s = SocketSpeech::new(TtsProvider::ElevenLabs);
        for i in 0..5 {
            let sent = s.speak(seg(1, i, &format!("S{i}.")));
            assert_eq!(sent.len(), if i < MAX_IN_FLIGHT { 2 } else { 0 });
        }
        let (events, sent) = s.on_text(&eleven_final("c1"));
        assert_eq!(events, vec![SpeechEvent::Done(seg(1, 0, "S0."))]);
        assert_eq!(parsed(&sent)[0]["text"], format!("S{MAX_IN_FLIGHT}. "));
        let left: Vec<usize> = s.take_unfinished().iter().map(|x| x.segment).collect();
        assert_eq!(left, vec![1, 2, 3, 4]);
        assert!(s.idle());
        assert_eq!(
            close_message(TtsProvider::DeepgramAura),
            r#"{"type":"Close"}"#
        );
    }
}
