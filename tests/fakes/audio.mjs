// Deterministic audio for the fakes: G.711 μ-law codec, sine tones, and the "N ms of audio per
// word" rule the fake TTS providers use so tests can predict lengths.

const BIAS = 0x84;
const CLIP = 32635;

/** Encodes one signed 16-bit sample as a G.711 μ-law byte. */
export function linearToMulaw(sample) {
  let s = Math.max(-32768, Math.min(32767, Math.round(sample)));
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; exponent -= 1, mask >>= 1);
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** Decodes one G.711 μ-law byte to a signed 16-bit sample. */
export function mulawToLinear(byte) {
  const u = ~byte & 0xff;
  const exponent = (u >> 4) & 0x07;
  const magnitude = ((((u & 0x0f) << 3) + BIAS) << exponent) - BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}

/** `bytes` bytes of μ-law 8 kHz sine tone (default 440 Hz): audible, never the 0xFF silence byte pattern. */
export function mulawTone(bytes, { freq = 440, amplitude = 8000, rate = 8000, offset = 0 } = {}) {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) {
    out[i] = linearToMulaw(amplitude * Math.sin((2 * Math.PI * freq * (i + offset)) / rate));
  }
  return out;
}

/** `samples` samples of 16-bit little-endian mono sine tone at `rate` Hz (default 24 kHz). */
export function pcm16Tone(samples, { freq = 440, amplitude = 8000, rate = 24000, offset = 0, bigEndian = false } = {}) {
  const out = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) {
    const v = Math.round(amplitude * Math.sin((2 * Math.PI * freq * (i + offset)) / rate));
    if (bigEndian) out.writeInt16BE(v, i * 2);
    else out.writeInt16LE(v, i * 2);
  }
  return out;
}

/** Mean absolute amplitude of μ-law bytes (0 for 0xFF/0x7F silence). */
export function mulawEnergy(bytes) {
  if (bytes.length === 0) return 0;
  let sum = 0;
  for (const b of bytes) sum += Math.abs(mulawToLinear(b));
  return sum / bytes.length;
}

/** Mean absolute amplitude of 16-bit little-endian PCM. */
export function pcm16Energy(bytes) {
  const n = Math.floor(bytes.length / 2);
  if (n === 0) return 0;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.abs(bytes.readInt16LE(i * 2));
  return sum / n;
}

/** Number of whitespace-separated words in `text` (the fake TTS length unit). */
export function countWords(text) {
  return String(text ?? '').trim().split(/\s+/).filter(Boolean).length;
}

/** Milliseconds of audio every fake TTS produces per word of input text. */
export const MS_PER_WORD = 100;
