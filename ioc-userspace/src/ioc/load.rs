//! Reading indicator files: every file parsed in full, every bad entry reported, and
//! any bad entry refuses the whole load (the running set stays in place).

use std::{fmt, path::PathBuf};

use time::OffsetDateTime;

use super::{formats::read_indicators, Filter, Format, ParsedIndicator, Reject};

#[derive(Debug)]
pub enum LoadError {
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    Invalid(Vec<Reject>),
}

/// At most this many rejects are shown in one error.
const SHOWN_REJECTS: usize = 20;

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, error } => write!(f, "cannot read {}: {error}", file.display()),
            Self::Invalid(rejects) => {
                write!(f, "{} invalid indicator(s), refused:", rejects.len())?;
                for reject in rejects.iter().take(SHOWN_REJECTS) {
                    write!(f, "\n  {reject}")?;
                }
                if rejects.len() > SHOWN_REJECTS {
                    write!(f, "\n  ... and {} more", rejects.len() - SHOWN_REJECTS)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// What a load read and what the filter dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub files: usize,
    pub read: usize,
    pub filtered_out: usize,
}

/// One file to read: where it is, the name records and errors give it (a feed's cached
/// copy is named by its URL), and its format.
#[derive(Clone, Debug)]
pub struct Source {
    pub path: PathBuf,
    pub name: String,
    pub format: Format,
}

/// Reads every file (`format` forced, or detected per file for `Format::Auto`), then
/// applies `filter`.
pub fn load_sources(
    paths: &[PathBuf],
    format: Format,
    filter: &Filter,
) -> Result<(Vec<ParsedIndicator>, LoadReport), LoadError> {
    let sources: Vec<Source> = paths
        .iter()
        .map(|path| Source {
            path: path.clone(),
            name: path.display().to_string(),
            format,
        })
        .collect();
    load_named(&sources, filter)
}

/// [`load_sources`] for named sources.
pub fn load_named(
    sources: &[Source],
    filter: &Filter,
) -> Result<(Vec<ParsedIndicator>, LoadReport), LoadError> {
    let mut all = Vec::new();
    let mut rejects = Vec::new();
    for Source { path, name, format } in sources {
        let bytes = std::fs::read(path).map_err(|error| LoadError::Read {
            file: path.clone(),
            error,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        match read_indicators(&text, name, *format) {
            Ok(mut parsed) => all.append(&mut parsed),
            Err(mut bad) => rejects.append(&mut bad),
        }
    }
    if !rejects.is_empty() {
        return Err(LoadError::Invalid(rejects));
    }
    let read = all.len();
    if !filter.is_empty() {
        let now = OffsetDateTime::now_utc();
        all.retain(|indicator| filter.keeps(indicator, now));
    }
    let report = LoadReport {
        files: sources.len(),
        read,
        filtered_out: read - all.len(),
    };
    Ok((all, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_file_line_and_value_and_refuses_the_load() {
        let dir = std::env::temp_dir().join(format!("iocmon-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        let bad = dir.join("bad.txt");
        std::fs::write(&good, "127.0.0.2:4444\n").unwrap();
        std::fs::write(&bad, "127.0.0.2:4444\n300.1.1.1\n").unwrap();
        let err = load_sources(
            &[good.clone(), bad.clone()],
            Format::Auto,
            &Filter::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!(
                "{}:2: invalid indicator \"300.1.1.1\"",
                bad.display()
            )),
            "{err}"
        );
        let (ok, report) = load_sources(&[good], Format::Auto, &Filter::default()).unwrap();
        assert_eq!((ok.len(), report.read, report.filtered_out), (1, 1, 0));
        let missing =
            load_sources(&[dir.join("missing.txt")], Format::Auto, &Filter::default()).unwrap_err();
        assert!(missing.to_string().contains("missing.txt"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
