//! API credentials: bearer parsing, constant-time key comparison, secret tokens, live-view
//! tickets and what counts as local development.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

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

/// How long a live-view ticket may wait before it is used (once).
pub const LIVE_TICKET_TTL_MS: i64 = 60_000;

/// The single-use ticket of a live-view WebSocket (`?ticket=`), when the request carries one.
pub fn live_ticket<'a>(query: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<&'a str> {
    query
        .into_iter()
        .find(|(k, _)| *k == "ticket")
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// Whether a request URL's host is this machine: only local development serves such a URL
/// (Cloudflare never routes a loopback host to a deployed Worker).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Randomness could not be drawn, so no secret or id is made: a predictable one would be worse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("no randomness available for a secret or id: {0}")]
pub struct NoRandomness(pub String);

/// Random bytes behind every key, secret and token: 128 bits.
pub const TOKEN_BYTES: usize = 16;

/// A secret like `pa_live_7f3k…` (prefix, `_`, 26 characters of base32 over 128 bits that
/// `fill` draws); fails closed when `fill` does.
pub fn new_token<E: std::fmt::Display>(
    prefix: &str,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<String, NoRandomness> {
    let mut bytes = [0u8; TOKEN_BYTES];
    fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(encode_token(prefix, &bytes))
}

/// `prefix_` + lower-case Crockford base32 of `bytes` (no padding): ids and tokens alike.
pub fn encode_token(prefix: &str, bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut out = String::with_capacity(prefix.len() + 1 + (bytes.len() * 8).div_ceil(5));
    out.push_str(prefix);
    out.push('_');
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_fail_closed_without_randomness() {
        let failed = new_token("pa_live", |_| Err("getrandom failed"));
        assert_eq!(
            failed,
            Err(NoRandomness("getrandom failed".into())),
            "no token, rather than a predictable one"
        );
        let token = new_token("pa_live", |b: &mut [u8]| {
            b.fill(0xff);
            Ok::<(), String>(())
        })
        .unwrap();
        assert_eq!(token, format!("pa_live_{}", "z".repeat(25) + "w"));
        assert_eq!(token.len(), "pa_live_".len() + 26);
    }

    #[test]
    fn tokens_encode_every_bit() {
        assert_eq!(
            encode_token("x", &[0u8; 16]),
            format!("x_{}", "0".repeat(26))
        );
        assert_ne!(encode_token("x", &[0, 0, 1]), encode_token("x", &[0, 0, 2]));
    }

    #[test]
    fn loopback_hosts_are_local_development_only() {
        for host in [
            "127.0.0.1",
            "localhost",
            "LOCALHOST",
            "[::1]",
            "::1",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "agent.example.com",
            "10.0.0.1",
            "0.0.0.0",
            "localhost.evil.com",
            "[::2]",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn live_tickets_come_from_the_query() {
        assert_eq!(
            live_ticket([("a", "1"), ("ticket", "lvt_x")]),
            Some("lvt_x")
        );
        assert_eq!(live_ticket([("key", "pa_live_x")]), None);
        assert_eq!(live_ticket([("ticket", "")]), None);
        let long = "t".repeat(129);
        assert_eq!(live_ticket([("ticket", long.as_str())]), None);
    }

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
