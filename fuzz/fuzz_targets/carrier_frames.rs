//! Carrier media frames (Twilio, Telnyx, Exotel), text and binary, as one stream per input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phone_agent_core::media::carrier::{carrier_for, Frame};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let name = ["twilio", "telnyx", "exotel"][usize::from(selector) % 3];
    let Some(mut carrier) = carrier_for(name) else { return };
    for chunk in rest.split(|b| *b == b'\n') {
        let _ = match std::str::from_utf8(chunk) {
            Ok(text) => carrier.parse(Frame::Text(text)),
            Err(_) => carrier.parse(Frame::Binary(chunk)),
        };
        let _ = carrier.audio_frame(chunk);
        let _ = carrier.mark_frame("m");
        let _ = carrier.clear_frame();
    }
});
