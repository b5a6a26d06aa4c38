//! Signature verification (inbound, per provider) and Standard Webhooks signing (outbound).
