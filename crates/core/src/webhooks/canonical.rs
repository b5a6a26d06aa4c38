//! Mapping of provider payloads to canonical `{type, timestamp, data}` events.
