//! Provider payload → canonical event mapping, and the forwarded envelope.
#![no_main]
#[path = "split.rs"]
mod split;

use libfuzzer_sys::fuzz_target;
use phone_agent_core::webhooks::canonical::{envelope, map_event, original_payload, Mapped};
use phone_agent_core::webhooks::Provider;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let provider = Provider::ALL[usize::from(selector) % Provider::ALL.len()];
    let f = split::fields(rest, 3);
    let headers = split::headers(f[0]);
    let query = split::text(f[1]);
    if let Ok(Mapped { event, original }) = map_event(provider, &headers, &query, f[2]) {
        assert_eq!(original, original_payload(f[2]));
        let body = envelope(&event, provider, None, "2026-01-01T00:00:00Z", original);
        assert!(body["data"].is_object());
        assert!(!event.provider_event_id.is_empty());
    }
});
