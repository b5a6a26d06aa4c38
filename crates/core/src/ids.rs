//! Row ids: `prefix_` + 26 characters of lower-case Crockford base32 over a UUIDv7 (RFC 9562).
//!
//! The UUID's first 48 bits are the creation time in milliseconds, and the base32 alphabet is
//! in ASCII order, so ids compare as strings in creation order (to the millisecond; within one
//! millisecond the order is random). Ids made before UUIDv7 have the same shape (128 random
//! bits), so both kinds live side by side; nothing parses an id, and list cursors order by
//! `created_at` first, so a mix of old and new ids pages as before.
//!
//! The caller passes the clock and the randomness (the core reads neither): `uuid`'s own
//! `now_v7` would read the system clock, which workerd does not offer to Wasm, and would panic
//! when randomness fails, where a row id should fail closed like a secret.

use crate::auth::{encode_token, NoRandomness};
use uuid::{Builder, Uuid};

/// Random bytes behind an id: the 74 bits of a UUIDv7 after its timestamp, version and variant.
pub const ID_RANDOM_BYTES: usize = 10;

/// The UUIDv7 for `unix_ms` (a time before 1970 counts as 1970) and `random`.
pub fn uuid_v7(unix_ms: i64, random: &[u8; ID_RANDOM_BYTES]) -> Uuid {
    let millis = u64::try_from(unix_ms).unwrap_or(0);
    Builder::from_unix_timestamp_millis(millis, random).into_uuid()
}

/// `prefix_` + the base32 form of [`uuid_v7`], e.g. `call_06bq2…` (26 characters after `_`).
pub fn encode_id(prefix: &str, unix_ms: i64, random: &[u8; ID_RANDOM_BYTES]) -> String {
    encode_token(prefix, uuid_v7(unix_ms, random).as_bytes())
}

/// A new id at `unix_ms` with randomness that `fill` draws; fails closed when `fill` does.
pub fn new_id<E: std::fmt::Display>(
    prefix: &str,
    unix_ms: i64,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<String, NoRandomness> {
    let mut random = [0u8; ID_RANDOM_BYTES];
    fill(&mut random).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(encode_id(prefix, unix_ms, &random))
}

/// A typed row id: the prefix its new ids carry (see [`new_id`]).
pub trait RowId: From<String> {
    /// The prefix new ids of this kind carry.
    const PREFIX: &'static str;
}

/// Declares a typed row id: a `String` newtype that serializes as the bare string, so a call id
/// cannot be passed where an agent id is expected.
macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident = $prefix:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl RowId for $name {
            const PREFIX: &'static str = $prefix;
        }

        impl $name {
            /// The id as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    )*};
}

typed_id! {
    /// A tenant (`ten_`).
    TenantId = "ten";
    /// A call (`call_`).
    CallId = "call";
    /// An agent (`ag_`).
    AgentId = "ag";
    /// A phone number (`num_`).
    NumberId = "num";
    /// A webhook endpoint (`ep_`).
    EndpointId = "ep";
    /// A canonical event (`evt_`).
    EventId = "evt";
    /// An API key (`key_`).
    KeyId = "key";
    /// An outgoing email (`eml_`).
    EmailId = "eml";
    /// A call recording and the job storing it (`rec_`).
    RecordingId = "rec";
    /// One event's delivery to one endpoint (`dlv_`; made by D1 in the event outbox).
    DeliveryId = "dlv";
    /// A booked appointment (`apt_`).
    AppointmentId = "apt";
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::{Variant, Version};

    const ALPHABET: &str = "0123456789abcdefghjkmnpqrstvwxyz";
    /// 2025-04-01T14:00:00Z.
    const T: i64 = 1_743_516_000_000;

    #[test]
    fn shape_is_prefix_and_26_base32_characters() {
        let id = encode_id("call", T, &[0xa5; ID_RANDOM_BYTES]);
        let (prefix, body) = id.split_once('_').unwrap();
        assert_eq!(prefix, "call");
        assert_eq!(body.len(), 26);
        assert!(body.chars().all(|c| ALPHABET.contains(c)), "{id}");
        // Same length as the random ids made before, so both kinds fit the same columns/tests.
        assert_eq!(id.len(), crate::auth::encode_token("call", &[0; 16]).len());
    }

    #[test]
    fn is_a_uuid_v7_carrying_the_time() {
        let uuid = uuid_v7(T, &[0xff; ID_RANDOM_BYTES]);
        assert_eq!(uuid.get_version(), Some(Version::SortRand));
        assert_eq!(uuid.get_variant(), Variant::RFC4122);
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        assert_eq!(secs as i64 * 1000 + i64::from(nanos / 1_000_000), T);
    }

    #[test]
    fn later_ids_sort_after_earlier_ones_whatever_the_randomness() {
        let mut previous = encode_id("evt", T, &[0xff; ID_RANDOM_BYTES]);
        for step in [1, 2, 999, 1000, 60_000, 86_400_000, 10 * 365 * 86_400_000] {
            let next = encode_id("evt", T + step, &[0x00; ID_RANDOM_BYTES]);
            assert!(next > previous, "{next} <= {previous} at +{step} ms");
            previous = encode_id("evt", T + step, &[0xff; ID_RANDOM_BYTES]);
        }
    }

    #[test]
    fn randomness_tells_ids_of_the_same_millisecond_apart() {
        let mut random = [0u8; ID_RANDOM_BYTES];
        let a = encode_id("req", T, &random);
        random[9] = 1;
        assert_ne!(a, encode_id("req", T, &random));
        // Before 1970 is clamped rather than wrapped to the far future.
        assert!(encode_id("req", -5, &random) < a);
    }

    #[test]
    fn fails_closed_without_randomness() {
        assert_eq!(
            new_id("key", T, |_| Err("getrandom failed")),
            Err(NoRandomness("getrandom failed".into()))
        );
        let id = new_id("key", T, |b: &mut [u8]| {
            b.fill(7);
            Ok::<_, String>(())
        })
        .unwrap();
        assert_eq!(id, encode_id("key", T, &[7; ID_RANDOM_BYTES]));
    }

    proptest::proptest! {
        #[test]
        fn order_follows_time(
            a in 0i64..(1 << 47),
            b in 0i64..(1 << 47),
            ra in proptest::array::uniform10(proptest::num::u8::ANY),
            rb in proptest::array::uniform10(proptest::num::u8::ANY),
        ) {
            let (ia, ib) = (encode_id("x", a, &ra), encode_id("x", b, &rb));
            if a < b {
                proptest::prop_assert!(ia < ib);
            } else if a > b {
                proptest::prop_assert!(ia > ib);
            }
        }
    }
}
