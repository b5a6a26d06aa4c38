//! Telnyx Media Streaming: snake_case JSON text frames, PCMU / PCMA / L16 (big-endian) payloads.

use super::carrier::{
    self, Carrier, CarrierEvent, Frame, FrameError, MediaRead, OutFrame, StreamState,
};
use super::codec::AudioFormat;
use std::num::NonZeroUsize;

/// The Telnyx side of a call's media WebSocket (bidirectional mode `rtp`).
#[derive(Debug, Clone)]
pub struct TelnyxAdapter {
    state: StreamState,
}

impl Default for TelnyxAdapter {
    fn default() -> Self {
        TelnyxAdapter {
            state: StreamState::new(AudioFormat::Mulaw8k),
        }
    }
}

impl Carrier for TelnyxAdapter {
    fn read_media(&mut self, frame: Frame<'_>) -> Option<MediaRead> {
        self.state.read_media(frame, "stream_id", Some("outbound"))
    }

    fn parse_full(&mut self, frame: Frame<'_>) -> Result<Vec<CarrierEvent>, FrameError> {
        let (event, value) = carrier::json_event(frame)?;
        match event.as_str() {
            "connected" => Ok(vec![CarrierEvent::Connected]),
            "start" => {
                let stream_id = carrier::required_text(&value, "/stream_id")?.to_owned();
                let format = match carrier::text_at(&value, "/start/media_format/encoding") {
                    None => AudioFormat::Mulaw8k,
                    Some(encoding) => start_format(
                        encoding,
                        carrier::number_at(&value, "/start/media_format/sample_rate"),
                    )?,
                };
                let call_id = carrier::text_at(&value, "/start/call_control_id").map(str::to_owned);
                let params = carrier::params_at(&value, "/start/custom_parameters");
                Ok(self.state.start(stream_id, call_id, params, format))
            }
            "media" => {
                let payload = carrier::required_text(&value, "/media/payload")?;
                self.state.adopt_id(carrier::text_at(&value, "/stream_id"));
                // With `stream_track=both_tracks` our own audio comes back as `outbound`.
                if carrier::text_at(&value, "/media/track") == Some("outbound") {
                    return Ok(Vec::new());
                }
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
            "error" => {
                let detail = value.get("payload").unwrap_or(&value).to_string();
                Ok(vec![CarrierEvent::Error(detail)])
            }
            _ => Ok(Vec::new()),
        }
    }

    fn audio_frame(&self, audio: &[u8]) -> Option<OutFrame> {
        let payload = carrier::encode_payload(audio);
        Some(text(
            serde_json::json!({"event": "media", "media": {"payload": payload}}),
        ))
    }

    fn mark_frame(&self, name: &str) -> Option<OutFrame> {
        Some(text(
            serde_json::json!({"event": "mark", "mark": {"name": name}}),
        ))
    }

    fn clear_frame(&self) -> Option<OutFrame> {
        Some(text(serde_json::json!({"event": "clear"})))
    }

    fn format(&self) -> AudioFormat {
        self.state.format
    }

    fn frame_bytes(&self) -> NonZeroUsize {
        carrier::frame_size(self.state.format.bytes_for_ms(20))
    }
}

/// Outbound frames omit `stream_id`, as Telnyx's own examples (and Pipecat) do.
fn text(value: serde_json::Value) -> OutFrame {
    OutFrame::Text(value.to_string())
}

/// Maps `media_format.encoding` (the codec names Telnyx uses) to a format.
fn start_format(encoding: &str, rate: Option<u32>) -> Result<AudioFormat, FrameError> {
    match encoding.to_ascii_uppercase().as_str() {
        "PCMU" => Ok(AudioFormat::Mulaw8k),
        "PCMA" => Ok(AudioFormat::Alaw8k),
        "L16" => Ok(AudioFormat::L16Be {
            rate: carrier::pcm_rate(rate, "L16")?,
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
      "event": "start",
      "sequence_number": "1",
      "stream_id": "32DE0DEA-53CB-4B21-89A4-9E1819C043BC",
      "start": {
        "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
        "call_control_id": "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ",
        "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
        "from": "+13122010094", "to": "+13122123456",
        "tags": ["TAG1", "TAG2"],
        "client_state": "aGF2ZSBhIG5pY2UgZGF5ID1d",
        "custom_parameters": { "customer_id": "customer_123" },
        "media_format": { "encoding": "PCMU", "sample_rate": 8000, "channels": 1 }
      }
    }"#;

    fn parse(adapter: &mut TelnyxAdapter, text: &str) -> Vec<CarrierEvent> {
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
        let mut telnyx = TelnyxAdapter::default();
        assert_eq!(
            parse(
                &mut telnyx,
                r#"{ "event": "connected", "version": "1.0.0" }"#
            ),
            [CarrierEvent::Connected]
        );
        assert_eq!(
            parse(&mut telnyx, START),
            [CarrierEvent::Start {
                stream_id: "32DE0DEA-53CB-4B21-89A4-9E1819C043BC".into(),
                call_id: Some("v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ".into()),
                params: BTreeMap::from([("customer_id".into(), "customer_123".into())]),
                format: AudioFormat::Mulaw8k,
            }]
        );
        let media = r#"{ "event": "media", "sequence_number": "4", "stream_id": "32DE",
          "media": { "track": "inbound", "chunk": "2", "timestamp": "5", "payload": "AQID" } }"#;
        assert_eq!(
            parse(&mut telnyx, media),
            [CarrierEvent::Audio(vec![1, 2, 3])]
        );
        let dtmf = r#"{ "event": "dtmf", "stream_id": "32DE", "sequence_number": "6", "dtmf": { "digit": "1" } }"#;
        assert_eq!(parse(&mut telnyx, dtmf), [CarrierEvent::Dtmf("1".into())]);
        let mark = r#"{ "event": "mark", "stream_id": "32DE", "sequence_number": "7", "mark": { "name": "resp-1" } }"#;
        assert_eq!(
            parse(&mut telnyx, mark),
            [CarrierEvent::Mark("resp-1".into())]
        );
        let stop = r#"{ "event": "stop", "sequence_number": "5", "stream_id": "32DE",
          "stop": { "user_id": "3E6F", "call_control_id": "v2:x" } }"#;
        assert_eq!(parse(&mut telnyx, stop), [CarrierEvent::Stop]);
        let error = r#"{ "event": "error", "stream_id": "32DE",
          "payload": { "code": 100002, "title": "unknown_error", "detail": "x" } }"#;
        match &parse(&mut telnyx, error)[..] {
            [CarrierEvent::Error(detail)] => assert!(detail.contains("100002"), "{detail}"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(telnyx.frame_bytes().get(), 160);
    }

    #[test]
    fn media_format_decides_codec_and_frame_size() {
        for (encoding, rate, format, frame) in [
            ("PCMA", "8000", AudioFormat::Alaw8k, 160),
            ("L16", "8000", AudioFormat::L16Be { rate: 8000 }, 320),
            ("L16", "16000", AudioFormat::L16Be { rate: 16000 }, 640),
        ] {
            let mut telnyx = TelnyxAdapter::default();
            let start = START
                .replace("\"PCMU\"", &format!("\"{encoding}\""))
                .replace("8000", rate);
            match &parse(&mut telnyx, &start)[..] {
                [CarrierEvent::Start { format: f, .. }] => assert_eq!(*f, format),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(telnyx.format(), format);
            assert_eq!(telnyx.frame_bytes().get(), frame);
        }
        for (encoding, rate) in [("OPUS", "8000"), ("L16", "11025"), ("G722", "16000")] {
            let start = START
                .replace("\"PCMU\"", &format!("\"{encoding}\""))
                .replace("8000", rate);
            assert!(matches!(
                TelnyxAdapter::default().parse(Frame::Text(&start)),
                Err(FrameError::UnsupportedFormat(_))
            ));
        }
    }

    #[test]
    fn outbound_frames_match_the_documented_shapes() {
        let telnyx = TelnyxAdapter::default();
        assert_eq!(
            json(telnyx.audio_frame(&[1, 2, 3])),
            serde_json::json!({"event":"media","media":{"payload":"AQID"}})
        );
        assert_eq!(
            json(telnyx.mark_frame("resp-1")),
            serde_json::json!({"event":"mark","mark":{"name":"resp-1"}})
        );
        assert_eq!(
            json(telnyx.clear_frame()),
            serde_json::json!({"event":"clear"})
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        let mut telnyx = TelnyxAdapter::default();
        for text in [
            "",
            "[]",
            r#"{"event":5}"#,
            r#"{"event":"start","start":{}}"#,
            r#"{"event":"media","media":{}}"#,
            r#"{"event":"media","media":{"payload":"%%%"}}"#,
            r#"{"event":"dtmf"}"#,
        ] {
            assert!(telnyx.parse(Frame::Text(text)).is_err(), "{text}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            text in ".*",
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            never_panics("telnyx", &[START.to_owned(), text], &bytes);
        }

        #[test]
        fn near_miss_frames_never_panic(texts in proptest::collection::vec(near_miss_frames(), 0..4)) {
            never_panics("telnyx", &texts, &[]);
        }
    }
}
