//! Usage, cost and quotas: what a call consumed (counted by its session in memory and written
//! once by the end-of-call job), what it cost at the configured unit prices (integer
//! micro-units, never floats), the `GET /api/v1/usage` range, and the per-tenant quotas that
//! turn an incoming call away or hold a dispatch back.

use crate::config::ConfigError;
use crate::scheduling::request::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

/// One carrier media frame (and so one frame sent to STT) is 20 ms of audio.
pub const FRAME_MS: i64 = 20;

/// Micro-units in one unit of the price currency.
pub const MICROS: i64 = 1_000_000;

/// The longest range `GET /api/v1/usage` answers, in days (a year and a day: a leap year
/// month-by-month fits).
pub const MAX_RANGE_DAYS: i64 = 366;

/// Session counter names the usage is read from (the session counts them in memory and writes
/// them to its storage when the call ends).
pub mod counter {
    /// Audio frames sent to STT.
    pub const STT_FRAMES: &str = "usage_stt_frames";
    pub const LLM_PROMPT_TOKENS: &str = "usage_llm_prompt_tokens";
    pub const LLM_COMPLETION_TOKENS: &str = "usage_llm_completion_tokens";
    /// Characters sent to TTS.
    pub const TTS_CHARS: &str = "usage_tts_chars";
    pub const TOOL_CALLS: &str = "usage_tool_calls";
}

/// What one call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallUsage {
    /// Connected time, from answer to end.
    pub carrier_seconds: i64,
    /// Audio sent to STT, in milliseconds (frames × 20 ms).
    pub stt_ms: i64,
    pub llm_prompt_tokens: i64,
    pub llm_completion_tokens: i64,
    pub tts_chars: i64,
    pub tool_calls: i64,
}

impl CallUsage {
    /// The usage of a call that lasted `duration_secs`, its other figures read from the
    /// session's counters through `counter` (absent counters are 0).
    pub fn from_counters(duration_secs: i64, counter: impl Fn(&str) -> i64) -> Self {
        CallUsage {
            carrier_seconds: duration_secs.max(0),
            stt_ms: counter(counter::STT_FRAMES).max(0).saturating_mul(FRAME_MS),
            llm_prompt_tokens: counter(counter::LLM_PROMPT_TOKENS).max(0),
            llm_completion_tokens: counter(counter::LLM_COMPLETION_TOKENS).max(0),
            tts_chars: counter(counter::TTS_CHARS).max(0),
            tool_calls: counter(counter::TOOL_CALLS).max(0),
        }
    }

    /// Carrier minutes as carriers bill them: each started minute counts.
    pub fn carrier_minutes(&self) -> i64 {
        billed_minutes(self.carrier_seconds)
    }

    /// The usage as the API shows it (a call's `usage`, a row of `GET /api/v1/usage`).
    pub fn to_json(&self) -> Value {
        json!({
            "carrier_seconds": self.carrier_seconds,
            "carrier_minutes": self.carrier_minutes(),
            "stt_seconds": self.stt_ms as f64 / 1000.0,
            "llm_prompt_tokens": self.llm_prompt_tokens,
            "llm_completion_tokens": self.llm_completion_tokens,
            "tts_characters": self.tts_chars,
            "tool_calls": self.tool_calls,
        })
    }
}

/// Started minutes of `seconds`.
pub fn billed_minutes(seconds: i64) -> i64 {
    (seconds.max(0) + 59) / 60
}

/// Unit prices (`PRICE_*`), in micro-units of `currency`; a price not configured is not
/// charged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prices {
    /// ISO 4217 code (`PRICE_CURRENCY`, default `USD`).
    pub currency: String,
    pub carrier_per_minute: Option<i64>,
    pub stt_per_minute: Option<i64>,
    pub llm_per_1k_prompt_tokens: Option<i64>,
    pub llm_per_1k_completion_tokens: Option<i64>,
    pub tts_per_1k_chars: Option<i64>,
}

/// The price variables, in the order [`Prices::parse`] reads them.
pub const PRICE_VARS: [&str; 5] = [
    "PRICE_CARRIER_PER_MINUTE",
    "PRICE_STT_PER_MINUTE",
    "PRICE_LLM_PER_1K_PROMPT_TOKENS",
    "PRICE_LLM_PER_1K_COMPLETION_TOKENS",
    "PRICE_TTS_PER_1K_CHARS",
];

impl Prices {
    /// Reads the `PRICE_*` variables through `get`; each is a decimal string such as `0.0085`.
    pub fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut values = [None; 5];
        for (slot, name) in values.iter_mut().zip(PRICE_VARS) {
            if let Some(v) = get(name) {
                *slot = Some(parse_price(&v).map_err(|reason| ConfigError::Invalid {
                    name,
                    reason: reason.to_string(),
                })?);
            }
        }
        let currency = match get("PRICE_CURRENCY") {
            Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => c,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "PRICE_CURRENCY",
                    reason: "must be a three-letter upper-case ISO 4217 code such as USD".into(),
                })
            }
            None => "USD".to_owned(),
        };
        let [carrier, stt, prompt, completion, tts] = values;
        Ok(Prices {
            currency,
            carrier_per_minute: carrier,
            stt_per_minute: stt,
            llm_per_1k_prompt_tokens: prompt,
            llm_per_1k_completion_tokens: completion,
            tts_per_1k_chars: tts,
        })
    }

    /// Whether any price is set (no price: no `cost` anywhere).
    pub fn any(&self) -> bool {
        [
            self.carrier_per_minute,
            self.stt_per_minute,
            self.llm_per_1k_prompt_tokens,
            self.llm_per_1k_completion_tokens,
            self.tts_per_1k_chars,
        ]
        .iter()
        .any(Option::is_some)
    }

    /// What `usage` costs, or `None` when no price is configured.
    pub fn cost(&self, usage: &CallUsage) -> Option<Cost> {
        if !self.any() {
            return None;
        }
        let at = |price: Option<i64>, quantity: i64, per: i64| {
            price.map_or(0, |p| scaled(p, quantity, per))
        };
        let carrier = at(self.carrier_per_minute, usage.carrier_minutes(), 1);
        let stt = at(self.stt_per_minute, usage.stt_ms, 60_000);
        let llm =
            at(self.llm_per_1k_prompt_tokens, usage.llm_prompt_tokens, 1000).saturating_add(at(
                self.llm_per_1k_completion_tokens,
                usage.llm_completion_tokens,
                1000,
            ));
        let tts = at(self.tts_per_1k_chars, usage.tts_chars, 1000);
        Some(Cost {
            currency: self.currency.clone(),
            carrier,
            stt,
            llm,
            tts,
            total: carrier
                .saturating_add(stt)
                .saturating_add(llm)
                .saturating_add(tts),
        })
    }
}

/// `price × quantity / per`, rounded half up, in integer arithmetic.
fn scaled(price: i64, quantity: i64, per: i64) -> i64 {
    let exact = i128::from(price) * i128::from(quantity.max(0));
    let per = i128::from(per);
    i64::try_from((exact + per / 2) / per).unwrap_or(i64::MAX)
}

/// A cost in micro-units of `currency`, by part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    pub currency: String,
    pub carrier: i64,
    pub stt: i64,
    pub llm: i64,
    pub tts: i64,
    pub total: i64,
}

impl Cost {
    /// The cost as the API shows it: decimal strings (exact), plus the micro-units.
    pub fn to_json(&self) -> Value {
        json!({
            "currency": self.currency,
            "total": format_micros(self.total),
            "total_micros": self.total,
            "carrier": format_micros(self.carrier),
            "stt": format_micros(self.stt),
            "llm": format_micros(self.llm),
            "tts": format_micros(self.tts),
        })
    }
}

/// Why a price variable is unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PriceError {
    #[error("must be a non-negative decimal number such as 0.0085")]
    NotDecimal,
    #[error("at most 6 decimal places")]
    TooPrecise,
    #[error("must be below 1000000")]
    TooLarge,
}

/// A decimal string (`"0.0085"`, `"12"`) in micro-units.
pub fn parse_price(text: &str) -> Result<i64, PriceError> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty()
        || !digits(whole)
        || !digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(PriceError::NotDecimal);
    }
    if fraction.len() > 6 {
        return Err(PriceError::TooPrecise);
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.trim_start_matches('0').parse::<i64>().or_else(|_| {
            if whole.bytes().all(|b| b == b'0') {
                Ok(0)
            } else {
                Err(PriceError::TooLarge)
            }
        })?
    };
    if whole >= 1_000_000 {
        return Err(PriceError::TooLarge);
    }
    let fraction: i64 = format!("{fraction:0<6}")
        .parse()
        .map_err(|_| PriceError::NotDecimal)?;
    Ok(whole * MICROS + fraction)
}

/// Micro-units as a decimal string with six places (`8500` → `"0.008500"`).
pub fn format_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

/// The bound of an unlimited quota: the largest integer a JS number (and so a D1 argument)
/// holds exactly.
pub const UNLIMITED: i64 = 1 << 53;

/// Per-tenant quotas; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quotas {
    pub max_concurrent_calls: Option<u32>,
    pub monthly_minutes: Option<u64>,
}

impl Quotas {
    /// The tenant's own settings where it has them, else the deployment's defaults
    /// (`QUOTA_MAX_CONCURRENT_CALLS`, `QUOTA_MONTHLY_MINUTES`); 0 means unlimited.
    pub fn effective(tenant: (Option<i64>, Option<i64>), defaults: &Quotas) -> Quotas {
        let own = |v: Option<i64>| v.map(|n| u64::try_from(n).unwrap_or(0));
        let unlimited_if_zero = |v: Option<u64>| v.filter(|n| *n > 0);
        Quotas {
            max_concurrent_calls: match own(tenant.0) {
                Some(n) => unlimited_if_zero(Some(n)).map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
                None => defaults.max_concurrent_calls,
            },
            monthly_minutes: match own(tenant.1) {
                Some(n) => unlimited_if_zero(Some(n)),
                None => defaults.monthly_minutes,
            },
        }
    }

    /// The quota bounds as SQL arguments ([`UNLIMITED`] when unlimited), so one guarded
    /// statement checks them: concurrent calls, monthly minutes (started minutes, as billed).
    pub fn sql_bounds(&self) -> (i64, i64) {
        (
            self.max_concurrent_calls.map_or(UNLIMITED, i64::from),
            self.monthly_minutes.map_or(UNLIMITED, |m| {
                i64::try_from(m).unwrap_or(UNLIMITED).min(UNLIMITED)
            }),
        )
    }

    /// Which quota, if any, a tenant with `live_calls` calls up and `month_minutes` minutes
    /// used this month is over (a new call needs a free slot and minutes left).
    pub fn over(&self, live_calls: i64, month_minutes: i64) -> Option<OverQuota> {
        let (concurrent, minutes) = self.sql_bounds();
        if live_calls >= concurrent {
            return Some(OverQuota::Concurrent(concurrent));
        }
        if month_minutes >= minutes {
            return Some(OverQuota::MonthlyMinutes(minutes));
        }
        None
    }
}

/// Which quota a call is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OverQuota {
    #[error("the tenant has its maximum of {0} concurrent calls")]
    Concurrent(i64),
    #[error("the tenant used its {0} minutes this month")]
    MonthlyMinutes(i64),
}

impl OverQuota {
    /// The call's recorded reason.
    pub const REASON: &'static str = "over_quota";

    /// Which quota (`max_concurrent_calls`, `monthly_minutes`).
    pub fn quota(&self) -> &'static str {
        match self {
            OverQuota::Concurrent(_) => "max_concurrent_calls",
            OverQuota::MonthlyMinutes(_) => "monthly_minutes",
        }
    }

    /// The history entry's detail.
    pub fn detail(&self) -> Value {
        let limit = match self {
            OverQuota::Concurrent(n) | OverQuota::MonthlyMinutes(n) => *n,
        };
        json!({"reason": Self::REASON, "quota": self.quota(), "limit": limit,
               "message": self.to_string()})
    }
}

/// What a caller over quota hears before the call ends.
pub const OVER_QUOTA_MESSAGE: &str =
    "Sorry, we cannot take your call right now. Please try again later.";

/// Parses a tenant's quota settings (`PATCH /api/v1/tenants/{id}` `quotas`): each a whole
/// number ≥ 0 (0 = unlimited) or `null` (the deployment's default). Absent keys stay as they are
/// (`None`); present ones are `Some(None)` (default) or `Some(Some(n))`.
pub type QuotaPatch = (Option<Option<i64>>, Option<Option<i64>>);

/// Validates a `quotas` object.
pub fn parse_quotas(value: &Value) -> Result<QuotaPatch, Vec<FieldError>> {
    let Some(map) = value.as_object() else {
        return Err(vec![FieldError::new(
            "quotas",
            "invalid_type",
            "quotas is an object",
        )]);
    };
    let mut errors = Vec::new();
    for key in map.keys() {
        if key != "max_concurrent_calls" && key != "monthly_minutes" {
            errors.push(FieldError::new(
                &format!("quotas.{key}"),
                "unknown_field",
                "quotas has max_concurrent_calls and monthly_minutes only",
            ));
        }
    }
    let mut one = |name: &str, max: i64| -> Option<Option<i64>> {
        match map.get(name) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => match v.as_i64().filter(|n| (0..=max).contains(n)) {
                Some(n) => Some(Some(n)),
                None => {
                    errors.push(FieldError::new(
                        &format!("quotas.{name}"),
                        "out_of_range",
                        format!("quotas.{name} is a whole number from 0 (unlimited) to {max}, or null (the default)"),
                    ));
                    None
                }
            },
        }
    };
    let concurrent = one("max_concurrent_calls", 100_000);
    let minutes = one("monthly_minutes", 1_000_000_000);
    if errors.is_empty() {
        Ok((concurrent, minutes))
    } else {
        Err(errors)
    }
}

/// A quota variable (`QUOTA_*`): a whole number, 0 or absent for unlimited.
pub fn parse_quota_default(
    name: &'static str,
    value: Option<String>,
) -> Result<Option<u64>, ConfigError> {
    match value {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(|n| Some(n).filter(|n| *n > 0))
            .map_err(|_| ConfigError::Invalid {
                name,
                reason: "must be a whole number (0 = unlimited)".into(),
            }),
    }
}

/// How `GET /api/v1/usage` groups days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Month,
}

/// A validated `GET /api/v1/usage` query: days `from..=to` (`YYYY-MM-DD`, UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub from: String,
    pub to: String,
    pub granularity: Granularity,
}

impl UsageQuery {
    /// Checks the query; `today` is the default `to`, `from` defaults to the first of `to`'s
    /// month. The range is at most [`MAX_RANGE_DAYS`] days.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        granularity: Option<&str>,
        today: &str,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut day = |field: &str, v: Option<&str>| -> Option<i64> {
            let v = v?;
            let parsed = parse_day(v);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    field,
                    "invalid_date",
                    format!("{field} is a date such as 2026-01-31"),
                ));
            }
            parsed
        };
        let to_days = day("to", to);
        let from_days = day("from", from);
        let granularity = match granularity {
            None | Some("day") => Some(Granularity::Day),
            Some("month") => Some(Granularity::Month),
            Some(_) => {
                errors.push(FieldError::new(
                    "granularity",
                    "invalid_value",
                    "granularity is day or month",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let to_days = to_days.or_else(|| parse_day(today)).unwrap_or_default();
        let from_days = from_days.unwrap_or_else(|| {
            let (y, m, _) = civil_from_days(to_days);
            days_from_civil(y, m, 1)
        });
        if from_days > to_days {
            return Err(vec![FieldError::new(
                "from",
                "invalid_range",
                "from is on or before to",
            )]);
        }
        if to_days - from_days + 1 > MAX_RANGE_DAYS {
            return Err(vec![FieldError::new(
                "from",
                "range_too_long",
                format!("the range is at most {MAX_RANGE_DAYS} days"),
            )]);
        }
        Ok(UsageQuery {
            from: format_day(from_days),
            to: format_day(to_days),
            granularity: granularity.unwrap_or(Granularity::Day),
        })
    }
}

/// The bucket a day (`YYYY-MM-DD`) falls in.
pub fn bucket(day: &str, granularity: Granularity) -> String {
    match granularity {
        Granularity::Day => day.to_owned(),
        Granularity::Month => day.get(..7).unwrap_or(day).to_owned(),
    }
}

/// The UTC day of a millisecond timestamp, `YYYY-MM-DD`.
pub fn day_of(ms: i64) -> String {
    format_day(ms.div_euclid(86_400_000))
}

/// The first day of the UTC month of `ms`, `YYYY-MM-DD` (monthly minutes count from it).
pub fn month_start(ms: i64) -> String {
    let (y, m, _) = civil_from_days(ms.div_euclid(86_400_000));
    format_day(days_from_civil(y, m, 1))
}

fn parse_day(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = text.get(0..4)?.parse().ok()?;
    let m: u32 = text.get(5..7)?.parse().ok()?;
    let d: u32 = text.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

fn format_day(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn usage_comes_from_the_session_counters_and_the_duration() {
        let counters: HashMap<&str, i64> = [
            (counter::STT_FRAMES, 150),
            (counter::LLM_PROMPT_TOKENS, 120),
            (counter::LLM_COMPLETION_TOKENS, 30),
            (counter::TTS_CHARS, 42),
            (counter::TOOL_CALLS, 2),
        ]
        .into();
        let usage = CallUsage::from_counters(61, |n| counters.get(n).copied().unwrap_or(0));
        assert_eq!(usage.stt_ms, 3000);
        assert_eq!(usage.carrier_minutes(), 2);
        assert_eq!(usage.to_json()["stt_seconds"], 3.0);
        assert_eq!(usage.to_json()["tts_characters"], 42);
        assert_eq!(CallUsage::from_counters(-5, |_| -1), CallUsage::default());
        assert_eq!(billed_minutes(0), 0);
        assert_eq!(billed_minutes(60), 1);
    }

    #[test]
    fn prices_are_exact_decimals_in_micro_units() {
        assert_eq!(parse_price("0.0085"), Ok(8500));
        assert_eq!(parse_price("12"), Ok(12_000_000));
        assert_eq!(parse_price(".5"), Ok(500_000));
        assert_eq!(parse_price("000.000001"), Ok(1));
        for bad in ["", ".", "1.", "-1", "1e3", "0,5", "abc", " 1 2"] {
            assert_eq!(parse_price(bad), Err(PriceError::NotDecimal), "{bad:?}");
        }
        assert_eq!(parse_price("0.0000001"), Err(PriceError::TooPrecise));
        assert_eq!(parse_price("1000000"), Err(PriceError::TooLarge));
        assert_eq!(
            parse_price("99999999999999999999999"),
            Err(PriceError::TooLarge)
        );
        assert_eq!(format_micros(8500), "0.008500");
        assert_eq!(format_micros(12_345_678), "12.345678");
    }

    #[test]
    fn cost_is_computed_per_part_and_rounded_half_up() {
        let env: HashMap<&str, &str> = [
            ("PRICE_CARRIER_PER_MINUTE", "0.0085"),
            ("PRICE_STT_PER_MINUTE", "0.0043"),
            ("PRICE_LLM_PER_1K_PROMPT_TOKENS", "0.00015"),
            ("PRICE_LLM_PER_1K_COMPLETION_TOKENS", "0.0006"),
            ("PRICE_TTS_PER_1K_CHARS", "0.18"),
            ("PRICE_CURRENCY", "EUR"),
        ]
        .into();
        let prices = Prices::parse(&|n| env.get(n).map(|v| (*v).to_owned())).unwrap();
        let usage = CallUsage {
            carrier_seconds: 61,
            stt_ms: 30_000,
            llm_prompt_tokens: 2000,
            llm_completion_tokens: 500,
            tts_chars: 100,
            tool_calls: 1,
        };
        let cost = prices.cost(&usage).unwrap();
        assert_eq!(cost.currency, "EUR");
        assert_eq!(cost.carrier, 17_000); // 2 started minutes × 0.0085
        assert_eq!(cost.stt, 2150); // half a minute × 0.0043
        assert_eq!(cost.llm, 300 + 300);
        assert_eq!(cost.tts, 18_000);
        assert_eq!(cost.total, 17_000 + 2150 + 600 + 18_000);
        assert_eq!(cost.to_json()["total"], "0.037750");
        assert_eq!(Prices::parse(&|_| None).unwrap().cost(&usage), None);
        let bad = Prices::parse(&|n| (n == "PRICE_STT_PER_MINUTE").then(|| "cheap".to_owned()));
        assert!(matches!(
            bad,
            Err(ConfigError::Invalid {
                name: "PRICE_STT_PER_MINUTE",
                ..
            })
        ));
        assert!(Prices::parse(&|n| (n == "PRICE_CURRENCY").then(|| "usd".to_owned())).is_err());
    }

    #[test]
    fn tenant_quotas_override_the_defaults_and_zero_is_unlimited() {
        let defaults = Quotas {
            max_concurrent_calls: Some(5),
            monthly_minutes: Some(1000),
        };
        assert_eq!(Quotas::effective((None, None), &defaults), defaults);
        let own = Quotas::effective((Some(1), Some(0)), &defaults);
        assert_eq!(own.max_concurrent_calls, Some(1));
        assert_eq!(own.monthly_minutes, None);
        assert_eq!(own.sql_bounds(), (1, UNLIMITED));
        assert_eq!(own.over(0, UNLIMITED - 1), None);
        assert_eq!(own.over(1, 0), Some(OverQuota::Concurrent(1)));
        assert_eq!(
            defaults.over(0, 1000),
            Some(OverQuota::MonthlyMinutes(1000))
        );
        assert_eq!(defaults.over(4, 999), None);
        assert_eq!(
            OverQuota::Concurrent(1).detail()["reason"],
            OverQuota::REASON
        );
    }

    #[test]
    fn quota_settings_are_checked() {
        assert_eq!(
            parse_quotas(&json!({"max_concurrent_calls": 2, "monthly_minutes": null})),
            Ok((Some(Some(2)), Some(None)))
        );
        assert_eq!(parse_quotas(&json!({})), Ok((None, None)));
        let errors =
            parse_quotas(&json!({"max_concurrent_calls": -1, "monthly_minutes": 1.5, "other": 1}))
                .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "quotas.other",
                "quotas.max_concurrent_calls",
                "quotas.monthly_minutes"
            ]
        );
        assert!(parse_quotas(&json!([])).is_err());
        assert_eq!(
            parse_quota_default("QUOTA_MONTHLY_MINUTES", Some("0".into())),
            Ok(None)
        );
        assert!(parse_quota_default("QUOTA_MONTHLY_MINUTES", Some("x".into())).is_err());
    }

    #[test]
    fn the_usage_range_is_validated() {
        let q = UsageQuery::parse(None, None, None, "2026-03-15").unwrap();
        assert_eq!(
            (q.from.as_str(), q.to.as_str()),
            ("2026-03-01", "2026-03-15")
        );
        assert_eq!(q.granularity, Granularity::Day);
        let q =
            UsageQuery::parse(Some("2025-03-16"), Some("2026-03-15"), Some("month"), "x").unwrap();
        assert_eq!(q.granularity, Granularity::Month);
        let err = |f, t, g| UsageQuery::parse(f, t, g, "2026-03-15").unwrap_err()[0].code;
        assert_eq!(err(Some("2026-02-30"), None, None), "invalid_date");
        assert_eq!(err(Some("2026-3-1"), None, None), "invalid_date");
        assert_eq!(err(None, None, Some("week")), "invalid_value");
        assert_eq!(err(Some("2026-03-16"), None, None), "invalid_range");
        assert_eq!(err(Some("2024-03-15"), None, None), "range_too_long");
        assert_eq!(bucket("2026-03-15", Granularity::Month), "2026-03");
    }

    #[test]
    fn days_and_months_are_utc_calendar_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_709_251_199_000), "2024-02-29");
        assert_eq!(month_start(1_709_251_199_000), "2024-02-01");
        for days in [-1000, 0, 59, 19_782, 100_000] {
            assert_eq!(parse_day(&format_day(days)), Some(days));
        }
    }
}
