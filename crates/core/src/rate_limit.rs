//! Token bucket for per-key API rate limits and per-address authentication failures: `limit`
//! per minute with bursts up to `limit`, refilled continuously.

use serde::{Deserialize, Serialize};

/// A bucket's state; starts full.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenBucket {
    tokens: f64,
    updated_ms: i64,
}

impl TokenBucket {
    /// A full bucket for `limit_per_minute`.
    pub fn full(limit_per_minute: u32, now_ms: i64) -> Self {
        TokenBucket {
            tokens: f64::from(limit_per_minute),
            updated_ms: now_ms,
        }
    }

    /// Takes one token, or says how many milliseconds until one is available.
    pub fn take(&mut self, limit_per_minute: u32, now_ms: i64) -> Result<(), u64> {
        self.refill(limit_per_minute, now_ms);
        let answer = self.peek(limit_per_minute, now_ms);
        if answer.is_ok() {
            self.tokens -= 1.0;
        }
        answer
    }

    /// Whether a token is available now (taking none), or how many milliseconds until one is.
    pub fn peek(&self, limit_per_minute: u32, now_ms: i64) -> Result<(), u64> {
        let mut probe = *self;
        probe.refill(limit_per_minute, now_ms);
        if probe.tokens >= 1.0 {
            Ok(())
        } else {
            Err(((1.0 - probe.tokens) / per_ms(limit_per_minute)).ceil() as u64)
        }
    }

    fn refill(&mut self, limit_per_minute: u32, now_ms: i64) {
        let capacity = f64::from(limit_per_minute.max(1));
        // A clock that goes backwards refills nothing rather than draining the bucket.
        let elapsed = (now_ms - self.updated_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms(limit_per_minute)).min(capacity);
        self.updated_ms = self.updated_ms.max(now_ms);
    }
}

fn per_ms(limit_per_minute: u32) -> f64 {
    f64::from(limit_per_minute.max(1)) / 60_000.0
}

/// The bucket name of a client address (`CF-Connecting-IP`): an IPv4 address as is, an IPv6
/// address by its /64 (one subscriber's whole prefix, which costs an attacker nothing to rotate
/// within). Without a usable address every such request shares one bucket.
pub fn client_bucket(address: Option<&str>) -> String {
    match address
        .map(str::trim)
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
    {
        Some(std::net::IpAddr::V4(v4)) => format!("ip:{v4}"),
        Some(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip6:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "ip:unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_of_limit_then_refuses() {
        let mut b = TokenBucket::full(3, 0);
        assert!(b.take(3, 0).is_ok());
        assert!(b.take(3, 0).is_ok());
        assert!(b.take(3, 0).is_ok());
        let wait = b.take(3, 0).unwrap_err();
        assert_eq!(wait, 20_000, "one token per 20 s at 3/min");
    }

    #[test]
    fn refills_over_time_up_to_capacity() {
        let mut b = TokenBucket::full(60, 0);
        for _ in 0..60 {
            b.take(60, 0).unwrap();
        }
        assert!(b.take(60, 500).is_err());
        assert!(b.take(60, 1000).is_ok());
        // A long idle period refills only to capacity.
        let mut b = TokenBucket::full(2, 0);
        b.take(2, 0).unwrap();
        b.take(2, 0).unwrap();
        for _ in 0..2 {
            b.take(2, 3_600_000).unwrap();
        }
        assert!(b.take(2, 3_600_000).is_err());
    }

    #[test]
    fn peek_takes_nothing() {
        let mut b = TokenBucket::full(2, 0);
        for _ in 0..5 {
            assert!(b.peek(2, 0).is_ok());
        }
        b.take(2, 0).unwrap();
        b.take(2, 0).unwrap();
        assert_eq!(b.peek(2, 0), Err(30_000));
        assert_eq!(b.peek(2, 15_000), Err(15_000));
        assert!(b.peek(2, 30_000).is_ok());
        assert_eq!(b.peek(2, 0), Err(30_000), "peeking ahead did not refill");
    }

    #[test]
    fn client_buckets_group_ipv6_by_prefix() {
        assert_eq!(client_bucket(Some("203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(client_bucket(Some(" 203.0.113.7 ")), "ip:203.0.113.7");
        assert_eq!(
            client_bucket(Some("2001:db8:1:2:aaaa::1")),
            client_bucket(Some("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            client_bucket(Some("2001:db8:1:2::1")),
            client_bucket(Some("2001:db8:1:3::1"))
        );
        assert_eq!(client_bucket(Some("::ffff:203.0.113.7")), "ip:203.0.113.7");
        assert_eq!(client_bucket(None), "ip:unknown");
        assert_eq!(client_bucket(Some("not an address")), "ip:unknown");
    }

    #[test]
    fn backwards_clock_does_not_refill_or_panic() {
        let mut b = TokenBucket::full(1, 10_000);
        b.take(1, 10_000).unwrap();
        assert!(b.take(1, 0).is_err());
    }
}
