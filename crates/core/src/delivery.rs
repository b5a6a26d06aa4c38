//! Delivery policy: retry schedule, jitter, response classification, `Retry-After`.
