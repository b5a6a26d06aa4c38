//! Deepgram live speech-to-text: Nova (`/v1/listen`, segment results) and Flux (`/v2/listen`,
//! turn events): connection URL, control frames, server messages.

use super::encode_component;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// Raw audio encodings the carriers deliver and Deepgram accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SttEncoding {
    /// G.711 μ-law (Twilio, Telnyx PCMU).
    Mulaw,
    /// G.711 A-law (Telnyx PCMA).
    Alaw,
    /// PCM16 little-endian (Exotel; Telnyx L16 must be byte-swapped first).
    Linear16,
}

impl SttEncoding {
    /// The `encoding` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            SttEncoding::Mulaw => "mulaw",
            SttEncoding::Alaw => "alaw",
            SttEncoding::Linear16 => "linear16",
        }
    }
}

/// Flux turn-detection settings (`/v2/listen`); thresholds in thousandths so the settings
/// stay comparable (`Eq`) and print exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FluxTurns {
    /// `eot_threshold` (0.5–0.9): end-of-turn confidence that ends the turn.
    pub eot_threshold_milli: Option<u32>,
    /// `eager_eot_threshold` (0.3–0.9): enables `EagerEndOfTurn` / `TurnResumed`; `None` omits it.
    pub eager_eot_threshold_milli: Option<u32>,
    /// `eot_timeout_ms`: silence after which the turn ends whatever the confidence.
    pub eot_timeout_ms: Option<u32>,
}

/// Query parameters of a live transcription stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenParams {
    /// `Some` streams to Flux (`/v2/listen`, only model/encoding/sample_rate and these apply);
    /// `None` to Nova (`/v1/listen`).
    pub flux: Option<FluxTurns>,
    pub encoding: SttEncoding,
    pub sample_rate: u32,
    pub channels: u32,
    pub model: String,
    pub language: String,
    pub interim_results: bool,
    /// Silence (ms) that ends a segment; `None` sends `endpointing=false`, because the server
    /// default of 10 ms cuts phone callers off mid-sentence.
    pub endpointing_ms: Option<u32>,
    /// Gap (ms) after the last final word before `UtteranceEnd`; `None` omits it.
    pub utterance_end_ms: Option<u32>,
    pub vad_events: bool,
    pub smart_format: bool,
    pub punctuate: bool,
}

impl ListenParams {
    /// The recommended settings for 8 kHz mono phone audio (docs/protocols.md §6).
    pub fn phone(encoding: SttEncoding, model: &str, language: &str) -> Self {
        ListenParams {
            flux: None,
            encoding,
            sample_rate: 8000,
            channels: 1,
            model: model.to_owned(),
            language: language.to_owned(),
            interim_results: true,
            endpointing_ms: Some(300),
            utterance_end_ms: Some(1000),
            vad_events: true,
            smart_format: true,
            punctuate: true,
        }
    }
}

/// A threshold in thousandths as Deepgram's decimal (`700` → `0.7`).
fn decimal(milli: u32) -> String {
    let text = format!("{}.{:03}", milli / 1000, milli % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The WebSocket URL for `base` (`wss://api.deepgram.com` or a fake's `ws://127.0.0.1:port`).
pub fn listen_url(base: &str, p: &ListenParams) -> String {
    if let Some(flux) = &p.flux {
        let mut query = vec![
            ("model", encode_component(&p.model)),
            ("encoding", p.encoding.as_str().to_owned()),
            ("sample_rate", p.sample_rate.to_string()),
        ];
        if let Some(t) = flux.eot_threshold_milli {
            query.push(("eot_threshold", decimal(t)));
        }
        if let Some(t) = flux.eager_eot_threshold_milli {
            query.push(("eager_eot_threshold", decimal(t)));
        }
        if let Some(ms) = flux.eot_timeout_ms {
            query.push(("eot_timeout_ms", ms.to_string()));
        }
        let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        return format!(
            "{}/v2/listen?{}",
            base.trim_end_matches('/'),
            query.join("&")
        );
    }
    let endpointing = p
        .endpointing_ms
        .map_or_else(|| "false".to_owned(), |ms| ms.to_string());
    let mut query = vec![
        ("model", encode_component(&p.model)),
        ("language", encode_component(&p.language)),
        ("encoding", p.encoding.as_str().to_owned()),
        ("sample_rate", p.sample_rate.to_string()),
        ("channels", p.channels.to_string()),
        ("interim_results", p.interim_results.to_string()),
        ("endpointing", endpointing),
    ];
    if let Some(ms) = p.utterance_end_ms {
        query.push(("utterance_end_ms", ms.to_string()));
    }
    query.push(("vad_events", p.vad_events.to_string()));
    query.push(("smart_format", p.smart_format.to_string()));
    query.push(("punctuate", p.punctuate.to_string()));
    let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}/v1/listen?{}",
        base.trim_end_matches('/'),
        query.join("&")
    )
}

/// The header that authenticates the upgrade request: `Authorization: Token <key>`.
pub fn auth_header(key: &str) -> (&'static str, String) {
    ("Authorization", format!("Token {key}"))
}

/// Text frame that keeps an idle stream open; send every 3–5 s while no audio flows.
pub fn keep_alive() -> &'static str {
    r#"{"type":"KeepAlive"}"#
}

/// Text frame asking the server to finish, send its last results and `Metadata`, then close.
pub fn close_stream() -> &'static str {
    r#"{"type":"CloseStream"}"#
}

/// Text frame that flushes buffered audio into results marked `from_finalize`.
pub fn finalize() -> &'static str {
    r#"{"type":"Finalize"}"#
}

/// One recognised word with its timing (seconds from stream start).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub confidence: f64,
    #[serde(default)]
    pub punctuated_word: Option<String>,
}

/// A server text frame.
#[derive(Debug, Clone, PartialEq)]
pub enum SttMessage {
    /// A `Results` frame: the best alternative of one segment.
    Transcript {
        transcript: String,
        /// This segment's text will not change.
        is_final: bool,
        /// Endpointing saw enough silence: a natural end of turn.
        speech_final: bool,
        /// The segment was produced by a `Finalize` request.
        from_finalize: bool,
        confidence: f64,
        start: f64,
        duration: f64,
        words: Vec<Word>,
    },
    /// No new final word for `utterance_end_ms`: a backup end-of-turn signal.
    UtteranceEnd { last_word_end: f64 },
    /// Voice activity began (needs `vad_events=true`); a barge-in hint.
    SpeechStarted { timestamp: f64 },
    /// Stream summary, sent after `CloseStream`.
    Metadata { request_id: String },
    /// Flux: the stream is open.
    Connected { request_id: String },
    /// Flux: the state of the caller's turn; `transcript` is the whole turn so far.
    TurnInfo {
        event: TurnEvent,
        turn_index: u32,
        transcript: String,
        end_of_turn_confidence: f64,
        words: Vec<FluxWord>,
    },
    /// The server reports a failure; the socket usually closes next.
    Error {
        variant: String,
        description: String,
    },
    /// A message type this client does not use (its `type` value).
    Other(String),
}

/// Flux `TurnInfo.event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TurnEvent {
    /// The caller began speaking (the barge-in signal).
    StartOfTurn,
    /// More audio was transcribed; the turn state is unchanged.
    Update,
    /// Moderate confidence the turn is over: a draft to prepare a reply on.
    EagerEndOfTurn,
    /// Speech went on after `EagerEndOfTurn`: that draft is void.
    TurnResumed,
    /// The turn is over; its transcript equals the preceding `EagerEndOfTurn`'s, if any.
    EndOfTurn,
}

/// One word of a Flux transcript.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FluxWord {
    pub word: String,
    pub confidence: f64,
}

/// Why a server frame could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SttError {
    /// The frame is not a JSON object.
    #[error("Deepgram frame is not a JSON object: {0}")]
    NotJson(String),
    /// The object has no string `type`.
    #[error("Deepgram frame has no type")]
    MissingType,
    /// A known message type lacks a field or has one of the wrong type.
    #[error("malformed Deepgram {kind} frame: {reason}")]
    Malformed { kind: &'static str, reason: String },
}

#[derive(Deserialize)]
struct RawResults {
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    #[serde(default)]
    from_finalize: bool,
    #[serde(default)]
    start: f64,
    #[serde(default)]
    duration: f64,
    channel: RawChannel,
}

#[derive(Deserialize)]
struct RawChannel {
    #[serde(default)]
    alternatives: Vec<RawAlternative>,
}

#[derive(Deserialize)]
struct RawAlternative {
    transcript: String,
    #[serde(default)]
    confidence: f64,
    #[serde(default)]
    words: Vec<Word>,
}

#[derive(Deserialize)]
struct RawUtteranceEnd {
    last_word_end: f64,
}

#[derive(Deserialize)]
struct RawSpeechStarted {
    timestamp: f64,
}

#[derive(Deserialize)]
struct RawMetadata {
    request_id: String,
}

#[derive(Deserialize)]
struct RawTurnInfo {
    event: TurnEvent,
    turn_index: f64,
    transcript: String,
    #[serde(default)]
    words: Vec<FluxWord>,
    #[serde(default)]
    end_of_turn_confidence: f64,
}

#[derive(Deserialize)]
struct RawError {
    #[serde(default)]
    variant: Option<String>,
    /// Flux names it `code`.
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Parses one server text frame; unknown fields and message types are tolerated.
pub fn parse_message(text: &str) -> Result<SttMessage, SttError> {
    let value: Value = serde_json::from_str(text).map_err(|e| SttError::NotJson(e.to_string()))?;
    if !value.is_object() {
        return Err(SttError::NotJson("not an object".into()));
    }
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or(SttError::MissingType)?
        .to_owned();
    match kind.as_str() {
        "Results" => {
            let r: RawResults = typed("Results", value)?;
            let best = r.channel.alternatives.into_iter().next();
            let (transcript, confidence, words) = match best {
                Some(a) => (a.transcript, a.confidence, a.words),
                None => (String::new(), 0.0, Vec::new()),
            };
            Ok(SttMessage::Transcript {
                transcript,
                is_final: r.is_final,
                speech_final: r.speech_final,
                from_finalize: r.from_finalize,
                confidence,
                start: r.start,
                duration: r.duration,
                words,
            })
        }
        "UtteranceEnd" => {
            let u: RawUtteranceEnd = typed("UtteranceEnd", value)?;
            Ok(SttMessage::UtteranceEnd {
                last_word_end: u.last_word_end,
            })
        }
        "SpeechStarted" => {
            let s: RawSpeechStarted = typed("SpeechStarted", value)?;
            Ok(SttMessage::SpeechStarted {
                timestamp: s.timestamp,
            })
        }
        "Metadata" => {
            let m: RawMetadata = typed("Metadata", value)?;
            Ok(SttMessage::Metadata {
                request_id: m.request_id,
            })
        }
        "Connected" => {
            let m: RawMetadata = typed("Connected", value)?;
            Ok(SttMessage::Connected {
                request_id: m.request_id,
            })
        }
        "TurnInfo" => {
            let t: RawTurnInfo = typed("TurnInfo", value)?;
            Ok(SttMessage::TurnInfo {
                event: t.event,
                turn_index: t.turn_index.max(0.0) as u32,
                transcript: t.transcript,
                end_of_turn_confidence: t.end_of_turn_confidence,
                words: t.words,
            })
        }
        "Error" => {
            let e: RawError = typed("Error", value)?;
            Ok(SttMessage::Error {
                variant: e.variant.or(e.code).unwrap_or_default(),
                description: e.description.or(e.message).unwrap_or_default(),
            })
        }
        _ => Ok(SttMessage::Other(kind)),
    }
}

fn typed<T: serde::de::DeserializeOwned>(kind: &'static str, value: Value) -> Result<T, SttError> {
    serde_json::from_value(value).map_err(|e| SttError::Malformed {
        kind,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn phone_params_give_the_documented_query() {
        let p = ListenParams::phone(SttEncoding::Mulaw, "nova-3", "en");
        assert_eq!(
            listen_url("wss://api.deepgram.com/", &p),
            "wss://api.deepgram.com/v1/listen?model=nova-3&language=en&encoding=mulaw\
             &sample_rate=8000&channels=1&interim_results=true&endpointing=300\
             &utterance_end_ms=1000&vad_events=true&smart_format=true&punctuate=true"
        );
    }

    #[test]
    fn optional_params_and_encoding() {
        let mut p = ListenParams::phone(SttEncoding::Linear16, "nova-2 phonecall", "en-US");
        p.endpointing_ms = None;
        p.utterance_end_ms = None;
        p.interim_results = false;
        let url = listen_url("ws://127.0.0.1:9001", &p);
        assert!(url.starts_with("ws://127.0.0.1:9001/v1/listen?model=nova-2%20phonecall&"));
        assert!(url.contains("&encoding=linear16&"));
        assert!(url.contains("&interim_results=false&endpointing=false&vad_events=true"));
        assert!(!url.contains("utterance_end_ms"));
    }

    #[test]
    fn flux_params_give_the_v2_query() {
        let mut p = ListenParams::phone(SttEncoding::Mulaw, "flux-general-en", "en");
        p.flux = Some(FluxTurns {
            eot_threshold_milli: Some(700),
            eager_eot_threshold_milli: Some(500),
            eot_timeout_ms: Some(5000),
        });
        assert_eq!(
            listen_url("wss://api.deepgram.com", &p),
            "wss://api.deepgram.com/v2/listen?model=flux-general-en&encoding=mulaw\
             &sample_rate=8000&eot_threshold=0.7&eager_eot_threshold=0.5&eot_timeout_ms=5000"
        );
        p.flux = Some(FluxTurns {
            eot_threshold_milli: Some(1000),
            eager_eot_threshold_milli: Some(375),
            eot_timeout_ms: None,
        });
        assert!(listen_url("ws://x", &p).ends_with("eot_threshold=1&eager_eot_threshold=0.375"));
        p.flux = Some(FluxTurns {
            eot_threshold_milli: None,
            eager_eot_threshold_milli: None,
            eot_timeout_ms: None,
        });
        assert_eq!(
            listen_url("ws://x", &p),
            "ws://x/v2/listen?model=flux-general-en&encoding=mulaw&sample_rate=8000"
        );
    }

    #[test]
    fn parses_documented_flux_messages() {
        assert_eq!(
            parse_message(r#"{"type":"Connected","request_id":"0b8a-uuid","sequence_id":0}"#)
                .unwrap(),
            SttMessage::Connected {
                request_id: "0b8a-uuid".into()
            }
        );
        let eager = r#"{"type":"TurnInfo","request_id":"0b8a-uuid","sequence_id":7,
            "event":"EagerEndOfTurn","turn_index":2,"audio_window_start":0.0,
            "audio_window_end":2.24,"transcript":"Hi I need to cancel my subscription",
            "words":[{"word":"Hi","confidence":0.98},{"word":"I","confidence":0.97}],
            "end_of_turn_confidence":0.52}"#;
        assert_eq!(
            parse_message(eager).unwrap(),
            SttMessage::TurnInfo {
                event: TurnEvent::EagerEndOfTurn,
                turn_index: 2,
                transcript: "Hi I need to cancel my subscription".into(),
                end_of_turn_confidence: 0.52,
                words: vec![
                    FluxWord {
                        word: "Hi".into(),
                        confidence: 0.98
                    },
                    FluxWord {
                        word: "I".into(),
                        confidence: 0.97
                    }
                ],
            }
        );
        for (name, event) in [
            ("StartOfTurn", TurnEvent::StartOfTurn),
            ("Update", TurnEvent::Update),
            ("TurnResumed", TurnEvent::TurnResumed),
            ("EndOfTurn", TurnEvent::EndOfTurn),
        ] {
            let text = format!(
                r#"{{"type":"TurnInfo","request_id":"r","sequence_id":1,"event":"{name}",
                "turn_index":0,"audio_window_start":0,"audio_window_end":1,"transcript":"",
                "words":[],"end_of_turn_confidence":0.1}}"#
            );
            assert!(matches!(parse_message(&text).unwrap(),
                SttMessage::TurnInfo { event: e, .. } if e == event));
        }
        assert_eq!(
            parse_message(
                r#"{"type":"Error","sequence_id":3,"code":"INTERNAL_SERVER_ERROR","description":"boom"}"#
            )
            .unwrap(),
            SttMessage::Error {
                variant: "INTERNAL_SERVER_ERROR".into(),
                description: "boom".into()
            }
        );
        assert!(matches!(
            parse_message(
                r#"{"type":"TurnInfo","event":"Sideways","turn_index":0,"transcript":""}"#
            ),
            Err(SttError::Malformed {
                kind: "TurnInfo",
                ..
            })
        ));
    }

    #[test]
    fn control_frames_and_auth() {
        assert_eq!(keep_alive(), r#"{"type":"KeepAlive"}"#);
        assert_eq!(close_stream(), r#"{"type":"CloseStream"}"#);
        assert_eq!(finalize(), r#"{"type":"Finalize"}"#);
        assert_eq!(auth_header("k1"), ("Authorization", "Token k1".to_owned()));
    }

    #[test]
    fn parses_documented_results() {
        let text = r#"{
          "type": "Results", "channel_index": [0, 1], "duration": 1.98, "start": 5.99,
          "is_final": true, "speech_final": true, "from_finalize": false,
          "channel": { "alternatives": [{
              "transcript": "I'd like to book a table for two.", "confidence": 0.98,
              "words": [{ "word": "i'd", "start": 6.08, "end": 6.32, "confidence": 0.99, "punctuated_word": "I'd" }]
          }]},
          "metadata": { "request_id": "8c8ebea9-dbec-45fa-a035-e4632cb05b5f",
            "model_info": { "name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3" },
            "model_uuid": "40bd3654-e622-47c4-a111-63a61b23bd5d" }
        }"#;
        assert_eq!(
            parse_message(text).unwrap(),
            SttMessage::Transcript {
                transcript: "I'd like to book a table for two.".into(),
                is_final: true,
                speech_final: true,
                from_finalize: false,
                confidence: 0.98,
                start: 5.99,
                duration: 1.98,
                words: vec![Word {
                    word: "i'd".into(),
                    start: 6.08,
                    end: 6.32,
                    confidence: 0.99,
                    punctuated_word: Some("I'd".into()),
                }],
            }
        );
    }

    #[test]
    fn interim_results_default_the_flags() {
        let text = r#"{"type":"Results","channel_index":[0,1],"duration":1.0,"start":0.0,
            "channel":{"alternatives":[{"transcript":"hel","confidence":0.5,"words":[]}]},"metadata":{}}"#;
        match parse_message(text).unwrap() {
            SttMessage::Transcript {
                transcript,
                is_final,
                speech_final,
                ..
            } => {
                assert_eq!(transcript, "hel");
                assert!(!is_final && !speech_final);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_documented_events() {
        assert_eq!(
            parse_message(r#"{ "type": "SpeechStarted", "channel": [0], "timestamp": 9.54 }"#)
                .unwrap(),
            SttMessage::SpeechStarted { timestamp: 9.54 }
        );
        assert_eq!(
            parse_message(
                r#"{ "type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 2.395 }"#
            )
            .unwrap(),
            SttMessage::UtteranceEnd {
                last_word_end: 2.395
            }
        );
        let metadata = r#"{ "type": "Metadata", "transaction_key": "deprecated", "request_id": "8c8ebea9",
            "sha256": "e3b0c442", "created": "2024-08-29T22:37:55.202Z", "duration": 0.0, "channels": 0 }"#;
        assert_eq!(
            parse_message(metadata).unwrap(),
            SttMessage::Metadata {
                request_id: "8c8ebea9".into()
            }
        );
        assert_eq!(
            parse_message(
                r#"{"type":"Error","variant":"DATA-0000","description":"bad audio","message":"m"}"#
            )
            .unwrap(),
            SttMessage::Error {
                variant: "DATA-0000".into(),
                description: "bad audio".into()
            }
        );
        assert_eq!(
            parse_message(r#"{"type":"Error","message":"only message"}"#).unwrap(),
            SttMessage::Error {
                variant: String::new(),
                description: "only message".into()
            }
        );
        assert_eq!(
            parse_message(r#"{"type":"Warning","x":1}"#).unwrap(),
            SttMessage::Other("Warning".into())
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert!(matches!(parse_message(""), Err(SttError::NotJson(_))));
        assert!(matches!(parse_message("[1]"), Err(SttError::NotJson(_))));
        assert_eq!(parse_message(r#"{"a":1}"#), Err(SttError::MissingType));
        assert_eq!(parse_message(r#"{"type":5}"#), Err(SttError::MissingType));
        assert!(matches!(
            parse_message(r#"{"type":"Results"}"#),
            Err(SttError::Malformed {
                kind: "Results",
                ..
            })
        ));
        assert!(matches!(
            parse_message(r#"{"type":"UtteranceEnd","last_word_end":"x"}"#),
            Err(SttError::Malformed {
                kind: "UtteranceEnd",
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = parse_message(&text);
        }

        #[test]
        fn arbitrary_results_shapes_never_panic(
            kind in prop::sample::select(vec!["Results", "UtteranceEnd", "SpeechStarted", "Metadata", "Error", "Connected", "TurnInfo"]),
            body in r#"[\[\]{}":,0-9a-z ]{0,80}"#,
        ) {
            let _ = parse_message(&format!(r#"{{"type":"{kind}",{body}"#));
            let _ = parse_message(&format!(r#"{{"type":"{kind}","channel":{{"alternatives":[{body}]}}}}"#));
        }
    }
}
