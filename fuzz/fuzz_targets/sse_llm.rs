//! The SSE parser at arbitrary chunk boundaries, feeding the chat-completions stream reader.
#![no_main]
use libfuzzer_sys::fuzz_target;
use phone_agent_core::providers::openai::ChatStream;
use phone_agent_core::providers::sse::SseParser;

fuzz_target!(|data: &[u8]| {
    let Some((&size, rest)) = data.split_first() else { return };
    let size = usize::from(size).max(1);
    let mut parser = SseParser::new();
    let mut stream = ChatStream::new();
    let mut events = Vec::new();
    for chunk in rest.chunks(size) {
        events.extend(parser.push(chunk));
    }
    events.extend(parser.finish());
    for event in &events {
        let _ = stream.push_data(&event.data);
    }
    let _ = stream.finish();
    // Chunking must not change what is parsed.
    let mut whole = SseParser::new();
    let mut again = whole.push(rest);
    again.extend(whole.finish());
    assert_eq!(events, again);
});
