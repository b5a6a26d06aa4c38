//! The media hot path: a carrier's `media` frame (50 a second on every call) read by a
//! hand-written scanner, without building a JSON tree and without allocating. Its fields are
//! borrowed from the frame's text.
//!
//! The scanner reads a frame only when it is sure to read it as serde would: any valid JSON key
//! order, whitespace and extra fields, nothing else. Whatever it is not sure of (another event,
//! a backslash anywhere, a duplicate field, a number with an exponent, a non-string where a
//! string is read, invalid JSON) makes it answer `None`, and the adapter's full serde parse
//! judges the frame. It never answers with fields serde would not give.

/// The fields of a `media` frame the call needs, borrowed from the frame's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFrame<'a> {
    /// The carrier's stream id (the top-level key the adapter names), if present and not null.
    pub stream_id: Option<&'a str>,
    /// `media.track` (`inbound`, `outbound`).
    pub track: Option<&'a str>,
    /// `media.chunk` (a number written as a string).
    pub chunk: Option<&'a str>,
    /// `media.timestamp` (milliseconds since the stream started, as a string).
    pub timestamp: Option<&'a str>,
    /// `media.payload`: the audio in base64.
    pub payload: &'a str,
}

/// Nesting deeper than this in a skipped field is left to serde (whose own limit is 128).
const MAX_DEPTH: usize = 32;

/// Digits a skipped number may have: longer ones could overflow serde's `f64`.
const MAX_DIGITS: usize = 18;

/// Reads `text` as a `media` frame whose stream id is the top-level `id_key`; `None` for any
/// other frame and for every frame it is not sure to read as serde would.
pub fn scan_media<'a>(text: &'a str, id_key: &str) -> Option<MediaFrame<'a>> {
    let mut s = Scanner { text, at: 0 };
    let mut event = false;
    let mut stream_id = Field::Unseen;
    let mut media = None;
    s.object(0, |s, key| {
        match key {
            "event" => {
                if event {
                    return None;
                }
                // Another event: the full parse reads it (and says whether it is valid).
                if s.string()? != "media" {
                    return None;
                }
                event = true;
            }
            "media" => {
                if media.is_some() {
                    return None;
                }
                media = Some(s.media_body()?);
            }
            _ if key == id_key => stream_id.set(s.optional_string()?)?,
            _ => s.skip_value(1)?,
        }
        Some(())
    })?;
    s.whitespace();
    if s.at != text.len() || !event {
        return None;
    }
    let body = media?;
    Some(MediaFrame {
        stream_id: stream_id.value(),
        track: body.track.value(),
        chunk: body.chunk.value(),
        timestamp: body.timestamp.value(),
        payload: body.payload?,
    })
}

/// An optional string field: not seen yet, or seen (as a string or `null`).
#[derive(Clone, Copy)]
enum Field<'a> {
    Unseen,
    Seen(Option<&'a str>),
}

impl<'a> Field<'a> {
    /// Records the field's value; `None` for a second occurrence (serde refuses duplicates).
    fn set(&mut self, value: Option<&'a str>) -> Option<()> {
        match self {
            Field::Unseen => {
                *self = Field::Seen(value);
                Some(())
            }
            Field::Seen(_) => None,
        }
    }

    fn value(self) -> Option<&'a str> {
        match self {
            Field::Unseen => None,
            Field::Seen(v) => v,
        }
    }
}

/// The `media` object's fields.
struct Body<'a> {
    track: Field<'a>,
    chunk: Field<'a>,
    timestamp: Field<'a>,
    payload: Option<&'a str>,
}

/// The bytes that end a string's plain run: its closing quote, an escape, a control character.
const STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stops[b] = true;
        b += 1;
    }
    stops[b'"' as usize] = true;
    stops[b'\\' as usize] = true;
    stops
};

/// Whether any byte of `word` is in [`STOPS`] (the classic "has a zero / a byte below n" bit
/// tricks: exact as to whether one exists, which is all this asks).
#[inline(always)]
fn any_stop(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    (below(quote, 1) | below(backslash, 1) | below(word, 0x20)) != 0
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

/// The small steps are inlined by hand: the release build optimises for size (`opt-level =
/// "z"`), which otherwise leaves each a call, most of the scan's time.
impl<'a> Scanner<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    #[inline(always)]
    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string without escapes (a backslash is left to serde), borrowed from the text.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut end = start;
        // Eight bytes at a time while none of them ends the run: a base64 payload is most of
        // a frame's bytes.
        while let Some(word) = bytes.get(end..end + 8) {
            let mut chunk = [0u8; 8];
            chunk.copy_from_slice(word);
            if any_stop(u64::from_le_bytes(chunk)) {
                break;
            }
            end += 8;
        }
        while let Some(&b) = bytes.get(end) {
            if STOPS[usize::from(b)] {
                break;
            }
            end += 1;
        }
        if bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        // Both ends are ASCII quotes, so the slice is on character boundaries.
        self.text.get(start..end)
    }

    /// A string or `null`.
    fn optional_string(&mut self) -> Option<Option<&'a str>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        self.string().map(Some)
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.text.as_bytes().get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// An object, each key handed to `field` with the scanner on its value (whitespace before
    /// the value skipped); `field` must consume the value.
    fn object(
        &mut self,
        depth: usize,
        mut field: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.whitespace();
        self.eat(b'{')?;
        self.whitespace();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.whitespace();
            let key = self.string()?;
            self.whitespace();
            self.eat(b':')?;
            self.whitespace();
            field(self, key)?;
            self.whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn media_body(&mut self) -> Option<Body<'a>> {
        let mut body = Body {
            track: Field::Unseen,
            chunk: Field::Unseen,
            timestamp: Field::Unseen,
            payload: None,
        };
        self.object(1, |s, key| match key {
            "track" => body.track.set(s.optional_string()?),
            "chunk" => body.chunk.set(s.optional_string()?),
            "timestamp" => body.timestamp.set(s.optional_string()?),
            "payload" => {
                if body.payload.is_some() {
                    return None;
                }
                body.payload = Some(s.string()?);
                Some(())
            }
            _ => s.skip_value(2),
        })?;
        Some(body)
    }

    /// Skips one JSON value, checking it as strictly as serde would.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(depth, |s, _| s.skip_value(depth + 1)),
            b'[' => self.array(depth),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        self.whitespace();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.whitespace();
            self.skip_value(depth + 1)?;
            self.whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`; an exponent or a long number is left to serde.
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits()?;
        }
        match self.peek() {
            Some(b'e' | b'E') => None,
            _ => Some(()),
        }
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        (self.at - start <= MAX_DIGITS).then_some(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The same fields as serde reads them: the reference the scanner is held to.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct Owned {
        stream_id: Option<String>,
        track: Option<String>,
        chunk: Option<String>,
        timestamp: Option<String>,
        payload: String,
    }

    impl From<MediaFrame<'_>> for Owned {
        fn from(m: MediaFrame<'_>) -> Self {
            Owned {
                stream_id: m.stream_id.map(str::to_owned),
                track: m.track.map(str::to_owned),
                chunk: m.chunk.map(str::to_owned),
                timestamp: m.timestamp.map(str::to_owned),
                payload: m.payload.to_owned(),
            }
        }
    }

    /// A `media` frame as serde reads it (a tree, then the fields); `None` when serde refuses
    /// the text or it is not a media frame with a string payload.
    pub(crate) fn serde_media(text: &str, id_key: &str) -> Option<Owned> {
        #[derive(serde::Deserialize)]
        struct Frame {
            event: String,
            media: Body,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            track: Option<String>,
            chunk: Option<String>,
            timestamp: Option<String>,
            payload: String,
        }
        let value: Value = serde_json::from_str(text).ok()?;
        let frame: Frame = serde_json::from_str(text).ok()?;
        if frame.event != "media" {
            return None;
        }
        let stream_id = match value.get(id_key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return None,
        };
        Some(Owned {
            stream_id,
            track: frame.media.track,
            chunk: frame.media.chunk,
            timestamp: frame.media.timestamp,
            payload: frame.media.payload,
        })
    }

    const TWILIO: &str = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"/38A"},"streamSid":"MZ1"}"#;

    #[test]
    fn reads_the_carriers_documented_media_frames() {
        assert_eq!(
            scan_media(TWILIO, "streamSid"),
            Some(MediaFrame {
                stream_id: Some("MZ1"),
                track: Some("inbound"),
                chunk: Some("1"),
                timestamp: Some("5"),
                payload: "/38A",
            })
        );
        let telnyx = r#"{ "event": "media", "sequence_number": "4", "stream_id": "32DE",
          "media": { "track": "inbound", "chunk": "2", "timestamp": "5", "payload": "AQID" } }"#;
        let m = scan_media(telnyx, "stream_id").expect("telnyx media");
        assert_eq!(
            (m.stream_id, m.chunk, m.payload),
            (Some("32DE"), Some("2"), "AQID")
        );
        let exotel = r#"{"event":"media","sequence_number":"3","stream_sid":"MZx",
          "media":{"chunk":"1","timestamp":"20","payload":"AAA="}}"#;
        let m = scan_media(exotel, "stream_sid").expect("exotel media");
        assert_eq!(
            (m.stream_id, m.track, m.timestamp),
            (Some("MZx"), None, Some("20"))
        );
        // The key the adapter does not read is just another field.
        assert_eq!(scan_media(TWILIO, "stream_id").unwrap().stream_id, None);
    }

    #[test]
    fn leaves_to_serde_what_it_is_not_sure_of() {
        for text in [
            r#"{"event":"mark","mark":{"name":"m"},"streamSid":"MZ1"}"#,
            r#"{"event":"media","media":{"payload":"ab\/c"},"streamSid":"MZ1"}"#,
            r#"{"event":"media","media":{"payload":"AA=="},"streamSid":"M\u005a1"}"#,
            r#"{"event":"media","media":{"payload":"AA=="},"x":"\n"}"#,
            r#"{"event":"media","media":{"payload":"AA==","payload":"AA=="}}"#,
            r#"{"event":"media","event":"media","media":{"payload":"AA=="}}"#,
            r#"{"event":"media","media":{"payload":"AA=="},"n":1e400}"#,
            r#"{"event":"media","media":{"payload":"AA=="},"n":1234567890123456789012}"#,
            r#"{"event":"media","media":{"payload":7}}"#,
            r#"{"event":"media","media":{"track":5,"payload":"AA=="}}"#,
            r#"{"event":"media","media":{"track":"inbound"}}"#,
            r#"{"event":"media"}"#,
            r#"{"media":{"payload":"AA=="}}"#,
            r#"{"event":"media","media":{"payload":"AA=="},}"#,
            r#"{"event":"media","media":{"payload":"AA=="}} x"#,
            r#"{"event":"media","media":{"payload":"AA=="},"a":[1,]}"#,
            r#"{"event":"media","media":{"payload":"AA=="},"a":01}"#,
            r#"{"event":"media","media":{"payload":"AA=="},"a":tru}"#,
            r#"["event","media"]"#,
            "",
            "{",
        ] {
            assert_eq!(scan_media(text, "streamSid"), None, "{text}");
        }
        let deep = format!(
            r#"{{"event":"media","media":{{"payload":"AA=="}},"x":{}1{}}}"#,
            "[".repeat(40),
            "]".repeat(40)
        );
        assert_eq!(scan_media(&deep, "streamSid"), None);
        assert!(
            serde_media(&deep, "streamSid").is_some(),
            "serde reads it instead"
        );
    }

    #[test]
    fn a_word_has_a_stop_byte_exactly_when_one_of_its_bytes_is_one() {
        let plain = *b"AZaz09+/";
        assert!(!any_stop(u64::from_le_bytes(plain)));
        for at in 0..8 {
            for b in 0..=255u8 {
                let mut word = plain;
                word[at] = b;
                assert_eq!(
                    any_stop(u64::from_le_bytes(word)),
                    STOPS[usize::from(b)],
                    "{b} at {at}"
                );
            }
        }
        assert!(!any_stop(u64::from_le_bytes([
            0x7F, 0x80, 0xFF, 0xC3, 0xA9, 0x21, 0x23, 0x5D
        ])));
    }

    #[test]
    fn reads_what_serde_reads_around_the_fields() {
        let text = "\r\n{ \"x\" : [ {}, [], -0.5, 1, true, false, null, \"é\" ] ,\t\"event\":\"media\",\
            \"streamSid\":null, \"media\":{\"extra\":{\"a\":{}},\"payload\":\"\",\"track\":null}}\n";
        let m = scan_media(text, "streamSid").expect("a media frame");
        assert_eq!(Owned::from(m), serde_media(text, "streamSid").unwrap());
        assert_eq!((m.stream_id, m.track, m.payload), (None, None, ""));
    }

    /// A JSON value of any kind that needs no escapes, so the scanner must read past it.
    fn plain_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            any::<i32>().prop_map(|n| n.to_string()),
            (any::<i16>(), 0u32..1000).prop_map(|(a, b)| format!("{a}.{b}")),
            "[a-zA-Z0-9 +/=é€_-]{0,10}".prop_map(|s| format!("\"{s}\"")),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|v| {
                    let fields: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    fn ws() -> impl Strategy<Value = String> {
        "[ \t\r\n]{0,2}"
    }

    fn optional(values: &[&'static str]) -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            1 => Just(None),
            1 => Just(Some("null".to_owned())),
            4 => prop::sample::select(values.to_vec()).prop_map(|v| Some(format!("\"{v}\""))),
        ]
    }

    /// An object of `fields` (key, JSON text) plus `extra` ones, shuffled, whitespace anywhere.
    fn object(
        fields: Vec<(String, String)>,
        extra: Vec<(String, String)>,
        spaces: Vec<String>,
        order: Vec<usize>,
    ) -> String {
        let mut all: Vec<(String, String)> = fields.into_iter().chain(extra).collect();
        // A permutation from random sort keys: any key order.
        let mut keyed: Vec<(usize, (String, String))> =
            order.into_iter().zip(all.drain(..)).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let sp = |i: usize| {
            spaces
                .get(i % spaces.len().max(1))
                .cloned()
                .unwrap_or_default()
        };
        let parts: Vec<String> = keyed
            .into_iter()
            .enumerate()
            .map(|(i, (_, (k, v)))| {
                format!(
                    "{}\"{k}\"{}:{}{v}{}",
                    sp(i),
                    sp(i + 1),
                    sp(i + 2),
                    sp(i + 3)
                )
            })
            .collect();
        format!("{{{}{}}}", parts.join(","), sp(7))
    }

    /// A valid `media` frame of one carrier shape: random key order, whitespace, extra fields
    /// (never named like ours), optional fields absent, null or set.
    pub(crate) fn media_frame() -> impl Strategy<Value = (String, &'static str)> {
        let id_key = prop::sample::select(vec!["streamSid", "stream_id", "stream_sid"]);
        let extra = || {
            prop::collection::vec(
                (
                    "(sequence_?[nN]umber|extra[0-9]|start|mark|tag)",
                    plain_value(),
                ),
                0..3,
            )
            .prop_map(|v| {
                let mut seen = std::collections::BTreeSet::new();
                v.into_iter()
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .collect::<Vec<_>>()
            })
        };
        (
            id_key,
            optional(&["MZ0123abc", "", "32DE0DEA-53CB"]),
            optional(&["inbound", "outbound", "inbound_track"]),
            optional(&["42", "1"]),
            optional(&["860", "0"]),
            "[A-Za-z0-9+/]{0,40}={0,2}",
            extra(),
            extra(),
            prop::collection::vec(ws(), 8),
            prop::collection::vec(any::<usize>(), 8),
            prop::collection::vec(any::<usize>(), 8),
        )
            .prop_map(
                |(id_key, id, track, chunk, ts, payload, extra, media_extra, spaces, o1, o2)| {
                    let mut body = vec![("payload".to_owned(), format!("\"{payload}\""))];
                    for (k, v) in [("track", track), ("chunk", chunk), ("timestamp", ts)] {
                        if let Some(v) = v {
                            body.push((k.to_owned(), v));
                        }
                    }
                    let media = object(body, media_extra, spaces.clone(), o2);
                    let mut top = vec![
                        ("event".to_owned(), "\"media\"".to_owned()),
                        ("media".to_owned(), media),
                    ];
                    if let Some(id) = id {
                        top.push((id_key.to_owned(), id));
                    }
                    (
                        format!("{}{}", spaces[0].clone(), object(top, extra, spaces, o1)),
                        id_key,
                    )
                },
            )
    }

    proptest! {
        #[test]
        fn valid_media_frames_read_as_serde_reads_them((text, id_key) in media_frame()) {
            let reference = serde_media(&text, id_key);
            prop_assert!(reference.is_some(), "serde reads {}", text);
            let scanned = scan_media(&text, id_key);
            prop_assert!(scanned.is_some(), "the scanner reads {}", text);
            prop_assert_eq!(scanned.map(Owned::from), reference);
        }

        #[test]
        fn truncated_frames_are_never_misread((text, id_key) in media_frame(), cut in any::<usize>()) {
            let cut = cut % (text.len() + 1);
            let Some(prefix) = text.get(..cut) else { return Ok(()) };
            if let Some(m) = scan_media(prefix, id_key) {
                prop_assert_eq!(Some(Owned::from(m)), serde_media(prefix, id_key), "{}", prefix);
            }
        }

        #[test]
        fn mutated_frames_are_never_misread(
            (text, id_key) in media_frame(),
            edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = text.into_bytes();
            for (at, byte) in edits {
                let at = at % bytes.len();
                // JSON's own punctuation most of the time, so edits land on structure.
                bytes[at] = *b"{}[]\":,\\ 0e-n\x01"
                    .get(usize::from(byte) % 24)
                    .unwrap_or(&byte);
            }
            let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
            if let Some(m) = scan_media(&text, id_key) {
                prop_assert_eq!(Some(Owned::from(m)), serde_media(&text, id_key), "{}", text);
            }
        }

        #[test]
        fn garbage_is_never_misread(text in ".{0,80}", key in "[a-zA-Z_]{1,10}") {
            if let Some(m) = scan_media(&text, &key) {
                prop_assert_eq!(Some(Owned::from(m)), serde_media(&text, &key));
            }
        }
    }
}
