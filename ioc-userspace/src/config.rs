//! The configuration file of `iocmon run` (TOML), merged with the command line.
//!
//! The file's keys are the long options of `iocmon run` and the global `log-level`,
//! without the leading `--`: `feed-interval = 60`, `iocs = ["/a", "/b"]`,
//! `all-connections = true`. Nothing here lists the options: the keys, and what shape of
//! value each takes, come from clap's definition of the command, and every value becomes
//! a `--key=value` token that clap's own value parsers judge. So the file accepts exactly
//! what the command line accepts, and an option added to `RunArgs` is a key at once.
//!
//! Precedence, per option: the command line, then the file, then the option's default.
//! An option given on the command line replaces the file's value entirely, a list too.
//!
//! Errors name the file, the line and the key, and say why in one line; nothing that a
//! file contains can make this code panic.

use std::{
    ffi::{OsStr, OsString},
    fmt,
    io::Read as _,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Result};
use clap::{
    error::{ContextKind, ContextValue, ErrorKind},
    parser::ValueSource,
    ArgAction, ArgMatches, Args as _, CommandFactory as _, FromArgMatches as _,
};
use toml::{
    de::{DeTable, DeValue},
    Spanned,
};

use crate::{
    agent::RunOptions,
    cli::{Cli, Command, ConfigFileArgs},
};

/// The file `iocmon run` reads when the command line has neither `--config` nor
/// `--no-config`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/iocmon/iocmon.toml";

/// Larger files are refused: a configuration is a few kilobytes, and `--config /dev/zero`
/// must end in an error rather than read forever.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// How many characters of a key or value an error message shows.
const MAX_SHOWN_CHARS: usize = 100;

/// How many characters of a parser's reason an error message shows: enough for a list of
/// the accepted values.
const MAX_REASON_CHARS: usize = 300;

/// Keys longer than this get no "did you mean" (and cost no edit-distance work).
const MAX_SUGGESTABLE_CHARS: usize = 64;

/// Where `iocmon run`'s settings come from: its command line, and the configuration file
/// that the command line names (or the default file).
///
/// It keeps the command line, so [`ConfigSource::load`] can run again at any time (at
/// SIGHUP) and re-read the file with the same command-line overrides.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    args: Vec<OsString>,
    default_path: PathBuf,
}

/// Settings for one start (or reload) of `iocmon run`.
#[derive(Debug)]
pub struct RunConfig {
    pub options: RunOptions,
    /// The global `log-level` (command line, file or default).
    pub log_level: log::LevelFilter,
    /// Which file was read, if any.
    pub file: ConfigFile,
    /// Every key with its effective value and where that came from, in the order of
    /// `iocmon run --help`.
    pub settings: Vec<Setting>,
}

/// Which configuration file a load read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigFile {
    /// This file (named by `--config`, or the default file, which exists).
    Read(PathBuf),
    /// None: the default file does not exist.
    DefaultAbsent(PathBuf),
    /// None: `--no-config`.
    Disabled,
}

/// One key's effective value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The long option without `--`, e.g. `feed-interval`.
    pub key: String,
    /// The value as TOML: `3600`, `"stdout"`, `["/a", "/b"]`, `true`. `None` when the
    /// option is unset and has no default value.
    pub value: Option<String>,
    pub origin: Origin,
}

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File,
    CommandLine,
}

impl ConfigSource {
    /// `args` is a whole `iocmon [GLOBAL OPTIONS] run [OPTIONS]` command line, program
    /// name first, as the process got it (`std::env::args_os()`).
    pub fn new(args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        ConfigSource {
            args: args.into_iter().map(Into::into).collect(),
            default_path: PathBuf::from(DEFAULT_CONFIG_PATH),
        }
    }

    /// What `iocmon run` would use with the file `config` (the default file when `None`),
    /// keeping the global options (such as `--log-level`) that `args`, any `iocmon`
    /// command line, gives. For `iocmon config check`.
    pub fn for_config_check(args: &[OsString], config: Option<&Path>) -> Result<Self> {
        let catalogue = Catalogue::new()?;
        let matches = catalogue
            .cli
            .clone()
            .try_get_matches_from(args)
            .map_err(|err| anyhow!("command line: {}", clap_reason(&err)))?;
        let mut run_args: Vec<OsString> = vec![
            args.first().cloned().unwrap_or_else(|| "iocmon".into()),
            "run".into(),
        ];
        if let Some(path) = config {
            run_args.push("--config".into());
            run_args.push(path.into());
        }
        for key in catalogue.keys.iter().filter(|key| key.top_level) {
            if matches.value_source(&key.id) == Some(ValueSource::CommandLine) {
                run_args.extend(command_line_tokens(&matches, key));
            }
        }
        Ok(ConfigSource::new(run_args))
    }

    /// Uses `path` instead of [`DEFAULT_CONFIG_PATH`] when the command line names no file.
    pub fn with_default_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.default_path = path.into();
        self
    }

    /// Reads the configuration file (again, when called again) and merges it with the
    /// command line and the defaults.
    ///
    /// Errors are one line each, and name the file, line and key: a syntax error
    /// (`FILE:LINE:COLUMN: toml's message`), an unknown key, a value of the wrong TOML
    /// type, or a value that the option's parser refuses (with its reason). An explicit
    /// `--config FILE` that cannot be read is an error; an absent default file is not.
    pub fn load(&self) -> Result<RunConfig> {
        let catalogue = Catalogue::new()?;
        let command_line = catalogue
            .cli
            .clone()
            .try_get_matches_from(&self.args)
            .map_err(|err| anyhow!("command line: {}", clap_reason(&err)))?;
        let Some(("run", run_matches)) = command_line.subcommand() else {
            bail!("internal error: ConfigSource needs an `iocmon run` command line");
        };
        let config_file_args = ConfigFileArgs::from_arg_matches(run_matches)
            .map_err(|err| anyhow!("command line: {}", clap_reason(&err)))?;
        let file = self.choose_file(&config_file_args);

        let from_file = match file.path() {
            Some(path) => parse_settings(path, &read_text(path)?, &catalogue)?,
            None => Vec::new(),
        };
        let on_command_line =
            |key: &Key| catalogue.set_on_command_line(&command_line, run_matches, key);
        let file_tokens = from_file
            .iter()
            .filter(|setting| !on_command_line(&catalogue.keys[setting.key]))
            .flat_map(|setting| setting.tokens.iter().cloned())
            .collect();
        let merged = catalogue
            .cli
            .clone()
            .try_get_matches_from(with_file_tokens(&self.args, file_tokens))
            .map_err(|err| match file.path() {
                Some(path) => anyhow!("{}: {}", path.display(), clap_reason(&err)),
                None => anyhow!("command line: {}", clap_reason(&err)),
            })?;
        let Some(("run", merged_run)) = merged.subcommand() else {
            bail!("internal error: the merged command line is not `iocmon run`");
        };

        let settings = catalogue
            .keys
            .iter()
            .map(|key| {
                let origin = if on_command_line(key) {
                    Origin::CommandLine
                } else if from_file
                    .iter()
                    .any(|setting| catalogue.keys[setting.key].id == key.id)
                {
                    Origin::File
                } else {
                    Origin::Default
                };
                Setting {
                    key: key.name.clone(),
                    value: effective_value(merged_run, key),
                    origin,
                }
            })
            .collect();

        let cli = Cli::from_arg_matches(&merged)
            .map_err(|err| anyhow!("internal error: {}", clap_reason(&err)))?;
        let Command::Run(run) = cli.command else {
            bail!("internal error: the merged command line is not `iocmon run`");
        };
        Ok(RunConfig {
            options: run.options.into_options(),
            log_level: cli.log_level,
            file,
            settings,
        })
    }

    fn choose_file(&self, args: &ConfigFileArgs) -> ConfigFile {
        if args.no_config {
            return ConfigFile::Disabled;
        }
        if let Some(path) = &args.config {
            return ConfigFile::Read(path.clone());
        }
        match self.default_path.try_exists() {
            Ok(false) => ConfigFile::DefaultAbsent(self.default_path.clone()),
            // Present, or unknowable (a directory we may not search): reading it reports
            // the real problem.
            Ok(true) | Err(_) => ConfigFile::Read(self.default_path.clone()),
        }
    }
}

impl RunConfig {
    /// The settings as TOML, one key a line, each with its origin in a comment: the
    /// output of `iocmon config check`, itself a valid configuration file.
    pub fn settings_text(&self) -> String {
        let width = self
            .settings
            .iter()
            .map(|setting| setting.key.len())
            .max()
            .unwrap_or(0);
        let mut text = String::new();
        for setting in &self.settings {
            let line = match &setting.value {
                Some(value) => format!("{:width$} = {value}  # {}\n", setting.key, setting.origin),
                None => format!(
                    "# {:pad$} = (not set)\n",
                    setting.key,
                    pad = width.saturating_sub(2)
                ),
            };
            text.push_str(&line);
        }
        text
    }
}

impl ConfigFile {
    /// The file that was read.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigFile::Read(path) => Some(path),
            ConfigFile::DefaultAbsent(_) | ConfigFile::Disabled => None,
        }
    }
}

impl fmt::Display for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigFile::Read(path) => write!(f, "configuration file {}", path.display()),
            ConfigFile::DefaultAbsent(path) => write!(
                f,
                "no configuration file ({} does not exist)",
                path.display()
            ),
            ConfigFile::Disabled => write!(f, "no configuration file (--no-config)"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Default => "default",
            Origin::File => "file",
            Origin::CommandLine => "command line",
        })
    }
}

/// How a key's TOML value becomes command-line tokens, from the option's clap action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// A flag: `true` gives it, `false` leaves it out.
    Flag,
    /// A flag that counts its occurrences (`-vvv`): a small non-negative integer.
    Count,
    /// An option with one value: a string or a number.
    Single,
    /// A repeatable option: an array of values, or one value.
    List,
}

/// One option that a configuration file can set.
#[derive(Clone, Debug)]
struct Key {
    /// The long option without `--`: the key in the file.
    name: String,
    /// clap's id, for looking the option up in matches.
    id: String,
    shape: Shape,
    /// Defined on `iocmon` itself (a global option), not only on `run`.
    top_level: bool,
}

/// The `iocmon` command as clap knows it, and the keys it gives a configuration file.
struct Catalogue {
    /// Built, so that `run` also holds the global options.
    cli: clap::Command,
    /// `run`'s options (global ones included) that a file may set, in help order.
    keys: Vec<Key>,
    /// `config`, `no-config`: they say which file to read, so a file cannot set them.
    command_line_only: Vec<String>,
}

impl Catalogue {
    fn new() -> Result<Self> {
        let mut cli = Cli::command();
        cli.build();
        let command_line_only: Vec<String> =
            ConfigFileArgs::augment_args(clap::Command::new("config-file"))
                .get_arguments()
                .filter_map(|arg| arg.get_long().map(str::to_string))
                .collect();
        let run = cli
            .find_subcommand("run")
            .ok_or_else(|| anyhow!("internal error: `iocmon` has no `run` subcommand"))?;
        let keys = run
            .get_arguments()
            .filter_map(|arg| {
                let name = arg.get_long()?;
                if command_line_only.iter().any(|only| only == name) {
                    return None;
                }
                let shape = match arg.get_action() {
                    ArgAction::SetTrue | ArgAction::SetFalse => Shape::Flag,
                    ArgAction::Count => Shape::Count,
                    ArgAction::Set => Shape::Single,
                    ArgAction::Append => Shape::List,
                    // --help, --version: actions, not settings.
                    _ => return None,
                };
                let id = arg.get_id().as_str();
                Some(Key {
                    name: name.to_string(),
                    id: id.to_string(),
                    shape,
                    top_level: cli.get_arguments().any(|top| top.get_id() == id),
                })
            })
            .collect();
        Ok(Catalogue {
            cli,
            keys,
            command_line_only,
        })
    }

    /// Whether the command line itself gave this option (as opposed to its default).
    fn set_on_command_line(&self, command_line: &ArgMatches, run: &ArgMatches, key: &Key) -> bool {
        let given =
            |matches: &ArgMatches| matches.value_source(&key.id) == Some(ValueSource::CommandLine);
        // A global option given before `run` is recorded on `iocmon`'s own matches.
        given(run) || (key.top_level && given(command_line))
    }
}

/// The tokens that gave `key` on a command line, rebuilt from what clap recorded.
fn command_line_tokens(matches: &ArgMatches, key: &Key) -> Vec<OsString> {
    let flag = format!("--{}", key.name);
    match key.shape {
        Shape::Flag => vec![flag.into()],
        Shape::Count | Shape::Single | Shape::List => matches
            .get_raw(&key.id)
            .into_iter()
            .flatten()
            .map(|value| option_token(&key.name, value))
            .collect(),
    }
}

/// `--name=value`: in this form clap never takes the value for another option, even when
/// it starts with `-`.
fn option_token(name: &str, value: &OsStr) -> OsString {
    let mut token = OsString::from(format!("--{name}="));
    token.push(value);
    token
}

/// One key of a configuration file, as command-line tokens.
struct FileSetting {
    /// Index into [`Catalogue::keys`].
    key: usize,
    tokens: Vec<OsString>,
}

/// `file:line`, to start an error message.
struct Location<'a> {
    path: &'a Path,
    line: usize,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// The file's text; `path` only names it in errors.
fn read_text(path: &Path) -> Result<String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|err| anyhow!("{shown}: cannot read: {err}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| anyhow!("{shown}: cannot read: {err}"))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        bail!(
            "{shown}: larger than {} MiB, so not an iocmon configuration file",
            MAX_CONFIG_BYTES >> 20
        );
    }
    String::from_utf8(bytes).map_err(|err| {
        let (line, column) = line_and_column(err.as_bytes(), err.utf8_error().valid_up_to());
        anyhow!("{shown}:{line}:{column}: not UTF-8 text")
    })
}

/// Parses and checks a configuration file's text: every key known and every value
/// accepted by its option's parser. Keys come out in file order.
fn parse_settings(path: &Path, text: &str, catalogue: &Catalogue) -> Result<Vec<FileSetting>> {
    let document = DeTable::parse(text).map_err(|err| {
        let message = shown(err.message(), MAX_REASON_CHARS);
        match err.span() {
            Some(span) => {
                let (line, column) = line_and_column(text.as_bytes(), span.start);
                anyhow!("{}:{line}:{column}: {message}", path.display())
            }
            None => anyhow!("{}: {message}", path.display()),
        }
    })?;
    let mut entries: Vec<_> = document.get_ref().iter().collect();
    // The map is sorted by key; errors read better in the file's own order.
    entries.sort_by_key(|(key, _)| key.span().start);

    let mut settings = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let at = Location {
            path,
            line: line_and_column(text.as_bytes(), key.span().start).0,
        };
        let name: &str = key.get_ref();
        if catalogue.command_line_only.iter().any(|only| only == name) {
            bail!("{at}: `{name}` cannot be set in a configuration file (it chooses the file); use --{name} on the command line");
        }
        let Some(index) = catalogue.keys.iter().position(|known| known.name == name) else {
            return Err(match closest_key(name, &catalogue.keys) {
                Some(close) => anyhow!(
                    "{at}: unknown key `{}` (did you mean `{close}`?)",
                    shown(name, MAX_SHOWN_CHARS)
                ),
                None => anyhow!("{at}: unknown key `{}`", shown(name, MAX_SHOWN_CHARS)),
            });
        };
        let spec = &catalogue.keys[index];
        let values = values_of(path, text, spec, value)?;
        let mut tokens = Vec::with_capacity(values.len());
        for (value, span) in values {
            let token = match spec.shape {
                Shape::Flag | Shape::Count => OsString::from(format!("--{}", spec.name)),
                Shape::Single | Shape::List => option_token(&spec.name, OsStr::new(&value)),
            };
            let value_at = Location {
                path,
                line: line_and_column(text.as_bytes(), span.start).0,
            };
            check_token(catalogue, &value_at, spec, &value, &token)?;
            tokens.push(token);
        }
        settings.push(FileSetting { key: index, tokens });
    }
    Ok(settings)
}

/// The values a key's TOML value stands for, as text with the span of each, or an error
/// naming the type the key needs. A flag yields one (empty) value per occurrence.
fn values_of(
    path: &Path,
    text: &str,
    spec: &Key,
    value: &Spanned<DeValue>,
) -> Result<Vec<(String, std::ops::Range<usize>)>> {
    let locate = |span: std::ops::Range<usize>| Location {
        path,
        line: line_and_column(text.as_bytes(), span.start).0,
    };
    let at = locate(value.span());
    let wrong_type = |expected: &str, found: &DeValue| {
        anyhow!(
            "{at}: `{}` must be {expected}, not {}",
            spec.name,
            with_article(found.type_str())
        )
    };
    match spec.shape {
        Shape::Flag => match value.get_ref() {
            DeValue::Boolean(true) => Ok(vec![(String::new(), value.span())]),
            DeValue::Boolean(false) => Ok(Vec::new()),
            other => Err(wrong_type("true or false", other)),
        },
        Shape::Count => {
            let count = match value.get_ref() {
                DeValue::Integer(integer) => {
                    u8::from_str_radix(integer.as_str(), integer.radix()).ok()
                }
                _ => None,
            };
            match count {
                Some(count) => Ok(vec![(String::new(), value.span()); usize::from(count)]),
                None => Err(wrong_type("an integer from 0 to 255", value.get_ref())),
            }
        }
        Shape::Single => match scalar_text(value.get_ref()) {
            Some(text) => Ok(vec![(text, value.span())]),
            None => Err(wrong_type("a string or a number", value.get_ref())),
        },
        Shape::List => match value.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match scalar_text(item.get_ref()) {
                    Some(text) => Ok((text, item.span())),
                    None => Err(anyhow!(
                        "{}: `{}` must be an array of strings; item {} is {}",
                        locate(item.span()),
                        spec.name,
                        index + 1,
                        with_article(item.get_ref().type_str())
                    )),
                })
                .collect(),
            other => match scalar_text(other) {
                Some(text) => Ok(vec![(text, value.span())]),
                None => Err(wrong_type("an array of strings (or one string)", other)),
            },
        },
    }
}

/// A string or number as the text a command line would carry. Numbers are accepted
/// wherever a string is: the option's parser decides whether the text suits it.
fn scalar_text(value: &DeValue) -> Option<String> {
    match value {
        DeValue::String(text) => Some(text.to_string()),
        DeValue::Integer(integer) => Some(
            i128::from_str_radix(integer.as_str(), integer.radix())
                .map_or_else(|_| integer.to_string(), |number| number.to_string()),
        ),
        DeValue::Float(float) => Some(float.as_str().to_string()),
        DeValue::Boolean(_) | DeValue::Datetime(_) | DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

fn with_article(type_name: &str) -> String {
    let article = if type_name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {type_name}")
}

/// Runs one token through clap alone, so that a refusal names this key and value.
fn check_token(
    catalogue: &Catalogue,
    at: &Location,
    spec: &Key,
    value: &str,
    token: &OsStr,
) -> Result<()> {
    let args = [OsStr::new("iocmon"), OsStr::new("run"), token];
    match catalogue.cli.clone().try_get_matches_from(args) {
        Ok(_) => Ok(()),
        // Another option's absence: the merged command line judges that.
        Err(err) if err.kind() == ErrorKind::MissingRequiredArgument => Ok(()),
        Err(err) => Err(anyhow!(
            "{at}: invalid value {} for `{}`: {}",
            crate::text::quote_for_log(value, MAX_SHOWN_CHARS),
            spec.name,
            clap_reason(&err)
        )),
    }
}

/// Why clap refused something, in one line, naming options by their key (`feed-interval`)
/// rather than as `--feed-interval <SECS>`.
fn clap_reason(err: &clap::Error) -> String {
    let specific = match err.kind() {
        // The value parser's own message, without clap's "invalid value ... for ...".
        ErrorKind::ValueValidation => std::error::Error::source(err).map(ToString::to_string),
        ErrorKind::InvalidValue => match err.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(valid)) if !valid.is_empty() => {
                Some(format!("expected one of: {}", valid.join(", ")))
            }
            _ => match err.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(value)) if value.is_empty() => {
                    Some("an empty value is not allowed".to_string())
                }
                _ => None,
            },
        },
        _ => None,
    };
    let reason = specific.unwrap_or_else(|| {
        let rendered = err.render().to_string();
        let first_line = rendered.lines().next().unwrap_or_default();
        let mut reason = first_line
            .strip_prefix("error: ")
            .unwrap_or(first_line)
            .to_string();
        for kind in [ContextKind::InvalidArg, ContextKind::PriorArg] {
            let names = match err.get(kind) {
                Some(ContextValue::String(name)) => vec![name.clone()],
                Some(ContextValue::Strings(names)) => names.clone(),
                _ => Vec::new(),
            };
            for name in names {
                reason = reason.replace(&format!("'{name}'"), &key_of_usage(&name));
            }
        }
        reason
    });
    shown(&reason, MAX_REASON_CHARS)
}

/// `--feed-interval <SECS>` -> `` `feed-interval` ``.
fn key_of_usage(usage: &str) -> String {
    let long = usage.strip_prefix("--").unwrap_or(usage);
    let key = long.split([' ', '=']).next().unwrap_or(long);
    format!("`{key}`")
}

/// `text` safe for a one-line message: control characters escaped, at most `max`
/// characters then `...`.
fn shown(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 2));
    for (count, ch) in text.chars().enumerate() {
        if count == max {
            out.push_str("...");
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_debug());
        } else {
            out.push(ch);
        }
    }
    out
}

/// 1-based line and column (in characters) of byte `offset` of `bytes`.
fn line_and_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = bytes.get(..offset).unwrap_or(bytes);
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// The known key closest to a mistyped one, when one is close enough to be a likely
/// typo: `feed_interval` and `fed-interval` give `feed-interval`.
fn closest_key<'k>(unknown: &str, keys: &'k [Key]) -> Option<&'k str> {
    if unknown.chars().count() > MAX_SUGGESTABLE_CHARS {
        return None;
    }
    // Struct field names and capitalised spellings are common mistakes.
    let normalized = unknown.to_lowercase().replace('_', "-");
    keys.iter()
        .map(|key| (edit_distance(&normalized, &key.name), key.name.as_str()))
        // Up to one edit per three characters: `ioc` -> `iocs`, but not `foo` -> `feed`.
        .filter(|(distance, name)| distance * 3 <= name.len().max(3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance (insertions, deletions, substitutions) in characters.
fn edit_distance(from: &str, to: &str) -> usize {
    let to: Vec<char> = to.chars().collect();
    let mut previous: Vec<usize> = (0..=to.len()).collect();
    for (row, from_char) in from.chars().enumerate() {
        let mut current = Vec::with_capacity(to.len() + 1);
        current.push(row + 1);
        for (column, to_char) in to.iter().enumerate() {
            let substitute = previous[column] + usize::from(from_char != *to_char);
            let delete = previous[column + 1] + 1;
            let insert = current[column] + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous[to.len()]
}

/// The command line with the file's tokens added where they are still options: before a
/// `--` that ends the options, else at the end (everything after `run` is `run`'s).
fn with_file_tokens(args: &[OsString], file_tokens: Vec<OsString>) -> Vec<OsString> {
    let end_of_options = args
        .iter()
        .skip(1)
        .position(|arg| arg == "--")
        .map_or(args.len(), |position| position + 1);
    let mut merged = Vec::with_capacity(args.len() + file_tokens.len());
    merged.extend_from_slice(&args[..end_of_options]);
    merged.extend(file_tokens);
    merged.extend_from_slice(&args[end_of_options..]);
    merged
}

/// The option's value in `matches` as TOML text, from clap's raw values (a default
/// included).
fn effective_value(matches: &ArgMatches, key: &Key) -> Option<String> {
    let raw: Vec<String> = matches
        .get_raw(&key.id)
        .into_iter()
        .flatten()
        .map(|value| value.to_string_lossy().into_owned())
        .collect();
    match key.shape {
        Shape::List => Some(format!(
            "[{}]",
            raw.iter()
                .map(|value| toml_string(value))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        // "true"/"false" for flags, a number for counts: already TOML.
        Shape::Flag | Shape::Count => raw.last().cloned(),
        Shape::Single => raw.last().map(|value| toml_scalar(value)),
    }
}

/// A number stays a number; anything else becomes a string. Both read back the same,
/// since every value reaches the option's parser as text.
fn toml_scalar(value: &str) -> String {
    match value.parse::<i64>() {
        Ok(number) if number.to_string() == value => value.to_string(),
        _ => toml_string(value),
    }
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            ch if ch.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(ch))),
            ch => out.push(ch),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicU32, Ordering},
        time::Duration,
    };

    use clap::CommandFactory as _;
    use proptest::prelude::*;

    use super::*;

    /// The service configuration that packages install as /etc/iocmon/iocmon.toml.
    const PACKAGED: &str = include_str!("../../packaging/iocmon.toml");

    /// A fresh file holding `text`; tests run in parallel, so each gets its own.
    fn config_file(text: impl AsRef<[u8]>) -> PathBuf {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!("iocmon-config-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the scratch directory");
        let path = dir.join(format!("{}.toml", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, text).expect("writing a test configuration");
        path
    }

    /// A source whose default file cannot exist, so a test never reads the machine's.
    fn source(args: &[&str]) -> ConfigSource {
        ConfigSource::new(args.iter().copied())
            .with_default_path("/nonexistent/iocmon-unit-test/iocmon.toml")
    }

    /// `iocmon run --config FILE EXTRA...` with `text` in FILE.
    fn load(text: &str, extra: &[&str]) -> (PathBuf, Result<RunConfig>) {
        let path = config_file(text);
        let path_arg = path.to_string_lossy().into_owned();
        let mut args = vec!["iocmon", "run", "--config", &path_arg];
        args.extend_from_slice(extra);
        let loaded = source(&args).load();
        (path, loaded)
    }

    fn loaded(text: &str, extra: &[&str]) -> RunConfig {
        match load(text, extra) {
            (_, Ok(config)) => config,
            (path, Err(err)) => panic!("{} should load: {err:#}", path.display()),
        }
    }

    /// The error that loading `text` gives, with the file's path replaced by `FILE`.
    fn error(text: &str) -> String {
        match load(text, &[]) {
            (path, Err(err)) => format!("{err:#}").replace(&path.display().to_string(), "FILE"),
            (path, Ok(_)) => panic!("{} should be refused:\n{text}", path.display()),
        }
    }

    fn error_of_bytes(bytes: &[u8]) -> String {
        let path = config_file(bytes);
        let path_arg = path.to_string_lossy().into_owned();
        let err = source(&["iocmon", "run", "--config", &path_arg])
            .load()
            .expect_err("should be refused");
        format!("{err:#}").replace(&path_arg, "FILE")
    }

    fn setting<'c>(config: &'c RunConfig, key: &str) -> &'c Setting {
        config
            .settings
            .iter()
            .find(|setting| setting.key == key)
            .unwrap_or_else(|| panic!("no setting {key}"))
    }

    fn value_and_origin(config: &RunConfig, key: &str) -> (Option<String>, Origin) {
        let found = setting(config, key);
        (found.value.clone(), found.origin)
    }

    #[test]
    fn syntax_error_names_file_line_column_and_toml_message() {
        assert_eq!(
            error("feed-interval = 60\niocs = [\"/a\"\n"),
            "FILE:2:13: unclosed array, expected `]`"
        );
        assert_eq!(
            error("all-dns = true\nall-dns = true\n"),
            "FILE:2:1: duplicate key"
        );
    }

    #[test]
    fn unknown_key_names_the_closest_known_key() {
        assert_eq!(
            error("\nfed-interval = 5\n"),
            "FILE:2: unknown key `fed-interval` (did you mean `feed-interval`?)"
        );
        assert_eq!(
            error("feed_interval = 5"),
            "FILE:1: unknown key `feed_interval` (did you mean `feed-interval`?)"
        );
        assert_eq!(
            error("ioc = [\"/a\"]"),
            "FILE:1: unknown key `ioc` (did you mean `iocs`?)"
        );
        assert_eq!(error("colour = 1"), "FILE:1: unknown key `colour`");
        assert_eq!(error("help = true"), "FILE:1: unknown key `help`");
    }

    #[test]
    fn first_error_in_file_order_is_reported() {
        // The parsed map is sorted by key; `zzz` comes first in the file.
        assert_eq!(error("zzz = 1\naaa = 2\n"), "FILE:1: unknown key `zzz`");
    }

    #[test]
    fn wrong_type_names_key_and_expected_type() {
        assert_eq!(
            error("all-connections = \"yes\""),
            "FILE:1: `all-connections` must be true or false, not a string"
        );
        assert_eq!(
            error("feed-interval = [60]"),
            "FILE:1: `feed-interval` must be a string or a number, not an array"
        );
        assert_eq!(
            error("feed-interval = true"),
            "FILE:1: `feed-interval` must be a string or a number, not a boolean"
        );
        assert_eq!(
            error("device-name = 1979-05-27"),
            "FILE:1: `device-name` must be a string or a number, not a datetime"
        );
        assert_eq!(
            error("iocs = true"),
            "FILE:1: `iocs` must be an array of strings (or one string), not a boolean"
        );
        assert_eq!(
            error("iocs = [\n  \"/a\",\n  false,\n]"),
            "FILE:3: `iocs` must be an array of strings; item 2 is a boolean"
        );
        assert_eq!(
            error("[feed-interval]\nsecs = 1\n"),
            "FILE:1: `feed-interval` must be a string or a number, not a table"
        );
        assert_eq!(
            error("iocs.extra = \"/a\""),
            "FILE:1: `iocs` must be an array of strings (or one string), not a table"
        );
    }

    #[test]
    fn value_refused_by_the_option_parser_names_key_value_and_reason() {
        assert_eq!(
            error("feed-interval = 0"),
            "FILE:1: invalid value \"0\" for `feed-interval`: 0 is not in 1..18446744073709551615"
        );
        assert_eq!(
            error("ringbuf-size = 5000"),
            "FILE:1: invalid value \"5000\" for `ringbuf-size`: 5000 is not a power of two >= 4096"
        );
        assert_eq!(
            error("min-confidence = 101"),
            "FILE:1: invalid value \"101\" for `min-confidence`: 101 is not in 0..=100"
        );
        assert_eq!(
            error("feed = [\"http://127.0.0.1/a\", \"ftp://127.0.0.1/b\"]"),
            "FILE:1: invalid value \"ftp://127.0.0.1/b\" for `feed`: a feed URL starts with http:// or https://"
        );
        assert_eq!(
            error("iocs = [\"/a\", \"\"]"),
            "FILE:1: invalid value \"\" for `iocs`: an empty value is not allowed"
        );
        assert_eq!(
            error("log-level = \"loud\""),
            "FILE:1: invalid value \"loud\" for `log-level`: attempted to convert a string that doesn't match an existing log level"
        );
        // A value on its own line of a list is reported there.
        assert!(error("output = [\n  \"stdout\",\n  \"pigeon://x\",\n]")
            .starts_with("FILE:3: invalid value \"pigeon://x\" for `output`: unknown output"));
        // The message never names the option as `--flag <VALUE>`.
        assert!(!error("feed-interval = \"x\"").contains("--"));
    }

    #[test]
    fn command_line_only_keys_are_refused_in_the_file() {
        assert_eq!(
            error("config = \"/etc/other.toml\""),
            "FILE:1: `config` cannot be set in a configuration file (it chooses the file); use --config on the command line"
        );
        assert_eq!(
            error("no-config = true"),
            "FILE:1: `no-config` cannot be set in a configuration file (it chooses the file); use --no-config on the command line"
        );
    }

    #[test]
    fn file_values_reach_the_run_options() {
        let config = loaded(
            "iocs = [\"/a\", \"/b\"]\nfeed-interval = 60\nall-connections = true\n\
             output = \"stdout\"\nlog-level = \"debug\"\nreload-interval = \"0\"\n",
            &[],
        );
        assert_eq!(
            config.options.ioc_files,
            [PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(config.options.all_connections);
        assert_eq!(config.options.outputs.len(), 1);
        assert_eq!(config.options.reload_interval, None);
        assert_eq!(config.log_level, log::LevelFilter::Debug);
        assert_eq!(
            value_and_origin(&config, "feed-interval"),
            (Some("60".into()), Origin::File)
        );
        assert_eq!(
            value_and_origin(&config, "iocs"),
            (Some("[\"/a\", \"/b\"]".into()), Origin::File)
        );
        assert_eq!(
            value_and_origin(&config, "feed-timeout"),
            (Some("30".into()), Origin::Default)
        );
        assert_eq!(value_and_origin(&config, "cgroup"), (None, Origin::Default));
    }

    #[test]
    fn a_single_string_is_a_one_item_list_and_false_leaves_a_flag_out() {
        let config = loaded("watch = \"python3\"\nstrict-ports = false\n", &[]);
        assert!(config
            .options
            .watched_comms
            .contains(&"python3".to_string()));
        assert!(config.options.match_options.endpoint_address_match);
        assert_eq!(
            value_and_origin(&config, "strict-ports"),
            (Some("false".into()), Origin::File)
        );
    }

    #[test]
    fn command_line_replaces_a_scalar_from_the_file() {
        let config = loaded("feed-interval = 60\n", &["--feed-interval", "120"]);
        let feeds = loaded(
            "feed-interval = 60\nfeed = \"http://127.0.0.1:1/feed\"\n",
            &["--feed-interval", "120"],
        );
        assert_eq!(
            value_and_origin(&config, "feed-interval"),
            (Some("120".into()), Origin::CommandLine)
        );
        assert_eq!(feeds.options.feeds[0].interval, Duration::from_secs(120));
    }

    #[test]
    fn command_line_flag_wins_and_file_flag_applies_without_one() {
        let from_cli = loaded("all-dns = false\n", &["--all-dns"]);
        assert!(from_cli.options.all_dns);
        assert_eq!(
            value_and_origin(&from_cli, "all-dns"),
            (Some("true".into()), Origin::CommandLine)
        );
        let from_file = loaded("all-dns = true\n", &["--show-excluded"]);
        assert!(from_file.options.all_dns);
        assert!(from_file.options.show_excluded);
        assert_eq!(setting(&from_file, "all-dns").origin, Origin::File);
    }

    #[test]
    fn command_line_list_replaces_the_file_list() {
        let config = loaded("iocs = [\"/a\", \"/b\"]\n", &["--iocs", "/c"]);
        assert_eq!(config.options.ioc_files, [PathBuf::from("/c")]);
        assert_eq!(
            value_and_origin(&config, "iocs"),
            (Some("[\"/c\"]".into()), Origin::CommandLine)
        );
    }

    #[test]
    fn command_line_log_level_wins_before_and_after_run() {
        let text = "log-level = \"debug\"\n";
        let path = config_file(text);
        let path = path.to_string_lossy();
        for args in [
            vec!["iocmon", "--log-level", "warn", "run", "--config", &path],
            vec!["iocmon", "run", "--config", &path, "--log-level=warn"],
        ] {
            let config = source(&args).load().expect("loads");
            assert_eq!(config.log_level, log::LevelFilter::Warn, "{args:?}");
            assert_eq!(setting(&config, "log-level").origin, Origin::CommandLine);
        }
    }

    #[test]
    fn values_starting_with_a_dash_stay_values() {
        let config = loaded(
            "device-name = \"--all-connections\"\niocs = [\"-x\", \"--help\"]\nwatch = \"-\"\n",
            &[],
        );
        assert_eq!(
            config.options.device_name.as_deref(),
            Some("--all-connections")
        );
        assert!(!config.options.all_connections);
        assert_eq!(
            config.options.ioc_files,
            [PathBuf::from("-x"), PathBuf::from("--help")]
        );
        assert!(config.options.watched_comms.contains(&"-".to_string()));
        // `=` inside a value is part of it.
        let config = loaded("device-name = \"a=b --c\"\n", &[]);
        assert_eq!(config.options.device_name.as_deref(), Some("a=b --c"));
    }

    #[test]
    fn a_double_dash_on_the_command_line_keeps_file_settings_options() {
        let path = config_file("all-dns = true\n");
        let path = path.to_string_lossy();
        let config = source(&["iocmon", "run", "--config", &path, "--"])
            .load()
            .expect("`--` with nothing after it is a valid command line");
        assert!(config.options.all_dns);
    }

    #[test]
    fn hostile_values_are_errors_not_panics() {
        // Non-ASCII digits, a huge number, control characters: refused with the value
        // shown escaped and shortened.
        assert_eq!(
            error("feed-interval = \"６０\""),
            "FILE:1: invalid value \"６０\" for `feed-interval`: invalid digit found in string"
        );
        let huge = error(&format!("feed-interval = \"{}\"", "9".repeat(100_000)));
        assert!(huge.len() < 400, "{huge}");
        assert!(huge.ends_with("...\" for `feed-interval`: number too large to fit in target type"));
        let control = error("feed-interval = \"6\\u001b[2J\\n0\"");
        assert_eq!(
            control,
            "FILE:1: invalid value \"6\\u{1b}[2J\\n0\" for `feed-interval`: invalid digit found in string"
        );
        assert!(!control.chars().any(char::is_control));
        // Keys are escaped too.
        let key = error("\"\\u001b[31mred\\nfake\" = 1");
        assert_eq!(key, "FILE:1: unknown key `\\u{1b}[31mred\\nfake`");
        let long_key = error(&format!("{} = 1", "k".repeat(100_000)));
        assert!(long_key.len() < 200, "{long_key}");
        // A number too large for any option, deep nesting, not UTF-8, too large.
        assert!(error("feed-interval = 99999999999999999999").starts_with("FILE:1:"));
        assert!(error(&format!(
            "iocs = {}{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ))
        .starts_with("FILE:1:"));
        assert_eq!(
            error_of_bytes(b"iocs = [\"/a\"]\ndevice-name = \"\xff\"\n"),
            "FILE:2:16: not UTF-8 text"
        );
        let too_large = " ".repeat(usize::try_from(MAX_CONFIG_BYTES).unwrap() + 1);
        assert_eq!(
            error(&too_large),
            "FILE: larger than 1 MiB, so not an iocmon configuration file"
        );
        // Non-ASCII values that the option accepts are kept as they are.
        let config = loaded("device-name = \"Gerät-ü\"\n", &[]);
        assert_eq!(config.options.device_name.as_deref(), Some("Gerät-ü"));
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = source(&["iocmon", "run", "--config", "/nonexistent/iocmon-test.toml"])
            .load()
            .expect_err("missing file");
        assert_eq!(
            format!("{err:#}"),
            "/nonexistent/iocmon-test.toml: cannot read: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn default_file_is_read_when_present_and_skipped_when_absent_or_disabled() {
        let absent = source(&["iocmon", "run"]).load().expect("defaults");
        assert_eq!(
            absent.file,
            ConfigFile::DefaultAbsent("/nonexistent/iocmon-unit-test/iocmon.toml".into())
        );
        assert!(absent.settings.iter().all(|s| s.origin == Origin::Default));

        let present = config_file("all-dns = true\n");
        let config = ConfigSource::new(["iocmon", "run"])
            .with_default_path(&present)
            .load()
            .expect("default file");
        assert_eq!(config.file, ConfigFile::Read(present.clone()));
        assert!(config.options.all_dns);

        let broken = config_file("this is not toml");
        let disabled = ConfigSource::new(["iocmon", "run", "--no-config"])
            .with_default_path(&broken)
            .load()
            .expect("--no-config ignores the default file");
        assert_eq!(disabled.file, ConfigFile::Disabled);
        assert!(!disabled.options.all_dns);
    }

    #[test]
    fn load_again_rereads_the_file() {
        let path = config_file("feed-interval = 60\n");
        let path_arg = path.to_string_lossy().into_owned();
        let source = source(&["iocmon", "run", "--config", &path_arg, "--all-dns"]);
        let first = source.load().expect("first load");
        std::fs::write(&path, "feed-interval = 90\nall-dns = false\n").unwrap();
        let second = source.load().expect("second load");
        assert_eq!(
            setting(&first, "feed-interval").value.as_deref(),
            Some("60")
        );
        assert_eq!(
            setting(&second, "feed-interval").value.as_deref(),
            Some("90")
        );
        assert!(second.options.all_dns, "the command line still wins");
        std::fs::write(&path, "feed-interval = 0\n").unwrap();
        assert!(source.load().is_err());
    }

    #[test]
    fn config_check_keeps_global_options_of_its_command_line() {
        let path = config_file("log-level = \"debug\"\n");
        let args: Vec<OsString> = ["iocmon", "--log-level", "error", "config", "check"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let config = ConfigSource::for_config_check(&args, Some(&path))
            .expect("check source")
            .load()
            .expect("loads");
        assert_eq!(config.log_level, log::LevelFilter::Error);
        assert_eq!(config.file, ConfigFile::Read(path));
    }

    #[test]
    fn settings_text_is_a_valid_configuration_with_the_same_values() {
        let config = loaded(
            "iocs = [\"/a \\\"quoted\\\"\", \"/b\"]\ndevice-name = \"12345\"\nall-dns = true\n",
            &["--feed-interval", "77"],
        );
        let text = config.settings_text();
        let again = loaded(&text, &[]);
        assert_eq!(again.options.ioc_files, config.options.ioc_files);
        assert_eq!(again.options.device_name.as_deref(), Some("12345"));
        assert!(again.options.all_dns);
        assert_eq!(
            setting(&again, "feed-interval").value.as_deref(),
            Some("77")
        );
        assert!(text.contains("# cgroup"), "{text}");
    }

    #[test]
    fn every_run_option_is_a_key() {
        let mut cli = Cli::command();
        cli.build();
        let run = cli.find_subcommand("run").expect("run");
        let catalogue = Catalogue::new().expect("catalogue");
        for arg in run.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
                || ["config", "no_config"].contains(&id)
            {
                continue;
            }
            assert!(
                catalogue.keys.iter().any(|key| key.id == id),
                "`run` option {id} has no configuration key (a long name is needed)"
            );
        }
        assert!(catalogue.keys.iter().any(|key| key.name == "log-level"));
        assert_eq!(catalogue.command_line_only, ["config", "no-config"]);
    }

    #[test]
    fn run_help_names_the_default_file_and_the_config_options() {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        assert!(help.contains(DEFAULT_CONFIG_PATH), "{help}");
        assert!(help.contains("--config <FILE>"));
        assert!(help.contains("--no-config"));
    }

    #[test]
    fn packaged_configuration_is_valid() {
        let catalogue = Catalogue::new().expect("catalogue");
        let settings = parse_settings(Path::new("packaging/iocmon.toml"), PACKAGED, &catalogue)
            .unwrap_or_else(|err| panic!("{err:#}"));
        assert!(!settings.is_empty());
        let config = loaded(PACKAGED, &[]);
        assert_eq!(
            config.options.ioc_files,
            [PathBuf::from("/etc/iocmon/indicators.txt")]
        );
    }

    /// `# key = value` lines of the packaged file, uncommented.
    fn packaged_commented_keys() -> Vec<(String, String)> {
        PACKAGED
            .lines()
            .filter_map(|line| {
                let (key, value) = line.strip_prefix("# ")?.split_once(" = ")?;
                let is_key = !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                is_key.then(|| (key.to_string(), value.to_string()))
            })
            .collect()
    }

    #[test]
    fn packaged_configuration_has_every_key_and_true_defaults() {
        let catalogue = Catalogue::new().expect("catalogue");
        let commented = packaged_commented_keys();
        for key in &catalogue.keys {
            let set = PACKAGED
                .lines()
                .any(|line| line.starts_with(&format!("{} = ", key.name)));
            let mentioned = commented.iter().any(|(name, _)| *name == key.name);
            assert!(
                set || mentioned,
                "packaging/iocmon.toml lacks `{}` (commented out with its default)",
                key.name
            );
        }

        // Uncommented, the examples must be valid, and where an option has a default the
        // value shown must be that default.
        let defaults = source(&["iocmon", "run"]).load().expect("defaults");
        let uncommented: String = commented
            .iter()
            .map(|(key, value)| format!("{key} = {value}\n"))
            .collect();
        let examples = loaded(&uncommented, &[]);
        for (key, _) in &commented {
            let default = setting(&defaults, key);
            if default.value.is_some() {
                assert_eq!(
                    setting(&examples, key).value,
                    default.value,
                    "packaging/iocmon.toml shows a wrong default for `{key}`"
                );
            }
        }
    }

    #[test]
    fn a_counted_flag_takes_a_small_integer() {
        // No `run` option counts today; one added later gets this shape.
        let counted = Key {
            name: "verbose".into(),
            id: "verbose".into(),
            shape: Shape::Count,
            top_level: false,
        };
        let values = |text: &str| {
            let document = DeTable::parse(text).expect("valid TOML");
            let (_, value) = document.get_ref().iter().next().expect("one key");
            values_of(Path::new("FILE"), text, &counted, value).map(|values| values.len())
        };
        assert_eq!(values("verbose = 3").expect("a count"), 3);
        assert_eq!(values("verbose = 0").expect("a count"), 0);
        let err = values("verbose = 300").expect_err("too many");
        assert_eq!(
            err.to_string(),
            "FILE:1: `verbose` must be an integer from 0 to 255, not an integer"
        );
    }

    #[test]
    fn closest_key_suggests_only_near_misses() {
        let catalogue = Catalogue::new().expect("catalogue");
        let suggest = |key| closest_key(key, &catalogue.keys);
        assert_eq!(suggest("Feed-Interval"), Some("feed-interval"));
        assert_eq!(suggest("outputs"), Some("output"));
        assert_eq!(suggest("threat_types"), Some("threat-type"));
        assert_eq!(suggest("foo"), None);
        assert_eq!(suggest("ü"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("äb", "ab"), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever a file holds, parsing it ends in settings or an error.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let catalogue = Catalogue::new().expect("catalogue");
            let _ = parse_settings(Path::new("fuzz.toml"), &text, &catalogue);
        }

        /// Any string for any key ends in settings or a one-line error.
        #[test]
        fn arbitrary_values_never_panic(index in 0usize..64, value in "\\PC{0,40}") {
            let catalogue = Catalogue::new().expect("catalogue");
            let key = &catalogue.keys[index % catalogue.keys.len()];
            let text = format!("{} = {}\n", key.name, toml_string(&value));
            if let Err(err) = parse_settings(Path::new("fuzz.toml"), &text, &catalogue) {
                let message = format!("{err:#}");
                prop_assert!(!message.contains('\n'), "{}", message);
            }
        }
    }
}
