//! Audio codecs: G.711 μ-law and A-law (ITU-T G.711), 16-bit PCM in either byte order.
//!
//! Samples are `i16` throughout; the byte formats are what carriers and providers put on the wire.

/// μ-law adds this bias (in 16-bit units) so that every magnitude has a leading one bit to
/// find the segment from.
const MULAW_BIAS: i32 = 0x84;
/// Largest 14-bit magnitude that still fits the top segment once the bias is added.
const MULAW_CLIP_14: i32 = 0x1FFF - (MULAW_BIAS >> 2);

/// A wire audio format: codec, byte order and sample rate, always mono.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// G.711 μ-law (PCMU), 8 kHz.
    Mulaw8k,
    /// G.711 A-law (PCMA), 8 kHz.
    Alaw8k,
    /// 16-bit signed PCM, big-endian (RFC 2586 L16).
    L16Be { rate: u32 },
    /// 16-bit signed PCM, little-endian.
    Pcm16Le { rate: u32 },
}

impl AudioFormat {
    /// Samples per second.
    pub fn sample_rate(self) -> u32 {
        match self {
            AudioFormat::Mulaw8k | AudioFormat::Alaw8k => 8000,
            AudioFormat::L16Be { rate } | AudioFormat::Pcm16Le { rate } => rate,
        }
    }

    /// Bytes per sample on the wire (1 for G.711, 2 for PCM).
    pub fn bytes_per_sample(self) -> usize {
        match self {
            AudioFormat::Mulaw8k | AudioFormat::Alaw8k => 1,
            AudioFormat::L16Be { .. } | AudioFormat::Pcm16Le { .. } => 2,
        }
    }

    /// Bytes that `ms` milliseconds of audio take (e.g. 160 for 20 ms of μ-law).
    pub fn bytes_for_ms(self, ms: u32) -> usize {
        let samples = u64::from(self.sample_rate()) * u64::from(ms) / 1000;
        usize::try_from(samples).unwrap_or(usize::MAX) * self.bytes_per_sample()
    }

    /// The byte that encodes digital silence, for padding (both bytes of a PCM zero are 0).
    pub fn silence_byte(self) -> u8 {
        match self {
            AudioFormat::Mulaw8k => 0xFF,
            AudioFormat::Alaw8k => 0xD5,
            AudioFormat::L16Be { .. } | AudioFormat::Pcm16Le { .. } => 0x00,
        }
    }

    /// Decodes wire bytes into samples appended to `out`; a trailing odd PCM byte is ignored
    /// (streams that split samples across chunks go through [`super::transcode::Transcoder`]).
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        match self {
            AudioFormat::Mulaw8k => out.extend(bytes.iter().map(|&b| mulaw_decode(b))),
            AudioFormat::Alaw8k => out.extend(bytes.iter().map(|&b| alaw_decode(b))),
            AudioFormat::L16Be { .. } => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|p| i16::from_be_bytes([p[0], p[1]])),
            ),
            AudioFormat::Pcm16Le { .. } => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|p| i16::from_le_bytes([p[0], p[1]])),
            ),
        }
    }

    /// Encodes samples into wire bytes appended to `out`.
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            AudioFormat::Mulaw8k => out.extend(samples.iter().map(|&s| mulaw_encode(s))),
            AudioFormat::Alaw8k => out.extend(samples.iter().map(|&s| alaw_encode(s))),
            AudioFormat::L16Be { .. } => samples
                .iter()
                .for_each(|s| out.extend_from_slice(&s.to_be_bytes())),
            AudioFormat::Pcm16Le { .. } => samples
                .iter()
                .for_each(|s| out.extend_from_slice(&s.to_le_bytes())),
        }
    }
}

/// Encodes one sample as G.711 μ-law (silence is 0xFF), as the reference `linear2ulaw` does.
pub fn mulaw_encode(sample: i16) -> u8 {
    // G.711 μ-law works on 14-bit samples; the arithmetic shift truncates towards -∞.
    let value = i32::from(sample) >> 2;
    let (mask, magnitude) = if value < 0 {
        (0x7Fu8, -value)
    } else {
        (0xFFu8, value)
    };
    let biased = magnitude.min(MULAW_CLIP_14) + (MULAW_BIAS >> 2);
    // `biased` lies in 33..=0x1FFF: segment 0 up to 0x3F, each further one doubling the range.
    let segment = (32 - (biased >> 6).leading_zeros()).min(7);
    let mantissa = (biased >> (segment + 1)) & 0x0F;
    ((segment << 4) as u8 | mantissa as u8) ^ mask
}

/// Decodes one G.711 μ-law byte.
pub fn mulaw_decode(code: u8) -> i16 {
    let code = !code;
    let exponent = (code >> 4) & 0x07;
    let magnitude = ((i32::from(code & 0x0F) << 3) + MULAW_BIAS) << exponent;
    let value = if code & 0x80 != 0 {
        MULAW_BIAS - magnitude
    } else {
        magnitude - MULAW_BIAS
    };
    // |value| <= 32124 by construction.
    value as i16
}

/// Encodes one sample as G.711 A-law (silence is 0xD5); even bits are inverted per the standard.
pub fn alaw_encode(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes; negative values use one's complement so that
    // -1..-8 share the smallest negative code, mirroring 0..7 on the positive side.
    let value = i32::from(sample) >> 3;
    let (mask, magnitude) = if value >= 0 {
        (0xD5u8, value)
    } else {
        (0x55u8, -value - 1)
    };
    // Segment 0 covers 0..=31; each further segment doubles the range, up to 4095 (segment 7).
    let segment = (32 - (magnitude >> 5).leading_zeros()).min(7);
    let mantissa = if segment < 2 {
        (magnitude >> 1) & 0x0F
    } else {
        (magnitude >> segment) & 0x0F
    };
    ((segment << 4) as u8 | mantissa as u8) ^ mask
}

/// Decodes one G.711 A-law byte.
pub fn alaw_decode(code: u8) -> i16 {
    let code = code ^ 0x55;
    let mantissa = i32::from(code & 0x0F) << 4;
    let segment = (code >> 4) & 0x07;
    let magnitude = match segment {
        0 => mantissa + 8,
        _ => (mantissa + 0x108) << (segment - 1),
    };
    // |magnitude| <= 32256 by construction.
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Half the width of the quantisation interval a μ-law code stands for.
    fn mulaw_half_step(code: u8) -> i32 {
        let exponent = ((!code) >> 4) & 0x07;
        4 << exponent
    }

    /// Half the width of the quantisation interval an A-law code stands for.
    fn alaw_half_step(code: u8) -> i32 {
        let segment = ((code ^ 0x55) >> 4) & 0x07;
        8 << segment.saturating_sub(1)
    }

    #[test]
    fn mulaw_known_values() {
        // Values cross-checked against Python's audioop (the reference g711.c), which agrees
        // with these encoders on all 65536 inputs.
        for (code, value) in [
            (0xFF, 0),
            (0x7F, 0),
            (0x00, -32124),
            (0x80, 32124),
            (0xFE, 8),
            (0x7E, -8),
            (0xEF, 132),
            (0xF0, 120),
            (0x8F, 16764),
            (0x0F, -16764),
        ] {
            assert_eq!(mulaw_decode(code), value, "{code:#04x}");
        }
        for (value, code) in [
            (0, 0xFF),
            (32767, 0x80),
            (-32768, 0x00),
            (8, 0xFE),
            (-8, 0x7E),
            (1000, 0xCE),
            (-1000, 0x4E),
        ] {
            assert_eq!(mulaw_encode(value), code, "{value}");
        }
    }

    #[test]
    fn alaw_known_values() {
        // Values cross-checked against Python's audioop, as for μ-law.
        for (code, value) in [
            (0xD5, 8),
            (0x55, -8),
            (0xAA, 32256),
            (0x2A, -32256),
            (0xD4, 24),
            (0xC5, 264),
            (0x80, 5504),
            (0x00, -5504),
        ] {
            assert_eq!(alaw_decode(code), value, "{code:#04x}");
        }
        for (value, code) in [
            (0, 0xD5),
            (-1, 0x55),
            (32767, 0xAA),
            (-32768, 0x2A),
            (1000, 0xFA),
            (-1000, 0x7A),
        ] {
            assert_eq!(alaw_encode(value), code, "{value}");
        }
    }

    #[test]
    fn whole_tables_match_the_reference_implementation() {
        // Position-weighted sums over every code and every sample, computed with Python's
        // audioop (Sun's reference g711.c): any single differing entry changes them.
        let decode = |f: fn(u8) -> i16| -> i64 {
            (0..=255u8)
                .map(|c| (i64::from(c) + 1) * i64::from(f(c)))
                .sum()
        };
        let encode = |f: fn(i16) -> u8| -> i64 {
            (i16::MIN..=i16::MAX)
                .map(|s| (i64::from(s) + 32769) * i64::from(f(s)))
                .sum()
        };
        assert_eq!(decode(mulaw_decode), 98_107_392);
        assert_eq!(decode(alaw_decode), 100_139_008);
        assert_eq!(encode(mulaw_encode), 255_309_330_014);
        assert_eq!(encode(alaw_encode), 297_161_535_488);
    }

    #[test]
    fn mulaw_round_trip_stays_within_the_quantisation_step() {
        for sample in i16::MIN..=i16::MAX {
            let code = mulaw_encode(sample);
            let error = (i32::from(mulaw_decode(code)) - i32::from(sample)).abs();
            // Truncating to 14 bits moves negatives down by up to 3; beyond the top code's
            // interval (32124 ± 512) the error is the clipped excess, not quantisation.
            let truncation = if sample < 0 { 3 } else { 0 };
            let clipped = (i32::from(sample).abs() - 32636).max(0);
            assert!(
                error <= mulaw_half_step(code) + truncation + clipped,
                "{sample} -> {code:#04x}: {error}"
            );
        }
    }

    #[test]
    fn alaw_round_trip_stays_within_half_a_step() {
        for sample in i16::MIN..=i16::MAX {
            let code = alaw_encode(sample);
            let error = (i32::from(alaw_decode(code)) - i32::from(sample)).abs();
            assert!(error <= alaw_half_step(code), "{sample} -> {code:#04x}");
        }
    }

    #[test]
    fn encoders_are_monotonic() {
        let mut previous = (
            mulaw_decode(mulaw_encode(i16::MIN)),
            alaw_decode(alaw_encode(i16::MIN)),
        );
        for sample in i16::MIN..=i16::MAX {
            let now = (
                mulaw_decode(mulaw_encode(sample)),
                alaw_decode(alaw_encode(sample)),
            );
            assert!(now.0 >= previous.0 && now.1 >= previous.1, "{sample}");
            previous = now;
        }
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            // μ-law has a negative zero (0x7F) that re-encodes as the positive one.
            let mulaw = if code == 0x7F { 0xFF } else { code };
            assert_eq!(mulaw_encode(mulaw_decode(code)), mulaw, "μ-law {code:#04x}");
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn pcm_byte_orders() {
        let samples = [0i16, 1, -1, 0x1234, i16::MIN, i16::MAX];
        let mut be = Vec::new();
        AudioFormat::L16Be { rate: 8000 }.encode(&samples, &mut be);
        assert_eq!(&be[..8], &[0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0x12, 0x34]);
        let mut le = Vec::new();
        AudioFormat::Pcm16Le { rate: 8000 }.encode(&samples, &mut le);
        assert_eq!(&le[..8], &[0x00, 0x00, 0x01, 0x00, 0xFF, 0xFF, 0x34, 0x12]);

        for (format, bytes) in [
            (AudioFormat::L16Be { rate: 8000 }, &be),
            (AudioFormat::Pcm16Le { rate: 16000 }, &le),
        ] {
            let mut decoded = Vec::new();
            format.decode(bytes, &mut decoded);
            assert_eq!(decoded, samples);
            // A dangling half sample is not invented into a value.
            let mut odd = Vec::new();
            format.decode(&bytes[..3], &mut odd);
            assert_eq!(odd, [0]);
        }
    }

    #[test]
    fn format_arithmetic_matches_the_audio_table() {
        assert_eq!(AudioFormat::Mulaw8k.bytes_for_ms(20), 160);
        assert_eq!(AudioFormat::Alaw8k.bytes_for_ms(20), 160);
        assert_eq!(AudioFormat::Pcm16Le { rate: 8000 }.bytes_for_ms(20), 320);
        assert_eq!(AudioFormat::L16Be { rate: 16000 }.bytes_for_ms(20), 640);
        assert_eq!(AudioFormat::Pcm16Le { rate: 24000 }.bytes_for_ms(20), 960);
        assert_eq!(AudioFormat::Mulaw8k.silence_byte(), 0xFF);
        assert_eq!(AudioFormat::Alaw8k.silence_byte(), 0xD5);
        let mut silence = Vec::new();
        AudioFormat::Mulaw8k.decode(&[AudioFormat::Mulaw8k.silence_byte()], &mut silence);
        AudioFormat::Alaw8k.decode(&[AudioFormat::Alaw8k.silence_byte()], &mut silence);
        assert!(silence.iter().all(|s| s.abs() <= 8));
    }
}
