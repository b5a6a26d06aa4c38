//! Every inbound signature verifier, on arbitrary URL, headers, body and secrets.
#![no_main]
#[path = "split.rs"]
mod split;

use libfuzzer_sys::fuzz_target;
use phone_agent_core::webhooks::signatures::{verify, InboundRequest, VerifyOptions};
use phone_agent_core::webhooks::Provider;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let provider = Provider::ALL[usize::from(selector) % Provider::ALL.len()];
    let f = split::fields(rest, 5);
    let url = split::text(f[0]);
    let headers = split::headers(f[1]);
    let secrets: Vec<String> = split::text(f[3]).split(' ').map(str::to_owned).collect();
    let public = split::text(f[4]);
    let request = InboundRequest { method: "POST", url: &url, headers: &headers, body: f[2] };
    let options = VerifyOptions {
        secrets: &secrets,
        tolerance_secs: 300,
        now_unix_ms: 1_700_000_000_000,
        public_base_url: (!public.is_empty()).then_some(public.as_str()),
        vapi_plan: None,
    };
    let _ = verify(provider, &request, &options);
});
