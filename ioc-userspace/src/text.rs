//! Helpers for showing attacker-controlled text (indicator values, process names) in
//! messages without letting it forge lines or escape sequences.

/// At most `max` characters of `value`, with control characters and quotes escaped, and
/// `...` appended when shortened. Safe to embed in a log line.
pub fn quote_for_log(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max) + 2);
    out.push('"');
    for (count, ch) in value.chars().enumerate() {
        if count == max {
            out.push_str("...");
            break;
        }
        out.extend(ch.escape_debug());
    }
    out.push('"');
    out
}

/// A NUL-padded kernel string (such as `comm`) as text, invalid UTF-8 replaced.
pub fn from_nul_padded(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_control_characters() {
        assert_eq!(quote_for_log("a\nb\"c", 80), r#""a\nb\"c""#);
        assert_eq!(quote_for_log("\u{1b}[31m", 80), r#""\u{1b}[31m""#);
    }

    #[test]
    fn quote_truncates() {
        assert_eq!(quote_for_log("abcdef", 3), r#""abc...""#);
    }

    #[test]
    fn nul_padded() {
        assert_eq!(from_nul_padded(b"nc\0\0\0"), "nc");
        assert_eq!(from_nul_padded(b"full"), "full");
        assert_eq!(from_nul_padded(b"\xffx\0"), "\u{fffd}x");
    }
}
