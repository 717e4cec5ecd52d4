//! Path and token patterns for rules: exact text, a `/`-terminated prefix, or a glob.
//!
//! Globs know `*` (any run of characters except `/`), `**` (any run of characters,
//! `/` included) and `?` (one character except `/`). No character classes, no escapes:
//! a pattern without `*` or `?` is compared literally. Matching runs in
//! O(pattern × text) time whatever the input, so a hostile argument cannot make it slow.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    /// The rule gave a path ending in `/`: anything under it.
    Prefix(String),
    Glob(Vec<Piece>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    Char(char),
    /// `?`
    One,
    /// `*`
    Segment,
    /// `**`
    Any,
}

impl Pattern {
    /// `prefix_dirs`: whether a trailing `/` means "anything under this directory"
    /// (paths) or is literal (argument tokens).
    pub fn new(text: &str, prefix_dirs: bool) -> Self {
        if !text.contains(['*', '?']) {
            if prefix_dirs && text.ends_with('/') {
                return Self::Prefix(text.to_string());
            }
            return Self::Exact(text.to_string());
        }
        let mut pieces = Vec::with_capacity(text.len());
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            pieces.push(match c {
                '*' if chars.peek() == Some(&'*') => {
                    while chars.peek() == Some(&'*') {
                        chars.next();
                    }
                    Piece::Any
                }
                '*' => Piece::Segment,
                '?' => Piece::One,
                other => Piece::Char(other),
            });
        }
        Self::Glob(pieces)
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Self::Exact(exact) => text == exact,
            Self::Prefix(prefix) => text.starts_with(prefix.as_str()),
            Self::Glob(pieces) => glob_match(pieces, text),
        }
    }
}

fn glob_match(pieces: &[Piece], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    // row[j]: pieces[..i] match text[..j].
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for piece in pieces {
        let mut next = vec![false; text.len() + 1];
        match piece {
            Piece::Any | Piece::Segment => {
                let crosses_slash = matches!(piece, Piece::Any);
                for j in 0..=text.len() {
                    next[j] =
                        row[j] || (j > 0 && next[j - 1] && (crosses_slash || text[j - 1] != '/'));
                }
            }
            Piece::One => {
                for j in 1..=text.len() {
                    next[j] = row[j - 1] && text[j - 1] != '/';
                }
            }
            Piece::Char(c) => {
                for j in 1..=text.len() {
                    next[j] = row[j - 1] && text[j - 1] == *c;
                }
            }
        }
        row = next;
    }
    row[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_and_globs() {
        assert!(Pattern::new("/usr/bin/nc", true).matches("/usr/bin/nc"));
        assert!(!Pattern::new("/usr/bin/nc", true).matches("/usr/bin/nc.openbsd"));
        assert!(Pattern::new("/usr/bin/", true).matches("/usr/bin/nc"));
        assert!(!Pattern::new("/usr/bin/", false).matches("/usr/bin/nc"));
        assert!(Pattern::new("/usr/bin/nc*", true).matches("/usr/bin/nc.openbsd"));
        assert!(!Pattern::new("/usr/*/nc", true).matches("/usr/local/bin/nc"));
        assert!(Pattern::new("/usr/**/nc", true).matches("/usr/local/bin/nc"));
        assert!(Pattern::new("/var/log/**", false).matches("/var/log/nginx/access.log"));
        assert!(!Pattern::new("/var/log/**", false).matches("/var/logs"));
        assert!(Pattern::new("nc.???????", false).matches("nc.openbsd"));
        assert!(!Pattern::new("*", false).matches("a/b"));
        assert!(Pattern::new("*", false).matches(""));
        assert!(Pattern::new("é*", false).matches("été"));
    }

    #[test]
    fn long_hostile_text_is_fast() {
        let text = "a".repeat(20_000);
        assert!(!Pattern::new("*a*a*a*a*a*b", false).matches(&text));
    }
}
