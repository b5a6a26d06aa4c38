//! phone-agent edge: wires Cloudflare bindings and I/O to the pure core.
