//! Text-to-speech HTTP requests (ElevenLabs, Deepgram Aura, OpenAI), asking for telephony audio
//! directly where the provider offers it.

use super::http_url;
use crate::config::Providers;
use serde_json::json;
use thiserror::Error;

/// A TTS provider, as named in an agent's `voice.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtsProvider {
    /// ElevenLabs HTTP streaming, μ-law 8 kHz.
    ElevenLabs,
    /// Deepgram Aura REST, μ-law 8 kHz.
    DeepgramAura,
    /// OpenAI `/audio/speech`, PCM16 24 kHz.
    OpenAi,
}

impl TtsProvider {
    /// Parses the agent config value `elevenlabs`, `deepgram` or `openai`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "elevenlabs" => Some(TtsProvider::ElevenLabs),
            "deepgram" => Some(TtsProvider::DeepgramAura),
            "openai" => Some(TtsProvider::OpenAi),
            _ => None,
        }
    }

    /// The agent config value.
    pub fn as_str(self) -> &'static str {
        match self {
            TtsProvider::ElevenLabs => "elevenlabs",
            TtsProvider::DeepgramAura => "deepgram",
            TtsProvider::OpenAi => "openai",
        }
    }

    /// The voice used when the agent names none (for Aura the voice is the model).
    pub fn default_voice(self) -> &'static str {
        match self {
            TtsProvider::ElevenLabs => "21m00Tcm4TlvDq8ikWAM",
            TtsProvider::DeepgramAura => "aura-2-thalia-en",
            TtsProvider::OpenAi => "alloy",
        }
    }
}

/// The audio format of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtsOutput {
    /// Raw G.711 μ-law, 8 kHz mono: ready for the carrier.
    Mulaw8k,
    /// Raw PCM16 little-endian, 24 kHz mono: must be resampled to 8 kHz and encoded.
    Pcm16Le24k,
}

/// An HTTP `POST` whose response body streams the synthesised audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// JSON.
    pub body: String,
    pub output: TtsOutput,
}

/// Why no request can be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TtsError {
    /// The provider's API key is not configured.
    #[error("{0} is not set")]
    MissingApiKey(&'static str),
    /// The voice is not a plain identifier (letters, digits, `-`, `_`).
    #[error("invalid TTS voice {0:?}")]
    InvalidVoice(String),
    /// There is nothing to say.
    #[error("TTS text is empty")]
    EmptyText,
    /// The provider refuses texts this long.
    #[error("TTS text has {len} characters, more than the {max} allowed")]
    TextTooLong { len: usize, max: usize },
}

/// ElevenLabs' low-latency model, suited to live calls.
pub(crate) const ELEVENLABS_MODEL: &str = "eleven_flash_v2_5";
const OPENAI_TTS_MODEL: &str = "gpt-4o-mini-tts";
/// OpenAI's limit on `input`.
const OPENAI_MAX_CHARS: usize = 4096;

/// A TTS provider's credential header, the same on its HTTP and socket requests.
pub(crate) fn auth_header(
    providers: &Providers,
    provider: TtsProvider,
) -> Result<(String, String), TtsError> {
    match provider {
        TtsProvider::ElevenLabs => providers
            .elevenlabs_api_key
            .as_deref()
            .map(|key| ("xi-api-key".to_owned(), key.to_owned()))
            .ok_or(TtsError::MissingApiKey("ELEVENLABS_API_KEY")),
        TtsProvider::DeepgramAura => providers
            .deepgram_api_key
            .as_deref()
            .map(|key| ("Authorization".to_owned(), format!("Token {key}")))
            .ok_or(TtsError::MissingApiKey("DEEPGRAM_API_KEY")),
        TtsProvider::OpenAi => providers
            .openai_api_key
            .as_deref()
            .map(|key| ("Authorization".to_owned(), format!("Bearer {key}")))
            .ok_or(TtsError::MissingApiKey("OPENAI_API_KEY")),
    }
}

/// The voice to use (the agent's or the provider's default), if it is a plain identifier.
pub(crate) fn checked_voice(provider: TtsProvider, voice: Option<&str>) -> Result<&str, TtsError> {
    let voice = voice.unwrap_or(provider.default_voice());
    // The voice lands in a URL path or query, so only plain identifiers are let through.
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if voice.is_empty() || !voice.chars().all(plain) {
        return Err(TtsError::InvalidVoice(voice.to_owned()));
    }
    Ok(voice)
}

/// Builds the request that speaks `text` with `voice` (or the provider's default voice).
pub fn tts_request(
    providers: &Providers,
    provider: TtsProvider,
    voice: Option<&str>,
    text: &str,
) -> Result<TtsRequest, TtsError> {
    let voice = checked_voice(provider, voice)?;
    if text.trim().is_empty() {
        return Err(TtsError::EmptyText);
    }
    let json = ("Content-Type".to_owned(), "application/json".to_owned());
    match provider {
        TtsProvider::ElevenLabs => {
            let auth = auth_header(providers, provider)?;
            Ok(TtsRequest {
                url: format!(
                    "{}/v1/text-to-speech/{voice}/stream?output_format=ulaw_8000",
                    providers.elevenlabs_url.trim_end_matches('/')
                ),
                headers: vec![auth, json],
                body: json!({"text": text, "model_id": ELEVENLABS_MODEL}).to_string(),
                output: TtsOutput::Mulaw8k,
            })
        }
        TtsProvider::DeepgramAura => {
            let auth = auth_header(providers, provider)?;
            Ok(TtsRequest {
                // `container=none`: the default WAV header would play as a burst of noise.
                url: format!(
                    "{}/v1/speak?model={voice}&encoding=mulaw&sample_rate=8000&container=none",
                    http_url(providers.deepgram_url.trim_end_matches('/')),
                ),
                headers: vec![auth, json],
                body: json!({"text": text}).to_string(),
                output: TtsOutput::Mulaw8k,
            })
        }
        TtsProvider::OpenAi => {
            let auth = auth_header(providers, provider)?;
            let len = text.chars().count();
            if len > OPENAI_MAX_CHARS {
                return Err(TtsError::TextTooLong {
                    len,
                    max: OPENAI_MAX_CHARS,
                });
            }
            Ok(TtsRequest {
                url: format!(
                    "{}/audio/speech",
                    providers.openai_base_url.trim_end_matches('/')
                ),
                headers: vec![auth, json],
                body: json!({"model": OPENAI_TTS_MODEL, "input": text, "voice": voice,
                             "response_format": "pcm"})
                .to_string(),
                output: TtsOutput::Pcm16Le24k,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn providers(vars: &[(&str, &str)]) -> Providers {
        crate::config::from_pairs(vars).unwrap().providers
    }

    fn all_keys() -> Providers {
        providers(&[
            ("ELEVENLABS_API_KEY", "xi"),
            ("DEEPGRAM_API_KEY", "dg"),
            ("OPENAI_API_KEY", "sk"),
        ])
    }

    fn body(req: &TtsRequest) -> Value {
        serde_json::from_str(&req.body).unwrap()
    }

    #[test]
    fn provider_names_round_trip() {
        for p in [
            TtsProvider::ElevenLabs,
            TtsProvider::DeepgramAura,
            TtsProvider::OpenAi,
        ] {
            assert_eq!(TtsProvider::from_name(p.as_str()), Some(p));
        }
        assert_eq!(TtsProvider::from_name("polly"), None);
    }

    #[test]
    fn elevenlabs_streams_ulaw() {
        let req = tts_request(
            &all_keys(),
            TtsProvider::ElevenLabs,
            Some("abc123"),
            "Your table for two is confirmed for 7pm.",
        )
        .unwrap();
        assert_eq!(
            req.url,
            "https://api.elevenlabs.io/v1/text-to-speech/abc123/stream?output_format=ulaw_8000"
        );
        assert!(req.headers.contains(&("xi-api-key".into(), "xi".into())));
        assert_eq!(
            body(&req),
            json!({"text": "Your table for two is confirmed for 7pm.", "model_id": "eleven_flash_v2_5"})
        );
        assert_eq!(req.output, TtsOutput::Mulaw8k);
    }

    #[test]
    fn aura_uses_the_http_form_of_deepgram_url_and_no_container() {
        let mut p = all_keys();
        let req = tts_request(&p, TtsProvider::DeepgramAura, None, "Hi.").unwrap();
        assert_eq!(
            req.url,
            "https://api.deepgram.com/v1/speak?model=aura-2-thalia-en&encoding=mulaw&sample_rate=8000&container=none"
        );
        assert!(req
            .headers
            .contains(&("Authorization".into(), "Token dg".into())));
        assert_eq!(body(&req), json!({"text": "Hi."}));
        assert_eq!(req.output, TtsOutput::Mulaw8k);

        p.deepgram_url = "ws://127.0.0.1:9001".into();
        let req = tts_request(&p, TtsProvider::DeepgramAura, None, "Hi.").unwrap();
        assert!(req.url.starts_with("http://127.0.0.1:9001/v1/speak?"));
    }

    #[test]
    fn openai_asks_for_pcm() {
        let p = providers(&[
            ("OPENAI_API_KEY", "sk"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9002/v1/"),
        ]);
        let req = tts_request(&p, TtsProvider::OpenAi, Some("coral"), "Booked.").unwrap();
        assert_eq!(req.url, "http://127.0.0.1:9002/v1/audio/speech");
        assert!(req
            .headers
            .contains(&("Authorization".into(), "Bearer sk".into())));
        assert_eq!(
            body(&req),
            json!({"model": "gpt-4o-mini-tts", "input": "Booked.", "voice": "coral", "response_format": "pcm"})
        );
        assert_eq!(req.output, TtsOutput::Pcm16Le24k);
    }

    #[test]
    fn refusals_name_the_reason() {
        let p = all_keys();
        assert_eq!(
            tts_request(&providers(&[]), TtsProvider::ElevenLabs, None, "x"),
            Err(TtsError::MissingApiKey("ELEVENLABS_API_KEY"))
        );
        assert_eq!(
            tts_request(&p, TtsProvider::ElevenLabs, Some("../admin"), "x"),
            Err(TtsError::InvalidVoice("../admin".into()))
        );
        assert_eq!(
            tts_request(&p, TtsProvider::DeepgramAura, Some(""), "x"),
            Err(TtsError::InvalidVoice(String::new()))
        );
        assert_eq!(
            tts_request(&p, TtsProvider::OpenAi, None, " \n"),
            Err(TtsError::EmptyText)
        );
        assert_eq!(
            tts_request(&p, TtsProvider::OpenAi, None, &"a".repeat(4097)),
            Err(TtsError::TextTooLong {
                len: 4097,
                max: 4096
            })
        );
        assert!(tts_request(&p, TtsProvider::OpenAi, None, &"é".repeat(4096)).is_ok());
    }
}
