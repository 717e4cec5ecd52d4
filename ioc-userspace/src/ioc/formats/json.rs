//! Shared helpers for the JSON readers: parsing with a located error, JSON paths, and
//! typed field access that records a reject instead of failing.

use serde_json::{Map, Value};

use super::model::{Location, Reject, Rejects};

/// Longest key shown in a JSON path.
const PATH_KEY_MAX: usize = 64;

/// Parses `text`, or returns the reject naming the line of the syntax error.
pub fn parse(text: &str, source: &str) -> Result<Value, Reject> {
    serde_json::from_str(text).map_err(|error| {
        let line = error.line();
        let shown = text
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("")
            .trim();
        Reject::new(
            source,
            Location::Line(line),
            shown,
            format!("invalid JSON: {error}"),
        )
    })
}

/// `base.key` for identifier-like keys, else `base["key"]` (escaped, truncated).
pub fn key_path(base: &str, key: &str) -> String {
    let simple = key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key.len() <= PATH_KEY_MAX
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if simple {
        return format!("{base}.{key}");
    }
    quoted_key_path(base, key)
}

/// `base["key"]` whatever the key (for ids and other data used as keys).
pub fn quoted_key_path(base: &str, key: &str) -> String {
    let mut shown: String = key.chars().take(PATH_KEY_MAX).collect();
    if shown.len() < key.len() {
        shown.push_str("...");
    }
    let quoted = serde_json::to_string(&shown).unwrap_or_else(|_| "\"?\"".into());
    format!("{base}[{quoted}]")
}

/// `base[index]`.
pub fn index_path(base: &str, index: usize) -> String {
    format!("{base}[{index}]")
}

/// Short text of a JSON value for a reject (strings unquoted, others as JSON).
pub fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.chars().take(300).collect(),
        Value::Array(_) => "[...]".into(),
        Value::Object(_) => "{...}".into(),
        other => other.to_string(),
    }
}

/// The reject for `value` at `path` not being the `expected` kind of JSON value.
pub fn wrong_type(source: &str, path: impl Into<String>, value: &Value, expected: &str) -> Reject {
    Reject::new(
        source,
        Location::Json(path.into()),
        &shown(value),
        format!("expected {expected}, found {}", type_of(value)),
    )
}

/// Name of a JSON value's type.
pub fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed access to the fields of one JSON object, recording rejects.
pub struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    pub source: &'a str,
    /// Where a field is, for rejects.
    pub locate: &'a dyn Fn(&str) -> Location,
    /// Whether reasons name the field (when the location does not, as in CSV lines).
    pub name_in_reason: bool,
}

impl Fields<'_> {
    pub fn reject(&self, rejects: &mut Rejects, key: &str, value: &str, reason: &str) {
        let reason = if self.name_in_reason {
            format!("{key}: {reason}")
        } else {
            reason.to_string()
        };
        rejects.push(Reject::new(self.source, (self.locate)(key), value, reason));
    }

    /// A string field; absent and `null` are `None`, another type is a reject (`Err`).
    pub fn opt_str(&self, key: &str, rejects: &mut Rejects) -> Result<Option<&str>, ()> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                let reason = format!("expected a string, found {}", type_of(other));
                self.reject(rejects, key, &shown(other), &reason);
                Err(())
            }
        }
    }

    /// Like [`Fields::opt_str`] but empty strings are `None` too, and the result owned.
    pub fn opt_text(&self, key: &str, rejects: &mut Rejects) -> Result<Option<String>, ()> {
        Ok(self
            .opt_str(key, rejects)?
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string))
    }

    /// A required, non-empty string field.
    pub fn req_str(&self, key: &str, rejects: &mut Rejects) -> Result<&str, ()> {
        match self.opt_str(key, rejects)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => {
                self.reject(rejects, key, "", &format!("missing {key}"));
                Err(())
            }
        }
    }

    /// An unsigned integer given as a number or a string of digits.
    pub fn opt_uint(&self, key: &str, max: u64, rejects: &mut Rejects) -> Result<Option<u64>, ()> {
        let value = match self.obj.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(value) => value,
        };
        let number = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) if s.trim().bytes().all(|b| b.is_ascii_digit()) => {
                s.trim().parse().ok()
            }
            _ => None,
        };
        match number {
            Some(n) if n <= max => Ok(Some(n)),
            _ => {
                self.reject(
                    rejects,
                    key,
                    &shown(value),
                    &format!("expected an integer 0-{max}"),
                );
                Err(())
            }
        }
    }

    /// A boolean given as `true`/`false`, `"True"`/`"False"`, `0`/`1` or `"0"`/`"1"`.
    pub fn opt_bool(&self, key: &str, rejects: &mut Rejects) -> Result<Option<bool>, ()> {
        let value = match self.obj.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
            Some(value) => value,
        };
        let flag = match value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => match n.as_u64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match flag {
            Some(flag) => Ok(Some(flag)),
            None => {
                self.reject(
                    rejects,
                    key,
                    &shown(value),
                    "expected a boolean (true/false, 0/1)",
                );
                Err(())
            }
        }
    }

    /// Tags as a comma-separated string or an array of strings.
    pub fn tags(&self, key: &str, rejects: &mut Rejects) -> Result<Vec<String>, ()> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(super::model::split_tags(s)),
            Some(Value::Array(items)) => {
                let mut tags = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => tags.push(s.trim().to_string()),
                        Value::String(_) | Value::Null => {}
                        other => {
                            self.reject(rejects, key, &shown(other), "tags must be strings");
                            return Err(());
                        }
                    }
                }
                Ok(tags)
            }
            Some(other) => {
                let reason = format!(
                    "expected tags as a string or an array, found {}",
                    type_of(other)
                );
                self.reject(rejects, key, &shown(other), &reason);
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(key_path("$", "1856791"), "$[\"1856791\"]");
        assert_eq!(
            key_path("$[\"1\"][0]", "ioc_value"),
            "$[\"1\"][0].ioc_value"
        );
        assert_eq!(key_path("$", "a\"\n"), "$[\"a\\\"\\n\"]");
        assert_eq!(
            key_path("$", &"k".repeat(100)),
            format!("$[\"{}...\"]", "k".repeat(64))
        );
        assert_eq!(index_path("$.data", 2), "$.data[2]");
    }

    #[test]
    fn syntax_error_names_line() {
        let reject = parse("{\n  \"a\": [1,\n  oops\n}", "f.json").unwrap_err();
        assert_eq!(
            reject.to_string(),
            "f.json:3: invalid indicator \"oops\": invalid JSON: expected value at line 3 column 3"
        );
    }
}
