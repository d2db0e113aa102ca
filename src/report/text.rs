//! Text from the network as it may be stored, logged and shown: escaped and bounded.

/// Most bytes of a message from the network kept in a failure: enough for any real S3 message,
/// small enough that a hostile endpoint cannot fill memory, logs or the status page.
pub const MAX_MESSAGE: usize = 512;

/// Most bytes of a code or request ID from the network (real ones are under 100).
pub const MAX_TOKEN: usize = 128;

/// `s` as it may be stored, logged and shown: control characters escaped (`\n` as `\\n`, others
/// as `\u{..}`), so text from the network can never start a log line of its own, and at most
/// `max` bytes, the cut said with how much was left out.
pub fn bounded_text(s: &str, max: usize) -> String {
    // Most text is short printable ASCII: nothing to escape or cut.
    if s.len() <= max && s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len().min(max) + 32);
    for (i, c) in s.char_indices() {
        let (mut utf8, escaped);
        let piece: &str = match c {
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c.is_control() => {
                escaped = c.escape_unicode().to_string();
                &escaped
            }
            c => {
                utf8 = [0u8; 4];
                c.encode_utf8(&mut utf8)
            }
        };
        if out.len() + piece.len() > max {
            out.push_str(&format!(" [truncated: {} more bytes]", s.len() - i));
            return out;
        }
        out.push_str(piece);
    }
    out
}

/// An optional value as a log field: the value, or `-`.
pub fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_network_is_escaped_and_bounded() {
        assert_eq!(bounded_text("plain", 10), "plain");
        let forged = "x\n2026-11-24T03:00:00Z INFO s3canary: FORGED\r\u{1b}[2m";
        let t = bounded_text(forged, 200);
        assert!(
            !t.contains('\n') && !t.contains('\r') && !t.contains('\u{1b}'),
            "{t}"
        );
        assert!(t.starts_with("x\\n2026"), "{t}");
        let long = "é".repeat(1000);
        let t = bounded_text(&long, 100);
        assert!(t.len() < 140, "{}", t.len());
        assert!(t.ends_with("[truncated: 1900 more bytes]"), "{t}");
        let t = bounded_text(&"a".repeat(300), 100);
        assert_eq!(
            t,
            format!("{} [truncated: 200 more bytes]", "a".repeat(100))
        );
        assert_eq!(bounded_text("a\ttab", 100), "a\\ttab");
    }
}
