//! One media-stream protocol behind one small trait, one adapter per carrier (the shape of
//! Pipecat's frame serializers): the session speaks [`CarrierEvent`]s and raw audio bytes,
//! the adapter speaks the carrier's WebSocket frames.

use super::codec::AudioFormat;
use super::scan;
use super::{exotel::ExotelAdapter, telnyx::TelnyxAdapter, twilio::TwilioAdapter};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
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

/// A `media` frame's caller audio in [`Carrier::format`] (`None`: nothing to hand on — our own
/// track echoed, an empty payload, or audio held until `start`), or why it is unreadable.
pub type MediaRead = Result<Option<Vec<u8>>, FrameError>;

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
    /// Interprets one inbound frame; unknown events yield no events. A `media` frame the
    /// scanner reads takes [`Carrier::read_media`], any other frame [`Carrier::parse_full`].
    fn parse(&mut self, frame: Frame<'_>) -> Result<Vec<CarrierEvent>, FrameError> {
        match self.read_media(frame) {
            Some(read) => read.map(|audio| audio.map(CarrierEvent::Audio).into_iter().collect()),
            None => self.parse_full(frame),
        }
    }
    /// The hot path (50 frames a second per call): a `media` frame read by the scanner
    /// ([`super::scan`]) straight into its audio, with no JSON tree and no event list; the
    /// same audio and stream state [`Carrier::parse_full`] gives. `None` for every frame the
    /// scanner leaves to [`Carrier::parse_full`].
    fn read_media(&mut self, frame: Frame<'_>) -> Option<MediaRead>;
    /// Interprets any inbound frame through a full JSON parse.
    fn parse_full(&mut self, frame: Frame<'_>) -> Result<Vec<CarrierEvent>, FrameError>;
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
        Ok(self
            .audio_bytes(payload_b64)?
            .map(CarrierEvent::Audio)
            .into_iter()
            .collect())
    }

    /// A payload's audio to hand on: `None` when it is empty or held until `start`.
    fn audio_bytes(&mut self, payload_b64: &str) -> MediaRead {
        let bytes = BASE64
            .decode(payload_b64)
            .map_err(|e| FrameError::BadPayload(e.to_string()))?;
        if bytes.is_empty() {
            return Ok(None);
        }
        if self.started {
            return Ok(Some(bytes));
        }
        self.early.extend_from_slice(&bytes);
        let excess = self.early.len().saturating_sub(EARLY_AUDIO_MAX);
        self.early.drain(..excess);
        Ok(None)
    }

    /// [`Carrier::read_media`] for a carrier whose stream id is the top-level `id_key` and
    /// whose `own_track` (if any) is our audio echoed back.
    pub(crate) fn read_media(
        &mut self,
        frame: Frame<'_>,
        id_key: &str,
        own_track: Option<&str>,
    ) -> Option<MediaRead> {
        let Frame::Text(text) = frame else {
            return None;
        };
        let media = scan::scan_media(text, id_key)?;
        self.adopt_id(media.stream_id);
        if own_track.is_some() && media.track == own_track {
            return Some(Ok(None));
        }
        Some(self.audio_bytes(media.payload))
    }
}

/// Base64 for outbound audio payloads.
pub(crate) fn encode_payload(audio: &[u8]) -> String {
    BASE64.encode(audio)
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
    // Inserted rather than collected: each `collect` into a map compiles a sort.
    let mut params = BTreeMap::new();
    for (k, v) in map {
        params.insert(
            k.clone(),
            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
        );
    }
    params
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
    fn media_frames_take_the_scanner_and_the_rest_the_full_parse() {
        let mut twilio = TwilioAdapter::default();
        let plain =
            r#"{"event":"media","media":{"track":"inbound","payload":"AAE="},"streamSid":"MZ1"}"#;
        assert_eq!(
            twilio.read_media(Frame::Text(plain)),
            Some(Ok(None)),
            "held until start"
        );
        assert!(twilio.clear_frame().is_some(), "its stream id adopted");
        // Escapes (JSON may write `/` as `\/`) are the full parse's.
        let escaped = r#"{"event":"media","media":{"payload":"ab\/c"},"streamSid":"MZ1"}"#;
        assert_eq!(twilio.read_media(Frame::Text(escaped)), None);
        for other in [
            r#"{"event":"start","start":{},"media":{"payload":"AA=="}}"#,
            r#"{"event":"media","media":{"track":"inbound"}}"#,
            r#"{"event":"media","media":{"payload":7}}"#,
            r#"{"event":"media""#,
            "not json",
        ] {
            assert_eq!(twilio.read_media(Frame::Text(other)), None, "{other}");
        }
        assert_eq!(twilio.read_media(Frame::Binary(b"{}")), None);
        assert!(matches!(
            twilio.parse(Frame::Text(
                r#"{"event":"media","media":{"track":"inbound"}}"#
            )),
            Err(FrameError::Malformed(_))
        ));
    }

    /// A carrier's `start` frame (the minimum its full parse takes).
    fn start_frame(name: &str) -> &'static str {
        match name {
            "twilio" => r#"{"event":"start","start":{"callSid":"CA1"},"streamSid":"MZs"}"#,
            "telnyx" => r#"{"event":"start","stream_id":"Ss"}"#,
            _ => r#"{"event":"start","stream_sid":"Ss"}"#,
        }
    }

    /// Frames of every kind: valid media frames (any key order, whitespace, extra fields, any
    /// carrier's id key), the same with escapes or edits, and the carriers' other events.
    fn any_frame() -> impl Strategy<Value = String> {
        let media = || super::scan::tests::media_frame().prop_map(|(text, _)| text);
        prop_oneof![
            4 => media(),
            1 => media().prop_map(|t| t.replacen('/', "\\/", 1).replacen("\"e", "\"\\u0065", 1)),
            1 => (media(), any::<usize>(), any::<u8>()).prop_map(|(t, at, b)| {
                let mut bytes = t.into_bytes();
                let at = at % bytes.len();
                bytes[at] = b"\"{}:,\\x"[usize::from(b) % 7];
                String::from_utf8(bytes).unwrap_or_default()
            }),
            1 => near_miss_frames(),
        ]
    }

    proptest! {
        /// The scanner's hot path and the full parse agree on every frame the scanner reads:
        /// the same audio or error, the same stream id adopted, the same audio held for `start`.
        #[test]
        fn read_media_is_the_full_parse_of_media_frames(
            name in prop::sample::select(vec!["twilio", "telnyx", "exotel"]),
            started in any::<bool>(),
            text in any_frame(),
        ) {
            let mut fast = carrier_for(name).unwrap();
            let mut full = carrier_for(name).unwrap();
            if started {
                fast.parse_full(Frame::Text(start_frame(name))).unwrap();
                full.parse_full(Frame::Text(start_frame(name))).unwrap();
            }
            let Some(read) = fast.read_media(Frame::Text(&text)) else {
                // Not the scanner's: `parse` goes the full way.
                let mut via_parse = carrier_for(name).unwrap();
                if started {
                    via_parse.parse_full(Frame::Text(start_frame(name))).unwrap();
                }
                prop_assert_eq!(via_parse.parse(Frame::Text(&text)), full.parse_full(Frame::Text(&text)));
                return Ok(());
            };
            let expected = full.parse_full(Frame::Text(&text));
            prop_assert_eq!(read.map(|a| a.map(CarrierEvent::Audio).into_iter().collect()), expected, "{}", text);
            prop_assert_eq!(fast.clear_frame(), full.clear_frame());
            prop_assert_eq!(fast.audio_frame(&[1, 2]), full.audio_frame(&[1, 2]));
            // Whatever was held for `start` is the same audio.
            let restart = r#"{"event":"start","start":{},"streamSid":"x","stream_id":"x","stream_sid":"x"}"#;
            prop_assert_eq!(fast.parse_full(Frame::Text(restart)), full.parse_full(Frame::Text(restart)));
        }
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
