//! Text helpers: sentences for TTS segments, words for barge-in decisions.

use serde::{Deserialize, Serialize};

/// Cuts streamed reply text into sentences, so TTS can start on the first one immediately.
///
/// A sentence ends at a newline, or at `.`, `!`, `?` or `…` (plus closing quotes or brackets)
/// once whitespace follows: the whitespace is awaited so that "3.5" split across two deltas is
/// not cut, and a lone dot after a common abbreviation ("Dr.") or a dotted word ("e.g.") never
/// ends one. Serialized as the pending text alone (the session's state is persisted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct SentenceSplitter {
    buf: String,
}

/// Words before a clause may be cut off as a reply's first piece (shorter is too little to
/// say with natural prosody).
pub(super) const CLAUSE_MIN_WORDS: usize = 3;
/// Words after which a reply's first piece is cut at the next space when no punctuation came.
pub(super) const WORD_GROUP: usize = 8;

const ABBREVIATIONS: [&str; 11] = [
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "approx",
];

impl SentenceSplitter {
    /// Adds a text delta; returns the sentences it completes, trimmed, in order.
    pub(super) fn push(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut sentences = Vec::new();
        while let Some(end) = self.boundary() {
            let rest = self.buf.split_off(end);
            let sentence = std::mem::replace(&mut self.buf, rest);
            push_trimmed(&mut sentences, &sentence);
        }
        sentences
    }

    /// [`Self::push`] for the opening words of a reply, which wait for nothing else: the
    /// first piece may end at a clause instead of a sentence (a `,` `;` `:` or dash followed
    /// by whitespace, after at least [`CLAUSE_MIN_WORDS`] words), or after a group of
    /// [`WORD_GROUP`] words with no punctuation yet, so that synthesis starts before the first
    /// sentence is complete. Every later piece is a whole sentence.
    pub(super) fn push_opening(&mut self, text: &str) -> Vec<String> {
        self.buf.push_str(text);
        let mut pieces = Vec::new();
        let sentence = self.boundary();
        let clause = self.clause_boundary();
        let end = match (sentence, clause) {
            (Some(s), Some(c)) => Some(s.min(c)),
            (s, c) => s.or(c),
        };
        if let Some(end) = end {
            let rest = self.buf.split_off(end);
            let piece = std::mem::replace(&mut self.buf, rest);
            push_trimmed(&mut pieces, &piece);
            pieces.extend(self.push(""));
        }
        pieces
    }

    /// The byte offset just past the first clause or word group (see [`Self::push_opening`]),
    /// if the text is known to have one: the whitespace after it has arrived.
    fn clause_boundary(&self) -> Option<usize> {
        let mut words = 0;
        let mut in_word = false;
        let mut chars = self.buf.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            if c.is_whitespace() {
                in_word = false;
                continue;
            }
            if !in_word && c.is_alphanumeric() {
                words += 1;
                in_word = true;
            }
            let (end, next) = chars.peek().copied()?;
            if !next.is_whitespace() {
                continue;
            }
            let clause = matches!(c, ',' | ';' | ':' | '—' | '–') && words >= CLAUSE_MIN_WORDS;
            if clause || words >= WORD_GROUP {
                return Some(end);
            }
        }
        None
    }

    /// Returns whatever is left (the last sentence, maybe without punctuation).
    pub(super) fn flush(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        Some(rest.trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// Forgets the pending text (the reply was cut off).
    pub(super) fn clear(&mut self) {
        self.buf.clear();
    }

    /// The byte offset just past the first complete sentence, if one is known to be complete.
    fn boundary(&self) -> Option<usize> {
        let mut chars = self.buf.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\n' {
                return Some(i + 1);
            }
            if !matches!(c, '.' | '!' | '?' | '…') {
                continue;
            }
            let mut lone_dot = c == '.';
            while let Some(&(_, next)) = chars.peek() {
                if matches!(next, '.' | '!' | '?' | '…') {
                    lone_dot = false;
                } else if !matches!(next, '"' | '\'' | '”' | '’' | ')' | ']') {
                    break;
                }
                chars.next();
            }
            let (end, next) = chars.peek().copied()?;
            if next.is_whitespace() && !(lone_dot && self.is_abbreviation(i)) {
                return Some(end);
            }
        }
        None
    }

    /// Whether the word before the `.` at `dot` is an abbreviation ("Dr", "e.g", "U.S").
    fn is_abbreviation(&self, dot: usize) -> bool {
        let before = self.buf.get(..dot).unwrap_or_default();
        let word = before
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or_default()
            .trim_start_matches(|c: char| !c.is_alphanumeric());
        let dotted = word.contains('.') && word.chars().all(|c| c.is_alphabetic() || c == '.');
        dotted || ABBREVIATIONS.contains(&word.to_lowercase().as_str())
    }
}

/// All sentences of a complete text (its unterminated tail included).
pub(super) fn sentences(text: &str) -> Vec<String> {
    let mut splitter = SentenceSplitter::default();
    let mut sentences = splitter.push(text);
    sentences.extend(splitter.flush());
    sentences
}

fn push_trimmed(sentences: &mut Vec<String>, piece: &str) {
    let piece = piece.trim();
    if !piece.is_empty() {
        sentences.push(piece.to_owned());
    }
}

/// The words of a transcript, lower-cased, with surrounding punctuation trimmed
/// ("Uh-huh." → "uh-huh"); pieces without letters or digits are not words.
pub(super) fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `deltas` as a stream, then flushes.
    fn split(deltas: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::default();
        let mut out: Vec<String> = deltas.iter().flat_map(|d| s.push(d)).collect();
        out.extend(s.flush());
        out
    }

    #[test]
    fn splits_streamed_text_at_sentence_ends() {
        let mut s = SentenceSplitter::default();
        let mut out = Vec::new();
        for delta in [
            "Hello",
            " there. How",
            " can I help?",
            " It costs 3.5",
            " dollars.",
        ] {
            out.extend(s.push(delta));
        }
        assert_eq!(out, ["Hello there.", "How can I help?"]);
        assert_eq!(s.flush().as_deref(), Some("It costs 3.5 dollars."));
        assert_eq!(s.flush(), None);
        assert_eq!(
            split(&["Hello", " there. How", " are you? I'm", " fine! Bye"]),
            ["Hello there.", "How are you?", "I'm fine!", "Bye"]
        );
    }

    #[test]
    fn newlines_ellipses_quotes_and_repeated_punctuation() {
        assert_eq!(
            sentences("Wait... what?! Yes\nno  \n\n ok"),
            ["Wait...", "what?!", "Yes", "no", "ok"]
        );
        assert!(sentences("  \n ").is_empty());
        assert_eq!(
            sentences("¿Qué tal? Très bien é. ü"),
            ["¿Qué tal?", "Très bien é.", "ü"]
        );
        assert_eq!(
            split(&["Well… I think so.\nNext line"]),
            ["Well…", "I think so.", "Next line"]
        );
        assert_eq!(
            split(&["He said \"hi.\" Then", " left... OK"]),
            ["He said \"hi.\"", "Then left...", "OK"]
        );
    }

    #[test]
    fn sentences_do_not_end_at_abbreviations_or_decimals() {
        assert_eq!(
            split(&["Dr. Smith charges 3.5 dollars, e.g. for a visit. Fine"]),
            ["Dr. Smith charges 3.5 dollars, e.g. for a visit.", "Fine"]
        );
        assert_eq!(
            split(&["Meet at 7 p.m. tomorrow. See Mr. (Jones) now."]),
            ["Meet at 7 p.m. tomorrow.", "See Mr. (Jones) now."]
        );
        assert_eq!(
            split(&["It was 3.5. The answer is no. Okay"]),
            ["It was 3.5.", "The answer is no.", "Okay"]
        );
    }

    #[test]
    fn a_sentence_waits_for_what_follows_its_dot() {
        let mut s = SentenceSplitter::default();
        assert!(s.push("It costs 3.").is_empty());
        assert_eq!(s.push("5 dollars. O"), ["It costs 3.5 dollars."]);
        assert_eq!(s.flush().as_deref(), Some("O"));
        assert_eq!(s.flush(), None);
        // "Dr." at a chunk boundary: not a sentence, whatever comes next.
        assert!(s.push("Ask Dr.").is_empty());
        assert_eq!(s.push(" Who. "), ["Ask Dr. Who."]);
    }

    /// Feeds `deltas` as a reply's opening (as the conversation does until its first piece).
    fn opening(deltas: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::default();
        let mut out = Vec::new();
        for d in deltas {
            out.extend(if out.is_empty() {
                s.push_opening(d)
            } else {
                s.push(d)
            });
        }
        out.extend(s.flush());
        out
    }

    #[test]
    fn a_reply_opens_with_its_first_clause_or_word_group() {
        // A clause of three words or more goes at once, before its sentence has ended.
        let mut s = SentenceSplitter::default();
        assert!(s.push_opening("Yes, of course").is_empty());
        assert!(
            s.push_opening(",").is_empty(),
            "the comma waits for what follows"
        );
        assert_eq!(s.push_opening(" we"), ["Yes, of course,"]);
        assert_eq!(s.push(" can. "), ["we can."]);
        assert_eq!(
            opening(&[
                "Well, let me see, our menu has",
                " pasta. And pizza, too. Bye"
            ]),
            [
                "Well, let me see,",
                "our menu has pasta.",
                "And pizza, too.",
                "Bye"
            ]
        );
        // Shorter clauses and digit groups do not cut; a sentence end still does.
        assert_eq!(
            opening(&["Yes, 1,000 of them. Fine, then"]),
            ["Yes, 1,000 of them.", "Fine, then"]
        );
        // No punctuation: a group of eight words.
        assert_eq!(
            opening(&["one two three four five six seven eight nine ten."]),
            ["one two three four five six seven eight", "nine ten."]
        );
        assert_eq!(
            opening(&["Our menu has many dishes.", " We have pasta; pizza."]),
            ["Our menu has many dishes.", "We have pasta; pizza."]
        );
        // Dashes and colons end a clause too.
        assert_eq!(
            opening(&["Here is the plan: we go — now."]),
            ["Here is the plan:", "we go — now."]
        );
    }

    proptest! {
        #[test]
        fn the_opening_cut_keeps_every_word(
            text in "[a-zA-Z ,;:.!?]{0,120}",
            cut in 0usize..120,
        ) {
            let cut = text.char_indices().map(|(i, _)| i).find(|&i| i >= cut).unwrap_or(text.len());
            let pieces = opening(&[&text[..cut], &text[cut..]]);
            let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
            prop_assert_eq!(words(&pieces.join(" ")), words(&text));
        }
    }

    #[test]
    fn persists_as_the_pending_text() {
        let mut s = SentenceSplitter::default();
        s.push("Done. Half a sen");
        let value = serde_json::to_value(&s).unwrap();
        assert_eq!(value, serde_json::json!(" Half a sen"));
        let mut back: SentenceSplitter = serde_json::from_value(value).unwrap();
        assert_eq!(back.push("tence. "), ["Half a sentence."]);
    }

    proptest! {
        #[test]
        fn splitter_keeps_all_text_whatever_the_chunking(
            text in "[a-zA-Z .!?…\n\"3]{0,120}",
            cut in 0usize..120,
        ) {
            let cut = text.char_indices().map(|(i, _)| i).find(|&i| i >= cut).unwrap_or(text.len());
            let pieces = split(&[&text[..cut], &text[cut..]]);
            let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
            prop_assert_eq!(words(&pieces.join(" ")), words(&text));
            prop_assert_eq!(pieces.clone(), split(&[&text]));
        }
    }

    #[test]
    fn words_ignore_punctuation_and_case() {
        assert_eq!(
            words(" Uh-huh.  Mm-hmm, STOP!"),
            ["uh-huh", "mm-hmm", "stop"]
        );
        assert_eq!(words("I'd like... -- ?"), ["i'd", "like"]);
        assert!(words(" ... ").is_empty());
    }
}
