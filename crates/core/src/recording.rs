//! Call recordings: the agent's `recording` setting, the disclosure spoken before anything
//! else, the carrier's recording-status callback read into a storage job, where the audio may
//! be fetched from, and the short-lived signed link a recording is downloaded through.
//!
//! The audio is fetched with the carrier's credentials, so the URL a callback names is only
//! followed when it is the configured carrier API's own recording resource: a callback can
//! never send our credentials (or our fetch) anywhere else.

use crate::carrier::{twilio_authorization, Carrier};
use crate::config::Config;
use crate::recording_transcript::{valid_model, Engine, MAX_MODEL_LEN};
use crate::webhooks::callback::CallbackKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine as _;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// Sentence spoken first on a recorded call when the agent sets none.
pub const DEFAULT_DISCLOSURE: &str = "This call is recorded.";
/// Longest disclosure (characters): one or two sentences, spoken before the greeting.
pub const MAX_DISCLOSURE_CHARS: usize = 500;
/// Largest recording stored (bytes): an hour of Twilio's mono MP3 is about 14 MB.
pub const MAX_RECORDING_BYTES: usize = 32 * 1024 * 1024;
/// How long a download link in `call.recording.ready` (or the call) stays valid.
pub const LINK_VALIDITY_SECS: i64 = 3600;
/// The MIME type of the stored audio (Twilio's `.mp3` rendition).
pub const CONTENT_TYPE: &str = "audio/mpeg";
/// Domain separation: a recording link's MAC can never be a callback URL's, or the reverse.
const LINK_CONTEXT: &str = "recording-link v1";

/// What an agent asks of recordings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSettings {
    /// The carrier records the call; off unless the agent turns it on.
    pub enabled: bool,
    /// Spoken before the greeting when recording is on.
    pub disclosure: String,
    /// Transcribes the stored recording (`transcription`; `None`: `none`).
    pub transcription: Option<Engine>,
    /// The engine's model (`transcription_model`; `None`: the engine's default).
    pub transcription_model: Option<String>,
}

/// The recording settings in an agent's stored config (off when absent).
pub fn settings(config: &Value) -> RecordingSettings {
    RecordingSettings {
        enabled: config
            .pointer("/recording/enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        disclosure: config
            .pointer("/recording/disclosure")
            .and_then(Value::as_str)
            .map_or_else(|| DEFAULT_DISCLOSURE.to_owned(), str::to_owned),
        transcription: config
            .pointer("/recording/transcription")
            .and_then(Value::as_str)
            .and_then(Engine::parse)
            .flatten(),
        transcription_model: config
            .pointer("/recording/transcription_model")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

/// Why an agent's `recording` object is refused (field, message).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SettingError {
    /// `enabled` is not a boolean.
    #[error("recording.enabled must be a boolean")]
    Enabled,
    /// `disclosure` is not a non-blank string of at most [`MAX_DISCLOSURE_CHARS`].
    #[error(
        "recording.disclosure is a non-blank string of at most {MAX_DISCLOSURE_CHARS} characters"
    )]
    Disclosure,
    /// `transcription` is not `none`, `deepgram` or `openai`.
    #[error("recording.transcription is none, deepgram or openai")]
    Transcription,
    /// `transcription_model` is not a model name (letters, digits, `-_.:/`, at most 100 bytes).
    #[error("recording.transcription_model is a model name of at most {MAX_MODEL_LEN} bytes (letters, digits, -_.:/)")]
    TranscriptionModel,
}

impl SettingError {
    /// The field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            SettingError::Enabled => "recording.enabled",
            SettingError::Disclosure => "recording.disclosure",
            SettingError::Transcription => "recording.transcription",
            SettingError::TranscriptionModel => "recording.transcription_model",
        }
    }
}

/// Validates an agent's `recording` object; the value stored (defaults filled in).
pub fn parse_settings(obj: &serde_json::Map<String, Value>) -> Result<Value, Vec<SettingError>> {
    let mut errors = Vec::new();
    let enabled = match obj.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(SettingError::Enabled);
            false
        }
    };
    let disclosure = match obj.get("disclosure") {
        None | Some(Value::Null) => DEFAULT_DISCLOSURE.to_owned(),
        Some(Value::String(s))
            if !s.trim().is_empty() && s.chars().count() <= MAX_DISCLOSURE_CHARS =>
        {
            s.trim().to_owned()
        }
        Some(_) => {
            errors.push(SettingError::Disclosure);
            String::new()
        }
    };
    let transcription = match obj.get("transcription") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Engine::parse(s).unwrap_or_else(|| {
            errors.push(SettingError::Transcription);
            None
        }),
        Some(_) => {
            errors.push(SettingError::Transcription);
            None
        }
    };
    let model = match obj.get("transcription_model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if valid_model(s) => Some(s.clone()),
        Some(_) => {
            errors.push(SettingError::TranscriptionModel);
            None
        }
    };
    if errors.is_empty() {
        Ok(json!({"enabled": enabled, "disclosure": disclosure,
            "transcription": transcription.map_or("none", Engine::as_str),
            "transcription_model": model}))
    } else {
        Err(errors)
    }
}

/// The call's first words: the disclosure before the agent's own greeting when it records.
pub fn greeting(first_message: Option<&str>, config: &Value) -> Option<String> {
    let recording = settings(config);
    if !recording.enabled {
        return first_message.map(str::to_owned);
    }
    Some(
        match first_message.map(str::trim).filter(|m| !m.is_empty()) {
            Some(first) => format!("{} {first}", recording.disclosure),
            None => recording.disclosure,
        },
    )
}

/// A carrier's recording-status callback, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingNotice {
    /// The carrier's call id (Twilio `CallSid`).
    pub provider_call_id: String,
    /// The carrier's recording id (Twilio `RecordingSid`): the job's dedupe key.
    pub provider_recording_id: String,
    /// Where the audio is, as the carrier named it (checked by [`media_url`]).
    pub recording_url: String,
    /// Length in seconds, when given.
    pub duration_secs: Option<i64>,
}

/// Why a recording callback is not a job.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NoticeError {
    /// A field the carrier always sends is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The recording is not ready (`in-progress`, `absent`, …): nothing to fetch.
    #[error("recording status {0:?} has no audio to fetch")]
    NotCompleted(String),
    /// The audio URL is not the configured carrier API's recording resource.
    #[error("the recording URL is not a recording of the configured account")]
    ForeignUrl,
}

/// Reads Twilio's form-encoded `RecordingStatusCallback`; only `completed` is a job.
pub fn twilio_notice(body: &[u8]) -> Result<RecordingNotice, NoticeError> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let get = |name: &'static str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or(NoticeError::Missing(name))
    };
    let status = get("RecordingStatus")?;
    if status != "completed" {
        return Err(NoticeError::NotCompleted(status));
    }
    Ok(RecordingNotice {
        provider_call_id: get("CallSid")?,
        provider_recording_id: get("RecordingSid")?,
        recording_url: get("RecordingUrl")?,
        duration_secs: get("RecordingDuration").ok().and_then(|d| d.parse().ok()),
    })
}

/// The MP3 rendition of a Twilio recording, only when `recording_url` is
/// `{api}/2010-04-01/Accounts/{account_sid}/Recordings/{RE…}` of the configured API and
/// account (any query or fragment dropped): the fetch carries the account's credentials.
pub fn media_url(api: &str, account_sid: &str, recording_url: &str) -> Result<String, NoticeError> {
    let prefix = format!(
        "{}/2010-04-01/Accounts/{account_sid}/Recordings/",
        api.trim_end_matches('/')
    );
    let rest = recording_url
        .strip_prefix(&prefix)
        .ok_or(NoticeError::ForeignUrl)?;
    let sid = rest.split(['?', '#']).next().unwrap_or_default();
    let sid = sid.strip_suffix(".json").unwrap_or(sid);
    let well_formed =
        sid.len() == 34 && sid.starts_with("RE") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(NoticeError::ForeignUrl);
    }
    Ok(format!("{prefix}{sid}.mp3"))
}

/// Reads a Telnyx `call.recording.saved` webhook (Call Control, after `record_start`): the
/// call is `payload.call_control_id`, the audio `payload.recording_urls.mp3` (the format
/// `record_start` asked for). Its dedupe key is `payload.recording_id` when Telnyx sends one,
/// else the event's `data.id` (stable across Telnyx's retries of the same webhook). Any other
/// event type is `NotCompleted`.
pub fn telnyx_notice(body: &[u8]) -> Result<RecordingNotice, NoticeError> {
    let root: Value = serde_json::from_slice(body).map_err(|_| NoticeError::Missing("data"))?;
    let kind = root
        .pointer("/data/event_type")
        .and_then(Value::as_str)
        .ok_or(NoticeError::Missing("data.event_type"))?;
    if kind != "call.recording.saved" {
        return Err(NoticeError::NotCompleted(kind.to_owned()));
    }
    let text = |pointer: &str, name: &'static str| {
        root.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or(NoticeError::Missing(name))
    };
    let millis = root
        .pointer("/data/payload/duration_millis")
        .and_then(Value::as_i64);
    Ok(RecordingNotice {
        provider_call_id: text("/data/payload/call_control_id", "payload.call_control_id")?,
        provider_recording_id: text("/data/payload/recording_id", "payload.recording_id")
            .or_else(|_| text("/data/id", "data.id"))?,
        recording_url: text(
            "/data/payload/recording_urls/mp3",
            "payload.recording_urls.mp3",
        )?,
        duration_secs: millis.map(|ms| (ms + 500).div_euclid(1000)),
    })
}

/// Where a Telnyx recording may be fetched from, and whether with the API key: on the
/// configured API's own origin (`TELNYX_API_URL`) with `Authorization: Bearer`; on one of the
/// storage origins (`TELNYX_RECORDING_ORIGINS`, e.g. `https://*.s3.amazonaws.com`: Telnyx's
/// pre-signed links) with no credential at all. Anything else is refused, so a webhook cannot
/// point our fetch (or our key) at another host: no user-info, no other scheme or port.
pub fn telnyx_media_url(
    api: &str,
    storage_origins: &[String],
    recording_url: &str,
) -> Result<(String, bool), NoticeError> {
    let url = url::Url::parse(recording_url).map_err(|_| NoticeError::ForeignUrl)?;
    if !url.username().is_empty() || url.password().is_some() || url.host_str().is_none() {
        return Err(NoticeError::ForeignUrl);
    }
    let mut clean = url.clone();
    clean.set_fragment(None);
    let on = |origin: &str| origin_matches(origin, &url);
    if on(api) {
        return Ok((clean.to_string(), true));
    }
    if storage_origins.iter().any(|o| on(o)) {
        return Ok((clean.to_string(), false));
    }
    Err(NoticeError::ForeignUrl)
}

/// Whether `url` is on `origin` (`scheme://host[:port]`, the host may start with `*.` for any
/// subdomain): scheme, host and port all equal.
fn origin_matches(origin: &str, url: &url::Url) -> bool {
    let Some((scheme, authority)) = origin.trim_end_matches('/').split_once("://") else {
        return false;
    };
    let (pattern, port) = match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(p) => (host, Some(p)),
            Err(_) => return false,
        },
        None => (authority, None),
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    let host_ok = match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => host == pattern,
    };
    let default_port = match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    url.scheme() == scheme
        && host_ok
        && url.port_or_known_default() == port.or(default_port)
        && !pattern.contains('/')
}

/// Why a queued recording cannot be fetched.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FetchError {
    /// The carrier's credentials are not configured.
    #[error("{0} is not set")]
    NotConfigured(&'static str),
    /// The URL is no longer one of the carrier's (its configuration changed since).
    #[error("the recording URL is not a recording of the configured account")]
    ForeignUrl,
    /// Recordings of this carrier are not fetched.
    #[error("recordings of {0} are not fetched")]
    Unsupported(String),
}

/// The `Authorization` header a queued recording's media is fetched with (checked again at
/// fetch time, against the configuration of now): Twilio's account credentials; Telnyx's API
/// key only on the API's origin, nothing for its storage links.
pub fn fetch_authorization(
    config: &Config,
    provider: &str,
    media_url: &str,
) -> Result<Option<String>, FetchError> {
    match Carrier::parse(provider) {
        Some(Carrier::Twilio) => {
            twilio_authorization(config)
                .map(Some)
                .ok_or(FetchError::NotConfigured(
                    "TWILIO_ACCOUNT_SID or TWILIO_AUTH_TOKEN",
                ))
        }
        Some(Carrier::Telnyx) => {
            let (_, with_key) = telnyx_media_url(
                &config.providers.telnyx_api_url,
                &config.telnyx_recording_origins,
                media_url,
            )
            .map_err(|_| FetchError::ForeignUrl)?;
            if !with_key {
                return Ok(None);
            }
            let key = config
                .providers
                .telnyx_api_key
                .as_deref()
                .ok_or(FetchError::NotConfigured("TELNYX_API_KEY"))?;
            Ok(Some(format!("Bearer {key}")))
        }
        _ => Err(FetchError::Unsupported(provider.to_owned())),
    }
}

/// Longest retention a tenant or the deployment may set (days): a hundred years.
pub const MAX_RETENTION_DAYS: f64 = 36_500.0;
/// Recordings deleted per scheduler run (each an R2 delete and a D1 write).
pub const RETENTION_BATCH: i64 = 50;

/// Validates a retention period in days (`RECORDING_RETENTION_DAYS`, a tenant's
/// `recording_retention_days`): a number from 0 (keep forever) to [`MAX_RETENTION_DAYS`];
/// fractions are allowed (a day is 86 400 000 ms).
pub fn valid_retention_days(days: f64) -> bool {
    days.is_finite() && (0.0..=MAX_RETENTION_DAYS).contains(&days)
}

/// A valid retention of `days` in milliseconds (0: forever), `None` when not valid.
pub fn retention_ms(days: f64) -> Option<i64> {
    // At most 36 500 days: the product fits an i64 many times over.
    #[allow(clippy::cast_possible_truncation)]
    valid_retention_days(days).then(|| (days * 86_400_000.0).round() as i64)
}

/// The R2 key of a call's recording: under its tenant, so no key of one tenant's names
/// another's object.
pub fn object_key(tenant_id: &str, call_id: &str, recording_id: &str) -> String {
    format!("{tenant_id}/{call_id}/{recording_id}.mp3")
}

/// Why a download link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LinkError {
    /// No signing key is configured: no link can be made or believed.
    #[error("recording links need CALLBACK_SIGNING_KEY or ADMIN_API_KEY")]
    NoKey,
    /// The MAC is not ours (or the link was altered).
    #[error("the link's signature is not valid")]
    Forged,
    /// The link was ours but is past its expiry.
    #[error("the link has expired")]
    Expired,
}

fn link_mac(key: &CallbackKey, call_id: &str, expires_unix: i64) -> Option<Vec<u8>> {
    key.mac_of(format!("{LINK_CONTEXT}:{}:{call_id}:{expires_unix}", call_id.len()).as_bytes())
}

/// The signature (base64url, no padding) of a link to `call_id`'s recording valid until `expires_unix`.
pub fn sign_link(key: &CallbackKey, call_id: &str, expires_unix: i64) -> Option<String> {
    link_mac(key, call_id, expires_unix).map(|mac| BASE64URL.encode(mac))
}

/// Checks a link's `expires` and `sig` (both as given in the query) at `now_unix`; the MAC is
/// checked first, so an altered expiry is a forgery, not an expired link.
pub fn verify_link(
    key: Option<&CallbackKey>,
    call_id: &str,
    expires: Option<&str>,
    sig: Option<&str>,
    now_unix: i64,
) -> Result<(), LinkError> {
    let key = key.ok_or(LinkError::NoKey)?;
    let expires: i64 = expires
        .and_then(|e| e.parse().ok())
        .ok_or(LinkError::Forged)?;
    let given = sig
        .and_then(|s| BASE64URL.decode(s).ok())
        .ok_or(LinkError::Forged)?;
    let expected = link_mac(key, call_id, expires).ok_or(LinkError::NoKey)?;
    if !bool::from(expected.ct_eq(&given)) {
        return Err(LinkError::Forged);
    }
    if now_unix > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = "https://api.twilio.com";
    const AC: &str = "AC00000000000000000000000000000001";
    const RE: &str = "RE0123456789abcdef0123456789abcdef";

    fn key() -> CallbackKey {
        CallbackKey::from_config(Some("k"), None).unwrap()
    }

    #[test]
    fn settings_default_off_and_validated() {
        assert!(!settings(&json!({})).enabled);
        let stored = parse_settings(json!({"enabled": true}).as_object().unwrap()).unwrap();
        assert_eq!(
            settings(&json!({ "recording": stored })),
            RecordingSettings {
                enabled: true,
                disclosure: DEFAULT_DISCLOSURE.to_owned(),
                transcription: None,
                transcription_model: None,
            }
        );
        let bad = json!({"enabled": "yes", "disclosure": "x".repeat(MAX_DISCLOSURE_CHARS + 1)});
        assert_eq!(
            parse_settings(bad.as_object().unwrap()).unwrap_err(),
            vec![SettingError::Enabled, SettingError::Disclosure]
        );
        let transcribed = json!({"enabled": true, "transcription": "openai"});
        let stored = parse_settings(transcribed.as_object().unwrap()).unwrap();
        assert_eq!(stored["transcription_model"], Value::Null);
        let read = settings(&json!({ "recording": stored }));
        assert_eq!(read.transcription, Some(Engine::Openai));
        let bad = json!({"transcription": "whisper", "transcription_model": "a b"});
        assert_eq!(
            parse_settings(bad.as_object().unwrap()).unwrap_err(),
            vec![
                SettingError::Transcription,
                SettingError::TranscriptionModel
            ]
        );
        let blank = json!({"disclosure": "  "});
        assert!(parse_settings(blank.as_object().unwrap()).is_err());
    }

    #[test]
    fn disclosure_comes_before_the_greeting_only_when_recording() {
        let on = json!({"recording": {"enabled": true, "disclosure": "We record."}});
        assert_eq!(
            greeting(Some("Hi."), &on).as_deref(),
            Some("We record. Hi.")
        );
        assert_eq!(greeting(None, &on).as_deref(), Some("We record."));
        assert_eq!(greeting(Some("Hi."), &json!({})).as_deref(), Some("Hi."));
        assert_eq!(greeting(None, &json!({})), None);
    }

    #[test]
    fn twilio_notice_reads_completed_recordings_only() {
        let url = format!("{API}/2010-04-01/Accounts/{AC}/Recordings/{RE}");
        let body = format!(
            "AccountSid={AC}&CallSid=CA1&RecordingSid={RE}&RecordingUrl={}&RecordingStatus=completed&RecordingDuration=7",
            url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
        );
        let n = twilio_notice(body.as_bytes()).unwrap();
        assert_eq!(n.provider_call_id, "CA1");
        assert_eq!(n.provider_recording_id, RE);
        assert_eq!(n.duration_secs, Some(7));
        assert_eq!(
            twilio_notice(b"RecordingStatus=absent&CallSid=CA1"),
            Err(NoticeError::NotCompleted("absent".into()))
        );
        assert_eq!(
            twilio_notice(b"RecordingStatus=completed&CallSid=CA1"),
            Err(NoticeError::Missing("RecordingSid"))
        );
    }

    #[test]
    fn media_url_only_for_the_configured_account() {
        let own = format!("{API}/2010-04-01/Accounts/{AC}/Recordings/{RE}");
        assert_eq!(media_url(API, AC, &own).unwrap(), format!("{own}.mp3"));
        assert_eq!(
            media_url(&format!("{API}/"), AC, &format!("{own}.json?x=1")).unwrap(),
            format!("{own}.mp3")
        );
        for foreign in [
            format!("https://evil.example/2010-04-01/Accounts/{AC}/Recordings/{RE}"),
            format!("{API}/2010-04-01/Accounts/ACother/Recordings/{RE}"),
            format!("{API}/2010-04-01/Accounts/{AC}/Recordings/../../x"),
            format!("{API}.evil.example/2010-04-01/Accounts/{AC}/Recordings/{RE}"),
            format!("{API}/2010-04-01/Accounts/{AC}/Recordings/{RE}/x"),
        ] {
            assert_eq!(
                media_url(API, AC, &foreign),
                Err(NoticeError::ForeignUrl),
                "{foreign}"
            );
        }
    }

    #[test]
    fn links_verify_and_expire() {
        let k = key();
        let sig = sign_link(&k, "call_1", 1000).unwrap();
        assert_eq!(
            verify_link(Some(&k), "call_1", Some("1000"), Some(&sig), 999),
            Ok(())
        );
        assert_eq!(
            verify_link(Some(&k), "call_1", Some("1000"), Some(&sig), 1001),
            Err(LinkError::Expired)
        );
        assert_eq!(
            verify_link(Some(&k), "call_1", Some("2000"), Some(&sig), 999),
            Err(LinkError::Forged)
        );
        assert_eq!(
            verify_link(Some(&k), "call_2", Some("1000"), Some(&sig), 999),
            Err(LinkError::Forged)
        );
        assert_eq!(
            verify_link(Some(&k), "call_1", Some("1000"), None, 999),
            Err(LinkError::Forged)
        );
        assert_eq!(
            verify_link(None, "call_1", Some("1000"), Some(&sig), 999),
            Err(LinkError::NoKey)
        );
        // A callback URL's MAC over the same call is not a link's.
        let other = CallbackKey::from_config(Some("other"), None).unwrap();
        assert_eq!(
            verify_link(Some(&other), "call_1", Some("1000"), Some(&sig), 999),
            Err(LinkError::Forged)
        );
    }

    fn telnyx_saved(payload: Value) -> Vec<u8> {
        json!({"data": {"event_type": "call.recording.saved", "id": "ev-1", "payload": payload,
            "record_type": "event"}, "meta": {"attempt": 1}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn telnyx_notice_reads_saved_recordings_only() {
        let n = telnyx_notice(&telnyx_saved(json!({"call_control_id": "v3:a",
            "recording_id": "r-1", "duration_millis": 6600,
            "recording_urls": {"mp3": "https://s3.amazonaws.com/b/r.mp3?X-Amz-Signature=1",
                "wav": "https://s3.amazonaws.com/b/r.wav"}})))
        .unwrap();
        assert_eq!(n.provider_call_id, "v3:a");
        assert_eq!(n.provider_recording_id, "r-1");
        assert_eq!(n.duration_secs, Some(7));
        assert!(n.recording_url.ends_with("r.mp3?X-Amz-Signature=1"));
        // Without a recording id, the event's id (the same on Telnyx's retries) is the key.
        let n = telnyx_notice(&telnyx_saved(
            json!({"call_control_id": "v3:a", "recording_urls": {"mp3": "https://x/r.mp3"}}),
        ))
        .unwrap();
        assert_eq!(n.provider_recording_id, "ev-1");
        assert_eq!(n.duration_secs, None);
        assert_eq!(
            telnyx_notice(&telnyx_saved(json!({"call_control_id": "v3:a",
                "recording_urls": {"wav": "https://x/r.wav"}}))),
            Err(NoticeError::Missing("payload.recording_urls.mp3"))
        );
        let hangup = json!({"data": {"event_type": "call.hangup", "id": "e", "payload": {}}});
        assert_eq!(
            telnyx_notice(hangup.to_string().as_bytes()),
            Err(NoticeError::NotCompleted("call.hangup".into()))
        );
    }

    #[test]
    fn telnyx_media_only_from_the_api_or_the_storage_origins() {
        let api = "https://api.telnyx.com";
        let storage = vec![
            "https://s3.amazonaws.com".to_owned(),
            "https://*.s3.amazonaws.com".to_owned(),
            "http://127.0.0.1:9000".to_owned(),
        ];
        let ok = |u: &str| telnyx_media_url(api, &storage, u);
        assert_eq!(
            ok("https://api.telnyx.com/v2/recordings/r/mp3#x").unwrap(),
            (
                "https://api.telnyx.com/v2/recordings/r/mp3".to_owned(),
                true
            ),
            "the API's origin: fetched with the key"
        );
        assert!(!ok("https://s3.amazonaws.com/b/r.mp3?sig=1").unwrap().1);
        assert!(!ok("https://bucket.s3.amazonaws.com/r.mp3").unwrap().1);
        assert!(!ok("http://127.0.0.1:9000/r.mp3").unwrap().1);
        for foreign in [
            "http://api.telnyx.com/v2/recordings/r/mp3",
            "https://api.telnyx.com:8443/v2/recordings/r/mp3",
            "https://api.telnyx.com.evil.example/r.mp3",
            "https://user:pw@api.telnyx.com/r.mp3",
            "https://evil.example/r.mp3",
            "https://s3.amazonaws.com.evil.example/r.mp3",
            "https://evils3.amazonaws.com/r.mp3",
            "https://.s3.amazonaws.com/r.mp3",
            "http://127.0.0.1:9/r.mp3",
            "http://169.254.169.254/latest/meta-data",
            "file:///etc/passwd",
            "not a url",
        ] {
            assert_eq!(ok(foreign), Err(NoticeError::ForeignUrl), "{foreign}");
        }
    }

    #[test]
    fn fetch_authorization_sends_the_key_only_to_the_api() {
        let mut config = crate::config::Config::from_lookup(|name| match name {
            "TELNYX_API_KEY" => Some("KEY1".to_owned()),
            "TWILIO_ACCOUNT_SID" => Some(AC.to_owned()),
            "TWILIO_AUTH_TOKEN" => Some("tok".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            fetch_authorization(&config, "telnyx", "https://api.telnyx.com/v2/recordings/r"),
            Ok(Some("Bearer KEY1".to_owned()))
        );
        assert_eq!(
            fetch_authorization(&config, "telnyx", "https://b.s3.amazonaws.com/r.mp3"),
            Ok(None)
        );
        assert_eq!(
            fetch_authorization(&config, "telnyx", "https://evil.example/r.mp3"),
            Err(FetchError::ForeignUrl)
        );
        assert!(fetch_authorization(&config, "twilio", "x")
            .unwrap()
            .unwrap()
            .starts_with("Basic "));
        config.providers.telnyx_api_key = None;
        assert_eq!(
            fetch_authorization(&config, "telnyx", "https://api.telnyx.com/v2/recordings/r"),
            Err(FetchError::NotConfigured("TELNYX_API_KEY"))
        );
    }

    #[test]
    fn retention_is_bounded_and_zero_keeps_forever() {
        assert_eq!(retention_ms(0.0), Some(0));
        assert_eq!(retention_ms(1.0), Some(86_400_000));
        assert_eq!(retention_ms(0.5 / 86_400.0), Some(500));
        assert_eq!(retention_ms(f64::NAN), None);
        assert_eq!(retention_ms(-0.5), None);
        assert!(valid_retention_days(36_500.0));
        assert!(!valid_retention_days(36_500.5));
        assert!(!valid_retention_days(-1.0));
    }
}
