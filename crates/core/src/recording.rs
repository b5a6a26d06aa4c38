//! Call recordings: the agent's `recording` setting, the disclosure spoken before anything
//! else, the carrier's recording-status callback read into a storage job, where the audio may
//! be fetched from, and the short-lived signed link a recording is downloaded through.
//!
//! The audio is fetched with the carrier's credentials, so the URL a callback names is only
//! followed when it is the configured carrier API's own recording resource: a callback can
//! never send our credentials (or our fetch) anywhere else.

use crate::webhooks::callback::CallbackKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;
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
}

impl SettingError {
    /// The field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            SettingError::Enabled => "recording.enabled",
            SettingError::Disclosure => "recording.disclosure",
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
    if errors.is_empty() {
        Ok(json!({"enabled": enabled, "disclosure": disclosure}))
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
                disclosure: DEFAULT_DISCLOSURE.to_owned()
            }
        );
        let bad = json!({"enabled": "yes", "disclosure": "x".repeat(MAX_DISCLOSURE_CHARS + 1)});
        assert_eq!(
            parse_settings(bad.as_object().unwrap()).unwrap_err(),
            vec![SettingError::Enabled, SettingError::Disclosure]
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
}
