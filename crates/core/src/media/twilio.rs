//! Twilio Media Streams: JSON text frames in both directions (μ-law 8 kHz payloads in base64).

use super::carrier::{self, Carrier, CarrierEvent, Frame, MediaRead, OutFrame, StreamState};
use super::codec::AudioFormat;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;

pub use super::carrier::FrameError;

/// A frame Twilio sends on the media WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Inbound {
    /// First frame of a stream; carries no stream id.
    Connected {
        #[serde(default)]
        protocol: Option<String>,
        #[serde(default)]
        version: Option<String>,
    },
    /// Stream metadata, once, right after `connected`.
    Start {
        #[serde(rename = "streamSid")]
        stream_sid: String,
        start: Start,
    },
    /// One chunk of caller audio.
    Media {
        #[serde(rename = "streamSid", default)]
        stream_sid: Option<String>,
        media: Media,
    },
    /// A key press (bidirectional streams only).
    Dtmf {
        #[serde(rename = "streamSid", default)]
        stream_sid: Option<String>,
        dtmf: Dtmf,
    },
    /// Echo of a mark we sent: audio queued before it has played (or was cleared).
    Mark {
        #[serde(rename = "streamSid", default)]
        stream_sid: Option<String>,
        mark: Mark,
    },
    /// The stream stopped or the call ended.
    Stop {
        #[serde(rename = "streamSid", default)]
        stream_sid: Option<String>,
        #[serde(default)]
        stop: Option<Stop>,
    },
}

/// Payload of the `start` frame.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Start {
    #[serde(default)]
    pub account_sid: Option<String>,
    #[serde(default)]
    pub call_sid: Option<String>,
    #[serde(default)]
    pub tracks: Vec<String>,
    #[serde(default)]
    pub custom_parameters: BTreeMap<String, String>,
    #[serde(default)]
    pub media_format: Option<MediaFormat>,
}

/// Audio format announced in `start` (always μ-law 8 kHz mono per Twilio's docs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaFormat {
    pub encoding: String,
    pub sample_rate: u32,
    pub channels: u32,
}

/// Payload of a `media` frame; numeric-looking fields are strings on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Media {
    #[serde(default)]
    pub track: Option<String>,
    #[serde(default)]
    pub chunk: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub payload: String,
}

/// Payload of a `dtmf` frame.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Dtmf {
    #[serde(default)]
    pub track: Option<String>,
    pub digit: String,
}

/// Payload of a `mark` frame.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Mark {
    pub name: String,
}

/// Payload of a `stop` frame.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    #[serde(default)]
    pub account_sid: Option<String>,
    #[serde(default)]
    pub call_sid: Option<String>,
}

impl Inbound {
    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))
    }

    /// The frame's event name as on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Inbound::Connected { .. } => "connected",
            Inbound::Start { .. } => "start",
            Inbound::Media { .. } => "media",
            Inbound::Dtmf { .. } => "dtmf",
            Inbound::Mark { .. } => "mark",
            Inbound::Stop { .. } => "stop",
        }
    }
}

/// Builds an outbound `media` frame carrying base64 μ-law audio.
pub fn media_frame(stream_sid: &str, payload_b64: &str) -> String {
    serde_json::json!({"event": "media", "streamSid": stream_sid, "media": {"payload": payload_b64}})
        .to_string()
}

/// Builds an outbound `mark` frame; Twilio echoes it once the audio before it has played.
pub fn mark_frame(stream_sid: &str, name: &str) -> String {
    serde_json::json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})
        .to_string()
}

/// Builds an outbound `clear` frame: drops queued audio and echoes every pending mark.
pub fn clear_frame(stream_sid: &str) -> String {
    serde_json::json!({"event": "clear", "streamSid": stream_sid}).to_string()
}

/// The Twilio side of a call's media WebSocket.
#[derive(Debug, Clone)]
pub struct TwilioAdapter {
    state: StreamState,
}

impl Default for TwilioAdapter {
    fn default() -> Self {
        TwilioAdapter {
            state: StreamState::new(AudioFormat::Mulaw8k),
        }
    }
}

impl Carrier for TwilioAdapter {
    fn read_media(&mut self, frame: Frame<'_>) -> Option<MediaRead> {
        self.state.read_media(frame, "streamSid", Some("outbound"))
    }

    fn parse_full(&mut self, frame: Frame<'_>) -> Result<Vec<CarrierEvent>, FrameError> {
        let (event, value) = carrier::json_event(frame)?;
        if !matches!(
            event.as_str(),
            "connected" | "start" | "media" | "dtmf" | "mark" | "stop"
        ) {
            return Ok(Vec::new());
        }
        let inbound: Inbound =
            serde_json::from_value(value).map_err(|e| FrameError::Malformed(e.to_string()))?;
        match inbound {
            Inbound::Connected { .. } => Ok(vec![CarrierEvent::Connected]),
            Inbound::Start { stream_sid, start } => {
                let format = start_format(start.media_format.as_ref())?;
                Ok(self
                    .state
                    .start(stream_sid, start.call_sid, start.custom_parameters, format))
            }
            Inbound::Media { stream_sid, media } => {
                self.state.adopt_id(stream_sid.as_deref());
                // Listen-only streams with both tracks also carry our own audio back.
                if media.track.as_deref() == Some("outbound") {
                    return Ok(Vec::new());
                }
                self.state.audio(&media.payload)
            }
            Inbound::Dtmf { stream_sid, dtmf } => {
                self.state.adopt_id(stream_sid.as_deref());
                Ok(vec![CarrierEvent::Dtmf(dtmf.digit)])
            }
            Inbound::Mark { mark, .. } => Ok(vec![CarrierEvent::Mark(mark.name)]),
            Inbound::Stop { .. } => Ok(vec![CarrierEvent::Stop]),
        }
    }

    fn audio_frame(&self, audio: &[u8]) -> Option<OutFrame> {
        let sid = self.state.stream_id.as_deref()?;
        Some(OutFrame::Text(media_frame(
            sid,
            &carrier::encode_payload(audio),
        )))
    }

    fn mark_frame(&self, name: &str) -> Option<OutFrame> {
        let sid = self.state.stream_id.as_deref()?;
        Some(OutFrame::Text(mark_frame(sid, name)))
    }

    fn clear_frame(&self) -> Option<OutFrame> {
        let sid = self.state.stream_id.as_deref()?;
        Some(OutFrame::Text(clear_frame(sid)))
    }

    fn format(&self) -> AudioFormat {
        self.state.format
    }

    fn frame_bytes(&self) -> NonZeroUsize {
        carrier::frame_size(self.state.format.bytes_for_ms(20))
    }
}

/// Twilio documents μ-law 8 kHz only; anything else is refused rather than played as noise.
fn start_format(format: Option<&MediaFormat>) -> Result<AudioFormat, FrameError> {
    match format {
        None => Ok(AudioFormat::Mulaw8k),
        Some(f) if f.encoding == "audio/x-mulaw" && f.sample_rate == 8000 && f.channels == 1 => {
            Ok(AudioFormat::Mulaw8k)
        }
        Some(f) => Err(FrameError::UnsupportedFormat(format!(
            "{} at {} Hz, {} channel(s)",
            f.encoding, f.sample_rate, f.channels
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_frames() {
        let connected =
            Inbound::parse(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#);
        assert_eq!(connected.unwrap().name(), "connected");

        let start = Inbound::parse(
            r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1",
            "callSid":"CA1","tracks":["inbound"],"customParameters":{"token":"t"},
            "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#,
        )
        .unwrap();
        match start {
            Inbound::Start { stream_sid, start } => {
                assert_eq!(stream_sid, "MZ1");
                assert_eq!(start.call_sid.as_deref(), Some("CA1"));
                assert_eq!(start.custom_parameters["token"], "t");
                assert_eq!(start.media_format.unwrap().sample_rate, 8000);
            }
            other => panic!("unexpected {other:?}"),
        }

        let media = Inbound::parse(
            r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1",
            "timestamp":"5","payload":"//8="},"streamSid":"MZ1"}"#,
        )
        .unwrap();
        assert!(matches!(media, Inbound::Media { ref media, .. } if media.payload == "//8="));

        let stop = Inbound::parse(
            r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#,
        )
        .unwrap();
        assert_eq!(stop.name(), "stop");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "{",
            "null",
            r#"{"event":"nope"}"#,
            r#"{"event":"media"}"#,
            "\u{0}",
        ] {
            assert!(Inbound::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn outbound_frames_match_the_wire_format() {
        let v: serde_json::Value = serde_json::from_str(&mark_frame("MZ1", "m1")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}})
        );
        let v: serde_json::Value = serde_json::from_str(&clear_frame("MZ1")).unwrap();
        assert_eq!(v, serde_json::json!({"event":"clear","streamSid":"MZ1"}));
        let v: serde_json::Value = serde_json::from_str(&media_frame("MZ1", "AA==")).unwrap();
        assert_eq!(v["media"]["payload"], "AA==");
    }

    fn json(frame: Option<OutFrame>) -> serde_json::Value {
        match frame {
            Some(OutFrame::Text(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1",
        "streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],
        "customParameters":{"token":"per-call-random-token","tenant":"acme"},
        "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ1"}"#;

    #[test]
    fn adapter_turns_documented_frames_into_events() {
        let mut twilio = TwilioAdapter::default();
        assert_eq!(twilio.audio_frame(&[0xFF]), None);
        let connected = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
        assert_eq!(
            twilio.parse(Frame::Text(connected)).unwrap(),
            [CarrierEvent::Connected]
        );
        let events = twilio.parse(Frame::Text(START)).unwrap();
        let params: BTreeMap<String, String> =
            [("tenant", "acme"), ("token", "per-call-random-token")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        assert_eq!(
            events,
            [CarrierEvent::Start {
                stream_id: "MZ1".into(),
                call_id: Some("CA1".into()),
                params,
                format: AudioFormat::Mulaw8k,
            }]
        );
        let media = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound",
            "chunk":"1","timestamp":"5","payload":"/38A"},"streamSid":"MZ1"}"#;
        assert_eq!(
            twilio.parse(Frame::Text(media)).unwrap(),
            [CarrierEvent::Audio(vec![0xFF, 0x7F, 0x00])]
        );
        let dtmf = r#"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5",
            "dtmf":{"track":"inbound_track","digit":"1"}}"#;
        assert_eq!(
            twilio.parse(Frame::Text(dtmf)).unwrap(),
            [CarrierEvent::Dtmf("1".into())]
        );
        let mark = r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"resp-42-chunk-7"}}"#;
        assert_eq!(
            twilio.parse(Frame::Text(mark)).unwrap(),
            [CarrierEvent::Mark("resp-42-chunk-7".into())]
        );
        let stop = r#"{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}"#;
        assert_eq!(
            twilio.parse(Frame::Text(stop)).unwrap(),
            [CarrierEvent::Stop]
        );
        let unknown = r#"{"event":"someday","streamSid":"MZ1"}"#;
        assert_eq!(twilio.parse(Frame::Text(unknown)).unwrap(), []);
        assert_eq!(twilio.format(), AudioFormat::Mulaw8k);
        assert_eq!(twilio.frame_bytes().get(), 160);
    }

    #[test]
    fn adapter_builds_documented_outbound_frames() {
        let mut twilio = TwilioAdapter::default();
        twilio.parse(Frame::Text(START)).unwrap();
        assert_eq!(
            json(twilio.audio_frame(&[0xFF; 3])),
            serde_json::json!({"event":"media","streamSid":"MZ1","media":{"payload":"////"}})
        );
        assert_eq!(
            json(twilio.mark_frame("resp-1")),
            serde_json::json!({"event":"mark","streamSid":"MZ1","mark":{"name":"resp-1"}})
        );
        assert_eq!(
            json(twilio.clear_frame()),
            serde_json::json!({"event":"clear","streamSid":"MZ1"})
        );
    }

    #[test]
    fn media_before_start_is_held_and_its_stream_id_adopted() {
        let mut twilio = TwilioAdapter::default();
        let early =
            r#"{"event":"media","media":{"track":"inbound","payload":"AAE="},"streamSid":"MZ9"}"#;
        assert_eq!(twilio.parse(Frame::Text(early)).unwrap(), []);
        assert!(twilio.clear_frame().is_some());
        let events = twilio.parse(Frame::Text(START)).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], CarrierEvent::Audio(vec![0x00, 0x01]));
    }

    #[test]
    fn adapter_rejects_bad_audio_and_other_formats() {
        let mut twilio = TwilioAdapter::default();
        let bad = r#"{"event":"media","media":{"payload":"not base64!"},"streamSid":"MZ1"}"#;
        assert!(matches!(
            twilio.parse(Frame::Text(bad)),
            Err(FrameError::BadPayload(_))
        ));
        let pcm = START.replace("audio/x-mulaw", "audio/L16");
        assert!(matches!(
            twilio.parse(Frame::Text(&pcm)),
            Err(FrameError::UnsupportedFormat(_))
        ));
        let outbound =
            r#"{"event":"media","media":{"track":"outbound","payload":"AAE="},"streamSid":"MZ1"}"#;
        twilio.parse(Frame::Text(START)).unwrap();
        assert_eq!(twilio.parse(Frame::Text(outbound)).unwrap(), []);
    }

    proptest::proptest! {
        #[test]
        fn adapter_never_panics(
            text in ".*",
            bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..64),
        ) {
            carrier::tests::never_panics("twilio", &[START.to_owned(), text], &bytes);
        }

        #[test]
        fn near_miss_frames_never_panic(
            texts in proptest::collection::vec(carrier::tests::near_miss_frames(), 0..4),
        ) {
            carrier::tests::never_panics("twilio", &texts, &[]);
        }
    }
}
