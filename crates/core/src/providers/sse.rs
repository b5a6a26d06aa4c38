//! Incremental Server-Sent Events parser (HTML Living Standard, "event stream interpretation").
//!
//! Bytes may be split anywhere by the network: inside a line, inside a UTF-8 sequence, or between
//! the `\r` and `\n` of a CRLF. Only complete lines are interpreted, and a line is decoded only
//! once it is complete, so chunking never changes the result.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type, `message`.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id seen so far in the stream (it carries over, per the spec).
    pub id: Option<String>,
}

/// Parser state between network reads.
#[derive(Debug, Clone, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous line ended with `\r`, so a leading `\n` belongs to it.
    after_cr: bool,
    /// No line has been completed yet: a byte-order mark may still be stripped.
    at_start: bool,
    event: String,
    data: String,
    has_data: bool,
    last_id: String,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        SseParser {
            at_start: true,
            ..Self::default()
        }
    }

    /// Feeds the next bytes read; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        for &byte in bytes {
            match byte {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    if let Some(event) = self.end_line() {
                        events.push(event);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(byte);
                }
            }
        }
        events
    }

    /// Ends the stream, dispatching a final event whose terminating blank line never came.
    ///
    /// The spec drops such an event; OpenAI-compatible servers that close right after
    /// `data: [DONE]\n` rely on it being kept.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let last_line = if self.line.is_empty() {
            None
        } else {
            self.end_line()
        };
        let event = last_line.or_else(|| self.dispatch());
        *self = Self::new();
        event
    }

    fn end_line(&mut self) -> Option<SseEvent> {
        let mut bytes = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.at_start) && bytes.starts_with(BOM) {
            bytes.drain(..BOM.len());
        }
        let line = String::from_utf8_lossy(&bytes);
        if line.is_empty() {
            return self.dispatch();
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "" => {} // a comment line, often a keep-alive
            "event" => value.clone_into(&mut self.event),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => value.clone_into(&mut self.last_id),
            _ => {} // `retry` only matters to clients that reconnect; unknown fields are ignored
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event: Some(event).filter(|e| !e.is_empty()),
            data,
            id: Some(self.last_id.clone()).filter(|id| !id.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(d: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: d.into(),
            id: None,
        }
    }

    fn parse_all(bytes: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = parser.push(bytes);
        events.extend(parser.finish());
        events
    }

    #[test]
    fn openai_framing() {
        let stream = b"data: {\"a\":1}\n\ndata: [DONE]\n\n";
        assert_eq!(parse_all(stream), vec![data("{\"a\":1}"), data("[DONE]")]);
    }

    #[test]
    fn spec_examples() {
        // From the HTML spec: comments, multi-line data, ids that carry over.
        let stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
        let events = parse_all(stream);
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: None,
                    data: "first event".into(),
                    id: Some("1".into())
                },
                data("second event"),
                data(" third event"),
            ]
        );
        assert_eq!(
            parse_all(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
            vec![data("YHOO\n+2\n10")]
        );
        // `data` with no colon is an empty data line; two of them join to one newline.
        assert_eq!(
            parse_all(b"data\n\ndata\ndata\n\ndata:\n"),
            vec![data(""), data("\n"), data("")]
        );
    }

    #[test]
    fn event_type_is_reset_after_dispatch() {
        let events = parse_all(b"event: error\ndata: x\n\ndata: y\n\nevent: lone\n\ndata: z\n\n");
        assert_eq!(events[0].event.as_deref(), Some("error"));
        assert_eq!(events[1], data("y"));
        // An event with no data is not dispatched and its type does not leak into the next one.
        assert_eq!(events[2], data("z"));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn all_line_endings_and_bom() {
        let expected = vec![data("a"), data("b"), data("c")];
        assert_eq!(
            parse_all(b"\xEF\xBB\xBFdata: a\r\n\r\ndata: b\r\rdata: c\n\n"),
            expected
        );
        // A second BOM is not stripped: it makes an unknown field name.
        assert_eq!(
            parse_all(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"),
            vec![data("a")]
        );
    }

    #[test]
    fn split_crlf_is_one_line_ending() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: a\r"), vec![]);
        assert_eq!(parser.push(b"\n"), vec![]);
        assert_eq!(parser.push(b"\r"), vec![data("a")]);
        assert_eq!(parser.push(b"\ndata: b\n\n"), vec![data("b")]);
    }

    #[test]
    fn split_utf8_sequence_is_reassembled() {
        let mut parser = SseParser::new();
        let bytes = "data: héllo €\n\n".as_bytes();
        let mut events = Vec::new();
        for b in bytes {
            events.extend(parser.push(std::slice::from_ref(b)));
        }
        assert_eq!(events, vec![data("héllo €")]);
        assert_eq!(parse_all(b"data: \xFF\n\n"), vec![data("\u{FFFD}")]);
    }

    #[test]
    fn finish_keeps_an_unterminated_final_event() {
        assert_eq!(parse_all(b"data: [DONE]"), vec![data("[DONE]")]);
        assert_eq!(parse_all(b"data: [DONE]\n"), vec![data("[DONE]")]);
        assert_eq!(parse_all(b"data: x\n\n: bye"), vec![data("x")]);
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_events(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    &b"data: "[..], b"data:", b"event: e", b"id: 7", b": c", b"retry: 5",
                    b"\n", b"\r", b"\r\n", b"\xEF\xBB\xBF", "é€".as_bytes(), b"\xF0\x9F", b"x y",
                ]),
                0..40,
            ),
            cuts in prop::collection::vec(0usize..200, 0..10),
        ) {
            let stream: Vec<u8> = parts.concat();
            let whole = parse_all(&stream);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(stream.len())).collect();
            cuts.sort_unstable();
            let mut parser = SseParser::new();
            let mut chunked = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                chunked.extend(parser.push(&stream[from..cut]));
                from = cut;
            }
            chunked.extend(parser.finish());
            prop_assert_eq!(whole, chunked);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_all(&bytes);
        }
    }
}
