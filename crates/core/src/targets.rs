//! Forward-target checks (SSRF): which URLs the gateway may deliver to.
