//! Token bucket for per-key API rate limits: `limit` requests per minute with bursts up to
//! `limit`, refilled continuously.

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
        let capacity = f64::from(limit_per_minute.max(1));
        let per_ms = capacity / 60_000.0;
        // A clock that goes backwards refills nothing rather than draining the bucket.
        let elapsed = (now_ms - self.updated_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(capacity);
        self.updated_ms = self.updated_ms.max(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / per_ms).ceil() as u64)
        }
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
    fn backwards_clock_does_not_refill_or_panic() {
        let mut b = TokenBucket::full(1, 10_000);
        b.take(1, 10_000).unwrap();
        assert!(b.take(1, 0).is_err());
    }
}
