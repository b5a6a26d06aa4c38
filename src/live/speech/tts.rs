//! The TTS queue: each spoken segment is synthesized by the agent's voice provider, one after
//! another in `Speak` order, transcoded when the provider's format is not the carrier's, framed
//! and sent as carrier frames.

use super::{holds, post_stream, read_while};
use crate::live::session::{LiveMessage, Session, TtsJob};
use crate::platform::http::log_line;
use phone_agent_core::media::carrier::OutFrame;
use phone_agent_core::media::codec::AudioFormat;
use phone_agent_core::media::framing::Framer;
use phone_agent_core::media::transcode::Transcoder;
use phone_agent_core::providers::tts::{tts_request, TtsOutput};
use phone_agent_core::session::Input;
use serde_json::json;
use std::rc::Rc;
use worker::AbortController;

/// Queues a segment for the HTTP task, which sends segments one after another in this order.
pub(super) fn queue_http(session: &Rc<Session>, turn: u32, segment: usize, text: String) {
    let start = session.with_live(|live| {
        live.tts.next_id += 1;
        let id = live.tts.next_id;
        live.tts.queue.push_back(TtsJob {
            id,
            turn,
            segment,
            text,
        });
        !std::mem::replace(&mut live.tts.running, true)
    });
    if start == Some(true) {
        let session = session.clone();
        wasm_bindgen_futures::spawn_local(async move {
            run_tts(&session).await;
        });
    }
}

/// Drops queued HTTP segments of `turn` (all with `None`) and aborts the one being synthesized.
pub(super) fn cancel_http(session: &Rc<Session>, turn: Option<u32>) {
    let aborted = session
        .with_live(|live| {
            live.tts
                .queue
                .retain(|job| turn.is_some_and(|t| t != job.turn));
            match &live.tts.current {
                Some((_, t, _)) if turn.is_none_or(|turn| turn == *t) => live.tts.current.take(),
                _ => None,
            }
        })
        .flatten();
    if let Some((_, _, controller)) = aborted {
        controller.abort();
    }
}

fn tts_current(session: &Session, id: u64) -> bool {
    session
        .with_live(|live| holds(&live.tts.current, id))
        .unwrap_or(false)
}

async fn run_tts(session: &Rc<Session>) {
    loop {
        let next = session.with_live(|live| {
            let job = live.tts.queue.pop_front();
            match job {
                Some(job) => {
                    let controller = AbortController::default();
                    let signal = controller.signal();
                    live.tts.current = Some((job.id, job.turn, controller));
                    Some((job, signal))
                }
                None => {
                    live.tts.running = false;
                    None
                }
            }
        });
        let Some(Some((job, signal))) = next else {
            return;
        };
        let (turn, segment, id) = (job.turn, job.segment, job.id);
        match speak(session, &job, &signal).await {
            Ok(()) if tts_current(session, id) => {
                session.with_live(|live| live.tts.current = None);
                session.broadcast(&LiveMessage::Transcript {
                    speaker: "agent",
                    text: &job.text,
                    complete: true,
                    turn: Some(turn),
                });
                session.feed(Input::TtsDone { turn, segment });
            }
            Ok(()) => {}
            Err(e) => {
                if tts_current(session, id) {
                    session.with_live(|live| live.tts.current = None);
                    log_line(json!({"level": "warn", "msg": "tts failed", "turn": turn,
                        "segment": segment, "error": e}));
                    session.feed(Input::TtsFailed { turn, segment });
                }
            }
        }
    }
}

/// Synthesizes one segment and sends its audio as carrier frames, reporting bytes sent.
async fn speak(
    session: &Rc<Session>,
    job: &TtsJob,
    signal: &worker::AbortSignal,
) -> Result<(), String> {
    let config = session.config.as_ref().ok_or("configuration is invalid")?;
    let setup = session
        .with_live(|live| (live.setup.tts_provider(), live.setup.voice_id.clone()))
        .ok_or("no live call")?;
    let request = tts_request(&config.providers, setup.0, setup.1.as_deref(), &job.text)
        .map_err(|e| e.to_string())?;
    let (carrier_format, frame_bytes) = session
        .with_live(|live| (live.carrier.format(), live.carrier.frame_bytes()))
        .ok_or("no live call")?;
    let source = match request.output {
        TtsOutput::Mulaw8k => AudioFormat::Mulaw8k,
        TtsOutput::Pcm16Le24k => AudioFormat::Pcm16Le { rate: 24000 },
    };
    // Same format (μ-law from ElevenLabs/Aura to Twilio/Telnyx PCMU): bytes pass untouched.
    let mut transcoder = if source == carrier_format {
        None
    } else {
        Some(Transcoder::new(source, carrier_format).map_err(|e| e.to_string())?)
    };
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let reply = post_stream(&request.url, &headers, request.body.as_bytes(), signal).await?;
    let mut framer = Framer::new(frame_bytes, carrier_format.silence_byte());
    let mut converted = Vec::new();
    let complete = read_while(
        reply,
        || tts_current(session, job.id),
        |chunk| {
            let audio: &[u8] = match transcoder.as_mut() {
                Some(t) => {
                    converted.clear();
                    t.push(chunk, &mut converted);
                    &converted
                }
                None => chunk,
            };
            send_audio(session, job.turn, job.segment, framer.push(audio));
            Ok(())
        },
    )
    .await?;
    if !complete {
        return Ok(());
    }
    let mut frames = Vec::new();
    if let Some(t) = transcoder.as_mut() {
        converted.clear();
        t.flush(&mut converted);
        frames.extend(framer.push(&converted));
    }
    frames.extend(framer.flush());
    send_audio(session, job.turn, job.segment, frames);
    Ok(())
}

/// Sends frames to the carrier and tells the conversation how much went out.
pub(super) fn send_audio(session: &Rc<Session>, turn: u32, segment: usize, frames: Vec<Vec<u8>>) {
    if frames.is_empty() {
        return;
    }
    let out: Vec<OutFrame> = session
        .with_live(|live| {
            frames
                .iter()
                .filter_map(|f| live.carrier.audio_frame(f))
                .collect()
        })
        .unwrap_or_default();
    let mut bytes = 0;
    for (frame, raw) in out.into_iter().zip(frames.iter()) {
        if session.send_carrier(Some(frame)) {
            bytes += raw.len();
            session.count("audio_frames_out");
        }
    }
    if bytes > 0 {
        session.feed(Input::TtsAudio {
            turn,
            segment,
            bytes,
        });
    }
}
