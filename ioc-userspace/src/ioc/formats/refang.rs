//! Refanging: undoing the common ways reports "defang" indicators so nobody clicks them.
//!
//! One left-to-right pass, each position checked against a short fixed table, so the work
//! is linear in the input. Only bracketed forms are rewritten (`[.]`, `(dot)`, ...), plus a
//! leading `hxxp`/`hxxps` scheme; bare words (` dot `) are left alone because they occur in
//! prose and would turn sentences into false indicators.

use std::borrow::Cow;

/// Bracketed defanged tokens and what they stand for (matched case-insensitively).
const TOKENS: &[(&str, &str)] = &[
    ("[://]", "://"),
    ("[.]", "."),
    ("(.)", "."),
    ("{.}", "."),
    ("[dot]", "."),
    ("(dot)", "."),
    ("{dot}", "."),
    ("[:]", ":"),
    ("(:)", ":"),
    ("{:}", ":"),
    ("[/]", "/"),
    ("[@]", "@"),
    ("(@)", "@"),
    ("{@}", "@"),
    ("[at]", "@"),
    ("(at)", "@"),
    ("{at}", "@"),
];

/// The value with defanged forms restored; borrowed when nothing changed.
pub fn refang(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim();
    let scheme_len = defanged_scheme_len(trimmed);
    if scheme_len == 0 && !trimmed.bytes().any(|b| matches!(b, b'[' | b'(' | b'{')) {
        return Cow::Borrowed(trimmed);
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut rest = trimmed;
    if scheme_len > 0 {
        out.push_str(if scheme_len == 5 { "https" } else { "http" });
        rest = &rest[scheme_len..];
    }
    'outer: while let Some(ch) = rest.chars().next() {
        if matches!(ch, '[' | '(' | '{') {
            for (token, replacement) in TOKENS {
                if rest
                    .get(..token.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(token))
                {
                    out.push_str(replacement);
                    rest = &rest[token.len()..];
                    continue 'outer;
                }
            }
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    Cow::Owned(out)
}

/// Length of a leading `hxxp` / `hxxps` (any case, `x` or `X`) that is followed by `:` or
/// `[`, else 0.
fn defanged_scheme_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let is = |i: usize, set: &[u8]| bytes.get(i).is_some_and(|b| set.contains(b));
    if !(is(0, b"hH") && is(1, b"xX") && is(2, b"xX") && is(3, b"pP")) {
        return 0;
    }
    let len = if is(4, b"sS") { 5 } else { 4 };
    if is(len, b":[") {
        len
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form() {
        let cases = [
            ("1.2.3[.]4", "1.2.3.4"),
            ("216[.]128[.]153[.]60:51515", "216.128.153.60:51515"),
            ("example(.)com", "example.com"),
            ("example{.}com", "example.com"),
            ("example[dot]com", "example.com"),
            ("example[DOT]com", "example.com"),
            ("example(dot)com", "example.com"),
            ("hxxp://evil.com/x", "http://evil.com/x"),
            ("hXXp://evil.com/x", "http://evil.com/x"),
            ("hxxps://evil.com/x", "https://evil.com/x"),
            ("HXXPS://evil.com/x", "https://evil.com/x"),
            ("1.2.3.4[:]8080", "1.2.3.4:8080"),
            ("http[:]//evil.com", "http://evil.com"),
            ("http[://]evil.com", "http://evil.com"),
            ("hxxp[://]evil[.]com[/]a", "http://evil.com/a"),
            ("user[@]evil.com", "user@evil.com"),
            ("user(at)evil.com", "user@evil.com"),
            ("  evil[.]com  ", "evil.com"),
        ];
        for (defanged, fanged) in cases {
            assert_eq!(refang(defanged), fanged, "{defanged}");
        }
    }

    #[test]
    fn leaves_other_text_alone() {
        assert!(matches!(refang("1.2.3.4"), Cow::Borrowed("1.2.3.4")));
        assert_eq!(refang("[2001:db8::1]:443"), "[2001:db8::1]:443");
        assert_eq!(refang("hxxpfoo.com"), "hxxpfoo.com");
        assert_eq!(refang("a.com/hxxp://b"), "a.com/hxxp://b");
        assert_eq!(refang("(x)[y]{z}é["), "(x)[y]{z}é[");
    }
}
