//! An agent calendar's iCalendar feed (`calendar.feed_url`): fetched (SSRF-checked, bounded,
//! with a timeout, no redirects), cached in KV for a few minutes, and read by the core into the
//! busy times that block booking (`ical::busy`). A feed that cannot be fetched or read is an
//! error for the booking tools and the API, never an empty calendar: booking over a busy time
//! nobody could see is worse than asking the caller to call back.

use crate::platform::http::log_line;
use crate::platform::outbound;
use crate::platform::zones::IntlZones;
use phone_agent_core::appointments::{BookingError, Calendar};
use phone_agent_core::ical;
use phone_agent_core::ical::busy::{
    busy_times, cache_key, feed_text, Busy, FEED_CACHE_SECONDS, FEED_TIMEOUT_SECONDS,
    MAX_FEED_BYTES,
};
use phone_agent_core::targets::check_target;
use phone_agent_core::zones::Zone;
use serde_json::json;
use std::time::Duration;
use worker::{Env, Method};

/// The busy times of `calendar`'s feed over its booking window at `now` (none without a feed).
pub async fn busy(
    env: &Env,
    allow_private: bool,
    calendar: &Calendar,
    zone: &Zone<'_>,
    now: i64,
) -> Result<Busy, BookingError> {
    let Some(url) = &calendar.feed_url else {
        return Ok(Busy::default());
    };
    let result = async {
        let (text, fresh) = fetch(env, allow_private, url).await?;
        let doc = ical::read(&text).map_err(|e| format!("the feed is malformed at {e}"))?;
        let busy = busy_times(&doc, &IntlZones, *zone, calendar.feed_window(now))
            .map_err(|e| format!("the feed cannot be read at {e}"))?;
        if fresh {
            // Only a feed that was read is cached; a broken one is fetched again next time.
            if let Ok(kv) = env.kv("KV") {
                // As bytes: worker's generic `put` of a `String` compiles `serde_wasm_bindgen`'s
                // serializer; `text()` reads the same UTF-8 back.
                if let Ok(put) = kv.put_bytes(&cache_key(url), text.as_bytes()) {
                    let _ = put.expiration_ttl(FEED_CACHE_SECONDS).execute().await;
                }
            }
        }
        Ok::<_, String>(busy)
    }
    .await;
    result.map_err(|reason| {
        // The address is a secret (it reads the calendar): only its cache key is logged.
        log_line(json!({"level": "warn", "msg": "calendar feed", "feed": cache_key(url), "error": reason}));
        BookingError::FeedUnavailable(reason)
    })
}

/// The feed's text from the cache, else from the network (`true`: fetched now).
async fn fetch(env: &Env, allow_private: bool, url: &str) -> Result<(String, bool), String> {
    // Checked before every fetch too: ALLOW_PRIVATE_TARGETS may have changed since it was saved.
    check_target(url, allow_private).map_err(|e| format!("feed_url is refused: {e}"))?;
    if let Ok(kv) = env.kv("KV") {
        if let Ok(Some(text)) = kv.get(&cache_key(url)).text().await {
            return Ok((text, false));
        }
    }
    let reply = outbound::send(
        Method::Get,
        url,
        &[("accept", "text/calendar")],
        None,
        Duration::from_secs(FEED_TIMEOUT_SECONDS),
        MAX_FEED_BYTES + 1,
    )
    .await
    .map_err(|e| format!("fetching the feed {e}"))?;
    Ok((feed_text(reply.status, reply.body)?, true))
}
