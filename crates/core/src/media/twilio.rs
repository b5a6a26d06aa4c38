//! Twilio Media Streams: JSON text frames in both directions (μ-law 8 kHz payloads in base64).

use serde::Deserialize;
use std::collections::BTreeMap;
use thiserror::Error;

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

/// Why a frame could not be understood; such frames are counted and skipped, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("malformed Twilio frame: {0}")]
    Malformed(String),
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
}
