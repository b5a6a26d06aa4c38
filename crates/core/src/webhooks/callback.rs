//! Signed callback URLs: the `call_id` we put in a URL handed to a carrier or provider (Twilio
//! `Url`/`StatusCallback`, the owner-first `<Dial action>`, Bland's `webhook`) is only believed
//! when it comes back with our HMAC over (call id, attempt, expiry).
//!
//! Most providers sign the body but not the URL (Bland, Telnyx, Retell, Vapi), and even Twilio's
//! signature does not stop a signed request from being replayed to a URL with another query.
//! Without this MAC anyone holding one signed body could name any call, in any tenant.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Query parameter naming our call.
pub const CALL_ID_PARAM: &str = "call_id";
/// Query parameter with the attempt number the URL was issued for.
pub const ATTEMPT_PARAM: &str = "attempt";
/// Query parameter with the URL's expiry (Unix seconds).
pub const EXPIRES_PARAM: &str = "exp";
/// Query parameter with the MAC (base64url, no padding).
pub const SIGNATURE_PARAM: &str = "sig";

/// How long a callback URL is believed after it is handed out (or after the scheduled start,
/// for a provider that dials later by itself): covers the longest call and the providers'
/// callback retries.
pub const CALLBACK_VALIDITY_SECS: i64 = 2 * 86_400;

/// Context string of the key derived from `ADMIN_API_KEY` when no dedicated key is set.
const DERIVATION_CONTEXT: &[u8] = b"phone-agent callback url v1";
/// Longest call id we sign or read (ours are ~32 characters).
const MAX_CALL_ID_LEN: usize = 128;

/// The server key callback URLs are signed with.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackKey(Vec<u8>);

impl std::fmt::Debug for CallbackKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackKey(..)")
    }
}

impl CallbackKey {
    /// `CALLBACK_SIGNING_KEY` when set, else HMAC-SHA256(`ADMIN_API_KEY`, context); `None`
    /// when neither is configured (then no callback URL can be signed or believed).
    pub fn from_config(signing_key: Option<&str>, admin_api_key: Option<&str>) -> Option<Self> {
        if let Some(key) = signing_key.filter(|k| !k.is_empty()) {
            return Some(CallbackKey(key.as_bytes().to_vec()));
        }
        let admin = admin_api_key.filter(|k| !k.is_empty())?;
        let mut mac = <HmacSha256 as Mac>::new_from_slice(admin.as_bytes()).ok()?;
        mac.update(DERIVATION_CONTEXT);
        Some(CallbackKey(mac.finalize().into_bytes().to_vec()))
    }

    /// The key of a deployment's configuration.
    pub fn for_config(config: &crate::config::Config) -> Option<Self> {
        Self::from_config(
            config.callback_signing_key.as_deref(),
            config.admin_api_key.as_deref(),
        )
    }

    /// HMAC-SHA256 of `message` under this key, for other signed links (recordings) that
    /// separate their messages from callback URLs by a prefix of their own.
    pub(crate) fn mac_of(&self, message: &[u8]) -> Option<Vec<u8>> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(message);
        Some(mac.finalize().into_bytes().to_vec())
    }

    fn mac(&self, call_id: &str, attempt: u32, expires_unix: i64) -> Option<Vec<u8>> {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0).ok()?;
        // Length-prefixed so no two (id, attempt, expiry) triples share a message.
        mac.update(format!("{}:{call_id}:{attempt}:{expires_unix}", call_id.len()).as_bytes());
        Some(mac.finalize().into_bytes().to_vec())
    }
}

/// A call named by a callback URL whose MAC checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRef {
    /// Our call id.
    pub call_id: String,
    /// The attempt the URL was issued for.
    pub attempt: u32,
}

/// Why a callback URL's `call_id` is not believed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallbackError {
    /// The URL names no call.
    #[error("no call_id")]
    NoCallId,
    /// `call_id` without `attempt`, `exp` or `sig`, or with unreadable values.
    #[error("call_id is not signed")]
    Unsigned,
    /// The MAC does not match (forged or altered id, attempt or expiry).
    #[error("call_id signature does not match")]
    BadSignature,
    /// The URL was issued for a time that is over.
    #[error("callback URL expired")]
    Expired,
    /// No key is configured to check it with.
    #[error("no callback signing key is configured")]
    NoKey,
}

/// `call_id=…&attempt=…&exp=…&sig=…`, the query of a callback URL for one attempt of a call.
pub fn signed_query(key: &CallbackKey, call_id: &str, attempt: u32, expires_unix: i64) -> String {
    let sig = key
        .mac(call_id, attempt, expires_unix)
        .map(|mac| BASE64URL.encode(mac))
        .unwrap_or_default();
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(CALL_ID_PARAM, call_id)
        .append_pair(ATTEMPT_PARAM, &attempt.to_string())
        .append_pair(EXPIRES_PARAM, &expires_unix.to_string())
        .append_pair(SIGNATURE_PARAM, &sig)
        .finish()
}

/// The call a callback URL's query names, if its MAC is ours and it has not expired.
/// `query` is the raw query string without `?`.
pub fn verify_query(
    key: Option<&CallbackKey>,
    query: &str,
    now_unix: i64,
) -> Result<CallbackRef, CallbackError> {
    let first = |name: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    let call_id = first(CALL_ID_PARAM)
        .filter(|id| !id.is_empty())
        .ok_or(CallbackError::NoCallId)?;
    let key = key.ok_or(CallbackError::NoKey)?;
    let attempt = first(ATTEMPT_PARAM).and_then(|a| a.parse::<u32>().ok());
    let expires = first(EXPIRES_PARAM).and_then(|e| e.parse::<i64>().ok());
    let sig = first(SIGNATURE_PARAM).and_then(|s| BASE64URL.decode(s).ok());
    let (Some(attempt), Some(expires), Some(sig)) = (attempt, expires, sig) else {
        return Err(CallbackError::Unsigned);
    };
    if call_id.len() > MAX_CALL_ID_LEN {
        return Err(CallbackError::BadSignature);
    }
    let expected = key
        .mac(&call_id, attempt, expires)
        .ok_or(CallbackError::BadSignature)?;
    if !bool::from(expected.ct_eq(&sig)) {
        return Err(CallbackError::BadSignature);
    }
    if now_unix > expires {
        return Err(CallbackError::Expired);
    }
    Ok(CallbackRef { call_id, attempt })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CallbackKey {
        CallbackKey::from_config(Some("server-key"), None).unwrap()
    }

    fn replace(query: &str, name: &str, value: &str) -> String {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(n, v)| {
                let v = if n == name {
                    value.to_owned()
                } else {
                    v.into_owned()
                };
                (n.into_owned(), v)
            })
            .collect();
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    #[test]
    fn a_signed_query_round_trips() {
        let q = signed_query(&key(), "call_1", 2, 1_000);
        assert!(q.starts_with("call_id=call_1&attempt=2&exp=1000&sig="));
        assert_eq!(
            verify_query(Some(&key()), &q, 1_000),
            Ok(CallbackRef {
                call_id: "call_1".into(),
                attempt: 2
            })
        );
        // Extra parameters (Twilio adds none, but a proxy might) do not matter.
        assert!(verify_query(Some(&key()), &format!("x=1&{q}&y=2"), 999).is_ok());
    }

    #[test]
    fn any_changed_part_is_refused() {
        let q = signed_query(&key(), "call_1", 2, 1_000);
        for (name, value) in [
            ("call_id", "call_2"),
            ("attempt", "3"),
            ("exp", "99999"),
            ("sig", "AAAA"),
        ] {
            assert_eq!(
                verify_query(Some(&key()), &replace(&q, name, value), 0),
                Err(CallbackError::BadSignature),
                "{name}"
            );
        }
        let other = CallbackKey::from_config(Some("other"), None).unwrap();
        assert_eq!(
            verify_query(Some(&other), &q, 0),
            Err(CallbackError::BadSignature)
        );
    }

    #[test]
    fn unsigned_missing_and_expired() {
        assert_eq!(
            verify_query(Some(&key()), "CallSid=CA1", 0),
            Err(CallbackError::NoCallId)
        );
        assert_eq!(
            verify_query(Some(&key()), "call_id=call_1&attempt=1", 0),
            Err(CallbackError::Unsigned)
        );
        assert_eq!(
            verify_query(Some(&key()), "call_id=call_1", 0),
            Err(CallbackError::Unsigned)
        );
        let q = signed_query(&key(), "call_1", 1, 1_000);
        assert_eq!(
            verify_query(Some(&key()), &q, 1_001),
            Err(CallbackError::Expired)
        );
        assert_eq!(verify_query(None, &q, 0), Err(CallbackError::NoKey));
    }

    #[test]
    fn the_key_is_the_dedicated_one_else_derived_from_the_admin_key() {
        let dedicated = CallbackKey::from_config(Some("k"), Some("admin")).unwrap();
        assert_eq!(
            dedicated,
            CallbackKey::from_config(Some("k"), None).unwrap()
        );
        let derived = CallbackKey::from_config(None, Some("admin")).unwrap();
        assert_ne!(derived, dedicated);
        // HMAC-SHA256("admin", "phone-agent callback url v1"), as documented.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(b"admin").unwrap();
        mac.update(b"phone-agent callback url v1");
        assert_eq!(derived.0, mac.finalize().into_bytes().to_vec());
        assert_eq!(
            derived,
            CallbackKey::from_config(Some(""), Some("admin")).unwrap()
        );
        assert!(CallbackKey::from_config(None, None).is_none());
        assert!(!format!("{derived:?}").contains("admin"));
    }

    #[test]
    fn the_configuration_names_the_key() {
        let config = |vars: &'static [(&'static str, &'static str)]| {
            crate::config::Config::from_lookup(|name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap()
        };
        let dedicated = config(&[("CALLBACK_SIGNING_KEY", "k"), ("ADMIN_API_KEY", "admin")]);
        assert_eq!(
            CallbackKey::for_config(&dedicated),
            CallbackKey::from_config(Some("k"), None)
        );
        let derived = config(&[("ADMIN_API_KEY", "admin")]);
        assert_eq!(
            CallbackKey::for_config(&derived),
            CallbackKey::from_config(None, Some("admin"))
        );
        assert_eq!(CallbackKey::for_config(&config(&[])), None);
    }

    #[test]
    fn ids_and_values_that_could_be_confused_are_distinct() {
        // "a:1" attempt 2 and "a" attempt ... must not collide thanks to the length prefix.
        let k = key();
        assert_ne!(k.mac("a:1", 2, 3), k.mac("a", 1, 2));
        let q = signed_query(&k, "call&x=1", 1, 10);
        assert_eq!(verify_query(Some(&k), &q, 0).unwrap().call_id, "call&x=1");
    }
}
