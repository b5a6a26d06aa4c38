//! A stored recording transcribed after the call: the agent's `recording.transcription` engine
//! (Deepgram's pre-recorded `/v1/listen` or any OpenAI-compatible `/audio/transcriptions`),
//! the request sent with the audio, and the provider's answer read into one shape.

use crate::config::Config;
use crate::providers::http_url;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// Longest `recording.transcription_model` (bytes).
pub const MAX_MODEL_LEN: usize = 100;
/// Longest transcript text kept (bytes): far beyond an hour of speech, a bound on a hostile answer.
pub const MAX_TEXT_BYTES: usize = 512 * 1024;
/// Most utterances kept.
pub const MAX_UTTERANCES: usize = 5000;
/// Largest provider answer read (bytes).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Which engine transcribes an agent's recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Deepgram's pre-recorded API.
    Deepgram,
    /// An OpenAI-compatible `/audio/transcriptions`.
    Openai,
}

impl Engine {
    /// The setting's value (`deepgram`, `openai`); `none` is no engine.
    pub fn parse(name: &str) -> Option<Option<Engine>> {
        match name {
            "none" => Some(None),
            "deepgram" => Some(Some(Engine::Deepgram)),
            "openai" => Some(Some(Engine::Openai)),
            _ => None,
        }
    }

    /// The name stored and reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Deepgram => "deepgram",
            Engine::Openai => "openai",
        }
    }

    /// The model used when the agent names none.
    pub fn default_model(self) -> &'static str {
        match self {
            Engine::Deepgram => "nova-3",
            // `verbose_json` (segments with times) is whisper-1's.
            Engine::Openai => "whisper-1",
        }
    }
}

/// Whether `model` is a plausible model name: it goes into a URL query and a form field.
pub fn valid_model(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= MAX_MODEL_LEN
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
}

/// One stretch of speech with its times (seconds from the recording's start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Deepgram's channel of the utterance (dual-channel recordings: caller and agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<i64>,
}

/// A recording's transcript, as stored and announced (`call.recording.transcribed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingTranscript {
    pub provider: String,
    pub model: String,
    pub text: String,
    pub utterances: Vec<Utterance>,
}

/// An HTTP request to the transcription provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscribeRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Why a recording cannot be transcribed (yet).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TranscribeError {
    /// The engine's API key is not configured: retrying cannot help until it is.
    #[error("{0} is not set")]
    NotConfigured(&'static str),
    /// The provider's answer is not the documented shape.
    #[error("the {0} answer is not a transcript: {1}")]
    BadAnswer(&'static str, String),
}

/// The request transcribing `audio` (`content_type`) with `engine` and `model`; the OpenAI
/// form's parts are separated by `boundary` (random, from the edge).
pub fn request(
    config: &Config,
    engine: Engine,
    model: &str,
    audio: &[u8],
    content_type: &str,
    boundary: &str,
) -> Result<TranscribeRequest, TranscribeError> {
    let p = &config.providers;
    match engine {
        Engine::Deepgram => {
            let key = p
                .deepgram_api_key
                .as_deref()
                .ok_or(TranscribeError::NotConfigured("DEEPGRAM_API_KEY"))?;
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("model", model),
                    ("punctuate", "true"),
                    ("utterances", "true"),
                ])
                .finish();
            Ok(TranscribeRequest {
                url: format!(
                    "{}/v1/listen?{query}",
                    http_url(p.deepgram_url.trim_end_matches('/'))
                ),
                headers: vec![
                    ("Authorization", format!("Token {key}")),
                    ("Content-Type", content_type.to_owned()),
                ],
                body: audio.to_vec(),
            })
        }
        Engine::Openai => {
            let key = p
                .openai_api_key
                .as_deref()
                .ok_or(TranscribeError::NotConfigured("OPENAI_API_KEY"))?;
            let mut body = Vec::with_capacity(audio.len() + 512);
            let field = |body: &mut Vec<u8>, name: &str, value: &str| {
                body.extend_from_slice(
                    format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                    )
                    .as_bytes(),
                );
            };
            field(&mut body, "model", model);
            field(&mut body, "response_format", "verbose_json");
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"recording.mp3\"\r\nContent-Type: {content_type}\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(audio);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            Ok(TranscribeRequest {
                url: format!(
                    "{}/audio/transcriptions",
                    p.openai_base_url.trim_end_matches('/')
                ),
                headers: vec![
                    ("Authorization", format!("Bearer {key}")),
                    (
                        "Content-Type",
                        format!("multipart/form-data; boundary={boundary}"),
                    ),
                ],
                body,
            })
        }
    }
}

/// Whether a provider's HTTP error is worth retrying: a 5xx, a timeout (408) or a rate limit
/// (429); any other 4xx (bad audio, file too large, bad key) will answer the same again.
pub fn retryable_status(code: u16) -> bool {
    code >= 500 || code == 408 || code == 429
}

/// Reads the provider's answer: Deepgram `results.channels[0].alternatives[0].transcript` and
/// `results.utterances`; OpenAI `text` and `segments`. Bounded in size and count.
pub fn parse_answer(
    engine: Engine,
    model: &str,
    body: &[u8],
) -> Result<RecordingTranscript, TranscribeError> {
    let name = engine.as_str();
    let bad = |why: &str| TranscribeError::BadAnswer(name, why.to_owned());
    let root: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    let num = |v: &Value, key: &str| v.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let (text, items, text_key) = match engine {
        Engine::Deepgram => (
            root.pointer("/results/channels/0/alternatives/0/transcript")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no results.channels[0].alternatives[0].transcript"))?,
            root.pointer("/results/utterances"),
            "transcript",
        ),
        Engine::Openai => (
            root.get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no text"))?,
            root.get("segments"),
            "text",
        ),
    };
    let utterances = items
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .take(MAX_UTTERANCES)
                .filter_map(|u| {
                    Some(Utterance {
                        start: num(u, "start"),
                        end: num(u, "end"),
                        text: clip(u.get(text_key)?.as_str()?.trim(), 4096),
                        channel: match engine {
                            Engine::Deepgram => u.get("channel").and_then(Value::as_i64),
                            Engine::Openai => None,
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(RecordingTranscript {
        provider: name.to_owned(),
        model: model.to_owned(),
        text: clip(text.trim(), MAX_TEXT_BYTES),
        utterances,
    })
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        Config::from_lookup(|name| match name {
            "DEEPGRAM_API_KEY" => Some("dg".to_owned()),
            "OPENAI_API_KEY" => Some("sk".to_owned()),
            "DEEPGRAM_URL" => Some("ws://127.0.0.1:9001".to_owned()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn engines_and_models() {
        assert_eq!(Engine::parse("none"), Some(None));
        assert_eq!(Engine::parse("deepgram"), Some(Some(Engine::Deepgram)));
        assert_eq!(Engine::parse("whisper"), None);
        assert!(valid_model("nova-3"));
        assert!(valid_model("whisper-1"));
        assert!(!valid_model(""));
        assert!(!valid_model("nova&x=1"));
        assert!(!valid_model(&"a".repeat(MAX_MODEL_LEN + 1)));
    }

    #[test]
    fn deepgram_request_is_the_prerecorded_api() {
        let r = request(
            &config(),
            Engine::Deepgram,
            "nova-3",
            b"ID3",
            "audio/mpeg",
            "b",
        )
        .unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:9001/v1/listen?model=nova-3&punctuate=true&utterances=true"
        );
        assert_eq!(r.headers[0], ("Authorization", "Token dg".to_owned()));
        assert_eq!(r.headers[1], ("Content-Type", "audio/mpeg".to_owned()));
        assert_eq!(r.body, b"ID3");
    }

    #[test]
    fn openai_request_is_multipart_verbose_json() {
        let r = request(
            &config(),
            Engine::Openai,
            "whisper-1",
            b"\x00\x01",
            "audio/mpeg",
            "XyZ",
        )
        .unwrap();
        assert_eq!(r.url, "https://api.openai.com/v1/audio/transcriptions");
        assert_eq!(
            r.headers[1].1,
            "multipart/form-data; boundary=XyZ".to_owned()
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains("name=\"model\"\r\n\r\nwhisper-1\r\n"));
        assert!(body.contains("name=\"response_format\"\r\n\r\nverbose_json\r\n"));
        assert!(body.contains(
            "name=\"file\"; filename=\"recording.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n"
        ));
        assert!(body.ends_with("\r\n--XyZ--\r\n"));
        let bare = Config::from_lookup(|_| None).unwrap();
        assert_eq!(
            request(&bare, Engine::Openai, "m", b"", "audio/mpeg", "b"),
            Err(TranscribeError::NotConfigured("OPENAI_API_KEY"))
        );
    }

    #[test]
    fn only_transient_errors_are_retried() {
        for code in [500, 502, 503, 408, 429] {
            assert!(retryable_status(code), "{code}");
        }
        for code in [400, 401, 403, 404, 413, 422] {
            assert!(!retryable_status(code), "{code}");
        }
    }

    #[test]
    fn answers_are_read_into_one_shape() {
        let dg = json!({"metadata": {}, "results": {"channels": [{"alternatives": [
            {"transcript": "hello there how can I help", "confidence": 0.9}]}],
            "utterances": [{"start": 0.5, "end": 1.2, "channel": 0, "transcript": "hello there"},
                           {"start": 1.4, "end": 2.0, "channel": 1, "transcript": "how can I help"}]}});
        let t = parse_answer(Engine::Deepgram, "nova-3", dg.to_string().as_bytes()).unwrap();
        assert_eq!(t.text, "hello there how can I help");
        assert_eq!(t.utterances.len(), 2);
        assert_eq!(t.utterances[1].channel, Some(1));
        assert_eq!(t.provider, "deepgram");
        let oa = json!({"task": "transcribe", "language": "english", "duration": 2.0,
            "text": "Hello there.", "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": " Hello there."}]});
        let t = parse_answer(Engine::Openai, "whisper-1", oa.to_string().as_bytes()).unwrap();
        assert_eq!(t.text, "Hello there.");
        assert_eq!(t.utterances[0].text, "Hello there.");
        assert_eq!(t.utterances[0].channel, None);
        assert!(matches!(
            parse_answer(Engine::Openai, "m", b"{\"segments\": []}"),
            Err(TranscribeError::BadAnswer("openai", _))
        ));
        assert!(parse_answer(Engine::Deepgram, "m", b"<html>").is_err());
    }
}
