//! Time zones for the core: IANA names are checked here and offsets come from the
//! [`ZoneRules`] the caller passes in, so the Worker ships no zone tables (it asks the runtime's
//! `Intl`, which carries the whole tz database already) while native builds use chrono-tz.
//!
//! Everything zone-related (validating a name, showing an instant in a zone, mapping a wall-clock
//! time to an instant across DST changes) goes through [`Zone`], so every build follows one set
//! of rules and the DST handling is written once, here.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeDelta, Utc};
use std::fmt;

/// Where UTC offsets come from: the runtime's `Intl` at the edge, the tz database natively.
pub trait ZoneRules {
    /// The UTC offset in force in zone `name` at `at`; `None` when these rules do not know `name`.
    ///
    /// Rules that knew a zone once must keep knowing it ([`Zone`] checks a name only once).
    fn offset_at(&self, name: &'static str, at: DateTime<Utc>) -> Option<FixedOffset>;
}

/// A known IANA zone with the rules that give its offsets.
#[derive(Clone, Copy)]
pub struct Zone<'r> {
    name: &'static str,
    rules: &'r dyn ZoneRules,
}

impl<'r> Zone<'r> {
    /// The zone named exactly `name` (case-sensitive, as in the tz database, links included)
    /// when both [`IANA_NAMES`] and `rules` know it.
    pub fn resolve(rules: &'r dyn ZoneRules, name: &str) -> Option<Self> {
        let name = IANA_NAMES[IANA_NAMES.binary_search(&name).ok()?];
        rules.offset_at(name, DateTime::UNIX_EPOCH)?;
        Some(Zone { name, rules })
    }

    /// The IANA name, as given.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The UTC offset in force at `at`.
    pub fn offset_at(&self, at: DateTime<Utc>) -> FixedOffset {
        // `resolve` saw the rules know this zone, and they keep knowing it: UTC is only the
        // answer to rules that break that promise.
        self.rules
            .offset_at(self.name, at)
            .unwrap_or(FixedOffset::east_opt(0).expect("zero is a valid offset"))
    }

    /// `at` on this zone's clocks.
    pub fn at(&self, at: DateTime<Utc>) -> DateTime<FixedOffset> {
        at.with_timezone(&self.offset_at(at))
    }

    /// The instants whose wall-clock time in this zone is `local`, as chrono's
    /// `TimeZone::from_local_datetime` gives them: none in a DST gap, the earliest and the
    /// latest in a DST overlap.
    pub fn from_local(&self, local: NaiveDateTime) -> LocalResult<DateTime<Utc>> {
        from_local_with(local, &|at| self.offset_at(at))
    }
}

/// The instants whose wall-clock time is `local` where `offset_at` gives the offset in force:
/// [`Zone::from_local`] for any source of offsets (an iCalendar file's own VTIMEZONE too).
pub fn from_local_with(
    local: NaiveDateTime,
    offset_at: &dyn Fn(DateTime<Utc>) -> FixedOffset,
) -> LocalResult<DateTime<Utc>> {
    // The offsets a day either side cover every transition near `local` (no zone changes
    // its offset twice within two days); each is kept when it is really in force at the
    // instant it gives. Temporal's GetPossibleEpochNanoseconds works the same way.
    let day = TimeDelta::days(1);
    let mut found: Vec<DateTime<Utc>> =
        [local.checked_sub_signed(day), local.checked_add_signed(day)]
            .into_iter()
            .flatten()
            .filter_map(|probe| {
                let offset = offset_at(probe.and_utc());
                let shift = TimeDelta::seconds(offset.local_minus_utc().into());
                let at = local.checked_sub_signed(shift)?.and_utc();
                (offset_at(at) == offset).then_some(at)
            })
            .collect();
    found.sort_unstable();
    found.dedup();
    match found[..] {
        [] => LocalResult::None,
        [at] => LocalResult::Single(at),
        [earliest, .., latest] => LocalResult::Ambiguous(earliest, latest),
    }
}

impl fmt::Debug for Zone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Zone").field(&self.name).finish()
    }
}

impl fmt::Display for Zone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Zones are equal by name: a build has one set of rules.
impl PartialEq for Zone<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Zone<'_> {}

/// The tz database compiled in by chrono-tz, for native builds and tests (the Worker asks the
/// runtime's `Intl` instead and leaves these tables out of the wasm).
#[cfg(any(test, feature = "tzdb"))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Tzdb;

#[cfg(any(test, feature = "tzdb"))]
impl ZoneRules for Tzdb {
    fn offset_at(&self, name: &'static str, at: DateTime<Utc>) -> Option<FixedOffset> {
        use chrono::Offset;
        let zone: chrono_tz::Tz = name.parse().ok()?;
        Some(at.with_timezone(&zone).offset().fix())
    }
}

/// Every IANA zone and link name accepted, sorted bytewise for the binary search: the tz
/// database's names including its `backward` links, as chrono-tz accepted them before the
/// rules moved out (a test keeps the two lists equal).
pub const IANA_NAMES: &[&str] = &[
    "Africa/Abidjan",
    "Africa/Accra",
    "Africa/Addis_Ababa",
    "Africa/Algiers",
    "Africa/Asmara",
    "Africa/Asmera",
    "Africa/Bamako",
    "Africa/Bangui",
    "Africa/Banjul",
    "Africa/Bissau",
    "Africa/Blantyre",
    "Africa/Brazzaville",
    "Africa/Bujumbura",
    "Africa/Cairo",
    "Africa/Casablanca",
    "Africa/Ceuta",
    "Africa/Conakry",
    "Africa/Dakar",
    "Africa/Dar_es_Salaam",
    "Africa/Djibouti",
    "Africa/Douala",
    "Africa/El_Aaiun",
    "Africa/Freetown",
    "Africa/Gaborone",
    "Africa/Harare",
    "Africa/Johannesburg",
    "Africa/Juba",
    "Africa/Kampala",
    "Africa/Khartoum",
    "Africa/Kigali",
    "Africa/Kinshasa",
    "Africa/Lagos",
    "Africa/Libreville",
    "Africa/Lome",
    "Africa/Luanda",
    "Africa/Lubumbashi",
    "Africa/Lusaka",
    "Africa/Malabo",
    "Africa/Maputo",
    "Africa/Maseru",
    "Africa/Mbabane",
    "Africa/Mogadishu",
    "Africa/Monrovia",
    "Africa/Nairobi",
    "Africa/Ndjamena",
    "Africa/Niamey",
    "Africa/Nouakchott",
    "Africa/Ouagadougou",
    "Africa/Porto-Novo",
    "Africa/Sao_Tome",
    "Africa/Timbuktu",
    "Africa/Tripoli",
    "Africa/Tunis",
    "Africa/Windhoek",
    "America/Adak",
    "America/Anchorage",
    "America/Anguilla",
    "America/Antigua",
    "America/Araguaina",
    "America/Argentina/Buenos_Aires",
    "America/Argentina/Catamarca",
    "America/Argentina/ComodRivadavia",
    "America/Argentina/Cordoba",
    "America/Argentina/Jujuy",
    "America/Argentina/La_Rioja",
    "America/Argentina/Mendoza",
    "America/Argentina/Rio_Gallegos",
    "America/Argentina/Salta",
    "America/Argentina/San_Juan",
    "America/Argentina/San_Luis",
    "America/Argentina/Tucuman",
    "America/Argentina/Ushuaia",
    "America/Aruba",
    "America/Asuncion",
    "America/Atikokan",
    "America/Atka",
    "America/Bahia",
    "America/Bahia_Banderas",
    "America/Barbados",
    "America/Belem",
    "America/Belize",
    "America/Blanc-Sablon",
    "America/Boa_Vista",
    "America/Bogota",
    "America/Boise",
    "America/Buenos_Aires",
    "America/Cambridge_Bay",
    "America/Campo_Grande",
    "America/Cancun",
    "America/Caracas",
    "America/Catamarca",
    "America/Cayenne",
    "America/Cayman",
    "America/Chicago",
    "America/Chihuahua",
    "America/Ciudad_Juarez",
    "America/Coral_Harbour",
    "America/Cordoba",
    "America/Costa_Rica",
    "America/Coyhaique",
    "America/Creston",
    "America/Cuiaba",
    "America/Curacao",
    "America/Danmarkshavn",
    "America/Dawson",
    "America/Dawson_Creek",
    "America/Denver",
    "America/Detroit",
    "America/Dominica",
    "America/Edmonton",
    "America/Eirunepe",
    "America/El_Salvador",
    "America/Ensenada",
    "America/Fort_Nelson",
    "America/Fort_Wayne",
    "America/Fortaleza",
    "America/Glace_Bay",
    "America/Godthab",
    "America/Goose_Bay",
    "America/Grand_Turk",
    "America/Grenada",
    "America/Guadeloupe",
    "America/Guatemala",
    "America/Guayaquil",
    "America/Guyana",
    "America/Halifax",
    "America/Havana",
    "America/Hermosillo",
    "America/Indiana/Indianapolis",
    "America/Indiana/Knox",
    "America/Indiana/Marengo",
    "America/Indiana/Petersburg",
    "America/Indiana/Tell_City",
    "America/Indiana/Vevay",
    "America/Indiana/Vincennes",
    "America/Indiana/Winamac",
    "America/Indianapolis",
    "America/Inuvik",
    "America/Iqaluit",
    "America/Jamaica",
    "America/Jujuy",
    "America/Juneau",
    "America/Kentucky/Louisville",
    "America/Kentucky/Monticello",
    "America/Knox_IN",
    "America/Kralendijk",
    "America/La_Paz",
    "America/Lima",
    "America/Los_Angeles",
    "America/Louisville",
    "America/Lower_Princes",
    "America/Maceio",
    "America/Managua",
    "America/Manaus",
    "America/Marigot",
    "America/Martinique",
    "America/Matamoros",
    "America/Mazatlan",
    "America/Mendoza",
    "America/Menominee",
    "America/Merida",
    "America/Metlakatla",
    "America/Mexico_City",
    "America/Miquelon",
    "America/Moncton",
    "America/Monterrey",
    "America/Montevideo",
    "America/Montreal",
    "America/Montserrat",
    "America/Nassau",
    "America/New_York",
    "America/Nipigon",
    "America/Nome",
    "America/Noronha",
    "America/North_Dakota/Beulah",
    "America/North_Dakota/Center",
    "America/North_Dakota/New_Salem",
    "America/Nuuk",
    "America/Ojinaga",
    "America/Panama",
    "America/Pangnirtung",
    "America/Paramaribo",
    "America/Phoenix",
    "America/Port-au-Prince",
    "America/Port_of_Spain",
    "America/Porto_Acre",
    "America/Porto_Velho",
    "America/Puerto_Rico",
    "America/Punta_Arenas",
    "America/Rainy_River",
    "America/Rankin_Inlet",
    "America/Recife",
    "America/Regina",
    "America/Resolute",
    "America/Rio_Branco",
    "America/Rosario",
    "America/Santa_Isabel",
    "America/Santarem",
    "America/Santiago",
    "America/Santo_Domingo",
    "America/Sao_Paulo",
    "America/Scoresbysund",
    "America/Shiprock",
    "America/Sitka",
    "America/St_Barthelemy",
    "America/St_Johns",
    "America/St_Kitts",
    "America/St_Lucia",
    "America/St_Thomas",
    "America/St_Vincent",
    "America/Swift_Current",
    "America/Tegucigalpa",
    "America/Thule",
    "America/Thunder_Bay",
    "America/Tijuana",
    "America/Toronto",
    "America/Tortola",
    "America/Vancouver",
    "America/Virgin",
    "America/Whitehorse",
    "America/Winnipeg",
    "America/Yakutat",
    "America/Yellowknife",
    "Antarctica/Casey",
    "Antarctica/Davis",
    "Antarctica/DumontDUrville",
    "Antarctica/Macquarie",
    "Antarctica/Mawson",
    "Antarctica/McMurdo",
    "Antarctica/Palmer",
    "Antarctica/Rothera",
    "Antarctica/South_Pole",
    "Antarctica/Syowa",
    "Antarctica/Troll",
    "Antarctica/Vostok",
    "Arctic/Longyearbyen",
    "Asia/Aden",
    "Asia/Almaty",
    "Asia/Amman",
    "Asia/Anadyr",
    "Asia/Aqtau",
    "Asia/Aqtobe",
    "Asia/Ashgabat",
    "Asia/Ashkhabad",
    "Asia/Atyrau",
    "Asia/Baghdad",
    "Asia/Bahrain",
    "Asia/Baku",
    "Asia/Bangkok",
    "Asia/Barnaul",
    "Asia/Beirut",
    "Asia/Bishkek",
    "Asia/Brunei",
    "Asia/Calcutta",
    "Asia/Chita",
    "Asia/Choibalsan",
    "Asia/Chongqing",
    "Asia/Chungking",
    "Asia/Colombo",
    "Asia/Dacca",
    "Asia/Damascus",
    "Asia/Dhaka",
    "Asia/Dili",
    "Asia/Dubai",
    "Asia/Dushanbe",
    "Asia/Famagusta",
    "Asia/Gaza",
    "Asia/Harbin",
    "Asia/Hebron",
    "Asia/Ho_Chi_Minh",
    "Asia/Hong_Kong",
    "Asia/Hovd",
    "Asia/Irkutsk",
    "Asia/Istanbul",
    "Asia/Jakarta",
    "Asia/Jayapura",
    "Asia/Jerusalem",
    "Asia/Kabul",
    "Asia/Kamchatka",
    "Asia/Karachi",
    "Asia/Kashgar",
    "Asia/Kathmandu",
    "Asia/Katmandu",
    "Asia/Khandyga",
    "Asia/Kolkata",
    "Asia/Krasnoyarsk",
    "Asia/Kuala_Lumpur",
    "Asia/Kuching",
    "Asia/Kuwait",
    "Asia/Macao",
    "Asia/Macau",
    "Asia/Magadan",
    "Asia/Makassar",
    "Asia/Manila",
    "Asia/Muscat",
    "Asia/Nicosia",
    "Asia/Novokuznetsk",
    "Asia/Novosibirsk",
    "Asia/Omsk",
    "Asia/Oral",
    "Asia/Phnom_Penh",
    "Asia/Pontianak",
    "Asia/Pyongyang",
    "Asia/Qatar",
    "Asia/Qostanay",
    "Asia/Qyzylorda",
    "Asia/Rangoon",
    "Asia/Riyadh",
    "Asia/Saigon",
    "Asia/Sakhalin",
    "Asia/Samarkand",
    "Asia/Seoul",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Srednekolymsk",
    "Asia/Taipei",
    "Asia/Tashkent",
    "Asia/Tbilisi",
    "Asia/Tehran",
    "Asia/Tel_Aviv",
    "Asia/Thimbu",
    "Asia/Thimphu",
    "Asia/Tokyo",
    "Asia/Tomsk",
    "Asia/Ujung_Pandang",
    "Asia/Ulaanbaatar",
    "Asia/Ulan_Bator",
    "Asia/Urumqi",
    "Asia/Ust-Nera",
    "Asia/Vientiane",
    "Asia/Vladivostok",
    "Asia/Yakutsk",
    "Asia/Yangon",
    "Asia/Yekaterinburg",
    "Asia/Yerevan",
    "Atlantic/Azores",
    "Atlantic/Bermuda",
    "Atlantic/Canary",
    "Atlantic/Cape_Verde",
    "Atlantic/Faeroe",
    "Atlantic/Faroe",
    "Atlantic/Jan_Mayen",
    "Atlantic/Madeira",
    "Atlantic/Reykjavik",
    "Atlantic/South_Georgia",
    "Atlantic/St_Helena",
    "Atlantic/Stanley",
    "Australia/ACT",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Broken_Hill",
    "Australia/Canberra",
    "Australia/Currie",
    "Australia/Darwin",
    "Australia/Eucla",
    "Australia/Hobart",
    "Australia/LHI",
    "Australia/Lindeman",
    "Australia/Lord_Howe",
    "Australia/Melbourne",
    "Australia/NSW",
    "Australia/North",
    "Australia/Perth",
    "Australia/Queensland",
    "Australia/South",
    "Australia/Sydney",
    "Australia/Tasmania",
    "Australia/Victoria",
    "Australia/West",
    "Australia/Yancowinna",
    "Brazil/Acre",
    "Brazil/DeNoronha",
    "Brazil/East",
    "Brazil/West",
    "CET",
    "CST6CDT",
    "Canada/Atlantic",
    "Canada/Central",
    "Canada/Eastern",
    "Canada/Mountain",
    "Canada/Newfoundland",
    "Canada/Pacific",
    "Canada/Saskatchewan",
    "Canada/Yukon",
    "Chile/Continental",
    "Chile/EasterIsland",
    "Cuba",
    "EET",
    "EST",
    "EST5EDT",
    "Egypt",
    "Eire",
    "Etc/GMT",
    "Etc/GMT+0",
    "Etc/GMT+1",
    "Etc/GMT+10",
    "Etc/GMT+11",
    "Etc/GMT+12",
    "Etc/GMT+2",
    "Etc/GMT+3",
    "Etc/GMT+4",
    "Etc/GMT+5",
    "Etc/GMT+6",
    "Etc/GMT+7",
    "Etc/GMT+8",
    "Etc/GMT+9",
    "Etc/GMT-0",
    "Etc/GMT-1",
    "Etc/GMT-10",
    "Etc/GMT-11",
    "Etc/GMT-12",
    "Etc/GMT-13",
    "Etc/GMT-14",
    "Etc/GMT-2",
    "Etc/GMT-3",
    "Etc/GMT-4",
    "Etc/GMT-5",
    "Etc/GMT-6",
    "Etc/GMT-7",
    "Etc/GMT-8",
    "Etc/GMT-9",
    "Etc/GMT0",
    "Etc/Greenwich",
    "Etc/UCT",
    "Etc/UTC",
    "Etc/Universal",
    "Etc/Zulu",
    "Europe/Amsterdam",
    "Europe/Andorra",
    "Europe/Astrakhan",
    "Europe/Athens",
    "Europe/Belfast",
    "Europe/Belgrade",
    "Europe/Berlin",
    "Europe/Bratislava",
    "Europe/Brussels",
    "Europe/Bucharest",
    "Europe/Budapest",
    "Europe/Busingen",
    "Europe/Chisinau",
    "Europe/Copenhagen",
    "Europe/Dublin",
    "Europe/Gibraltar",
    "Europe/Guernsey",
    "Europe/Helsinki",
    "Europe/Isle_of_Man",
    "Europe/Istanbul",
    "Europe/Jersey",
    "Europe/Kaliningrad",
    "Europe/Kiev",
    "Europe/Kirov",
    "Europe/Kyiv",
    "Europe/Lisbon",
    "Europe/Ljubljana",
    "Europe/London",
    "Europe/Luxembourg",
    "Europe/Madrid",
    "Europe/Malta",
    "Europe/Mariehamn",
    "Europe/Minsk",
    "Europe/Monaco",
    "Europe/Moscow",
    "Europe/Nicosia",
    "Europe/Oslo",
    "Europe/Paris",
    "Europe/Podgorica",
    "Europe/Prague",
    "Europe/Riga",
    "Europe/Rome",
    "Europe/Samara",
    "Europe/San_Marino",
    "Europe/Sarajevo",
    "Europe/Saratov",
    "Europe/Simferopol",
    "Europe/Skopje",
    "Europe/Sofia",
    "Europe/Stockholm",
    "Europe/Tallinn",
    "Europe/Tirane",
    "Europe/Tiraspol",
    "Europe/Ulyanovsk",
    "Europe/Uzhgorod",
    "Europe/Vaduz",
    "Europe/Vatican",
    "Europe/Vienna",
    "Europe/Vilnius",
    "Europe/Volgograd",
    "Europe/Warsaw",
    "Europe/Zagreb",
    "Europe/Zaporozhye",
    "Europe/Zurich",
    "GB",
    "GB-Eire",
    "GMT",
    "GMT+0",
    "GMT-0",
    "GMT0",
    "Greenwich",
    "HST",
    "Hongkong",
    "Iceland",
    "Indian/Antananarivo",
    "Indian/Chagos",
    "Indian/Christmas",
    "Indian/Cocos",
    "Indian/Comoro",
    "Indian/Kerguelen",
    "Indian/Mahe",
    "Indian/Maldives",
    "Indian/Mauritius",
    "Indian/Mayotte",
    "Indian/Reunion",
    "Iran",
    "Israel",
    "Jamaica",
    "Japan",
    "Kwajalein",
    "Libya",
    "MET",
    "MST",
    "MST7MDT",
    "Mexico/BajaNorte",
    "Mexico/BajaSur",
    "Mexico/General",
    "NZ",
    "NZ-CHAT",
    "Navajo",
    "PRC",
    "PST8PDT",
    "Pacific/Apia",
    "Pacific/Auckland",
    "Pacific/Bougainville",
    "Pacific/Chatham",
    "Pacific/Chuuk",
    "Pacific/Easter",
    "Pacific/Efate",
    "Pacific/Enderbury",
    "Pacific/Fakaofo",
    "Pacific/Fiji",
    "Pacific/Funafuti",
    "Pacific/Galapagos",
    "Pacific/Gambier",
    "Pacific/Guadalcanal",
    "Pacific/Guam",
    "Pacific/Honolulu",
    "Pacific/Johnston",
    "Pacific/Kanton",
    "Pacific/Kiritimati",
    "Pacific/Kosrae",
    "Pacific/Kwajalein",
    "Pacific/Majuro",
    "Pacific/Marquesas",
    "Pacific/Midway",
    "Pacific/Nauru",
    "Pacific/Niue",
    "Pacific/Norfolk",
    "Pacific/Noumea",
    "Pacific/Pago_Pago",
    "Pacific/Palau",
    "Pacific/Pitcairn",
    "Pacific/Pohnpei",
    "Pacific/Ponape",
    "Pacific/Port_Moresby",
    "Pacific/Rarotonga",
    "Pacific/Saipan",
    "Pacific/Samoa",
    "Pacific/Tahiti",
    "Pacific/Tarawa",
    "Pacific/Tongatapu",
    "Pacific/Truk",
    "Pacific/Wake",
    "Pacific/Wallis",
    "Pacific/Yap",
    "Poland",
    "Portugal",
    "ROC",
    "ROK",
    "Singapore",
    "Turkey",
    "UCT",
    "US/Alaska",
    "US/Aleutian",
    "US/Arizona",
    "US/Central",
    "US/East-Indiana",
    "US/Eastern",
    "US/Hawaii",
    "US/Indiana-Starke",
    "US/Michigan",
    "US/Mountain",
    "US/Pacific",
    "US/Samoa",
    "UTC",
    "Universal",
    "W-SU",
    "WET",
    "Zulu",
];

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Offset, TimeZone};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn local(s: &str) -> NaiveDateTime {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> Zone<'static> {
        Zone::resolve(&Tzdb, name).unwrap()
    }

    fn hours(h: f64) -> FixedOffset {
        FixedOffset::east_opt((h * 3600.0) as i32).unwrap()
    }

    #[test]
    fn names_are_the_tz_database_s_exactly() {
        assert!(
            IANA_NAMES.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        let mut tzdb: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        tzdb.sort_unstable();
        assert_eq!(IANA_NAMES, &tzdb[..]);
    }

    #[test]
    fn resolve_is_exact_and_case_sensitive() {
        assert_eq!(zone("Europe/Paris").name(), "Europe/Paris");
        // Links stay under the name given.
        assert_eq!(zone("US/Eastern").to_string(), "US/Eastern");
        assert_eq!(zone("Asia/Calcutta").name(), "Asia/Calcutta");
        for unknown in [
            "europe/paris",
            "EUROPE/PARIS",
            "Mars/Olympus",
            "",
            "+01:00",
            "Factory",
            "Europe/Paris ",
        ] {
            assert_eq!(Zone::resolve(&Tzdb, unknown), None, "{unknown:?}");
        }
    }

    /// Offsets every [`ZoneRules`] must give: the e2e tests hold the Worker's `Intl` rules to
    /// the same figures through the API (tests/scheduling.test.mjs).
    #[test]
    fn offsets_follow_the_rules() {
        for (name, instant, offset) in [
            ("America/New_York", "2026-11-01T05:59:59Z", -4.0),
            ("America/New_York", "2026-11-01T06:00:00Z", -5.0),
            ("America/Chicago", "2099-03-10T21:00:00Z", -5.0),
            ("Europe/Paris", "2099-05-01T07:30:00Z", 2.0),
            ("Asia/Kolkata", "2025-04-01T20:00:00Z", 5.5),
            ("Australia/Lord_Howe", "2026-01-15T00:00:00Z", 11.0),
            ("Australia/Lord_Howe", "2026-07-15T00:00:00Z", 10.5),
            ("Pacific/Chatham", "2026-01-15T00:00:00Z", 13.75),
            ("Asia/Kathmandu", "2026-01-15T00:00:00Z", 5.75),
            ("Etc/GMT+5", "2026-01-15T00:00:00Z", -5.0),
            ("UTC", "2026-01-15T00:00:00Z", 0.0),
        ] {
            assert_eq!(
                zone(name).offset_at(at(instant)),
                hours(offset),
                "{name} {instant}"
            );
        }
        assert_eq!(
            zone("Europe/Paris")
                .at(at("2026-07-01T12:00:00Z"))
                .to_rfc3339(),
            "2026-07-01T14:00:00+02:00"
        );
    }

    #[test]
    fn local_times_in_gaps_and_overlaps() {
        let ny = zone("America/New_York");
        assert_eq!(
            ny.from_local(local("2027-03-14T02:30:00")),
            LocalResult::None
        );
        assert_eq!(
            ny.from_local(local("2026-11-01T01:30:00")),
            LocalResult::Ambiguous(at("2026-11-01T05:30:00Z"), at("2026-11-01T06:30:00Z"))
        );
        assert_eq!(
            ny.from_local(local("2026-07-01T09:00:00")),
            LocalResult::Single(at("2026-07-01T13:00:00Z"))
        );
        // A half-hour DST shift, and one at midnight that skips the day's first hour.
        let lord_howe = zone("Australia/Lord_Howe");
        assert_eq!(
            lord_howe.from_local(local("2026-10-04T02:15:00")),
            LocalResult::None
        );
        let santiago = zone("America/Santiago");
        assert_eq!(
            santiago.from_local(local("2026-09-06T00:30:00")),
            LocalResult::None
        );
    }

    /// The DST arithmetic agrees with chrono-tz's own `from_local_datetime` at the edges of
    /// every offset change of every zone since 1900 (found by stepping a week and bisecting to
    /// the second).
    #[test]
    fn from_local_agrees_with_the_tz_database_around_every_transition() {
        let start = Utc
            .with_ymd_and_hms(1900, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let end = Utc
            .with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        let week = TimeDelta::weeks(1).num_seconds();
        let mut transitions = 0;
        for &name in IANA_NAMES {
            let ours = zone(name);
            let tz: chrono_tz::Tz = name.parse().unwrap();
            let offset = |t: i64| {
                let at = DateTime::from_timestamp(t, 0).unwrap();
                tz.offset_from_utc_datetime(&at.naive_utc())
                    .fix()
                    .local_minus_utc()
            };
            let (mut t, mut before) = (start, offset(start));
            while t < end {
                let after = offset(t + week);
                if before != after {
                    let (mut lo, mut hi) = (t, t + week);
                    while hi - lo > 1 {
                        let mid = lo + (hi - lo) / 2;
                        if offset(mid) == before {
                            lo = mid
                        } else {
                            hi = mid
                        }
                    }
                    transitions += 1;
                    // Each side of the change, its first and last minute, and the middle.
                    let walls = [hi + i64::from(before), hi + i64::from(after)];
                    let middle = (walls[0] + walls[1]) / 2;
                    let probes = walls
                        .into_iter()
                        .flat_map(|wall| [-3600, -60, -1, 0, 1, 60, 3600].map(|d| wall + d))
                        .chain([middle]);
                    for probe in probes {
                        let probe = DateTime::from_timestamp(probe, 0).unwrap().naive_utc();
                        let expected = tz
                            .from_local_datetime(&probe)
                            .map(|at| at.with_timezone(&Utc));
                        assert_eq!(ours.from_local(probe), expected, "{name} {probe}");
                    }
                }
                (t, before) = (t + week, after);
            }
        }
        assert!(transitions > 10_000, "only {transitions} transitions seen");
    }
}
