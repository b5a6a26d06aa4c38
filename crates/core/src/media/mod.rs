//! Carrier media streams: frame protocols per carrier, audio codecs, resampling and framing.
//!
//! Outbound audio path: TTS bytes → [`transcode::Transcoder`] (to [`carrier::Carrier::format`])
//! → [`framing::Framer`] (of [`carrier::Carrier::frame_bytes`]) → [`carrier::Carrier::audio_frame`].
//! Inbound: [`carrier::Carrier::parse`] → [`carrier::CarrierEvent::Audio`] → STT (transcoded if
//! STT was told another format). [`access`] decides which socket may carry a call's stream.

pub mod access;
pub mod carrier;
pub mod codec;
pub mod exotel;
pub mod framing;
pub mod resample;
pub mod scan;
pub mod telnyx;
pub mod transcode;
pub mod twilio;
