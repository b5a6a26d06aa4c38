//! Streaming sample-rate conversion by a rational factor (e.g. 24 kHz TTS → 8 kHz telephony).
//!
//! A polyphase FIR: conceptually upsample by `up` (zero stuffing), low-pass with a
//! Kaiser-windowed sinc, keep every `down`-th sample. The filter history is carried between
//! calls, so splitting the input into chunks of any size (or pausing between them) yields
//! exactly the samples one call over the whole input would.

use thiserror::Error;

/// Largest up- or down-sampling factor after reducing the rate ratio; bounds the filter size.
const MAX_FACTOR: u32 = 48;
/// Stop-band attenuation the filter is designed for, in dB.
const STOPBAND_DB: f64 = 60.0;
/// Pass band as a fraction of the lower rate's Nyquist frequency (3.4 kHz at 8 kHz).
const PASSBAND: f64 = 0.85;

/// Why a resampler cannot be built for a pair of rates.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResampleError {
    /// A sample rate of zero.
    #[error("sample rate must be positive")]
    ZeroRate,
    /// The reduced ratio `to/from` needs a factor above [`MAX_FACTOR`] (e.g. 44.1 kHz ↔ 8 kHz).
    #[error("unsupported rate ratio {from} Hz -> {to} Hz")]
    UnsupportedRatio { from: u32, to: u32 },
}

/// A streaming resampler for mono 16-bit audio.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: u64,
    down: u64,
    /// Filter taps per polyphase branch.
    taps: usize,
    /// Group delay of the filter in upsampled samples, skipped so output aligns with input.
    delay: u64,
    /// Branch-major coefficients, each branch reversed so it lines up with chronological input.
    coeffs: Vec<f32>,
    /// Input samples from virtual index `base` on; virtual = real + taps - 1, because the
    /// stream starts with `taps - 1` zeros of history.
    history: Vec<f32>,
    base: u64,
    received: u64,
    produced: u64,
}

impl Resampler {
    /// Builds a resampler from `from_hz` to `to_hz` (equal rates pass samples through unchanged).
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, ResampleError> {
        if from_hz == 0 || to_hz == 0 {
            return Err(ResampleError::ZeroRate);
        }
        let g = gcd(from_hz, to_hz);
        let (up, down) = (to_hz / g, from_hz / g);
        if up > MAX_FACTOR || down > MAX_FACTOR {
            return Err(ResampleError::UnsupportedRatio {
                from: from_hz,
                to: to_hz,
            });
        }
        let prototype = if up == down {
            vec![1.0]
        } else {
            design_lowpass(from_hz, to_hz, up)
        };
        let up_len = up as usize;
        let taps = prototype.len() / up_len;
        // Branch p holds h[p], h[p + up], h[p + 2·up], …, stored newest-input-last.
        let mut coeffs = Vec::with_capacity(prototype.len());
        for phase in 0..up_len {
            for j in (0..taps).rev() {
                coeffs.push(prototype.get(phase + j * up_len).copied().unwrap_or(0.0) as f32);
            }
        }
        Ok(Resampler {
            up: u64::from(up),
            down: u64::from(down),
            taps,
            delay: (prototype.len() as u64 - 1) / 2,
            coeffs,
            history: vec![0.0; taps - 1],
            base: 0,
            received: 0,
            produced: 0,
        })
    }

    /// Resamples the next chunk of input, appending every output sample now computable to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.history.extend(input.iter().map(|&s| f32::from(s)));
        self.received += input.len() as u64;
        self.emit(self.received, u64::MAX, out);
    }

    /// Ends the stream: appends the samples still inside the filter (so the whole stream
    /// yields `ceil(n · to / from)` samples) and resets for a new stream.
    pub fn flush(&mut self, out: &mut Vec<i16>) {
        let total = (self.received * self.up).div_ceil(self.down);
        if total > self.produced {
            let needed = ((total - 1) * self.down + self.delay) / self.up + 1;
            let padding = needed.saturating_sub(self.received);
            self.history
                .extend(std::iter::repeat_n(0.0, padding as usize));
            self.emit(needed.max(self.received), total, out);
        }
        self.history.clear();
        self.history.resize(self.taps - 1, 0.0);
        self.base = 0;
        self.received = 0;
        self.produced = 0;
    }

    /// Computes outputs while their newest input (real index) is below `available`, up to `limit`.
    fn emit(&mut self, available: u64, limit: u64, out: &mut Vec<i16>) {
        while self.produced < limit {
            let t = self.produced * self.down + self.delay;
            let newest = t / self.up;
            if newest >= available {
                break;
            }
            let phase = (t % self.up) as usize;
            // The window's first virtual index equals the real index of its newest sample.
            let Some(start) = newest.checked_sub(self.base).map(|s| s as usize) else {
                break;
            };
            let (Some(window), Some(branch)) = (
                self.history.get(start..start + self.taps),
                self.coeffs.get(phase * self.taps..(phase + 1) * self.taps),
            ) else {
                break;
            };
            let y: f32 = window.iter().zip(branch).map(|(x, h)| x * h).sum();
            // `as` saturates at the i16 range, which is the clipping we want for overshoot.
            out.push(y.round() as i16);
            self.produced += 1;
        }
        let next_start = (self.produced * self.down + self.delay) / self.up;
        let drop = (next_start.saturating_sub(self.base) as usize).min(self.history.len());
        self.history.drain(..drop);
        self.base += drop as u64;
    }
}

/// Kaiser-windowed sinc low-pass at the lower rate's Nyquist, `up` times the input rate,
/// with a length that is a multiple of `up` and a DC gain of `up` (zero stuffing loses that).
fn design_lowpass(from_hz: u32, to_hz: u32, up: u32) -> Vec<f64> {
    let fs = f64::from(from_hz) * f64::from(up);
    let nyquist = f64::from(from_hz.min(to_hz)) / 2.0;
    let transition = nyquist * (1.0 - PASSBAND);
    let cutoff = (nyquist - transition / 2.0) / fs;
    let width = 2.0 * std::f64::consts::PI * transition / fs;
    let estimate = ((STOPBAND_DB - 8.0) / (2.285 * width)).ceil() as usize + 1;
    let up = up as usize;
    let len = estimate.div_ceil(up) * up;
    let beta = 0.1102 * (STOPBAND_DB - 8.7);
    let centre = (len - 1) as f64 / 2.0;
    let mut h: Vec<f64> = (0..len)
        .map(|k| {
            let x = k as f64 - centre;
            let ratio = if centre > 0.0 { x / centre } else { 0.0 };
            let window = bessel_i0(beta * (1.0 - ratio * ratio).max(0.0).sqrt()) / bessel_i0(beta);
            2.0 * cutoff * sinc(2.0 * cutoff * x) * window
        })
        .collect();
    let gain = up as f64 / h.iter().sum::<f64>();
    h.iter_mut().for_each(|c| *c *= gain);
    h
}

/// sin(πx)/(πx), 1 at 0.
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let half = x / 2.0;
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-12 {
        term *= (half / k) * (half / k);
        sum += term;
        k += 1.0;
    }
    sum
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::f64::consts::PI;

    fn sine(freq: f64, rate: u32, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                (amplitude * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()).round() as i16
            })
            .collect()
    }

    fn resample_all(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        r.process(input, &mut out);
        r.flush(&mut out);
        out
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Least-squares fit of a sinusoid at `freq`: (amplitude, RMS of what the fit leaves over).
    fn fit(x: &[i16], freq: f64, rate: u32) -> (f64, f64) {
        let w = 2.0 * PI * freq / f64::from(rate);
        let n = x.len() as f64;
        let (mut a, mut b) = (0.0, 0.0);
        for (i, &s) in x.iter().enumerate() {
            a += f64::from(s) * (w * i as f64).sin();
            b += f64::from(s) * (w * i as f64).cos();
        }
        let (a, b) = (2.0 * a / n, 2.0 * b / n);
        let residual = x
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                (f64::from(s) - a * (w * i as f64).sin() - b * (w * i as f64).cos()).powi(2)
            })
            .sum::<f64>();
        ((a * a + b * b).sqrt(), (residual / n).sqrt())
    }

    fn db(ratio: f64) -> f64 {
        20.0 * ratio.log10()
    }

    #[test]
    fn a_1khz_tone_keeps_amplitude_and_frequency() {
        for (from, to) in [
            (24000, 8000),
            (8000, 16000),
            (16000, 8000),
            (48000, 8000),
            (8000, 24000),
        ] {
            let input = sine(1000.0, from, 16000.0, from as usize / 2);
            let out = resample_all(from, to, &input);
            // Steady state only: skip the filter's ramp-up and ramp-down.
            let edge = to as usize / 50;
            let middle = &out[edge..out.len() - edge];
            let (amplitude, residual) = fit(middle, 1000.0, to);
            assert!(
                db(amplitude / 16000.0).abs() < 1.0,
                "{from}->{to}: {amplitude}"
            );
            assert!(
                db(residual / amplitude) < -60.0,
                "{from}->{to}: residual {residual}"
            );
        }
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        // Telephony needs ≥ 30 dB; the filter is designed for 60 dB, and a degraded one must fail.
        for (from, to, freq) in [
            (24000, 8000, 6000.0),
            (24000, 8000, 4400.0),
            (16000, 8000, 6000.0),
            (48000, 8000, 10000.0),
        ] {
            let input = sine(freq, from, 16000.0, from as usize / 2);
            let out = resample_all(from, to, &input);
            let edge = to as usize / 50;
            let attenuation = db(rms(&out[edge..out.len() - edge]) / rms(&input));
            assert!(
                attenuation <= -55.0,
                "{from}->{to} {freq} Hz: {attenuation} dB"
            );
        }
    }

    #[test]
    fn upsampling_leaves_no_images() {
        // 8 → 16 kHz: zero stuffing mirrors 1 kHz to 7 kHz; the filter must remove it.
        let input = sine(1000.0, 8000, 16000.0, 4000);
        let out = resample_all(8000, 16000, &input);
        let (_, residual) = fit(&out[320..out.len() - 320], 1000.0, 16000);
        assert!(db(residual / 16000.0) < -60.0, "{residual}");
    }

    #[test]
    fn output_length_follows_the_ratio() {
        for (from, to, n, expected) in [
            (24000, 8000, 2400, 800),
            (24000, 8000, 2401, 801),
            (8000, 16000, 160, 320),
            (16000, 8000, 3, 2),
            (8000, 8000, 7, 7),
            (24000, 8000, 0, 0),
        ] {
            assert_eq!(
                resample_all(from, to, &vec![100; n]).len(),
                expected,
                "{from}->{to} {n}"
            );
        }
    }

    #[test]
    fn equal_rates_pass_through_and_dc_is_kept() {
        let input: Vec<i16> = (0..500).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
        assert_eq!(resample_all(8000, 8000, &input), input);
        let out = resample_all(24000, 8000, &[1000; 2400]);
        assert!(
            out[100..700].iter().all(|&s| (s - 1000).abs() <= 1),
            "{out:?}"
        );
    }

    #[test]
    fn flush_resets_for_a_new_stream() {
        let input = sine(700.0, 24000, 9000.0, 1000);
        let mut r = Resampler::new(24000, 8000).unwrap();
        let mut first = Vec::new();
        r.process(&input, &mut first);
        r.flush(&mut first);
        let mut second = Vec::new();
        r.process(&input, &mut second);
        r.flush(&mut second);
        assert_eq!(first, second);
        let mut empty = Vec::new();
        r.flush(&mut empty);
        r.process(&[], &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn rejects_unusable_rates() {
        assert_eq!(
            Resampler::new(0, 8000).unwrap_err(),
            ResampleError::ZeroRate
        );
        assert_eq!(
            Resampler::new(8000, 0).unwrap_err(),
            ResampleError::ZeroRate
        );
        assert_eq!(
            Resampler::new(44100, 8000).unwrap_err(),
            ResampleError::UnsupportedRatio {
                from: 44100,
                to: 8000
            }
        );
    }

    #[test]
    fn full_scale_input_saturates_instead_of_wrapping() {
        let square: Vec<i16> = (0..2400)
            .map(|i| {
                if (i / 60) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        let out = resample_all(24000, 8000, &square);
        // Gibbs overshoot would wrap to the opposite sign if not saturated.
        assert!(out[45..55].iter().all(|&s| s > 30000), "{:?}", &out[45..55]);
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_output(
            input in proptest::collection::vec(any::<i16>(), 0..1500),
            cuts in proptest::collection::vec(0usize..1500, 0..12),
            rates in prop::sample::select(vec![(24000u32, 8000u32), (8000, 16000), (16000, 8000), (8000, 24000), (24000, 16000)]),
        ) {
            let whole = resample_all(rates.0, rates.1, &input);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut r = Resampler::new(rates.0, rates.1).unwrap();
            let mut pieces = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([input.len()]) {
                r.process(&input[from..cut], &mut pieces);
                from = cut;
            }
            r.flush(&mut pieces);
            prop_assert_eq!(whole, pieces);
        }
    }
}
