//! Which numbers this deployment may dial, and when a call back may be placed.
//!
//! Every number we dial or hand to a carrier (API-scheduled calls, call backs, transfers, the
//! owner's phone) goes through [`DialPolicy::check`]: it must be a plain E.164 number (never a
//! SIP address or a withheld caller id), belong to a known country, not be in a premium-rate,
//! shared-cost or international-network range, and be in the allowed countries when there is a
//! list. Toll fraud works by making us dial numbers that pay the attacker, so the ranges that do
//! are refused outright rather than left to each tenant.
//!
//! The country table is deliberately compact (calling codes, NANP area codes outside the US,
//! and the national prefixes of paid ranges) instead of a full numbering-plan library, which
//! would weigh more than the rest of the worker.

use thiserror::Error;

/// Earliest call back, counted from when the tool runs: a call back is for later, not a redial.
pub const CALLBACK_MIN_DELAY_MS: i64 = 60_000;
/// Latest call back, counted from when the tool runs.
pub const CALLBACK_MAX_DELAY_MS: i64 = 7 * 24 * 3600 * 1000;
/// Window of the per-tenant outbound cap and of the per-number call-back cap's "day".
pub const HOUR_MS: i64 = 3600 * 1000;
/// The per-number call-back cap counts call backs scheduled in this rolling window.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Why a number (or a call back) is not dialled. `code()` is the stable machine-readable name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialRefusal {
    /// `anonymous`, `withheld`, a carrier's placeholder number: nobody to call.
    #[error("the number is withheld ({0:?}); there is nobody to call")]
    Withheld(String),
    /// `sip:…`, `user@host`: only phone numbers are dialled.
    #[error("SIP addresses are never dialled, only E.164 phone numbers")]
    SipAddress,
    /// Not `+` and 2 to 15 digits (or the wrong length for its numbering plan).
    #[error("not an E.164 number such as +15551234567")]
    NotE164,
    /// A calling code no country uses.
    #[error("+{0} is not a country calling code")]
    UnknownCountry(String),
    /// International networks (+881/+882/+883 …), international premium (+979) and shared
    /// cost (+808): billed at rates the caller never sees.
    #[error("+{0} is an international network or premium range, never dialled")]
    InternationalNetwork(String),
    /// A national premium-rate or shared-cost range.
    #[error("{country} numbers starting {range} are premium-rate or shared-cost, never dialled")]
    Premium {
        country: &'static str,
        range: String,
    },
    /// The number's country is not in the allowed list.
    #[error("{country} is not an allowed country (allowed: {allowed})")]
    CountryNotAllowed {
        country: &'static str,
        allowed: String,
    },
    /// The agent has not enabled `schedule_callback`.
    #[error("call backs are not enabled for this agent")]
    CallbacksDisabled,
    /// This call already has its call back.
    #[error("a call back was already scheduled on this call; only one is allowed")]
    CallbackAlreadyScheduled,
    /// The number had its share of call backs in the last 24 hours.
    #[error("this number already has {0} call back(s) scheduled in the last 24 hours")]
    DailyCapReached(u32),
    /// `start_at` is less than a minute away (or in the past).
    #[error("start_at must be at least 1 minute from now")]
    StartTooSoon,
    /// `start_at` is more than 7 days away.
    #[error("start_at must be at most 7 days from now")]
    StartTooLate,
}

impl DialRefusal {
    /// Stable reason code (422 field errors, tool errors, call events).
    pub fn code(&self) -> &'static str {
        match self {
            DialRefusal::Withheld(_) => "withheld_number",
            DialRefusal::SipAddress => "sip_address",
            DialRefusal::NotE164 => "invalid_phone",
            DialRefusal::UnknownCountry(_) => "unknown_country",
            DialRefusal::InternationalNetwork(_) | DialRefusal::Premium { .. } => "premium_number",
            DialRefusal::CountryNotAllowed { .. } => "country_not_allowed",
            DialRefusal::CallbacksDisabled => "callbacks_disabled",
            DialRefusal::CallbackAlreadyScheduled => "callback_already_scheduled",
            DialRefusal::DailyCapReached(_) => "callback_daily_cap",
            DialRefusal::StartTooSoon => "start_too_soon",
            DialRefusal::StartTooLate => "start_too_late",
        }
    }
}

/// Which countries a number may be in; premium ranges are refused whatever the list says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialPolicy {
    /// ISO 3166-1 alpha-2 codes, upper case; `None` allows every country.
    pub allowed_countries: Option<Vec<String>>,
}

impl DialPolicy {
    /// Any country (still no premium, SIP or withheld numbers).
    pub fn anywhere() -> Self {
        DialPolicy::default()
    }

    /// Only these countries.
    pub fn only(countries: Vec<String>) -> Self {
        DialPolicy {
            allowed_countries: Some(countries),
        }
    }

    /// The number's country if it may be dialled, or why not.
    pub fn check(&self, number: &str) -> Result<&'static str, DialRefusal> {
        let country = dialable_country(number)?;
        match &self.allowed_countries {
            Some(allowed) if !allowed.iter().any(|c| c == country) => {
                Err(DialRefusal::CountryNotAllowed {
                    country,
                    allowed: allowed.join(", "),
                })
            }
            _ => Ok(country),
        }
    }
}

/// The country of a valid, non-premium number (before any allow-list).
pub fn dialable_country(number: &str) -> Result<&'static str, DialRefusal> {
    let digits = e164_digits(number)?;
    if let Some(code) = NON_GEOGRAPHIC.iter().find(|c| digits.starts_with(**c)) {
        return Err(DialRefusal::InternationalNetwork((*code).to_owned()));
    }
    let (code, country) = calling_code(digits)
        .ok_or_else(|| DialRefusal::UnknownCountry(digits[..digits.len().min(3)].to_owned()))?;
    let national = &digits[code.len()..];
    let country = if code == "1" {
        if national.len() != 10 || matches!(national.as_bytes()[0], b'0' | b'1') {
            return Err(DialRefusal::NotE164);
        }
        nanp_country(&national[..3])
    } else if code == "7" && (national.starts_with('6') || national.starts_with('7')) {
        "KZ"
    } else {
        country
    };
    if let Some(range) = premium_range(country, national, code == "1") {
        return Err(DialRefusal::Premium {
            country,
            range: format!("+{code} {range}"),
        });
    }
    Ok(country)
}

/// The country of a number, without the premium checks (e.g. the country of our own number).
pub fn country_of(number: &str) -> Option<&'static str> {
    let digits = e164_digits(number).ok()?;
    let (code, country) = calling_code(digits)?;
    let national = &digits[code.len()..];
    Some(match code {
        "1" if national.len() >= 3 => nanp_country(&national[..3]),
        "7" if national.starts_with('6') || national.starts_with('7') => "KZ",
        _ => country,
    })
}

/// True when `code` is an ISO 3166-1 alpha-2 code this table knows.
pub fn is_known_country(code: &str) -> bool {
    code.len() == 2
        && (CALLING_CODES
            .split(' ')
            .any(|entry| entry.ends_with(code) && entry.len() > 2)
            || NANP_AREAS.iter().any(|(c, _)| *c == code)
            || code == "KZ")
}

/// Whether a call back at `start_at_ms`, asked for at `now_ms`, is in the allowed window.
pub fn check_callback_time(start_at_ms: i64, now_ms: i64) -> Result<(), DialRefusal> {
    if start_at_ms < now_ms.saturating_add(CALLBACK_MIN_DELAY_MS) {
        Err(DialRefusal::StartTooSoon)
    } else if start_at_ms > now_ms.saturating_add(CALLBACK_MAX_DELAY_MS) {
        Err(DialRefusal::StartTooLate)
    } else {
        Ok(())
    }
}

/// When a tenant that placed `cap` dials in the last hour (the oldest of them at
/// `oldest_in_window_ms`) may dial again; `None` when it may dial now.
pub fn outbound_deferral(
    dials_in_window: u32,
    cap: u32,
    oldest_in_window_ms: Option<i64>,
    now_ms: i64,
) -> Option<i64> {
    if dials_in_window < cap {
        return None;
    }
    // The window frees when its oldest dial leaves it; a millisecond later the count is below
    // the cap again.
    Some(
        oldest_in_window_ms
            .map_or(now_ms + HOUR_MS, |t| t + HOUR_MS + 1)
            .max(now_ms + 1),
    )
}

/// Carrier placeholders for callers who withheld their number, and the words carriers use.
const WITHHELD_WORDS: [&str; 8] = [
    "anonymous",
    "withheld",
    "restricted",
    "unknown",
    "private",
    "unavailable",
    "blocked",
    "unknown caller",
];
/// Twilio's stand-in numbers for anonymous / restricted / unavailable / blocked callers (they
/// spell the word on a keypad and would otherwise parse as Lesotho, Russia, China, Uganda).
const WITHHELD_NUMBERS: [&str; 4] = ["+266696687", "+7378742833", "+86282452253", "+2562533"];

/// The digits after `+` of an E.164 number.
fn e164_digits(number: &str) -> Result<&str, DialRefusal> {
    let trimmed = number.trim();
    let lower = trimmed.to_ascii_lowercase();
    if WITHHELD_WORDS.contains(&lower.as_str()) || WITHHELD_NUMBERS.contains(&trimmed) {
        return Err(DialRefusal::Withheld(trimmed.to_owned()));
    }
    if lower.starts_with("sip:") || lower.starts_with("sips:") || trimmed.contains('@') {
        return Err(DialRefusal::SipAddress);
    }
    // Strict: a number with spaces around it is not E.164 (what is checked is what is stored).
    let digits = number.strip_prefix('+').ok_or(DialRefusal::NotE164)?;
    if !(2..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(DialRefusal::NotE164);
    }
    Ok(digits)
}

/// Calling codes that belong to no country: international freephone, shared cost, satellite
/// and international networks, UPT, international premium rate, trial services.
const NON_GEOGRAPHIC: [&str; 10] = [
    "800", "808", "870", "878", "881", "882", "883", "888", "979", "991",
];

/// Country calling code + ISO country, space separated; codes are prefix-free (ITU-T E.164),
/// so at most one matches a number. Codes shared by several countries name the main one.
const CALLING_CODES: &str = "1US 20EG 211SS 212MA 213DZ 216TN 218LY 220GM 221SN 222MR 223ML \
224GN 225CI 226BF 227NE 228TG 229BJ 230MU 231LR 232SL 233GH 234NG 235TD 236CF 237CM 238CV \
239ST 240GQ 241GA 242CG 243CD 244AO 245GW 246IO 247AC 248SC 249SD 250RW 251ET 252SO 253DJ \
254KE 255TZ 256UG 257BI 258MZ 260ZM 261MG 262RE 263ZW 264NA 265MW 266LS 267BW 268SZ 269KM \
27ZA 290SH 291ER 297AW 298FO 299GL 30GR 31NL 32BE 33FR 34ES 350GI 351PT 352LU 353IE 354IS \
355AL 356MT 357CY 358FI 359BG 36HU 370LT 371LV 372EE 373MD 374AM 375BY 376AD 377MC 378SM \
379VA 380UA 381RS 382ME 383XK 385HR 386SI 387BA 389MK 39IT 40RO 41CH 420CZ 421SK 423LI 43AT \
44GB 45DK 46SE 47NO 48PL 49DE 500FK 501BZ 502GT 503SV 504HN 505NI 506CR 507PA 508PM 509HT \
51PE 52MX 53CU 54AR 55BR 56CL 57CO 58VE 590GP 591BO 592GY 593EC 594GF 595PY 596MQ 597SR \
598UY 599CW 60MY 61AU 62ID 63PH 64NZ 65SG 66TH 670TL 672NF 673BN 674NR 675PG 676TO 677SB \
678VU 679FJ 680PW 681WF 682CK 683NU 685WS 686KI 687NC 688TV 689PF 690TK 691FM 692MH 7RU \
81JP 82KR 84VN 850KP 852HK 853MO 855KH 856LA 86CN 880BD 886TW 90TR 91IN 92PK 93AF 94LK 95MM \
960MV 961LB 962JO 963SY 964IQ 965KW 966SA 967YE 968OM 970PS 971AE 972IL 973BH 974QA 975BT \
976MN 977NP 98IR 992TJ 993TM 994AZ 995GE 996KG 998UZ";

/// The calling code that starts `digits`, and its country.
fn calling_code(digits: &str) -> Option<(&'static str, &'static str)> {
    CALLING_CODES.split(' ').find_map(|entry| {
        let (code, country) = entry.split_at(entry.len() - 2);
        digits.starts_with(code).then_some((code, country))
    })
}

/// NANP area codes outside the 50 states: they are other countries (or territories billed as
/// international), whatever the shared `+1` suggests.
const NANP_AREAS: [(&str, &str); 25] = [
    (
        "CA",
        "204 226 236 249 250 257 263 273 289 306 343 354 365 367 368 382 387 403 416 418 428 \
            431 437 438 450 460 468 474 506 514 519 548 579 581 584 587 600 604 613 622 639 647 \
            672 683 705 709 742 753 778 780 782 807 819 825 867 873 879 902 905 942",
    ),
    ("BS", "242"),
    ("BB", "246"),
    ("AI", "264"),
    ("AG", "268"),
    ("VG", "284"),
    ("VI", "340"),
    ("KY", "345"),
    ("BM", "441"),
    ("GD", "473"),
    ("TC", "649"),
    ("JM", "658 876"),
    ("MS", "664"),
    ("MP", "670"),
    ("GU", "671"),
    ("AS", "684"),
    ("SX", "721"),
    ("LC", "758"),
    ("DM", "767"),
    ("VC", "784"),
    ("PR", "787 939"),
    ("DO", "809 829 849"),
    ("TT", "868"),
    ("KN", "869"),
    ("US", ""),
];

fn nanp_country(area: &str) -> &'static str {
    NANP_AREAS
        .iter()
        .find(|(_, areas)| areas.split_whitespace().any(|a| a == area))
        .map_or("US", |(country, _)| country)
}

/// National prefixes (after the calling code) of premium-rate, shared-cost and personal-number
/// ranges, per country. NANP: the 900 area code, whichever NANP country.
const PREMIUM: [(&str, &str); 18] = [
    ("GB", "9 84 87 70"),
    ("DE", "900 137 138 180 118 700 190"),
    ("FR", "89 81 82"),
    ("IT", "89 84 199"),
    ("ES", "803 806 807 901 902 905 118"),
    ("NL", "900 906 909 84 87"),
    ("BE", "90 70 78"),
    ("AT", "900 930 939 810 820 821"),
    ("CH", "90 84"),
    ("IE", "15 18"),
    ("AU", "19 13"),
    ("NZ", "900"),
    ("SE", "900 939 944 99"),
    ("PL", "70"),
    ("DK", "90"),
    ("NO", "82"),
    ("PT", "60 64 707 708 760 761 762 808 809"),
    ("JP", "990 570"),
];

fn premium_range(country: &str, national: &str, nanp: bool) -> Option<String> {
    if nanp {
        return national.starts_with("900").then(|| "900".to_owned());
    }
    PREMIUM
        .iter()
        .filter(|(c, _)| *c == country)
        .flat_map(|(_, ranges)| ranges.split(' '))
        .find(|range| national.starts_with(range))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(number: &str) -> &'static str {
        dialable_country(number).unwrap_err().code()
    }

    #[test]
    fn ordinary_numbers_are_dialable_with_their_country() {
        for (number, country) in [
            ("+14155550123", "US"),
            ("+15558675310", "US"),
            ("+15550001111", "US"),
            ("+18005551212", "US"),
            ("+442071838750", "GB"),
            ("+447911123456", "GB"),
            ("+33142685300", "FR"),
            ("+4930123456", "DE"),
            ("+919876543210", "IN"),
            ("+35319605860", "IE"),
            ("+61291234567", "AU"),
            ("+74951234567", "RU"),
            ("+77011234567", "KZ"),
            ("+16135550123", "CA"),
        ] {
            assert_eq!(dialable_country(number), Ok(country), "{number}");
        }
    }

    #[test]
    fn withheld_callers_and_sip_addresses_are_refused() {
        for number in [
            "anonymous",
            "Anonymous",
            "withheld",
            "RESTRICTED",
            "unknown",
            "private",
        ] {
            assert_eq!(code(number), "withheld_number", "{number}");
        }
        // Twilio's keypad placeholders would otherwise parse as real countries.
        assert_eq!(code("+266696687"), "withheld_number");
        assert_eq!(code("+7378742833"), "withheld_number");
        for number in ["sip:attacker@evil.example", "SIPS:x@y", "alice@example.com"] {
            assert_eq!(code(number), "sip_address", "{number}");
        }
    }

    #[test]
    fn malformed_numbers_are_not_e164() {
        for number in [
            "",
            "+",
            "5551234",
            "+0123456",
            "+1 415 555 0123",
            "+1415555012x",
            "+1234567890123456",
            "+1415555012",
            "+10155550123",
        ] {
            assert_eq!(code(number), "invalid_phone", "{number:?}");
        }
    }

    #[test]
    fn international_networks_and_premium_ranges_are_refused() {
        for number in [
            "+882123456789",
            "+881612345678",
            "+883510001234",
            "+979123456789",
            "+80812345678",
            "+80012345678",
            "+870773111111",
        ] {
            assert_eq!(
                dialable_country(number),
                Err(DialRefusal::InternationalNetwork(number[1..4].to_owned()))
            );
        }
        for (number, country) in [
            ("+19005550123", "US"),
            ("+449098790123", "GB"),
            ("+448449998888", "GB"),
            ("+448701234567", "GB"),
            ("+447012345678", "GB"),
            ("+499001234567", "DE"),
            ("+491371234567", "DE"),
            ("+491801234567", "DE"),
            ("+33899123456", "FR"),
            ("+33810123456", "FR"),
            ("+34806123456", "ES"),
        ] {
            match dialable_country(number) {
                Err(DialRefusal::Premium { country: c, .. }) => assert_eq!(c, country, "{number}"),
                other => panic!("{number}: {other:?}"),
            }
        }
    }

    #[test]
    fn caribbean_and_canadian_area_codes_are_not_premium_but_not_us() {
        assert_eq!(dialable_country("+18769005555"), Ok("JM"));
    }

    #[test]
    fn caribbean_and_canadian_area_codes_are_their_own_countries() {
        assert_eq!(country_of("+18765550123"), Some("JM"));
        assert_eq!(country_of("+18095550123"), Some("DO"));
        assert_eq!(country_of("+12425550123"), Some("BS"));
        assert_eq!(country_of("+14165550123"), Some("CA"));
        assert_eq!(country_of("+17875550123"), Some("PR"));
        let us = DialPolicy::only(vec!["US".into()]);
        assert_eq!(us.check("+14155550123"), Ok("US"));
        assert_eq!(
            us.check("+18765550123"),
            Err(DialRefusal::CountryNotAllowed {
                country: "JM",
                allowed: "US".into()
            })
        );
        assert_eq!(
            us.check("+442071838750").unwrap_err().code(),
            "country_not_allowed"
        );
        // An allow-list never opens a premium range.
        let gb = DialPolicy::only(vec!["GB".into()]);
        assert_eq!(
            gb.check("+449098790123").unwrap_err().code(),
            "premium_number"
        );
        assert_eq!(DialPolicy::anywhere().check("+442071838750"), Ok("GB"));
    }

    #[test]
    fn unknown_calling_codes_are_refused() {
        assert_eq!(code("+2101234567"), "unknown_country");
        assert_eq!(code("+8091234567"), "unknown_country");
    }

    #[test]
    fn known_countries() {
        for c in ["US", "GB", "JM", "CA", "KZ", "DE", "IN"] {
            assert!(is_known_country(c), "{c}");
        }
        for c in ["XX", "us", "USA", "", "U"] {
            assert!(!is_known_country(c), "{c}");
        }
    }

    #[test]
    fn callback_window_is_one_minute_to_seven_days() {
        let now = 1_000_000_000_000;
        assert_eq!(
            check_callback_time(now + 10_000, now),
            Err(DialRefusal::StartTooSoon)
        );
        assert_eq!(
            check_callback_time(now - 1, now),
            Err(DialRefusal::StartTooSoon)
        );
        assert_eq!(check_callback_time(now + 60_000, now), Ok(()));
        assert_eq!(
            check_callback_time(now + CALLBACK_MAX_DELAY_MS, now),
            Ok(())
        );
        assert_eq!(
            check_callback_time(now + 30 * 24 * HOUR_MS, now),
            Err(DialRefusal::StartTooLate)
        );
    }

    proptest::proptest! {
        /// Caller ids are attacker-controlled: any text is decided without a panic, and only
        /// plain E.164 numbers are ever dialable.
        #[test]
        fn any_text_is_decided_and_only_e164_passes(s in "\\PC{0,24}|\\+[0-9]{1,16}") {
            let decided = DialPolicy::only(vec!["US".into()]).check(&s);
            let _ = country_of(&s);
            if decided.is_ok() {
                proptest::prop_assert!(crate::scheduling::request::is_e164(&s));
            }
        }
    }

    #[test]
    fn outbound_cap_defers_until_the_window_frees() {
        let now = 10 * HOUR_MS;
        assert_eq!(outbound_deferral(2, 3, Some(now - 1000), now), None);
        assert_eq!(
            outbound_deferral(3, 3, Some(now - 1000), now),
            Some(now - 1000 + HOUR_MS + 1)
        );
        // A cap of 0 stops dialling for an hour at a time rather than failing calls.
        assert_eq!(outbound_deferral(0, 0, None, now), Some(now + HOUR_MS));
    }
}
