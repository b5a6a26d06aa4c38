//! Call setup and call control towards the carriers: the markup answering an incoming-call
//! webhook (TwiML, TeXML, Exotel's JSON) and the "ring the owner first" dial (the REST requests
//! that dial, transfer or end a call are in `carrier`). Every value placed in XML is escaped here.

use crate::carrier::Carrier;
use serde_json::{json, Value};

/// Seconds the owner's phone rings before the AI takes the call (below typical voicemail pickup).
pub const OWNER_RING_SECONDS: u32 = 18;

/// Escapes text for an XML attribute or element.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab/newline are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// `wss://host/media/{carrier}/{call_id}` for a base URL (`https://host` → `wss://`,
/// `http://host` → `ws://`, for local development).
pub fn stream_url(base_url: &str, carrier: &str, call_id: &str) -> String {
    let ws_base = websocket_base(base_url.trim_end_matches('/'));
    let id: String = url::form_urlencoded::byte_serialize(call_id.as_bytes()).collect();
    format!("{ws_base}/media/{carrier}/{id}")
}

/// `url` in its WebSocket spelling: `https://` → `wss://`, `http://` → `ws://`, else unchanged.
pub fn websocket_base(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_owned()
    }
}

/// `url` with `name=value` appended to its query string.
pub fn with_query(url: &str, name: &str, value: &str) -> String {
    let pair = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{pair}")
}

const XML_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

fn parameters(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(name, value)| {
            format!(
                r#"<Parameter name="{}" value="{}"/>"#,
                xml_escape(name),
                xml_escape(value)
            )
        })
        .collect()
}

/// TwiML connecting the call to a bidirectional media stream. Twilio refuses a query string on
/// the stream URL, so per-call values (the stream token) travel as `<Parameter>`s.
pub fn twiml_stream(stream_url: &str, params: &[(&str, &str)]) -> String {
    format!(
        r#"{XML_HEAD}<Response><Connect><Stream url="{}">{}</Stream></Connect></Response>"#,
        xml_escape(stream_url),
        parameters(params)
    )
}

/// TeXML (Telnyx) connecting the call to a bidirectional μ-law media stream. Telnyx keeps the
/// URL's query string, so the token is also in the URL (checked at the upgrade).
pub fn texml_stream(stream_url: &str, params: &[(&str, &str)]) -> String {
    format!(
        r#"{XML_HEAD}<Response><Connect><Stream url="{}" bidirectionalMode="rtp" bidirectionalCodec="PCMU">{}</Stream></Connect></Response>"#,
        xml_escape(stream_url),
        parameters(params)
    )
}

/// Exotel's Voicebot applet fetching its WebSocket URL over HTTPS: `{"url": "wss://…"}`.
pub fn exotel_stream(stream_url: &str) -> Value {
    json!({ "url": stream_url })
}

/// TwiML/TeXML that rings the owner first; the carrier posts the outcome to `action_url`.
pub fn twiml_dial_owner(
    owner_phone: &str,
    timeout_secs: u32,
    action_url: &str,
    caller_id: Option<&str>,
) -> String {
    let caller_id = caller_id
        .map(|c| format!(r#" callerId="{}""#, xml_escape(c)))
        .unwrap_or_default();
    format!(
        r#"{XML_HEAD}<Response><Dial timeout="{timeout_secs}" action="{}" method="POST" answerOnBridge="true"{caller_id}><Number>{}</Number></Dial></Response>"#,
        xml_escape(action_url),
        xml_escape(owner_phone)
    )
}

/// TwiML/TeXML that says `message` (if any) and hangs up.
pub fn twiml_hangup(message: Option<&str>) -> String {
    let say = message
        .filter(|m| !m.trim().is_empty())
        .map(|m| format!("<Say>{}</Say>", xml_escape(m)))
        .unwrap_or_default();
    format!("{XML_HEAD}<Response>{say}<Hangup/></Response>")
}

/// What the `<Dial>` action callback's `DialCallStatus` means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialOutcome {
    /// The owner took the call (and it has ended): hang up.
    OwnerAnswered,
    /// Nobody took it: the AI answers.
    FallBackToAgent,
}

/// Interprets `DialCallStatus` (`completed`, `answered`, `busy`, `no-answer`, `failed`,
/// `canceled`); anything unknown falls back to the agent, so a caller is never dropped.
pub fn dial_outcome(dial_call_status: &str) -> DialOutcome {
    match dial_call_status.trim() {
        "completed" | "answered" => DialOutcome::OwnerAnswered,
        _ => DialOutcome::FallBackToAgent,
    }
}

/// The body answering a carrier's incoming-call webhook.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// TwiML or TeXML (`text/xml`).
    Xml(String),
    /// Exotel's Voicebot applet reads JSON (`application/json`).
    Json(Value),
}

impl Carrier {
    /// The answer connecting the call to its media stream at `/media/{carrier}/{call_id}`,
    /// carrying the call's stream token where the carrier lets it travel.
    pub fn stream_answer(self, base_url: &str, call_id: &str, token: &str) -> Answer {
        let url = stream_url(base_url, self.as_str(), call_id);
        match self {
            // No query on a Twilio stream URL: the token goes in `start`'s parameters.
            Carrier::Twilio => Answer::Xml(twiml_stream(
                &url,
                &[("token", token), ("call_id", call_id)],
            )),
            Carrier::Telnyx => Answer::Xml(texml_stream(
                &with_query(&url, "token", token),
                &[("token", token)],
            )),
            Carrier::Exotel => Answer::Json(exotel_stream(&with_query(&url, "token", token))),
        }
    }

    /// The answer that says `message` (if any) and ends the call; `None` for Exotel, whose
    /// Voicebot applet has no hang-up verb: a refused stream URL makes its flow go on.
    pub fn hangup_answer(self, message: Option<&str>) -> Option<Answer> {
        match self {
            Carrier::Twilio | Carrier::Telnyx => Some(Answer::Xml(twiml_hangup(message))),
            Carrier::Exotel => None,
        }
    }

    /// Whether the carrier's answer can ring the number's owner first (a `<Dial>` with an
    /// action); Exotel's Voicebot applet only streams, so its calls go to the AI at once.
    pub fn can_ring_owner_first(self) -> bool {
        match self {
            Carrier::Twilio | Carrier::Telnyx => true,
            Carrier::Exotel => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_is_escaped_everywhere() {
        assert_eq!(xml_escape(r#"a<b>&"c'd"#), "a&lt;b&gt;&amp;&quot;c&apos;d");
        assert_eq!(xml_escape("x\u{1}y\nz"), "xy\nz");
        let twiml = twiml_stream(
            "wss://h/media/twilio/c\"1",
            &[("token", "<t&>"), ("call_id", "c1")],
        );
        assert!(twiml.contains(r#"url="wss://h/media/twilio/c&quot;1""#));
        assert!(twiml.contains(r#"<Parameter name="token" value="&lt;t&amp;&gt;"/>"#));
        assert!(!twiml.contains("<t&>"));
    }

    #[test]
    fn stream_urls_follow_the_base_scheme() {
        assert_eq!(
            stream_url("https://agent.example.com/", "twilio", "call_1"),
            "wss://agent.example.com/media/twilio/call_1"
        );
        assert_eq!(
            stream_url("http://127.0.0.1:8787", "exotel", "call 2"),
            "ws://127.0.0.1:8787/media/exotel/call+2"
        );
        assert_eq!(
            with_query("wss://h/m", "token", "a b&c"),
            "wss://h/m?token=a+b%26c"
        );
        assert_eq!(with_query("wss://h/m?x=1", "t", "2"), "wss://h/m?x=1&t=2");
    }

    #[test]
    fn twiml_and_texml_shapes() {
        let twiml = twiml_stream("wss://h/media/twilio/c1", &[("token", "tok")]);
        assert_eq!(
            twiml,
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://h/media/twilio/c1"><Parameter name="token" value="tok"/></Stream></Connect></Response>"#
        );
        let texml = texml_stream("wss://h/media/telnyx/c1?token=tok", &[]);
        assert!(texml.contains(r#"url="wss://h/media/telnyx/c1?token=tok""#));
        assert!(texml.contains(r#"bidirectionalMode="rtp""#));
        assert_eq!(exotel_stream("wss://h/m")["url"], Value::from("wss://h/m"));
    }

    #[test]
    fn each_carrier_answers_with_its_own_stream_markup() {
        let base = "https://agent.example.com/";
        assert_eq!(
            Carrier::Twilio.stream_answer(base, "call_1", "stk_1"),
            Answer::Xml(format!(
                "{XML_HEAD}<Response><Connect><Stream url=\"wss://agent.example.com/media/twilio/call_1\">\
                 <Parameter name=\"token\" value=\"stk_1\"/><Parameter name=\"call_id\" value=\"call_1\"/>\
                 </Stream></Connect></Response>"
            ))
        );
        assert_eq!(
            Carrier::Telnyx.stream_answer(base, "call_1", "stk_1"),
            Answer::Xml(format!(
                "{XML_HEAD}<Response><Connect><Stream url=\"wss://agent.example.com/media/telnyx/call_1?token=stk_1\" \
                 bidirectionalMode=\"rtp\" bidirectionalCodec=\"PCMU\"><Parameter name=\"token\" value=\"stk_1\"/>\
                 </Stream></Connect></Response>"
            ))
        );
        assert_eq!(
            Carrier::Exotel.stream_answer("http://127.0.0.1:8787", "call_1", "stk_1"),
            Answer::Json(json!({"url": "ws://127.0.0.1:8787/media/exotel/call_1?token=stk_1"}))
        );
    }

    #[test]
    fn exotel_neither_hangs_up_nor_rings_the_owner() {
        for carrier in [Carrier::Twilio, Carrier::Telnyx] {
            assert_eq!(
                carrier.hangup_answer(Some("Bye")),
                Some(Answer::Xml(twiml_hangup(Some("Bye"))))
            );
            assert!(carrier.can_ring_owner_first());
        }
        assert_eq!(Carrier::Exotel.hangup_answer(Some("Bye")), None);
        assert!(!Carrier::Exotel.can_ring_owner_first());
    }

    #[test]
    fn owner_first_dial_and_outcomes() {
        let twiml = twiml_dial_owner("+15551234567", 18, "https://h/a?x=1&y=2", Some("+1500"));
        assert!(twiml.contains(r#"<Dial timeout="18" action="https://h/a?x=1&amp;y=2" method="POST" answerOnBridge="true" callerId="+1500"><Number>+15551234567</Number></Dial>"#));
        for s in ["no-answer", "busy", "failed", "canceled", "weird", ""] {
            assert_eq!(dial_outcome(s), DialOutcome::FallBackToAgent, "{s}");
        }
        for s in ["completed", "answered"] {
            assert_eq!(dial_outcome(s), DialOutcome::OwnerAnswered, "{s}");
        }
        assert_eq!(
            twiml_hangup(Some("Bye & thanks")),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>Bye &amp; thanks</Say><Hangup/></Response>"#
        );
        assert!(!twiml_hangup(None).contains("<Say>"));
    }
}
