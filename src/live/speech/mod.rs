//! The provider side of a live call, as tasks of the call's `CallSession`, one file per provider
//! kind as in the core's `providers`: the STT socket ([`stt`]), the streaming LLM request and the
//! tools it calls ([`llm`]), the TTS queue that turns each spoken segment into carrier frames
//! ([`tts`]) over HTTP or over the call's TTS socket ([`tts_socket`]). Each task owns what it
//! reads (a socket clone, a response body) and reports back through `Session::feed`; cancelling
//! aborts the request through its `AbortController`, so the provider sees the connection go
//! away. What LLM and TTS requests share is here.

mod llm;
mod stt;
mod tts;
mod tts_socket;

pub use llm::{run_tool, start_llm};
pub use stt::start_stt;
pub use tts_socket::{close_tts, park_tts, prewarm_tts, TtsLink};

use crate::live::session::Session;
use crate::platform::outbound;
use futures_util::StreamExt;
use std::rc::Rc;
use std::time::Duration;
use worker::{AbortController, AbortSignal, ByteStream, Method};

/// Speaks a segment: over the call's TTS socket when it can, otherwise queued for the HTTP task.
pub fn queue_tts(session: &Rc<Session>, turn: u32, segment: usize, text: String) {
    if tts_socket::try_speak(session, turn, segment, &text) {
        return;
    }
    tts::queue_http(session, turn, segment, text);
}

/// Cuts `turn` (all with `None`) on the socket and over HTTP.
pub fn cancel_tts(session: &Rc<Session>, turn: Option<u32>) {
    tts_socket::cancel(session, turn);
    tts::cancel_http(session, turn);
}

/// Longest wait for a provider's response head (the conversation's own timeout covers tokens).
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A provider request in flight: (request id, turn, the controller that aborts it).
type InFlight = Option<(u64, u32, AbortController)>;

/// Whether `slot` still holds request `id` (a cancelled or replaced request no longer does).
fn holds(slot: &InFlight, id: u64) -> bool {
    slot.as_ref().is_some_and(|(i, _, _)| *i == id)
}

/// POSTs `body` and returns the streaming body of a 2xx answer; `signal` aborts it at any time.
async fn post_stream(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    signal: &AbortSignal,
) -> Result<ByteStream, String> {
    let reply = outbound::open_stream(Method::Post, url, headers, Some(body), signal, HEAD_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if !(200..300).contains(&reply.status) {
        return Err(format!("HTTP {}", reply.status));
    }
    Ok(reply.body)
}

/// Hands each chunk of `body` to `on_chunk` while `current()` holds. `Ok(false)` once the
/// request was cancelled: whatever is left of the body is not ours to read.
async fn read_while(
    mut body: ByteStream,
    current: impl Fn() -> bool,
    mut on_chunk: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<bool, String> {
    while let Some(chunk) = body.next().await {
        if !current() {
            return Ok(false);
        }
        on_chunk(&chunk.map_err(|e| e.to_string())?)?;
    }
    Ok(current())
}
