//! Which features this deployment can run, decided from its configuration alone.
//!
//! A missing secret used to surface late: a call accepted at 201 and failed at dial time, an
//! invite that never left the outbox. Here each feature names the variables it lacks, so
//! `/health` and the dashboard can say "live calls: set DEEPGRAM_API_KEY", and scheduling can
//! refuse a call that could only fail.

use crate::carrier::Carrier;
use crate::config::Config;
use crate::scheduling::request::DialProvider;
use crate::webhooks::Provider;
use thiserror::Error;

/// One feature's readiness: usable when `missing` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureStatus {
    /// Stable name, e.g. `live_calls`, `scheduled_calls.twilio`, `webhooks.resend`.
    pub name: String,
    /// Variables to set before the feature works (names only, never values).
    pub missing: Vec<&'static str>,
}

impl FeatureStatus {
    /// Whether the feature can be used as configured.
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
    }
}

/// A feature a request needs is not configured on this deployment.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{feature} is not available on this server: set {}", missing.join(", "))]
pub struct FeatureUnavailable {
    /// The feature's stable name (as in [`FeatureStatus::name`]).
    pub feature: String,
    /// The variables it lacks.
    pub missing: Vec<&'static str>,
}

/// Why scheduling a call is refused before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScheduleRefusal {
    /// The server cannot place any call of the default kind: an operator must configure it.
    #[error(transparent)]
    Server(FeatureUnavailable),
    /// The request asked for something (`field`) this server cannot do; the client may change
    /// the request (another provider, no e-mail) or wait for the operator.
    #[error("{field}: {unavailable}")]
    Requested {
        /// The request field naming the unusable feature.
        field: &'static str,
        /// What is missing.
        unavailable: FeatureUnavailable,
    },
}

/// Every feature with its missing variables, in a stable order.
pub fn features(config: &Config) -> Vec<FeatureStatus> {
    let mut all = vec![
        live_calls(config),
        status("stt.deepgram", stt(config)),
        status("llm.openai", llm(config)),
    ];
    for (name, missing) in tts_providers(config) {
        all.push(status(&format!("tts.{name}"), missing));
    }
    for provider in DialProvider::ALL {
        all.push(scheduled_calls(config, provider));
    }
    all.push(emails(config));
    for carrier in [Carrier::Twilio, Carrier::Telnyx, Carrier::Exotel] {
        let secret = webhook_missing(config, carrier.webhook_provider());
        all.push(status(&format!("inbound_calls.{carrier}"), secret));
    }
    for carrier in [Carrier::Twilio, Carrier::Telnyx] {
        all.push(status(
            &format!("carrier_control.{carrier}"),
            carrier_control(config, carrier),
        ));
    }
    for provider in Provider::ALL {
        all.push(status(
            &format!("webhooks.{}", provider.as_str()),
            webhook_missing(config, provider),
        ));
    }
    all
}

/// Whether a call with `provider` (named in the request when `provider_named`), e-mailing its
/// contact when `wants_email`, can be carried out; else what to refuse it with.
pub fn check_schedule(
    config: &Config,
    provider: DialProvider,
    provider_named: bool,
    wants_email: bool,
) -> Result<(), ScheduleRefusal> {
    let dial = scheduled_calls(config, provider);
    if !dial.ok() {
        let unavailable = unavailable(dial);
        return Err(if provider_named {
            ScheduleRefusal::Requested {
                field: "provider",
                unavailable,
            }
        } else {
            ScheduleRefusal::Server(unavailable)
        });
    }
    let email = emails(config);
    if wants_email && !email.ok() {
        return Err(ScheduleRefusal::Requested {
            field: "contact.email",
            unavailable: unavailable(email),
        });
    }
    Ok(())
}

/// Whether scheduled calls through `provider` can be placed.
pub fn scheduled_calls(config: &Config, provider: DialProvider) -> FeatureStatus {
    let mut missing = match provider {
        DialProvider::Twilio => carrier_control(config, Carrier::Twilio),
        DialProvider::Telnyx => carrier_control(config, Carrier::Telnyx),
        DialProvider::Bland => lacking(&[("BLAND_API_KEY", &config.providers.bland_api_key)]),
    };
    // Every callback URL we hand out is signed; without a key none can be.
    if config.callback_signing_key.is_none() && config.admin_api_key.is_none() {
        missing.push("CALLBACK_SIGNING_KEY");
    }
    status(&format!("scheduled_calls.{}", provider.as_str()), missing)
}

/// Confirmation e-mails and calendar invites.
pub fn emails(config: &Config) -> FeatureStatus {
    let p = &config.providers;
    status(
        "emails",
        lacking(&[
            ("RESEND_API_KEY", &p.resend_api_key),
            ("EMAIL_FROM", &p.email_from),
        ]),
    )
}

/// An AI conversation on a carrier's media stream: speech-to-text and the LLM are needed
/// whatever voice an agent picks (each voice provider is its own `tts.*` feature).
fn live_calls(config: &Config) -> FeatureStatus {
    let mut missing = stt(config);
    missing.extend(llm(config));
    if tts_providers(config).iter().all(|(_, m)| !m.is_empty()) {
        missing.push("ELEVENLABS_API_KEY");
    }
    status("live_calls", missing)
}

fn stt(config: &Config) -> Vec<&'static str> {
    lacking(&[("DEEPGRAM_API_KEY", &config.providers.deepgram_api_key)])
}

fn llm(config: &Config) -> Vec<&'static str> {
    lacking(&[("OPENAI_API_KEY", &config.providers.openai_api_key)])
}

/// Each text-to-speech provider with the key it lacks.
fn tts_providers(config: &Config) -> [(&'static str, Vec<&'static str>); 3] {
    let p = &config.providers;
    [
        (
            "elevenlabs",
            lacking(&[("ELEVENLABS_API_KEY", &p.elevenlabs_api_key)]),
        ),
        (
            "deepgram",
            lacking(&[("DEEPGRAM_API_KEY", &p.deepgram_api_key)]),
        ),
        ("openai", lacking(&[("OPENAI_API_KEY", &p.openai_api_key)])),
    ]
}

/// REST credentials to dial, transfer and hang up through `carrier`.
fn carrier_control(config: &Config, carrier: Carrier) -> Vec<&'static str> {
    match carrier {
        Carrier::Twilio => {
            let mut missing =
                lacking(&[("TWILIO_ACCOUNT_SID", &config.providers.twilio_account_sid)]);
            if config.secrets.twilio.is_empty() {
                missing.push("TWILIO_AUTH_TOKEN");
            }
            missing
        }
        Carrier::Telnyx => lacking(&[("TELNYX_API_KEY", &config.providers.telnyx_api_key)]),
        Carrier::Exotel => Vec::new(),
    }
}

/// The verification secret of `provider`'s webhooks, if it is missing.
fn webhook_missing(config: &Config, provider: Provider) -> Vec<&'static str> {
    let s = &config.secrets;
    let (name, values) = match provider {
        Provider::Resend => ("RESEND_WEBHOOK_SECRET", &s.resend),
        Provider::Twilio => ("TWILIO_AUTH_TOKEN", &s.twilio),
        Provider::Telnyx => ("TELNYX_PUBLIC_KEY", &s.telnyx),
        Provider::Bland => ("BLAND_WEBHOOK_SECRET", &s.bland),
        Provider::Retell => ("RETELL_API_KEY", &s.retell),
        Provider::Vapi => ("VAPI_WEBHOOK_SECRET", &s.vapi),
        Provider::Exotel => ("EXOTEL_WEBHOOK_TOKEN", &s.exotel),
        Provider::Standard => ("STANDARD_WEBHOOK_SECRET", &s.standard),
    };
    if values.is_empty() {
        vec![name]
    } else {
        Vec::new()
    }
}

fn lacking(settings: &[(&'static str, &Option<String>)]) -> Vec<&'static str> {
    settings
        .iter()
        .filter(|(_, value)| value.is_none())
        .map(|(name, _)| *name)
        .collect()
}

fn status(name: &str, missing: Vec<&'static str>) -> FeatureStatus {
    FeatureStatus {
        name: name.to_owned(),
        missing,
    }
}

fn unavailable(status: FeatureStatus) -> FeatureUnavailable {
    FeatureUnavailable {
        feature: status.name,
        missing: status.missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        crate::config::from_pairs(vars).unwrap()
    }

    fn find(config: &Config, name: &str) -> FeatureStatus {
        features(config)
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no feature {name}"))
    }

    #[test]
    fn nothing_set_names_every_variable() {
        let none = config(&[]);
        assert_eq!(
            find(&none, "live_calls").missing,
            ["DEEPGRAM_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY"]
        );
        assert_eq!(
            find(&none, "scheduled_calls.twilio").missing,
            [
                "TWILIO_ACCOUNT_SID",
                "TWILIO_AUTH_TOKEN",
                "CALLBACK_SIGNING_KEY"
            ]
        );
        assert_eq!(
            find(&none, "emails").missing,
            ["RESEND_API_KEY", "EMAIL_FROM"]
        );
        assert_eq!(
            find(&none, "webhooks.resend").missing,
            ["RESEND_WEBHOOK_SECRET"]
        );
        assert_eq!(
            find(&none, "inbound_calls.telnyx").missing,
            ["TELNYX_PUBLIC_KEY"]
        );
        assert!(features(&none).iter().all(|f| !f.ok()));
    }

    #[test]
    fn live_calls_need_stt_llm_and_any_voice() {
        let c = config(&[("DEEPGRAM_API_KEY", "dg"), ("OPENAI_API_KEY", "sk")]);
        // Deepgram Aura and OpenAI speech come with those keys.
        assert!(find(&c, "live_calls").ok());
        assert_eq!(find(&c, "tts.elevenlabs").missing, ["ELEVENLABS_API_KEY"]);
        let c = config(&[("OPENAI_API_KEY", "sk"), ("ELEVENLABS_API_KEY", "el")]);
        assert_eq!(find(&c, "live_calls").missing, ["DEEPGRAM_API_KEY"]);
    }

    #[test]
    fn features_never_carry_values() {
        let c = config(&[
            ("TWILIO_ACCOUNT_SID", "AC-secret-sid"),
            ("TWILIO_AUTH_TOKEN", "secret-token"),
        ]);
        let text = format!("{:?}", features(&c));
        assert!(!text.contains("secret-sid") && !text.contains("secret-token"));
    }

    #[test]
    fn a_defaulted_provider_is_the_servers_problem() {
        let c = config(&[("ADMIN_API_KEY", "k")]);
        let refusal = check_schedule(&c, DialProvider::Twilio, false, false).unwrap_err();
        let ScheduleRefusal::Server(unavailable) = refusal else {
            panic!("expected a server refusal")
        };
        assert_eq!(unavailable.feature, "scheduled_calls.twilio");
        assert_eq!(
            unavailable.missing,
            ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
        );
        assert!(unavailable.to_string().contains("TWILIO_ACCOUNT_SID"));
    }

    #[test]
    fn a_named_provider_or_email_is_the_requests() {
        let c = config(&[
            ("ADMIN_API_KEY", "k"),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "t"),
        ]);
        assert_eq!(
            check_schedule(&c, DialProvider::Twilio, true, false),
            Ok(())
        );
        assert!(matches!(
            check_schedule(&c, DialProvider::Bland, true, false),
            Err(ScheduleRefusal::Requested { field: "provider", ref unavailable })
                if unavailable.missing == ["BLAND_API_KEY"]
        ));
        assert!(matches!(
            check_schedule(&c, DialProvider::Twilio, false, true),
            Err(ScheduleRefusal::Requested { field: "contact.email", ref unavailable })
                if unavailable.missing == ["RESEND_API_KEY", "EMAIL_FROM"]
        ));
        let with_email = config(&[
            ("ADMIN_API_KEY", "k"),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "t"),
            ("RESEND_API_KEY", "re"),
            ("EMAIL_FROM", "a@b.example"),
        ]);
        assert_eq!(
            check_schedule(&with_email, DialProvider::Twilio, false, true),
            Ok(())
        );
    }

    #[test]
    fn telnyx_calls_need_the_api_key() {
        let c = config(&[("ADMIN_API_KEY", "k"), ("TELNYX_API_KEY", "KEY")]);
        assert!(scheduled_calls(&c, DialProvider::Telnyx).ok());
        assert!(!scheduled_calls(&c, DialProvider::Twilio).ok());
    }
}
