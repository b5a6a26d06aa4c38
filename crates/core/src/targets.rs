//! Forward-target checks (SSRF): which URLs the gateway may deliver to.
//!
//! The core cannot resolve names, so this judges the URL as written: scheme, credentials, host
//! names reserved for internal use, and literal addresses. The WHATWG parser in `url` already
//! turns decimal, hex, octal and shortened IPv4 forms (`2130706433`, `0x7f.1`, `0177.0.0.1`,
//! `127.1`) into addresses, so those tricks meet the same address rules.

use std::net::{Ipv4Addr, Ipv6Addr};
use thiserror::Error;
use url::{Host, Url};

/// Why a URL may not be used as a forward target.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    /// Not an absolute URL with a host.
    #[error("not a valid absolute URL: {0}")]
    InvalidUrl(String),
    /// Only https (or http when private targets are allowed) may be used.
    #[error("scheme {0:?} is not allowed")]
    SchemeNotAllowed(String),
    /// A loopback, private, link-local or otherwise reserved address.
    #[error("{0} is a private or reserved address")]
    PrivateAddress(String),
    /// A host name that only means something inside a network (`localhost`, `*.internal`, …).
    #[error("{0} is an internal host name")]
    InternalHost(String),
    /// `user:password@` in the URL: secrets would be stored and shown in plain text.
    #[error("credentials in the URL are not allowed")]
    CredentialsInUrl,
}

/// Checks a forward-target URL and returns it parsed. With `allow_private` false only https to
/// public hosts passes; with it true (tests, local development) any http(s) URL does.
pub fn check_target(url: &str, allow_private: bool) -> Result<Url, TargetError> {
    let parsed = Url::parse(url).map_err(|e| TargetError::InvalidUrl(e.to_string()))?;
    let scheme_ok = match parsed.scheme() {
        "https" => true,
        "http" => allow_private,
        _ => false,
    };
    if !scheme_ok {
        return Err(TargetError::SchemeNotAllowed(parsed.scheme().to_owned()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::CredentialsInUrl);
    }
    let host = parsed
        .host()
        .ok_or_else(|| TargetError::InvalidUrl("no host".to_owned()))?;
    if allow_private {
        return Ok(parsed);
    }
    match host {
        Host::Domain(name) if is_internal_name(name) => {
            return Err(TargetError::InternalHost(name.to_owned()))
        }
        Host::Ipv4(ip) if is_blocked_v4(ip) => {
            return Err(TargetError::PrivateAddress(ip.to_string()))
        }
        Host::Ipv6(ip) if is_blocked_v6(ip) => {
            return Err(TargetError::PrivateAddress(ip.to_string()))
        }
        _ => {}
    }
    Ok(parsed)
}

/// Checks the URL of an agent's HTTP tool: a public https target, or, with `allow_loopback`
/// (tests, local development), http(s) to this machine only (`127.0.0.1`, `[::1]`,
/// `localhost`). Unlike [`check_target`]'s private mode, the rest of the private network stays
/// refused: the model chooses when a tool runs, so a tool must never reach 10.0.0.0/8 or the
/// metadata service even on a development setup.
pub fn check_tool_target(url: &str, allow_loopback: bool) -> Result<Url, TargetError> {
    let public = check_target(url, false);
    if public.is_ok() || !allow_loopback {
        return public;
    }
    let parsed = check_target(url, true)?;
    let loopback = match parsed.host() {
        Some(Host::Ipv4(ip)) => ip == Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == Ipv6Addr::LOCALHOST,
        Some(Host::Domain(name)) => name.trim_end_matches('.') == "localhost",
        None => false,
    };
    if loopback {
        Ok(parsed)
    } else {
        public
    }
}

/// `localhost`, `*.localhost`, `*.internal` (incl. `metadata.google.internal`) and single-label
/// names, which only resolve through a local search domain.
fn is_internal_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    !name.contains('.') || name.ends_with(".localhost") || name.ends_with(".internal")
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local() // includes 169.254.169.254, the cloud metadata service
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0 // "this network", incl. 0.0.0.0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let [s0, s1, _, _, _, _, _, _] = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s0 & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s0 & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s0 & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10
        || (s0 == 0x2001 && s1 == 0x0db8) // documentation
        || (s0 == 0x2001 && s1 == 0) // Teredo: the IPv4 peer is hidden
        || embedded_v4(ip).is_some_and(is_blocked_v4)
}

/// The IPv4 address an IPv6 form carries: mapped, compatible, NAT64 (64:ff9b::/96) or 6to4.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = ip.segments();
    let from = |hi: u16, lo: u16| Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    match (s0, s1, s2, s3, s4, s5) {
        (0, 0, 0, 0, 0, 0xffff) | (0, 0, 0, 0, 0, 0) | (0x64, 0xff9b, 0, 0, 0, 0) => from(s6, s7),
        (0x2002, _, _, _, _, _) => from(s1, s2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(url: &str) -> TargetError {
        check_target(url, false).expect_err(url)
    }

    #[test]
    fn public_https_hosts_pass() {
        for url in [
            "https://example.com/hooks/phone",
            "https://hooks.example.co.uk:8443/x?y=1#f",
            "https://8.8.8.8/",
            "https://100.128.0.1/", // just above CGNAT
            "https://172.32.0.1/",  // just above 172.16.0.0/12
            "https://169.253.255.255/",
            "https://[2606:4700:4700::1111]/",
            "https://[::ffff:8.8.8.8]/",
            "https://[2002:808:808::1]/", // 6to4 of a public address
            "https://xn--bcher-kva.example/",
        ] {
            let parsed = check_target(url, false).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.scheme(), "https");
        }
    }

    #[test]
    fn only_https_without_private_targets() {
        assert_eq!(
            blocked("http://example.com/"),
            TargetError::SchemeNotAllowed("http".into())
        );
        for url in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "gopher://example.com/",
            "wss://example.com/",
        ] {
            assert!(
                matches!(blocked(url), TargetError::SchemeNotAllowed(_)),
                "{url}"
            );
            assert!(
                matches!(
                    check_target(url, true),
                    Err(TargetError::SchemeNotAllowed(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn invalid_urls_are_rejected() {
        for url in [
            "",
            "not a url",
            "https://",
            "/relative/path",
            "https://exa mple.com/",
        ] {
            assert!(
                matches!(blocked(url), TargetError::InvalidUrl(_)),
                "{url:?}"
            );
        }
    }

    #[test]
    fn credentials_are_rejected_in_both_modes() {
        for url in [
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://:pw@example.com/",
        ] {
            assert_eq!(blocked(url), TargetError::CredentialsInUrl, "{url}");
            assert_eq!(
                check_target(url, true).unwrap_err(),
                TargetError::CredentialsInUrl
            );
        }
    }

    #[test]
    fn internal_names_are_blocked() {
        for url in [
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://db.corp.internal/",
            "https://intranet/",
        ] {
            assert!(
                matches!(blocked(url), TargetError::InternalHost(_)),
                "{url}"
            );
        }
    }

    #[test]
    fn private_ipv4_ranges_are_blocked() {
        for url in [
            "https://127.0.0.1/",
            "https://127.255.255.254/",
            "https://10.0.0.1/",
            "https://172.16.0.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://100.127.255.255/",
            "https://169.254.169.254/latest/meta-data/",
            "https://0.0.0.0/",
            "https://255.255.255.255/",
            "https://224.0.0.1/",
            "https://240.0.0.1/",
            "https://192.0.0.8/",
            "https://198.18.0.1/",
            "https://192.0.2.1/",
        ] {
            assert!(
                matches!(blocked(url), TargetError::PrivateAddress(_)),
                "{url}"
            );
        }
    }

    #[test]
    fn numeric_ipv4_tricks_are_blocked() {
        for (url, addr) in [
            ("https://2130706433/", "127.0.0.1"),
            ("https://0x7f000001/", "127.0.0.1"),
            ("https://0x7f.1/", "127.0.0.1"),
            ("https://0177.0.0.1/", "127.0.0.1"),
            ("https://017700000001/", "127.0.0.1"),
            ("https://127.1/", "127.0.0.1"),
            ("https://127.0.0.1./", "127.0.0.1"),
            ("https://0/", "0.0.0.0"),
            ("https://2852039166/", "169.254.169.254"),
            ("https://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
            ("https://%31%32%37.0.0.1/", "127.0.0.1"),
        ] {
            assert_eq!(
                blocked(url),
                TargetError::PrivateAddress(addr.into()),
                "{url}"
            );
        }
    }

    #[test]
    fn private_ipv6_forms_are_blocked() {
        for url in [
            "https://[::1]/",
            "https://[::]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
            "https://[fe80::1]/",
            "https://[fec0::1]/",
            "https://[ff02::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:a9fe:a9fe::1]/",
            "https://[2001:db8::1]/",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        ] {
            assert!(
                matches!(blocked(url), TargetError::PrivateAddress(_)),
                "{url}"
            );
        }
    }

    #[test]
    fn private_targets_allowed_when_configured() {
        for url in [
            "http://127.0.0.1:8787/hook",
            "http://localhost:9000/",
            "https://10.1.2.3/",
            "http://[::1]:8080/",
            "http://169.254.169.254/",
        ] {
            assert!(check_target(url, true).is_ok(), "{url}");
        }
    }
}
