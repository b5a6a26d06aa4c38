//! Text helpers: sentences for TTS segments, words for barge-in decisions.

/// Splits the complete sentences off the front of `buf`, leaving the unfinished rest in it.
///
/// A sentence ends at `.`, `!` or `?` followed by whitespace, or at a newline; the whitespace
/// is required so that "3.5" or "e.g" mid-stream are not cut while more text may follow.
pub(super) fn take_sentences(buf: &mut String) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut chars = buf.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends = c == '\n'
            || (matches!(c, '.' | '!' | '?')
                && chars.peek().is_some_and(|(_, next)| next.is_whitespace()));
        if ends {
            let end = i + c.len_utf8();
            push_trimmed(&mut sentences, buf.get(start..end).unwrap_or_default());
            start = end;
        }
    }
    *buf = buf.get(start..).unwrap_or_default().to_owned();
    sentences
}

/// All sentences of a complete text (its unterminated tail included).
pub(super) fn sentences(text: &str) -> Vec<String> {
    let mut buf = text.to_owned();
    let mut sentences = take_sentences(&mut buf);
    push_trimmed(&mut sentences, &buf);
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

    #[test]
    fn splits_streamed_text_at_sentence_ends() {
        let mut buf = String::new();
        let mut out = Vec::new();
        for delta in [
            "Hello",
            " there. How",
            " can I help?",
            " It costs 3.5",
            " dollars.",
        ] {
            buf.push_str(delta);
            out.extend(take_sentences(&mut buf));
        }
        assert_eq!(out, ["Hello there.", "How can I help?"]);
        assert_eq!(buf, " It costs 3.5 dollars.");
        assert_eq!(sentences(&buf), ["It costs 3.5 dollars."]);
    }

    #[test]
    fn newlines_and_repeated_punctuation() {
        assert_eq!(
            sentences("Wait... what?! Yes\nno  \n\n ok"),
            ["Wait...", "what?!", "Yes", "no", "ok"]
        );
        assert!(sentences("  \n ").is_empty());
        assert_eq!(
            sentences("¿Qué tal? Très bien é. ü"),
            ["¿Qué tal?", "Très bien é.", "ü"]
        );
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
