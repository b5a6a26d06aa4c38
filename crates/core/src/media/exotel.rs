//! Exotel Voicebot (bidirectional) and Stream applets: snake_case JSON text frames, numbers as
//! strings, raw PCM16 little-endian 8 kHz by default.

use super::carrier::{
    self, Carrier, CarrierEvent, Frame, FrameError, MediaRead, OutFrame, StreamState,
};
use super::codec::AudioFormat;
use std::num::NonZeroUsize;

/// Outbound chunk size: a multiple of 320 bytes (else each chunk ends in a gap) and at least
/// the 3.2 KB Exotel asks for (100 ms at 16 kHz, 200 ms at 8 kHz).
const CHUNK_BYTES: usize = 3200;

/// The Exotel side of a call's media WebSocket.
#[derive(Debug, Clone)]
pub struct ExotelAdapter {
    state: StreamState,
}

impl Default for ExotelAdapter {
    fn default() -> Self {
        ExotelAdapter {
            state: StreamState::new(AudioFormat::Pcm16Le { rate: 8000 }),
        }
    }
}

impl Carrier for ExotelAdapter {
    fn read_media(&mut self, frame: Frame<'_>) -> Option<MediaRead> {
        self.state.read_media(frame, "stream_sid", None)
    }

    fn parse_full(&mut self, frame: Frame<'_>) -> Result<Vec<CarrierEvent>, FrameError> {
        let (event, value) = carrier::json_event(frame)?;
        match event.as_str() {
            "connected" => Ok(vec![CarrierEvent::Connected]),
            "start" => {
                let stream_id = carrier::text_at(&value, "/stream_sid")
                    .or_else(|| carrier::text_at(&value, "/start/stream_sid"))
                    .ok_or_else(|| FrameError::Malformed("start without stream_sid".into()))?
                    .to_owned();
                let format = match carrier::text_at(&value, "/start/media_format/encoding") {
                    None => AudioFormat::Pcm16Le { rate: 8000 },
                    Some(encoding) => start_format(
                        encoding,
                        carrier::number_at(&value, "/start/media_format/sample_rate"),
                    )?,
                };
                let call_id = carrier::text_at(&value, "/start/call_sid").map(str::to_owned);
                let params = carrier::params_at(&value, "/start/custom_parameters");
                Ok(self.state.start(stream_id, call_id, params, format))
            }
            "media" => {
                let payload = carrier::required_text(&value, "/media/payload")?;
                self.state.adopt_id(carrier::text_at(&value, "/stream_sid"));
                self.state.audio(payload)
            }
            "dtmf" => {
                let digit = carrier::required_text(&value, "/dtmf/digit")?;
                Ok(vec![CarrierEvent::Dtmf(digit.to_owned())])
            }
            "mark" => {
                let name = carrier::required_text(&value, "/mark/name")?;
                Ok(vec![CarrierEvent::Mark(name.to_owned())])
            }
            "stop" => Ok(vec![CarrierEvent::Stop]),
            _ => Ok(Vec::new()),
        }
    }

    fn audio_frame(&self, audio: &[u8]) -> Option<OutFrame> {
        let sid = self.state.stream_id.as_deref()?;
        let payload = carrier::encode_payload(audio);
        Some(text(
            serde_json::json!({"event": "media", "stream_sid": sid, "media": {"payload": payload}}),
        ))
    }

    fn mark_frame(&self, name: &str) -> Option<OutFrame> {
        let sid = self.state.stream_id.as_deref()?;
        Some(text(
            serde_json::json!({"event": "mark", "stream_sid": sid, "mark": {"name": name}}),
        ))
    }

    fn clear_frame(&self) -> Option<OutFrame> {
        let sid = self.state.stream_id.as_deref()?;
        Some(text(
            serde_json::json!({"event": "clear", "stream_sid": sid}),
        ))
    }

    fn format(&self) -> AudioFormat {
        self.state.format
    }

    fn frame_bytes(&self) -> NonZeroUsize {
        carrier::frame_size(CHUNK_BYTES)
    }
}

fn text(value: serde_json::Value) -> OutFrame {
    OutFrame::Text(value.to_string())
}

/// Maps `media_format` to a format: `audio/x-raw` ("slin") by default, μ-law or L16 when the
/// stream was configured so; a `;rate=` suffix stands in for a missing `sample_rate`.
fn start_format(encoding: &str, rate: Option<u32>) -> Result<AudioFormat, FrameError> {
    let mut parts = encoding.split(';').map(str::trim);
    let kind = parts.next().unwrap_or_default().to_ascii_lowercase();
    let rate = rate.or_else(|| {
        parts
            .filter_map(|p| p.strip_prefix("rate="))
            .find_map(|r| r.parse().ok())
    });
    match kind.as_str() {
        "audio/x-mulaw" | "audio/pcmu" => Ok(AudioFormat::Mulaw8k),
        // Exotel's L16 is its "slin" again, little-endian like the default.
        "audio/x-raw" | "audio/l16" | "slin" => Ok(AudioFormat::Pcm16Le {
            rate: carrier::pcm_rate(Some(rate.unwrap_or(8000)), encoding)?,
        }),
        _ => Err(FrameError::UnsupportedFormat(encoding.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::carrier::tests::{near_miss_frames, never_panics};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const START: &str = r#"{
      "event": "start", "sequence_number": "1", "stream_sid": "MZxxxxxxxx",
      "start": {
        "stream_sid": "MZxxxxxxxx", "call_sid": "CAxxxxxxxx", "account_sid": "ACxxxxxxxx",
        "from": "+919876543210", "to": "+918047491899",
        "custom_parameters": { "key1": "value1" },
        "media_format": { "encoding": "audio/x-raw", "sample_rate": "8000", "bit_rate": "16" }
      }
    }"#;

    fn parse(adapter: &mut ExotelAdapter, text: &str) -> Vec<CarrierEvent> {
        adapter.parse(Frame::Text(text)).unwrap()
    }

    fn json(frame: Option<OutFrame>) -> serde_json::Value {
        match frame {
            Some(OutFrame::Text(text)) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[test]
    fn documented_frames_become_events() {
        let mut exotel = ExotelAdapter::default();
        assert_eq!(
            parse(&mut exotel, r#"{ "event": "connected" }"#),
            [CarrierEvent::Connected]
        );
        assert_eq!(
            parse(&mut exotel, START),
            [CarrierEvent::Start {
                stream_id: "MZxxxxxxxx".into(),
                call_id: Some("CAxxxxxxxx".into()),
                params: BTreeMap::from([("key1".into(), "value1".into())]),
                format: AudioFormat::Pcm16Le { rate: 8000 },
            }]
        );
        let media = r#"{ "event": "media", "sequence_number": "3", "stream_sid": "MZxxxxxxxx",
          "media": { "chunk": "2", "timestamp": "200", "payload": "AAD/fw==" } }"#;
        assert_eq!(
            parse(&mut exotel, media),
            [CarrierEvent::Audio(vec![0x00, 0x00, 0xFF, 0x7F])]
        );
        let dtmf = r#"{ "event": "dtmf", "sequence_number": "7", "stream_sid": "MZxxxxxxxx",
          "dtmf": { "digit": "5", "duration": "100" } }"#;
        assert_eq!(parse(&mut exotel, dtmf), [CarrierEvent::Dtmf("5".into())]);
        let mark = r#"{ "event": "mark", "sequence_number": "15", "stream_sid": "MZxxxxxxxx",
          "mark": { "name": "resp-1" } }"#;
        assert_eq!(
            parse(&mut exotel, mark),
            [CarrierEvent::Mark("resp-1".into())]
        );
        let stop = r#"{ "event": "stop", "sequence_number": "99", "stream_sid": "MZxxxxxxxx",
          "stop": { "call_sid": "CAxxxxxxxx", "account_sid": "ACxxxxxxxx", "reason": "callended" } }"#;
        assert_eq!(parse(&mut exotel, stop), [CarrierEvent::Stop]);
    }

    #[test]
    fn outbound_frames_match_the_documented_shapes() {
        let mut exotel = ExotelAdapter::default();
        assert_eq!(exotel.mark_frame("m"), None);
        parse(&mut exotel, START);
        assert_eq!(
            json(exotel.audio_frame(&[0, 0, 0xFF, 0x7F])),
            serde_json::json!({"event":"media","stream_sid":"MZxxxxxxxx","media":{"payload":"AAD/fw=="}})
        );
        assert_eq!(
            json(exotel.mark_frame("resp-1")),
            serde_json::json!({"event":"mark","stream_sid":"MZxxxxxxxx","mark":{"name":"resp-1"}})
        );
        assert_eq!(
            json(exotel.clear_frame()),
            serde_json::json!({"event":"clear","stream_sid":"MZxxxxxxxx"})
        );
        let chunk = exotel.frame_bytes().get();
        assert!(chunk.is_multiple_of(320) && (3200..=100 * 1024).contains(&chunk));
    }

    #[test]
    fn media_format_variants() {
        for (encoding, rate, format) in [
            (
                "audio/x-raw",
                "\"16000\"",
                AudioFormat::Pcm16Le { rate: 16000 },
            ),
            ("audio/x-raw", "24000", AudioFormat::Pcm16Le { rate: 24000 }),
            ("audio/x-mulaw;rate=8000", "null", AudioFormat::Mulaw8k),
            (
                "audio/L16;rate=16000",
                "null",
                AudioFormat::Pcm16Le { rate: 16000 },
            ),
        ] {
            let start = START
                .replace("audio/x-raw", encoding)
                .replace("\"8000\"", rate);
            let mut exotel = ExotelAdapter::default();
            parse(&mut exotel, &start);
            assert_eq!(exotel.format(), format, "{encoding} {rate}");
        }
        for (encoding, rate) in [("audio/x-raw", "\"12345\""), ("audio/opus", "\"8000\"")] {
            let start = START
                .replace("audio/x-raw", encoding)
                .replace("\"8000\"", rate);
            assert!(matches!(
                ExotelAdapter::default().parse(Frame::Text(&start)),
                Err(FrameError::UnsupportedFormat(_))
            ));
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut exotel = ExotelAdapter::default();
        for text in [
            "{}",
            r#"{"event":"start","start":{}}"#,
            r#"{"event":"media","media":{"payload":7}}"#,
            r#"{"event":"media","media":{"payload":"A"}}"#,
            r#"{"event":"mark","mark":{}}"#,
        ] {
            assert!(exotel.parse(Frame::Text(text)).is_err(), "{text}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            text in ".*",
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            never_panics("exotel", &[START.to_owned(), text], &bytes);
        }

        #[test]
        fn near_miss_frames_never_panic(texts in proptest::collection::vec(near_miss_frames(), 0..4)) {
            never_panics("exotel", &texts, &[]);
        }
    }
}
