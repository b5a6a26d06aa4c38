//! CPU per 20 ms media frame, natively: the carrier-frame path (Twilio JSON parse + base64 +
//! hand-off; the scanner the session uses beside the serde parses it replaced) and the codec
//! path (24 kHz PCM → resample → μ-law, and μ-law → PCM), each next to a plain copy of the same
//! bytes. Prints one JSON object (bench/run.mjs collects it).
//!
//! Run: `cargo run --release -p phone-agent-core --example media_frame`

use phone_agent_core::media::carrier::{carrier_for, CarrierEvent, Frame};
use phone_agent_core::media::codec::AudioFormat;
use phone_agent_core::media::scan::scan_media;
use phone_agent_core::media::transcode::Transcoder;
use serde::Deserialize;
use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

const FRAMES: usize = 200_000;

/// Nanoseconds per iteration of `f`, best of three runs (less noise from a busy machine).
fn per_frame(mut f: impl FnMut(usize)) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for i in 0..FRAMES {
                f(i);
            }
            start.elapsed().as_nanos() as f64 / FRAMES as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The serde read the hot path used before the scanner: fields borrowed where they hold no
/// escapes, the rest skipped unread (no tree).
#[derive(Deserialize)]
#[allow(dead_code)]
struct SerdePeek<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default, rename = "streamSid")]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    media: SerdeBody<'a>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct SerdeBody<'a> {
    #[serde(borrow, default)]
    track: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    chunk: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

fn main() {
    let mulaw: Vec<u8> = (0..160u32).map(|i| (i * 37 % 256) as u8).collect();
    let frame = format!(
        r#"{{"event":"media","sequenceNumber":"3","media":{{"track":"inbound","chunk":"1","timestamp":"5","payload":"{}"}},"streamSid":"MZ0123456789abcdef0123456789abcdef"}}"#,
        base64(&mulaw)
    );
    let mut twilio = carrier_for("twilio").expect("twilio adapter");
    let start = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ0123456789abcdef0123456789abcdef","callSid":"CA1","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZ0123456789abcdef0123456789abcdef"}"#;
    twilio.parse(Frame::Text(start)).expect("start frame");

    // Parse + decode + hand the audio on (to the STT socket buffer), as the session does: the
    // scanner's `read_media`.
    let mut forwarded = Vec::with_capacity(FRAMES * 160);
    let parse_ns = per_frame(|_| {
        if let Some(Ok(Some(bytes))) = twilio.read_media(Frame::Text(black_box(&frame))) {
            forwarded.clear();
            forwarded.extend_from_slice(&bytes);
        }
        black_box(&forwarded);
    });
    // The same through the full serde parse (a JSON tree, then the typed frame, then events):
    // what every frame the scanner leaves goes through.
    let full_ns = per_frame(|_| {
        for event in twilio
            .parse_full(Frame::Text(black_box(&frame)))
            .unwrap_or_default()
        {
            if let CarrierEvent::Audio(bytes) = event {
                forwarded.clear();
                forwarded.extend_from_slice(&bytes);
            }
        }
        black_box(&forwarded);
    });
    // The frame's fields alone, no base64: the scanner vs the serde borrow it replaced.
    let scan_ns = per_frame(|_| {
        black_box(scan_media(black_box(&frame), "streamSid"));
    });
    let serde_peek_ns = per_frame(|_| {
        let peek = serde_json::from_str::<SerdePeek<'_>>(black_box(&frame)).ok();
        black_box(peek.map(|p| p.media.payload.len()));
    });
    let scanned = scan_media(&frame, "streamSid").expect("the scanner reads the frame");
    let peek: SerdePeek<'_> = serde_json::from_str(&frame).expect("serde reads the frame");
    assert_eq!(scanned.payload, peek.media.payload);

    // Outbound: 20 ms of OpenAI TTS audio (24 kHz PCM16 LE = 960 bytes) → 160 μ-law bytes.
    let pcm24: Vec<u8> = (0..480i32)
        .flat_map(|i| (((i * 997) % 20000 - 10000) as i16).to_le_bytes())
        .collect();
    let mut down = Transcoder::new(AudioFormat::Pcm16Le { rate: 24_000 }, AudioFormat::Mulaw8k)
        .expect("24k→μ-law");
    let mut out = Vec::with_capacity(256);
    let resample_ns = per_frame(|_| {
        out.clear();
        down.push(black_box(&pcm24), &mut out);
        black_box(&out);
    });

    // Inbound for a PCM consumer: 160 μ-law bytes → 8 kHz PCM16 LE.
    let mut up = Transcoder::new(AudioFormat::Mulaw8k, AudioFormat::Pcm16Le { rate: 8_000 })
        .expect("μ-law→PCM");
    let decode_ns = per_frame(|_| {
        out.clear();
        up.push(black_box(&mulaw), &mut out);
        black_box(&out);
    });

    let mut copy = vec![0u8; 160];
    let memcpy_ns = per_frame(|i| {
        copy.copy_from_slice(black_box(&mulaw));
        copy[0] = i as u8;
        black_box(&copy);
    });
    let memcpy_960_ns = per_frame(|i| {
        let mut buf = [0u8; 960];
        buf.copy_from_slice(black_box(&pcm24));
        buf[0] = i as u8;
        black_box(&buf);
    });

    println!(
        "{}",
        serde_json::json!({
            "frames": FRAMES,
            "twilio_parse_base64_forward_ns": parse_ns,
            "twilio_full_serde_parse_base64_forward_ns": full_ns,
            "twilio_scan_fields_ns": scan_ns,
            "twilio_serde_borrow_fields_ns": serde_peek_ns,
            "pcm24k_resample_to_mulaw_ns": resample_ns,
            "mulaw_to_pcm8k_ns": decode_ns,
            "memcpy_160_ns": memcpy_ns,
            "memcpy_960_ns": memcpy_960_ns,
            "ratio_parse_vs_memcpy": parse_ns / memcpy_ns,
            "ratio_resample_vs_memcpy": resample_ns / memcpy_960_ns,
            "frame_budget_ns": 20_000_000,
        })
    );
}
