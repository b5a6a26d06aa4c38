//! Rate limiting in `RateLimiter` Durable Objects, one per bucket (strongly consistent, unlike KV
//! counters): each API key's requests, and each client address's failed authentications. State
//! is in memory on purpose: an evicted limiter comes back full, which errs on the side of
//! serving.

use crate::platform::http::{log_line, now_ms, ApiError};
use phone_agent_core::rate_limit::TokenBucket;
use serde_json::json;
use std::cell::Cell;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

/// Takes one request from `key`'s budget of `per_minute`; 429 with `Retry-After` when empty.
/// A limiter that cannot be reached lets the request through (logged): the API stays up.
pub async fn check(env: &Env, key: &str, per_minute: u32) -> std::result::Result<(), ApiError> {
    match ask(env, key, "take", per_minute).await {
        Some(wait_ms) => Err(limited(
            format!("this API key is limited to {per_minute} requests per minute"),
            wait_ms,
        )),
        None => Ok(()),
    }
}

/// 429 when `client` (a [`client_bucket`](phone_agent_core::rate_limit::client_bucket)) has
/// failed authentication `per_minute` times lately. Asked before a credential is checked, so a
/// right guess made while over the limit reveals nothing.
pub async fn auth_allowed(
    env: &Env,
    client: &str,
    per_minute: u32,
) -> std::result::Result<(), ApiError> {
    match ask(env, &auth_bucket(client), "peek", per_minute).await {
        Some(wait_ms) => Err(limited(
            "too many failed authentication attempts from this address; retry later".into(),
            wait_ms,
        )),
        None => Ok(()),
    }
}

/// Counts one failed authentication of `client`.
pub async fn auth_failed(env: &Env, client: &str, per_minute: u32) {
    let _ = ask(env, &auth_bucket(client), "take", per_minute).await;
}

fn auth_bucket(client: &str) -> String {
    // API key ids never contain ':' so the two kinds of bucket cannot meet.
    format!("auth-failures:{client}")
}

fn limited(message: String, wait_ms: u64) -> ApiError {
    ApiError::new(429, "rate_limited", message).with_retry_after(wait_ms.div_ceil(1000).max(1))
}

/// Asks bucket `name` to `take` a token or `peek` at one: `Some(ms to wait)` when there is none.
/// Off (`per_minute` 0) or unreachable (logged) answers `None`.
async fn ask(env: &Env, name: &str, op: &str, per_minute: u32) -> Option<u64> {
    if per_minute == 0 {
        return None;
    }
    let answer = async {
        let stub = env
            .durable_object("RATE_LIMITER")?
            .id_from_name(name)?
            .get_stub()?;
        let mut res = stub
            .fetch_with_str(&format!("https://rate-limiter/{op}?limit={per_minute}"))
            .await?;
        Ok::<_, worker::Error>((res.status_code(), res.text().await?))
    }
    .await;
    match answer {
        Ok((429, wait_ms)) => Some(wait_ms.trim().parse::<u64>().unwrap_or(1000)),
        Ok(_) => None,
        Err(e) => {
            log_line(
                json!({"level": "error", "msg": "rate limiter unreachable", "error": e.to_string()}),
            );
            None
        }
    }
}

/// Token bucket of one API key or client address.
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
        let answer = if req.path() == "/peek" {
            bucket.peek(limit, now)
        } else {
            bucket.take(limit, now)
        };
        self.bucket.set(Some(bucket));
        match answer {
            Ok(()) => Response::ok("ok"),
            Err(wait_ms) => Ok(Response::ok(wait_ms.to_string())?.with_status(429)),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        // The limiter never arms an alarm; answer a stray one harmlessly.
        Response::ok("no alarm work")
    }
}
