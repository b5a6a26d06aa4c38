//! Deepgram live-transcription messages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phone_agent_core::providers::deepgram::parse_message;

fuzz_target!(|data: &[u8]| {
    let _ = parse_message(&String::from_utf8_lossy(data));
});
