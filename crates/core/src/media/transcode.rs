//! Streaming conversion between two wire formats: decode, resample, encode.
//!
//! Used both ways: TTS output (e.g. OpenAI `pcm`, 24 kHz LE) → the carrier's format, and carrier
//! audio (e.g. Telnyx L16 big-endian) → what STT was told to expect.

use super::codec::AudioFormat;
use super::resample::{ResampleError, Resampler};

/// Converts a byte stream from one audio format to another, chunk by chunk.
#[derive(Debug, Clone)]
pub struct Transcoder {
    from: AudioFormat,
    to: AudioFormat,
    resampler: Resampler,
    /// Bytes of an incomplete input sample, waiting for the next chunk (HTTP chunking may
    /// split a 16-bit sample in two).
    partial: Vec<u8>,
    decoded: Vec<i16>,
    resampled: Vec<i16>,
}

impl Transcoder {
    /// A transcoder from `from` to `to`; fails only for rate pairs the resampler cannot do.
    pub fn new(from: AudioFormat, to: AudioFormat) -> Result<Self, ResampleError> {
        Ok(Transcoder {
            from,
            to,
            resampler: Resampler::new(from.sample_rate(), to.sample_rate())?,
            partial: Vec::new(),
            decoded: Vec::new(),
            resampled: Vec::new(),
        })
    }

    /// Converts the next chunk, appending the output bytes now available to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.partial.extend_from_slice(bytes);
        let whole = self.partial.len() - self.partial.len() % self.from.bytes_per_sample();
        let rest = self.partial.split_off(whole);
        self.decoded.clear();
        self.from.decode(&self.partial, &mut self.decoded);
        self.partial = rest;
        self.resampled.clear();
        self.resampler.process(&self.decoded, &mut self.resampled);
        self.to.encode(&self.resampled, out);
    }

    /// Ends the stream: appends what the resampler still holds and resets for a new stream
    /// (an incomplete trailing sample is dropped).
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        self.partial.clear();
        self.resampled.clear();
        self.resampler.flush(&mut self.resampled);
        self.to.encode(&self.resampled, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn convert(from: AudioFormat, to: AudioFormat, chunks: &[&[u8]]) -> Vec<u8> {
        let mut t = Transcoder::new(from, to).unwrap();
        let mut out = Vec::new();
        for chunk in chunks {
            t.push(chunk, &mut out);
        }
        t.flush(&mut out);
        out
    }

    #[test]
    fn openai_pcm_24k_to_mulaw_8k() {
        // 30 ms of 24 kHz PCM silence becomes 30 ms (240 bytes) of μ-law silence.
        let out = convert(
            AudioFormat::Pcm16Le { rate: 24000 },
            AudioFormat::Mulaw8k,
            &[&[0; 1440]],
        );
        assert_eq!(out, vec![0xFF; 240]);
    }

    #[test]
    fn telnyx_l16_becomes_little_endian_pcm() {
        let out = convert(
            AudioFormat::L16Be { rate: 8000 },
            AudioFormat::Pcm16Le { rate: 8000 },
            &[&[0x12, 0x34, 0xFF], &[0xFE]],
        );
        assert_eq!(out, [0x34, 0x12, 0xFE, 0xFF]);
    }

    #[test]
    fn mulaw_to_alaw_maps_silence_to_silence() {
        let out = convert(AudioFormat::Mulaw8k, AudioFormat::Alaw8k, &[&[0xFF; 10]]);
        assert_eq!(out, vec![0xD5; 10]);
    }

    #[test]
    fn unsupported_rates_are_refused() {
        assert!(
            Transcoder::new(AudioFormat::Pcm16Le { rate: 44100 }, AudioFormat::Mulaw8k).is_err()
        );
    }

    proptest! {
        #[test]
        fn samples_split_across_chunks_decode_the_same(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            cut in 0usize..2000,
        ) {
            let cut = cut.min(bytes.len());
            let from = AudioFormat::Pcm16Le { rate: 24000 };
            let whole = convert(from, AudioFormat::Mulaw8k, &[&bytes]);
            let split = convert(from, AudioFormat::Mulaw8k, &[&bytes[..cut], &bytes[cut..]]);
            prop_assert_eq!(whole, split);
        }
    }
}
