//! Carrier media streams: frame protocols per carrier, audio codecs and resampling.

pub mod twilio;
