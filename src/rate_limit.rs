//! Per-API-key rate limiting: one `RateLimiter` Durable Object per key holds a token bucket
//! (strongly consistent, unlike KV counters). Its state is in memory on purpose: an evicted
//! limiter comes back full, which errs on the side of serving.

use crate::http::{log_line, now_ms, ApiError};
use phone_agent_core::rate_limit::TokenBucket;
use serde_json::json;
use std::cell::Cell;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

/// Takes one request from `key`'s budget of `per_minute`; 429 with `Retry-After` when empty.
/// A limiter that cannot be reached lets the request through (logged): the API stays up.
pub async fn check(env: &Env, key: &str, per_minute: u32) -> std::result::Result<(), ApiError> {
    if per_minute == 0 {
        return Ok(());
    }
    let answer = async {
        let stub = env
            .durable_object("RATE_LIMITER")?
            .id_from_name(key)?
            .get_stub()?;
        let mut res = stub
            .fetch_with_str(&format!("https://rate-limiter/take?limit={per_minute}"))
            .await?;
        Ok::<_, worker::Error>((res.status_code(), res.text().await?))
    }
    .await;
    match answer {
        Ok((429, wait_ms)) => {
            let secs = wait_ms
                .trim()
                .parse::<u64>()
                .unwrap_or(1000)
                .div_ceil(1000)
                .max(1);
            Err(ApiError::new(
                429,
                "rate_limited",
                format!("this API key is limited to {per_minute} requests per minute"),
            )
            .with_retry_after(secs))
        }
        Ok(_) => Ok(()),
        Err(e) => {
            log_line(
                json!({"level": "error", "msg": "rate limiter unreachable", "error": e.to_string()}),
            );
            Ok(())
        }
    }
}

/// Token bucket of one API key.
#[durable_object]
pub struct RateLimiter {
    bucket: Cell<Option<TokenBucket>>,
}

impl DurableObject for RateLimiter {
    fn new(_state: State, _env: Env) -> Self {
        RateLimiter {
            bucket: Cell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let limit = req
            .url()?
            .query_pairs()
            .find(|(k, _)| k == "limit")
            .and_then(|(_, v)| v.parse::<u32>().ok())
            .unwrap_or(1);
        let now = now_ms();
        let mut bucket = self
            .bucket
            .get()
            .unwrap_or_else(|| TokenBucket::full(limit, now));
        let taken = bucket.take(limit, now);
        self.bucket.set(Some(bucket));
        match taken {
            Ok(()) => Response::ok("ok"),
            Err(wait_ms) => Ok(Response::ok(wait_ms.to_string())?.with_status(429)),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        // The limiter never arms an alarm; answer a stray one harmlessly.
        Response::ok("no alarm work")
    }
}
