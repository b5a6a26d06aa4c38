//! API credentials: bearer parsing and constant-time key comparison.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the tenant.
    Admin,
    /// Calls, schedules, replay and redrive.
    Operator,
    /// Read only.
    Viewer,
}

/// The kind of access a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Operate,
    Administer,
}

impl Role {
    /// Whether this role grants `access`.
    pub fn allows(self, access: Access) -> bool {
        match self {
            Role::Admin => true,
            Role::Operator => access != Access::Administer,
            Role::Viewer => access == Access::Read,
        }
    }
}

/// Extracts the token from an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Subprotocol of the live-view WebSocket; browsers cannot set headers on a WebSocket, so the
/// API key travels as a second subprotocol `bearer.<base64url(key)>`.
pub const LIVE_SUBPROTOCOL: &str = "phone-agent.live.v1";

/// The API key carried in a `Sec-WebSocket-Protocol` header (`phone-agent.live.v1,
/// bearer.<base64url(key)>`), if the header offers the live-view protocol and a key.
pub fn websocket_key(protocols: &str) -> Option<String> {
    use base64::Engine;
    let offered: Vec<&str> = protocols.split(',').map(str::trim).collect();
    if !offered.contains(&LIVE_SUBPROTOCOL) {
        return None;
    }
    let encoded = offered.iter().find_map(|p| p.strip_prefix("bearer."))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()?;
    String::from_utf8(bytes).ok().filter(|k| !k.is_empty())
}

/// Hex SHA-256 of an API key: what is stored, so a leaked table reveals no usable key.
pub fn key_hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares a presented key with the expected one without leaking where they differ;
/// hashing first makes the comparison length-independent too.
pub fn key_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_keys_come_from_the_subprotocol() {
        assert_eq!(
            websocket_key("phone-agent.live.v1, bearer.a2V5LTE"),
            Some("key-1".to_owned())
        );
        assert_eq!(websocket_key("bearer.a2V5LTE"), None);
        assert_eq!(websocket_key("phone-agent.live.v1"), None);
        assert_eq!(websocket_key("phone-agent.live.v1, bearer.!!"), None);
    }

    #[test]
    fn parses_bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn keys_match_only_when_equal() {
        assert!(key_matches("k1", "k1"));
        assert!(!key_matches("k1", "k2"));
        assert!(!key_matches("k1", "k1 "));
        assert!(!key_matches("", "k1"));
    }

    #[test]
    fn roles_grant_nested_access() {
        assert!(Role::Admin.allows(Access::Administer));
        assert!(Role::Operator.allows(Access::Operate));
        assert!(!Role::Operator.allows(Access::Administer));
        assert!(Role::Viewer.allows(Access::Read));
        assert!(!Role::Viewer.allows(Access::Operate));
    }

    #[test]
    fn key_hash_is_sha256_hex() {
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
