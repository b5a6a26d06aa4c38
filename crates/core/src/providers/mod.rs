//! Wire protocols of STT, LLM and TTS providers: URLs, request bodies and stream parsers.
//!
//! Nothing here does I/O; the edge sends what these functions build and feeds back what it reads.

pub mod deepgram;
pub mod openai;
pub mod sse;
pub mod tts;
pub mod tts_socket;

/// The `http(s)://` form of a `ws(s)://` URL (other schemes unchanged).
///
/// Workers open authenticated WebSockets with `fetch()` plus `Upgrade: websocket` on the http form
/// of the URL, and Deepgram's REST endpoints share the host configured as `DEEPGRAM_URL`.
pub fn http_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        url.to_owned()
    }
}

/// Percent-encodes everything but ASCII letters, digits, `-`, `_`, `.` and `~` (RFC 3986 unreserved).
fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_become_http() {
        assert_eq!(
            http_url("wss://api.deepgram.com"),
            "https://api.deepgram.com"
        );
        assert_eq!(http_url("ws://127.0.0.1:9001"), "http://127.0.0.1:9001");
        assert_eq!(
            http_url("https://api.deepgram.com"),
            "https://api.deepgram.com"
        );
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("nova-3_x.y~"), "nova-3_x.y~");
        assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
