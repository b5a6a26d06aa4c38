//! Typed configuration, parsed from the worker's environment (vars + secrets).
//!
//! The edge passes a lookup function so this stays free of `worker::Env`; every problem names
//! the variable at fault, because a misconfigured deployment must say exactly what to fix.

use crate::providers::tts_socket::TtsTransport;
use thiserror::Error;

/// Why the environment does not make a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A variable that must be set is absent or empty.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable is set but its value is unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Inbound verification secrets per provider; each may hold several values (rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookSecrets {
    pub resend: Vec<String>,
    pub bland: Vec<String>,
    pub vapi: Vec<String>,
    pub retell: Vec<String>,
    pub twilio: Vec<String>,
    pub telnyx: Vec<String>,
    pub exotel: Vec<String>,
    pub standard: Vec<String>,
}

/// Per-provider timestamp windows in seconds (default `WEBHOOK_TOLERANCE_SECONDS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tolerances {
    pub default: u64,
    overrides: Vec<(String, u64)>,
}

impl Tolerances {
    /// The window for `provider` (lower-case name as in the route).
    pub fn for_provider(&self, provider: &str) -> u64 {
        self.overrides
            .iter()
            .find(|(p, _)| p == provider)
            .map_or(self.default, |(_, secs)| *secs)
    }
}

/// Outbound provider endpoints and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Providers {
    pub deepgram_api_key: Option<String>,
    pub deepgram_url: String,
    pub openai_api_key: Option<String>,
    pub openai_base_url: String,
    pub openai_model: String,
    pub elevenlabs_api_key: Option<String>,
    pub elevenlabs_url: String,
    /// How live calls reach the TTS provider (`TTS_TRANSPORT`).
    pub tts_transport: TtsTransport,
    pub bland_api_key: Option<String>,
    pub bland_api_url: String,
    pub resend_api_key: Option<String>,
    pub resend_api_url: String,
    pub email_from: Option<String>,
    pub twilio_account_sid: Option<String>,
    pub twilio_api_url: String,
    pub telnyx_api_key: Option<String>,
    pub telnyx_api_url: String,
    /// Telnyx Call Control application (connection) that outbound calls are placed from.
    pub telnyx_connection_id: Option<String>,
}

/// The whole configuration of one worker deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub secrets: WebhookSecrets,
    pub tolerances: Tolerances,
    pub admin_api_key: Option<String>,
    /// `CALLBACK_SIGNING_KEY`: signs the `call_id` of callback URLs (else derived from
    /// `ADMIN_API_KEY`, see `webhooks::callback`).
    pub callback_signing_key: Option<String>,
    pub public_base_url: Option<String>,
    pub providers: Providers,
    pub allow_private_targets: bool,
    /// Delay in seconds before each retry, counted from the attempt before it.
    pub delivery_retry_schedule: Vec<u64>,
    pub default_from_number: Option<String>,
    /// Requests per minute per API key; 0 turns rate limiting off.
    pub api_rate_limit_per_minute: u32,
    /// Outbound dials per tenant per rolling hour (API calls, call backs, retries); more wait.
    pub outbound_calls_per_hour: u32,
    /// Failed authentications per minute per client address; 0 turns the throttle off.
    pub auth_failure_limit_per_minute: u32,
    /// First retry delay of a call's end-of-call job, in seconds (doubling after each failure).
    pub finalize_retry_base_secs: u64,
    /// Seconds a carrier call may be answered without its media stream connecting before it
    /// is hung up and failed (`stream_timeout`).
    pub stream_connect_timeout_secs: u64,
    /// Unit prices (`PRICE_*`): a call's and a day's `cost` when any is set.
    pub prices: crate::usage::Prices,
    /// Quotas of tenants without their own (`QUOTA_MAX_CONCURRENT_CALLS`,
    /// `QUOTA_MONTHLY_MINUTES`; unset or 0: unlimited).
    pub quotas: crate::usage::Quotas,
    /// How long a dispatch held back by a quota waits before it is looked at again
    /// (`QUOTA_RECHECK_SECONDS`).
    pub quota_recheck_secs: u64,
}

/// Seconds a dispatch over quota waits before the next look unless `QUOTA_RECHECK_SECONDS` says
/// otherwise.
pub const DEFAULT_QUOTA_RECHECK_SECS: u64 = 300;

/// Seconds an answered call waits for its media stream unless `STREAM_CONNECT_TIMEOUT_SECONDS`
/// says otherwise: carriers connect within a second or two, so 30 s only fires when it never will.
pub const DEFAULT_STREAM_CONNECT_TIMEOUT_SECS: u64 = 30;

/// Outbound dials per tenant per hour unless `OUTBOUND_CALLS_PER_HOUR` says otherwise.
pub const DEFAULT_OUTBOUND_CALLS_PER_HOUR: u32 = 60;

/// Requests per minute per API key unless `API_RATE_LIMIT_PER_MINUTE` says otherwise.
pub const DEFAULT_API_RATE_LIMIT: u32 = 600;

/// Failed authentications per minute per client address unless `AUTH_FAILURE_LIMIT_PER_MINUTE`
/// says otherwise: plenty for typos, nothing for guessing.
pub const DEFAULT_AUTH_FAILURE_LIMIT: u32 = 30;

/// The `ADMIN_API_KEY` that `.dev.vars.example` used to ship: public, so never a real key.
pub const EXAMPLE_ADMIN_API_KEY: &str = "dev-admin-key-change-me";

/// Shortest `ADMIN_API_KEY` accepted outside local development.
pub const MIN_ADMIN_API_KEY_CHARS: usize = 32;

/// Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_RETRY_SCHEDULE: [u64; 7] = [5, 300, 1800, 7200, 18000, 36000, 36000];

/// Providers that accept inbound webhooks, as they appear in `/webhooks/{provider}`.
pub const WEBHOOK_PROVIDERS: [&str; 8] = [
    "resend", "twilio", "telnyx", "bland", "retell", "vapi", "exotel", "standard",
];

impl Config {
    /// Parses the configuration; `lookup` returns a variable's value if it is set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let list = |name: &str| get(name).map(|v| split_list(&v)).unwrap_or_default();
        let url = |name: &'static str, default: &str| -> Result<String, ConfigError> {
            let value = get(name).unwrap_or_else(|| default.to_owned());
            parse_base_url(name, &value)
        };

        let per_minute = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            match get(name) {
                Some(v) => u32::try_from(parse_u64(name, &v)?).map_err(|_| ConfigError::Invalid {
                    name,
                    reason: "too large".into(),
                }),
                None => Ok(default),
            }
        };
        let api_rate_limit_per_minute =
            per_minute("API_RATE_LIMIT_PER_MINUTE", DEFAULT_API_RATE_LIMIT)?;
        let auth_failure_limit_per_minute =
            per_minute("AUTH_FAILURE_LIMIT_PER_MINUTE", DEFAULT_AUTH_FAILURE_LIMIT)?;

        // A cap, not a switch: 0 would stop every outbound call, so it is refused.
        let outbound_calls_per_hour = match get("OUTBOUND_CALLS_PER_HOUR") {
            Some(v) => u32::try_from(parse_u64("OUTBOUND_CALLS_PER_HOUR", &v)?)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "OUTBOUND_CALLS_PER_HOUR",
                    reason: "must be a whole number from 1 to 4294967295".into(),
                })?,
            None => DEFAULT_OUTBOUND_CALLS_PER_HOUR,
        };

        let prices = crate::usage::Prices::parse(&get)?;
        let quotas = crate::usage::Quotas {
            max_concurrent_calls: crate::usage::parse_quota_default(
                "QUOTA_MAX_CONCURRENT_CALLS",
                get("QUOTA_MAX_CONCURRENT_CALLS"),
            )?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            monthly_minutes: crate::usage::parse_quota_default(
                "QUOTA_MONTHLY_MINUTES",
                get("QUOTA_MONTHLY_MINUTES"),
            )?,
        };
        // A delay, not a switch: 0 would re-check a held dispatch in a tight loop.
        let quota_recheck_secs = match get("QUOTA_RECHECK_SECONDS") {
            Some(v) => Some(parse_u64("QUOTA_RECHECK_SECONDS", &v)?)
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "QUOTA_RECHECK_SECONDS",
                    reason: "must be a whole number of seconds, at least 1".into(),
                })?,
            None => DEFAULT_QUOTA_RECHECK_SECS,
        };

        let default_tolerance = match get("WEBHOOK_TOLERANCE_SECONDS") {
            Some(v) => parse_u64("WEBHOOK_TOLERANCE_SECONDS", &v)?,
            None => 300,
        };
        let mut overrides = Vec::new();
        for (provider, name) in TOLERANCE_OVERRIDES {
            if let Some(v) = get(name) {
                overrides.push((provider.to_owned(), parse_u64(name, &v)?));
            }
        }

        let public_base_url = get("PUBLIC_BASE_URL")
            .map(|v| parse_base_url("PUBLIC_BASE_URL", &v))
            .transpose()?;

        let delivery_retry_schedule = match get("DELIVERY_RETRY_SCHEDULE") {
            Some(v) => parse_schedule(&v)?,
            None => DEFAULT_RETRY_SCHEDULE.to_vec(),
        };

        // A delay, not a switch: 0 would retry a failing job in a tight loop, so it is refused.
        let finalize_retry_base_secs = match get("FINALIZE_RETRY_BASE_SECONDS") {
            Some(v) => Some(parse_u64("FINALIZE_RETRY_BASE_SECONDS", &v)?)
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "FINALIZE_RETRY_BASE_SECONDS",
                    reason: "must be a whole number of seconds, at least 1".into(),
                })?,
            None => crate::finalize::DEFAULT_RETRY_BASE_SECS,
        };

        // 0 would fail every call before its stream could open, so it is refused.
        let stream_connect_timeout_secs = match get("STREAM_CONNECT_TIMEOUT_SECONDS") {
            Some(v) => Some(parse_u64("STREAM_CONNECT_TIMEOUT_SECONDS", &v)?)
                .filter(|s| (1..=3600).contains(s))
                .ok_or_else(|| ConfigError::Invalid {
                    name: "STREAM_CONNECT_TIMEOUT_SECONDS",
                    reason: "must be a whole number of seconds from 1 to 3600".into(),
                })?,
            None => DEFAULT_STREAM_CONNECT_TIMEOUT_SECS,
        };

        let allow_private_targets = match get("ALLOW_PRIVATE_TARGETS") {
            Some(v) => parse_bool("ALLOW_PRIVATE_TARGETS", &v)?,
            None => false,
        };

        let tts_transport = match get("TTS_TRANSPORT") {
            Some(v) => TtsTransport::from_name(&v).ok_or_else(|| ConfigError::Invalid {
                name: "TTS_TRANSPORT",
                reason: "must be websocket or http".into(),
            })?,
            None => TtsTransport::default(),
        };

        Ok(Config {
            secrets: WebhookSecrets {
                resend: list("RESEND_WEBHOOK_SECRET"),
                bland: list("BLAND_WEBHOOK_SECRET"),
                vapi: list("VAPI_WEBHOOK_SECRET"),
                retell: list("RETELL_API_KEY"),
                twilio: list("TWILIO_AUTH_TOKEN"),
                telnyx: list("TELNYX_PUBLIC_KEY"),
                exotel: list("EXOTEL_WEBHOOK_TOKEN"),
                standard: list("STANDARD_WEBHOOK_SECRET"),
            },
            tolerances: Tolerances {
                default: default_tolerance,
                overrides,
            },
            admin_api_key: get("ADMIN_API_KEY"),
            callback_signing_key: get("CALLBACK_SIGNING_KEY"),
            public_base_url,
            providers: Providers {
                deepgram_api_key: get("DEEPGRAM_API_KEY"),
                deepgram_url: url("DEEPGRAM_URL", "wss://api.deepgram.com")?,
                openai_api_key: get("OPENAI_API_KEY"),
                openai_base_url: url("OPENAI_BASE_URL", "https://api.openai.com/v1")?,
                openai_model: get("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".to_owned()),
                elevenlabs_api_key: get("ELEVENLABS_API_KEY"),
                elevenlabs_url: url("ELEVENLABS_URL", "https://api.elevenlabs.io")?,
                tts_transport,
                bland_api_key: get("BLAND_API_KEY"),
                bland_api_url: url("BLAND_API_URL", "https://api.bland.ai")?,
                resend_api_key: get("RESEND_API_KEY"),
                resend_api_url: url("RESEND_API_URL", "https://api.resend.com")?,
                email_from: get("EMAIL_FROM"),
                twilio_account_sid: get("TWILIO_ACCOUNT_SID"),
                twilio_api_url: url("TWILIO_API_URL", "https://api.twilio.com")?,
                telnyx_api_key: get("TELNYX_API_KEY"),
                telnyx_api_url: url("TELNYX_API_URL", "https://api.telnyx.com")?,
                telnyx_connection_id: get("TELNYX_CONNECTION_ID"),
            },
            allow_private_targets,
            delivery_retry_schedule,
            default_from_number: get("DEFAULT_FROM_NUMBER"),
            api_rate_limit_per_minute,
            outbound_calls_per_hour,
            auth_failure_limit_per_minute,
            finalize_retry_base_secs,
            stream_connect_timeout_secs,
            prices,
            quotas,
            quota_recheck_secs,
        })
    }

    /// Why `ADMIN_API_KEY` must not be used outside local development, if it must not: it is
    /// the key to every tenant, so a short or published one is as good as none.
    pub fn weak_admin_key(&self) -> Option<ConfigError> {
        let key = self.admin_api_key.as_deref()?;
        let reason = if key == EXAMPLE_ADMIN_API_KEY {
            "it is the published example value".to_owned()
        } else if key.chars().count() < MIN_ADMIN_API_KEY_CHARS {
            format!("it is shorter than {MIN_ADMIN_API_KEY_CHARS} characters")
        } else {
            return None;
        };
        Some(ConfigError::Invalid {
            name: "ADMIN_API_KEY",
            reason: format!(
                "{reason}; outside local development it authenticates nothing \
                 (set a random key, e.g. `openssl rand -hex 32`)"
            ),
        })
    }
}

/// `<PROVIDER>_WEBHOOK_TOLERANCE_SECONDS` overrides the default window for one provider.
const TOLERANCE_OVERRIDES: [(&str, &str); 8] = [
    ("resend", "RESEND_WEBHOOK_TOLERANCE_SECONDS"),
    ("twilio", "TWILIO_WEBHOOK_TOLERANCE_SECONDS"),
    ("telnyx", "TELNYX_WEBHOOK_TOLERANCE_SECONDS"),
    ("bland", "BLAND_WEBHOOK_TOLERANCE_SECONDS"),
    ("retell", "RETELL_WEBHOOK_TOLERANCE_SECONDS"),
    ("vapi", "VAPI_WEBHOOK_TOLERANCE_SECONDS"),
    ("exotel", "EXOTEL_WEBHOOK_TOLERANCE_SECONDS"),
    ("standard", "STANDARD_WEBHOOK_TOLERANCE_SECONDS"),
];

/// Splits a secret list: values separated by spaces and/or commas.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_u64(name: &'static str, value: &str) -> Result<u64, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        name,
        reason: format!("expected a whole number of seconds, got {value:?}"),
    })
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!("expected true or false, got {value:?}"),
        }),
    }
}

fn parse_schedule(value: &str) -> Result<Vec<u64>, ConfigError> {
    split_list(value)
        .iter()
        .map(|s| parse_u64("DELIVERY_RETRY_SCHEDULE", s))
        .collect()
}

/// Accepts an absolute http(s)/ws(s) URL and drops a trailing slash so paths join cleanly.
fn parse_base_url(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let parsed = url::Url::parse(value).map_err(|e| ConfigError::Invalid {
        name,
        reason: format!("not an absolute URL ({e})"),
    })?;
    if !matches!(parsed.scheme(), "http" | "https" | "ws" | "wss") || parsed.host().is_none() {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("expected an http(s) or ws(s) URL with a host, got {value:?}"),
        });
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// A configuration read from `name = value` pairs, for tests across the crate.
#[cfg(test)]
pub(crate) fn from_pairs(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        from_pairs(vars)
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.tolerances.for_provider("resend"), 300);
        assert_eq!(config.delivery_retry_schedule, DEFAULT_RETRY_SCHEDULE);
        assert!(!config.allow_private_targets);
        assert_eq!(config.providers.resend_api_url, "https://api.resend.com");
        assert!(config.admin_api_key.is_none());
        assert_eq!(config.api_rate_limit_per_minute, DEFAULT_API_RATE_LIMIT);
        assert_eq!(
            config.auth_failure_limit_per_minute,
            DEFAULT_AUTH_FAILURE_LIMIT
        );
        assert!(config.providers.telnyx_connection_id.is_none());
        assert_eq!(
            config.outbound_calls_per_hour,
            DEFAULT_OUTBOUND_CALLS_PER_HOUR
        );
    }

    #[test]
    fn tts_transport_defaults_to_websocket() {
        assert_eq!(
            parse(&[]).unwrap().providers.tts_transport,
            TtsTransport::WebSocket
        );
        assert_eq!(
            parse(&[("TTS_TRANSPORT", "http")])
                .unwrap()
                .providers
                .tts_transport,
            TtsTransport::Http
        );
        assert!(matches!(
            parse(&[("TTS_TRANSPORT", "smoke-signals")]),
            Err(ConfigError::Invalid {
                name: "TTS_TRANSPORT",
                ..
            })
        ));
    }

    #[test]
    fn outbound_cap_is_a_positive_number() {
        let config = parse(&[("OUTBOUND_CALLS_PER_HOUR", "5")]).unwrap();
        assert_eq!(config.outbound_calls_per_hour, 5);
        for bad in ["0", "-1", "many"] {
            assert!(matches!(
                parse(&[("OUTBOUND_CALLS_PER_HOUR", bad)]),
                Err(ConfigError::Invalid {
                    name: "OUTBOUND_CALLS_PER_HOUR",
                    ..
                })
            ));
        }
    }

    #[test]
    fn finalize_retry_base_defaults_to_five_seconds_and_is_never_zero() {
        assert_eq!(parse(&[]).unwrap().finalize_retry_base_secs, 5);
        let config = parse(&[("FINALIZE_RETRY_BASE_SECONDS", "1")]).unwrap();
        assert_eq!(config.finalize_retry_base_secs, 1);
        for bad in ["0", "-1", "soon"] {
            assert!(matches!(
                parse(&[("FINALIZE_RETRY_BASE_SECONDS", bad)]),
                Err(ConfigError::Invalid {
                    name: "FINALIZE_RETRY_BASE_SECONDS",
                    ..
                })
            ));
        }
    }

    #[test]
    fn stream_connect_timeout_is_bounded() {
        assert_eq!(
            parse(&[]).unwrap().stream_connect_timeout_secs,
            DEFAULT_STREAM_CONNECT_TIMEOUT_SECS
        );
        let config = parse(&[("STREAM_CONNECT_TIMEOUT_SECONDS", "5")]).unwrap();
        assert_eq!(config.stream_connect_timeout_secs, 5);
        for bad in ["0", "3601", "soon"] {
            assert!(matches!(
                parse(&[("STREAM_CONNECT_TIMEOUT_SECONDS", bad)]),
                Err(ConfigError::Invalid {
                    name: "STREAM_CONNECT_TIMEOUT_SECONDS",
                    ..
                })
            ));
        }
    }

    #[test]
    fn telnyx_connection_id_is_read() {
        let config = parse(&[("TELNYX_CONNECTION_ID", " 1494404757140276705 ")]).unwrap();
        assert_eq!(
            config.providers.telnyx_connection_id.as_deref(),
            Some("1494404757140276705")
        );
    }

    #[test]
    fn secrets_split_on_spaces_and_commas() {
        let config = parse(&[("RESEND_WEBHOOK_SECRET", "whsec_a, whsec_b  whsec_c")]).unwrap();
        assert_eq!(config.secrets.resend, ["whsec_a", "whsec_b", "whsec_c"]);
    }

    #[test]
    fn per_provider_tolerance_overrides_default() {
        let config = parse(&[
            ("WEBHOOK_TOLERANCE_SECONDS", "60"),
            ("TWILIO_WEBHOOK_TOLERANCE_SECONDS", "900"),
        ])
        .unwrap();
        assert_eq!(config.tolerances.for_provider("twilio"), 900);
        assert_eq!(config.tolerances.for_provider("resend"), 60);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = parse(&[("WEBHOOK_TOLERANCE_SECONDS", "five")]).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("WEBHOOK_TOLERANCE_SECONDS is invalid"));
        let err = parse(&[("ALLOW_PRIVATE_TARGETS", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("ALLOW_PRIVATE_TARGETS"));
        let err = parse(&[("RESEND_API_URL", "not a url")]).unwrap_err();
        assert!(err.to_string().contains("RESEND_API_URL"));
        let err = parse(&[("DELIVERY_RETRY_SCHEDULE", "5,1,x")]).unwrap_err();
        assert!(err.to_string().contains("DELIVERY_RETRY_SCHEDULE"));
    }

    #[test]
    fn weak_admin_keys_are_named() {
        let weak = |key: &str| {
            parse(&[("ADMIN_API_KEY", key)])
                .unwrap()
                .weak_admin_key()
                .map(|e| e.to_string())
        };
        let example = weak(EXAMPLE_ADMIN_API_KEY).unwrap();
        assert!(example.starts_with("ADMIN_API_KEY is invalid: it is the published example"));
        assert!(weak("x").unwrap().contains("shorter than 32 characters"));
        assert!(weak(&"k".repeat(31)).is_some());
        assert_eq!(weak(&"k".repeat(32)), None);
        // Characters, not bytes: 31 two-byte characters are still too short.
        assert!(weak(&"é".repeat(31)).is_some());
        assert_eq!(
            parse(&[]).unwrap().weak_admin_key(),
            None,
            "unset is reported elsewhere"
        );
    }

    #[test]
    fn auth_failure_limit_is_read() {
        let config = parse(&[("AUTH_FAILURE_LIMIT_PER_MINUTE", "5")]).unwrap();
        assert_eq!(config.auth_failure_limit_per_minute, 5);
        let err = parse(&[("AUTH_FAILURE_LIMIT_PER_MINUTE", "many")]).unwrap_err();
        assert!(err.to_string().contains("AUTH_FAILURE_LIMIT_PER_MINUTE"));
    }

    #[test]
    fn base_urls_lose_trailing_slash() {
        let config = parse(&[("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/")]).unwrap();
        assert_eq!(config.providers.openai_base_url, "http://127.0.0.1:9999/v1");
    }
}
