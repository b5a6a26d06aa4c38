//! One media-stream protocol behind one small trait, one adapter per carrier (the shape of
//! Pipecat's frame serializers): the session speaks [`CarrierEvent`]s and raw audio bytes,
//! the adapter speaks the carrier's WebSocket frames.

use super::codec::AudioFormat;
use super::{exotel::ExotelAdapter, telnyx::TelnyxAdapter, twilio::TwilioAdapter};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use thiserror::Error;

/// Most audio kept while waiting for `start`; older bytes are dropped (about 4 s of μ-law).
const EARLY_AUDIO_MAX: usize = 32 * 1024;

/// Standard base64 that accepts payloads with or without trailing padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A WebSocket message received from the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// A WebSocket message to send to the carrier (all three carriers take JSON text only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutFrame {
    /// A text message.
    Text(String),
}

/// What a carrier frame means to the call session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierEvent {
    /// The carrier opened the stream (no metadata yet).
    Connected,
    /// Stream metadata; audio that arrived before it follows as one `Audio` event.
    Start {
        /// The carrier's stream id (Twilio `streamSid`, Telnyx `stream_id`, Exotel `stream_sid`).
        stream_id: String,
        /// The carrier's call id for REST actions (Twilio `callSid`, Telnyx `call_control_id`,
        /// Exotel `call_sid`).
        call_id: Option<String>,
        /// Custom parameters given when the stream was set up (e.g. a per-call token).
        params: BTreeMap<String, String>,
        /// Format of inbound audio, also used for outbound audio.
        format: AudioFormat,
    },
    /// Caller audio: raw bytes in [`Carrier::format`] (never empty).
    Audio(Vec<u8>),
    /// A key press.
    Dtmf(String),
    /// A mark we sent came back: audio queued before it was played, or cleared.
    Mark(String),
    /// The stream stopped or the call ended.
    Stop,
    /// The carrier reported an error on the stream (its JSON, for the log).
    Error(String),
}

/// Why a carrier frame could not be understood; such frames are counted and skipped, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Not JSON, or a known event missing required fields.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The audio payload is not valid base64.
    #[error("audio payload is not base64: {0}")]
    BadPayload(String),
    /// `start` announced an audio format we cannot handle.
    #[error("unsupported media format: {0}")]
    UnsupportedFormat(String),
    /// A binary message from a carrier that only sends text.
    #[error("unexpected binary frame")]
    UnexpectedBinary,
}

/// A carrier's media-stream protocol, with the per-stream state it needs (e.g. the stream id
/// outbound frames must carry). One instance per WebSocket.
pub trait Carrier {
    /// Interprets one inbound frame; unknown events yield no events.
    fn parse(&mut self, frame: Frame<'_>) -> Result<Vec<CarrierEvent>, FrameError>;
    /// Frame carrying `audio` (raw bytes in [`Carrier::format`]); `None` until the stream id is known.
    fn audio_frame(&self, audio: &[u8]) -> Option<OutFrame>;
    /// Frame asking the carrier to echo `name` once the audio sent before it has played.
    fn mark_frame(&self, name: &str) -> Option<OutFrame>;
    /// Frame dropping all queued audio (the carrier echoes pending marks).
    fn clear_frame(&self) -> Option<OutFrame>;
    /// The stream's audio format (the carrier's default until `start` says otherwise).
    fn format(&self) -> AudioFormat;
    /// Size outbound audio should be framed in (see [`super::framing::Framer`]).
    fn frame_bytes(&self) -> NonZeroUsize;
}

impl crate::carrier::Carrier {
    /// A fresh adapter for one of the carrier's media streams.
    pub fn media_adapter(self) -> Box<dyn Carrier> {
        match self {
            crate::carrier::Carrier::Twilio => Box::new(TwilioAdapter::default()),
            crate::carrier::Carrier::Telnyx => Box::new(TelnyxAdapter::default()),
            crate::carrier::Carrier::Exotel => Box::new(ExotelAdapter::default()),
        }
    }
}

/// The adapter for a carrier named as in `/media/{carrier}/…` (`twilio`, `telnyx`, `exotel`).
pub fn carrier_for(name: &str) -> Option<Box<dyn Carrier>> {
    crate::carrier::Carrier::parse(name).map(crate::carrier::Carrier::media_adapter)
}

/// Stream bookkeeping shared by the adapters: who we are talking to, in which format, and the
/// audio that arrived before `start` (a late-attached handler can see media first).
#[derive(Debug, Clone)]
pub(crate) struct StreamState {
    pub(crate) stream_id: Option<String>,
    pub(crate) format: AudioFormat,
    started: bool,
    early: Vec<u8>,
}

impl StreamState {
    pub(crate) fn new(format: AudioFormat) -> Self {
        StreamState {
            stream_id: None,
            format,
            started: false,
            early: Vec::new(),
        }
    }

    /// Remembers a stream id seen on any frame, so outbound frames work even if `start` is late.
    pub(crate) fn adopt_id(&mut self, id: Option<&str>) {
        if let (None, Some(id)) = (&self.stream_id, id) {
            self.stream_id = Some(id.to_owned());
        }
    }

    pub(crate) fn start(
        &mut self,
        stream_id: String,
        call_id: Option<String>,
        params: BTreeMap<String, String>,
        format: AudioFormat,
    ) -> Vec<CarrierEvent> {
        self.stream_id = Some(stream_id.clone());
        self.format = format;
        self.started = true;
        let mut events = vec![CarrierEvent::Start {
            stream_id,
            call_id,
            params,
            format,
        }];
        if !self.early.is_empty() {
            events.push(CarrierEvent::Audio(std::mem::take(&mut self.early)));
        }
        events
    }

    pub(crate) fn audio(&mut self, payload_b64: &str) -> Result<Vec<CarrierEvent>, FrameError> {
        let bytes = BASE64
            .decode(payload_b64)
            .map_err(|e| FrameError::BadPayload(e.to_string()))?;
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        if self.started {
            return Ok(vec![CarrierEvent::Audio(bytes)]);
        }
        self.early.extend_from_slice(&bytes);
        let excess = self.early.len().saturating_sub(EARLY_AUDIO_MAX);
        self.early.drain(..excess);
        Ok(Vec::new())
    }
}

/// Base64 for outbound audio payloads.
pub(crate) fn encode_payload(audio: &[u8]) -> String {
    BASE64.encode(audio)
}

/// A `media` frame as the hot path reads it: fields borrowed from the text where they hold no
/// escapes, every other field skipped unread.
#[derive(Deserialize)]
pub(crate) struct MediaPeek<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    /// Twilio's stream id.
    #[serde(borrow, default, rename = "streamSid")]
    pub stream_sid_camel: Option<Cow<'a, str>>,
    /// Telnyx's stream id.
    #[serde(borrow, default)]
    pub stream_id: Option<Cow<'a, str>>,
    /// Exotel's stream id.
    #[serde(borrow, default)]
    pub stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub media: MediaBody<'a>,
}

/// The `media` object of a media frame.
#[derive(Deserialize)]
pub(crate) struct MediaBody<'a> {
    #[serde(borrow, default)]
    pub track: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub payload: Cow<'a, str>,
}

/// A `media` frame read without building a JSON tree (50 a second on every call). `None` for
/// any other frame, or a media frame this cannot read, which the general path then judges.
pub(crate) fn peek_media<'a>(frame: Frame<'a>) -> Option<MediaPeek<'a>> {
    let Frame::Text(text) = frame else {
        return None;
    };
    serde_json::from_str::<MediaPeek<'a>>(text)
        .ok()
        .filter(|peek| peek.event == "media")
}

/// Splits a text frame into its `event` name and its JSON.
pub(crate) fn json_event(frame: Frame<'_>) -> Result<(String, serde_json::Value), FrameError> {
    let Frame::Text(text) = frame else {
        return Err(FrameError::UnexpectedBinary);
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let event = value
        .get("event")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| FrameError::Malformed("no \"event\" string".into()))?
        .to_owned();
    Ok((event, value))
}

/// The string at a JSON pointer (e.g. `/media/payload`), if there is one.
pub(crate) fn text_at<'v>(value: &'v serde_json::Value, pointer: &str) -> Option<&'v str> {
    value.pointer(pointer).and_then(serde_json::Value::as_str)
}

/// The string at a JSON pointer, which the frame must have.
pub(crate) fn required_text<'v>(
    value: &'v serde_json::Value,
    pointer: &str,
) -> Result<&'v str, FrameError> {
    text_at(value, pointer).ok_or_else(|| FrameError::Malformed(format!("no string at {pointer}")))
}

/// A number carriers send either as a JSON number or as a string (`8000` or `"8000"`).
pub(crate) fn number_at(value: &serde_json::Value, pointer: &str) -> Option<u32> {
    match value.pointer(pointer)? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Custom parameters at a JSON pointer; non-string values keep their JSON text.
pub(crate) fn params_at(value: &serde_json::Value, pointer: &str) -> BTreeMap<String, String> {
    let Some(serde_json::Value::Object(map)) = value.pointer(pointer) else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), v)
        })
        .collect()
}

/// 16-bit PCM rates the pipeline handles (the resampler converts between them).
pub(crate) fn pcm_rate(rate: Option<u32>, what: &str) -> Result<u32, FrameError> {
    match rate {
        Some(rate @ (8000 | 16000 | 24000 | 48000)) => Ok(rate),
        other => Err(FrameError::UnsupportedFormat(format!(
            "{what} at {other:?} Hz"
        ))),
    }
}

/// A frame size from a byte count that is positive by construction.
pub(crate) fn frame_size(bytes: usize) -> NonZeroUsize {
    NonZeroUsize::new(bytes).unwrap_or(NonZeroUsize::MIN)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn media_frames_are_read_without_a_tree() {
        // Escapes (JSON may write `/` as `\/`), unknown nested fields and key order.
        let text = r#"{"sequenceNumber":"4","extra":{"a":[1,{"b":null}]},"media":{"chunk":"2","payload":"ab\/c","track":"inbound"},"event":"media","streamSid":"MZ1"}"#;
        let peek = peek_media(Frame::Text(text)).expect("a media frame");
        assert_eq!(peek.media.payload, "ab/c");
        assert_eq!(peek.media.track.as_deref(), Some("inbound"));
        assert_eq!(peek.stream_sid_camel.as_deref(), Some("MZ1"));
        assert!(peek.stream_id.is_none() && peek.stream_sid.is_none());
        // Anything else goes to the general path, which reports what is wrong with it.
        for other in [
            r#"{"event":"start","start":{},"media":{"payload":"AA=="}}"#,
            r#"{"event":"media","media":{"track":"inbound"}}"#,
            r#"{"event":"media","media":{"payload":7}}"#,
            r#"{"event":"media""#,
            "not json",
        ] {
            assert!(peek_media(Frame::Text(other)).is_none(), "{other}");
        }
        assert!(peek_media(Frame::Binary(b"{}")).is_none());
        let mut twilio = TwilioAdapter::default();
        assert!(matches!(
            twilio.parse(Frame::Text(
                r#"{"event":"media","media":{"track":"inbound"}}"#
            )),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn carriers_by_route_name() {
        for name in ["twilio", "telnyx", "exotel"] {
            assert!(carrier_for(name).is_some(), "{name}");
        }
        assert!(carrier_for("Twilio").is_none());
        assert!(carrier_for("vonage").is_none());
    }

    #[test]
    fn early_audio_is_released_after_start_and_bounded() {
        let mut state = StreamState::new(AudioFormat::Mulaw8k);
        assert!(state.audio("//8=").unwrap().is_empty());
        assert!(state.audio("").unwrap().is_empty());
        let big = encode_payload(&vec![1; EARLY_AUDIO_MAX]);
        assert!(state.audio(&big).unwrap().is_empty());
        let events = state.start("S".into(), None, BTreeMap::new(), AudioFormat::Mulaw8k);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], CarrierEvent::Audio(vec![1; EARLY_AUDIO_MAX]));
        assert_eq!(
            state.audio("//8").unwrap(),
            vec![CarrierEvent::Audio(vec![0xFF, 0xFF])]
        );
        assert!(matches!(state.audio("@@"), Err(FrameError::BadPayload(_))));
    }

    /// Feeds text frames in order, then bytes, to a fresh adapter: errors are fine, panics are not.
    pub(crate) fn never_panics(name: &str, texts: &[String], bytes: &[u8]) {
        let mut carrier = carrier_for(name).unwrap();
        for text in texts {
            let _ = carrier.parse(Frame::Text(text));
            let _ = carrier.mark_frame(text);
        }
        assert_eq!(
            carrier.parse(Frame::Binary(bytes)),
            Err(FrameError::UnexpectedBinary)
        );
        let _ = carrier.audio_frame(bytes);
        let _ = carrier.clear_frame();
        assert!(carrier.frame_bytes().get() > 0);
    }

    /// Frames shaped like the carriers' own, with arbitrary event names and field values.
    pub(crate) fn near_miss_frames() -> impl Strategy<Value = String> {
        let event = prop::sample::select(vec![
            "connected",
            "start",
            "media",
            "dtmf",
            "mark",
            "stop",
            "error",
            "clear",
            "x",
        ]);
        let value = prop_oneof![
            Just("null".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            ".{0,12}".prop_map(|s| serde_json::Value::String(s).to_string()),
            "[A-Za-z0-9+/=]{0,12}".prop_map(|s| format!("{{\"payload\":\"{s}\",\"name\":\"{s}\",\"digit\":\"{s}\"}}")),
            "[A-Za-z0-9+/=]{0,12}".prop_map(|s| format!(
                "{{\"streamSid\":\"{s}\",\"stream_sid\":\"{s}\",\"media_format\":{{\"encoding\":\"{s}\",\"sample_rate\":\"{s}\"}}}}"
            )),
        ];
        let key = prop::sample::select(vec![
            "start",
            "media",
            "dtmf",
            "mark",
            "stop",
            "payload",
            "streamSid",
            "stream_id",
            "stream_sid",
        ]);
        (event, proptest::collection::vec((key, value), 0..4)).prop_map(|(event, fields)| {
            let mut text = format!("{{\"event\":\"{event}\"");
            for (k, v) in fields {
                text.push_str(&format!(",\"{k}\":{v}"));
            }
            text.push('}');
            text
        })
    }
}
