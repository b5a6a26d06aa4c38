// Shared by the targets: cuts fuzz input into fields at 0xFF bytes (never valid UTF-8, so
// fields stay independent) so one byte string drives several inputs of a parser.

/// Splits `data` into at most `n` fields at 0xFF.
pub fn fields(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |b| *b == 0xFF).collect();
    out.resize(n, &[]);
    out
}

/// Lossy text of a field.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Header pairs from `name:value` lines of a field, lower-cased names as the edge passes them.
pub fn headers(bytes: &[u8]) -> Vec<(String, String)> {
    text(bytes)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}
