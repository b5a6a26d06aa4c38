//! Wire protocols of STT, LLM and TTS providers.
