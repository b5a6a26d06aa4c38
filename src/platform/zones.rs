//! Time-zone rules from the runtime: workerd carries the whole tz database in its ICU, so the
//! wasm asks `Intl.DateTimeFormat` for offsets instead of shipping chrono-tz's tables (about
//! half a megabyte of the bundle). The core validates names and does the DST arithmetic
//! (`phone_agent_core::zones`); this only answers "which offset is in force here, then".

use chrono::{DateTime, FixedOffset, Utc};
use phone_agent_core::zones::{Zone, ZoneRules};
use wasm_bindgen::prelude::wasm_bindgen;

// One JS call per offset: the wall-clock fields are read and diffed on the JS side rather than
// crossing the boundary once per part. A zone ICU does not know (or a date it cannot format)
// gives NaN. Formatters are kept per zone because building one costs far more than using it.
#[wasm_bindgen(inline_js = r#"
const formats = new Map();
export function zone_offset_seconds(name, epochSeconds) {
  try {
    let format = formats.get(name);
    if (format === undefined) {
      format = new Intl.DateTimeFormat('en-US', {
        timeZone: name, hourCycle: 'h23', era: 'short', year: 'numeric', month: 'numeric',
        day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric',
      });
      formats.set(name, format);
    }
    const part = {};
    for (const { type, value } of format.formatToParts(epochSeconds * 1000)) part[type] = value;
    const year = part.era === 'BC' ? 1 - Number(part.year) : Number(part.year);
    const local = new Date(0);
    local.setUTCFullYear(year, Number(part.month) - 1, Number(part.day));
    local.setUTCHours(Number(part.hour), Number(part.minute), Number(part.second));
    return local.getTime() / 1000 - epochSeconds;
  } catch {
    return NaN;
  }
}
"#)]
extern "C" {
    fn zone_offset_seconds(name: &str, epoch_seconds: f64) -> f64;
}

/// Zone rules from the runtime's `Intl` (ICU's copy of the tz database).
#[derive(Debug, Clone, Copy, Default)]
pub struct IntlZones;

impl ZoneRules for IntlZones {
    fn offset_at(&self, name: &'static str, at: DateTime<Utc>) -> Option<FixedOffset> {
        let seconds = zone_offset_seconds(name, at.timestamp() as f64);
        // NaN (unknown zone) and anything outside ±24 h are refused by the cast's range check.
        if seconds.is_finite() {
            FixedOffset::east_opt(seconds as i32)
        } else {
            None
        }
    }
}

/// The zone named `name` with the runtime's rules; `None` when absent or unknown.
pub fn zone(name: Option<&str>) -> Option<Zone<'static>> {
    name.and_then(|name| Zone::resolve(&IntlZones, name))
}
