//! Size limits on the bodies we read: requests (webhooks, carrier callbacks, the JSON API) are
//! refused once they pass their limit, and responses of the services we call are cut at theirs.
//! The edge streams bodies through these so nothing past the limit + 1 byte is ever held.

use thiserror::Error;

/// Webhooks and carrier callbacks (`/webhooks/*`, `/voice/*/status`, `/voice/*/incoming`).
/// Provider payloads, even with transcripts, stay well below.
pub const WEBHOOK_BODY_LIMIT: usize = 256 * 1024;

/// JSON API request bodies: the largest legitimate one (an agent with a long prompt) is a
/// few KiB.
pub const API_BODY_LIMIT: usize = 64 * 1024;

/// Responses of provider REST calls we parse (create-call, send-email): their answers are
/// small JSON objects; anything past this is cut, and an unreadable answer is an error.
pub const REPLY_BODY_LIMIT: usize = 64 * 1024;

/// A request body over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("request bodies are limited to {limit} bytes")]
pub struct TooLarge {
    /// The limit that was passed, in bytes.
    pub limit: usize,
}

/// Refuses a declared `Content-Length` over `limit` before anything is read. A missing or
/// unreadable value is left to the streaming check (chunked bodies declare none).
pub fn check_declared(content_length: Option<&str>, limit: usize) -> Result<(), TooLarge> {
    match content_length.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(n) if n > limit as u64 => Err(TooLarge { limit }),
        _ => Ok(()),
    }
}

/// How a request body within its limit is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRead {
    /// In one piece: the request declares a length within the limit and no other framing, and
    /// a fixed-length body is exactly that long (bytes past it are the connection's next request),
    /// so reading it whole holds no more than the limit.
    Whole,
    /// Chunk by chunk through [`BoundedBody`]: no usable declared length, or a
    /// `Transfer-Encoding` beside it (chunked framing wins over `Content-Length`, so the body may
    /// run past what was declared; a request can carry both).
    Streamed,
}

/// Refuses a declared `Content-Length` over `limit` before anything is read ([`check_declared`]),
/// else says how to read the body.
pub fn body_read(
    content_length: Option<&str>,
    transfer_encoding: Option<&str>,
    limit: usize,
) -> Result<BodyRead, TooLarge> {
    check_declared(content_length, limit)?;
    let declared = content_length.and_then(|v| v.trim().parse::<u64>().ok());
    Ok(match (declared, transfer_encoding) {
        (Some(n), None) if n <= limit as u64 => BodyRead::Whole,
        _ => BodyRead::Streamed,
    })
}

/// A request body collected chunk by chunk, refused as soon as it passes its limit.
#[derive(Debug)]
pub struct BoundedBody {
    limit: usize,
    bytes: Vec<u8>,
}

impl BoundedBody {
    /// An empty body that may grow to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        BoundedBody {
            limit,
            bytes: Vec::new(),
        }
    }

    /// Appends a chunk, or refuses when the body would pass the limit (the caller then stops
    /// reading and cancels the stream; the chunk is not kept).
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        if self.bytes.len().saturating_add(chunk.len()) > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The first `cap` bytes of a response; the rest is never stored.
#[derive(Debug)]
pub struct Prefix {
    cap: usize,
    bytes: Vec<u8>,
    truncated: bool,
}

impl Prefix {
    /// An empty prefix of at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Prefix {
            cap,
            bytes: Vec::new(),
            truncated: false,
        }
    }

    /// An empty prefix of at most `cap` bytes, with room for the `declared` length (a
    /// response's `Content-Length`) up to the cap: a body read in many chunks then never
    /// reallocates, whose doubling would hold old and new copies of a large download at once
    /// (a 32 MiB recording peaked near 100 MiB of Wasm memory that way).
    pub fn sized(cap: usize, declared: Option<u64>) -> Self {
        let room = declared.map_or(0, |d| usize::try_from(d).unwrap_or(usize::MAX).min(cap));
        Prefix {
            cap,
            bytes: Vec::with_capacity(room),
            truncated: false,
        }
    }

    /// Keeps what fits of `chunk`; `false` once the cap is reached or passed (stop reading).
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        let room = self.cap.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        !self.truncated && self.bytes.len() < self.cap
    }

    /// Whether bytes past the cap were seen (and dropped).
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// The kept bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_is_reserved_up_to_the_cap_and_never_grown() {
        let mut big = Prefix::sized(1000, Some(10_000));
        assert_eq!(big.bytes.capacity(), 1000);
        for _ in 0..10 {
            big.push(&[7; 100]);
        }
        assert_eq!(big.bytes.capacity(), 1000, "no reallocation");
        assert!(!big.push(&[7]), "one byte past the cap stops the read");
        assert!(big.truncated());
        assert_eq!(Prefix::sized(1000, Some(40)).bytes.capacity(), 40);
        assert_eq!(Prefix::sized(1000, None).bytes.capacity(), 0);
        let mut lying = Prefix::sized(10, Some(2));
        assert!(
            lying.push(&[1; 5]),
            "a longer body than declared is still read to the cap"
        );
        assert!(!lying.push(&[1; 6]));
        assert_eq!(lying.into_bytes(), [1; 10]);
    }

    #[test]
    fn declared_length_over_the_limit_is_refused() {
        assert_eq!(check_declared(Some("11"), 10), Err(TooLarge { limit: 10 }));
        assert_eq!(check_declared(Some(" 10 "), 10), Ok(()));
        assert_eq!(check_declared(Some("99999999999999999999999"), 10), Ok(()));
        assert_eq!(check_declared(Some("nope"), 10), Ok(()));
        assert_eq!(check_declared(None, 10), Ok(()));
    }

    #[test]
    fn only_a_declared_length_without_other_framing_is_read_whole() {
        assert_eq!(body_read(Some("10"), None, 10), Ok(BodyRead::Whole));
        assert_eq!(body_read(Some(" 0 "), None, 10), Ok(BodyRead::Whole));
        assert_eq!(body_read(Some("11"), None, 10), Err(TooLarge { limit: 10 }));
        assert_eq!(
            body_read(Some("11"), Some("chunked"), 10),
            Err(TooLarge { limit: 10 })
        );
        // A small declared length beside chunked framing does not bound the body.
        assert_eq!(
            body_read(Some("10"), Some("chunked"), 10),
            Ok(BodyRead::Streamed)
        );
        assert_eq!(body_read(Some("10"), Some(""), 10), Ok(BodyRead::Streamed));
        assert_eq!(body_read(None, None, 10), Ok(BodyRead::Streamed));
        assert_eq!(body_read(Some("nope"), None, 10), Ok(BodyRead::Streamed));
        assert_eq!(
            body_read(Some("99999999999999999999999"), None, 10),
            Ok(BodyRead::Streamed)
        );
    }

    #[test]
    fn a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_not() {
        let mut body = BoundedBody::new(10);
        body.push(b"12345").unwrap();
        body.push(b"").unwrap();
        body.push(b"67890").unwrap();
        assert_eq!(body.push(b"x"), Err(TooLarge { limit: 10 }));
        assert_eq!(body.into_bytes(), b"1234567890");
        // A single chunk far over the limit is refused without being stored.
        let mut body = BoundedBody::new(10);
        assert!(body.push(&[0; 1 << 20]).is_err());
        assert!(body.into_bytes().is_empty());
    }

    #[test]
    fn a_prefix_keeps_the_cap_and_says_when_to_stop() {
        let mut prefix = Prefix::new(8);
        assert!(prefix.push(b"abc"));
        assert!(!prefix.push(b"defghijk"));
        assert!(prefix.truncated());
        assert_eq!(prefix.into_bytes(), b"abcdefgh");
        let mut exact = Prefix::new(3);
        assert!(!exact.push(b"abc"), "full: nothing more is needed");
        assert!(!exact.truncated());
        assert_eq!(exact.into_bytes(), b"abc");
        let mut none = Prefix::new(0);
        assert!(!none.push(b"a"));
        assert!(none.into_bytes().is_empty());
    }
}
