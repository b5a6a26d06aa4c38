//! Fixed-size framing of outbound audio (e.g. 160-byte / 20 ms μ-law frames for Twilio).
//!
//! TTS providers deliver audio in arbitrary chunk sizes; carriers want (or play best with)
//! fixed frames, and one frame per mark keeps barge-in truncation precise.

use std::num::NonZeroUsize;

/// Cuts a byte stream into frames of one size, carrying the remainder across pushes.
#[derive(Debug, Clone)]
pub struct Framer {
    frame_bytes: NonZeroUsize,
    silence: u8,
    pending: Vec<u8>,
}

impl Framer {
    /// A framer for `frame_bytes`-sized frames, padding the last one with `silence`
    /// (use `AudioFormat::silence_byte` and `Carrier::frame_bytes`).
    pub fn new(frame_bytes: NonZeroUsize, silence: u8) -> Self {
        Framer {
            frame_bytes,
            silence,
            pending: Vec::with_capacity(frame_bytes.get()),
        }
    }

    /// Appends audio and returns every frame now complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        let size = self.frame_bytes.get();
        let whole = self.pending.len() - self.pending.len() % size;
        let frames = self
            .pending
            .chunks_exact(size)
            .map(<[u8]>::to_vec)
            .collect();
        self.pending.drain(..whole);
        frames
    }

    /// Ends the stream: the partial frame left over, padded with silence, if there is one.
    pub fn flush(&mut self) -> Option<Vec<u8>> {
        if self.pending.is_empty() {
            return None;
        }
        let mut frame = std::mem::take(&mut self.pending);
        frame.resize(self.frame_bytes.get(), self.silence);
        Some(frame)
    }

    /// Drops the partial frame without sending it (barge-in: the rest will not be played).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framer(size: usize, silence: u8) -> Framer {
        Framer::new(NonZeroUsize::new(size).unwrap(), silence)
    }

    #[test]
    fn twenty_ms_of_mulaw_in_odd_chunks() {
        let mut f = framer(160, 0xFF);
        assert!(f.push(&[1; 100]).is_empty());
        let frames = f.push(&[2; 300]);
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0][..100], &[1; 100]);
        assert_eq!(&frames[0][100..], &[2; 60]);
        let last = f.flush().unwrap();
        assert_eq!(&last[..80], &[2; 80]);
        assert_eq!(&last[80..], &[0xFF; 80]);
        assert_eq!(f.flush(), None);
    }

    #[test]
    fn clear_drops_the_partial_frame() {
        let mut f = framer(320, 0);
        f.push(&[7; 100]);
        f.clear();
        assert_eq!(f.flush(), None);
        assert_eq!(f.push(&[9; 320]), vec![vec![9; 320]]);
    }

    proptest! {
        #[test]
        fn frames_are_exact_and_keep_every_byte(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..20),
            size in 1usize..400,
            silence in any::<u8>(),
        ) {
            let mut f = framer(size, silence);
            let mut frames = Vec::new();
            for chunk in &chunks {
                frames.extend(f.push(chunk));
            }
            let input: Vec<u8> = chunks.concat();
            prop_assert_eq!(frames.len(), input.len() / size);
            let padded = f.flush();
            prop_assert_eq!(padded.is_some(), !input.len().is_multiple_of(size));
            frames.extend(padded);
            prop_assert!(frames.iter().all(|frame| frame.len() == size));
            let joined = frames.concat();
            prop_assert_eq!(&joined[..input.len()], &input[..]);
            prop_assert!(joined[input.len()..].iter().all(|&b| b == silence));
        }
    }
}
