//! The hub's settings: `<data dir>/relay.toml`, the `relay hub` flags, and the defaults.
//!
//! Every setting a `relay hub` flag can set has a key of the same name in `relay.toml`
//! (`--send-rate` is `send_rate`). A flag wins over the file, the file over the default; each
//! resolved setting remembers which one it came from ([`Source`]), for `relay status`. Hubs
//! spawned on demand read the same file, so a setting written there holds for every hub of
//! the data dir, however it was started.
//!
//! The file is validated whole before the hub opens anything: a file that does not parse, an
//! unknown key, a value of the wrong type or out of range is a [`SettingsError`] naming the
//! file and the key, and the hub does not start. A missing file is no settings at all.
//!
//! Nothing here reads the clock or touches sockets; [`read_file`] is the only I/O.

use std::path::{Path, PathBuf};
use std::time::Duration;

use relay_log::Durability;

use super::limits::{
    CONVERSATION_MESSAGES_MAX, IDLE_EXIT_DEFAULT, NEW_IDENTITIES_BURST, NEW_IDENTITIES_PER_SECOND,
    PING_INTERVAL_DEFAULT, PING_TIMEOUT_DEFAULT, SEND_BURST_DEFAULT, SEND_RATE_PER_SECOND_DEFAULT,
    WS_PORT_DEFAULT,
};
use super::rate::RateConfig;

/// The settings file inside a data dir.
pub const SETTINGS_FILE_NAME: &str = "relay.toml";

/// Largest `relay.toml` read, in bytes; a bigger file is refused (it cannot be a settings file).
pub const SETTINGS_FILE_BYTES_MAX: u64 = 64 << 10;

/// Every key of `relay.toml`, in the order `relay status` lists them, with its meaning.
pub const SETTING_KEYS: &[(&str, &str)] = &[
    (
        "durability",
        "\"strict\" or \"os\": when a reply may leave (after msync, or after the page cache)",
    ),
    (
        "idle_exit",
        "seconds after the last session left before the hub exits; 0 never",
    ),
    ("ws_port", "loopback WebSocket port; 0 picks a free one"),
    ("no_ws", "true: no WebSocket endpoint at all"),
    (
        "ping_interval",
        "seconds a session may stay quiet before the hub pings it (at least 1)",
    ),
    (
        "ping_timeout",
        "seconds a pinged session has to answer before it is evicted (at least 1)",
    ),
    (
        "send_rate",
        "sends per second each identity may make on average (at least 1)",
    ),
    (
        "send_burst",
        "sends an identity may make in a burst (at least 1)",
    ),
    (
        "new_identity_rate",
        "new identities per second per local user (at least 1)",
    ),
    (
        "new_identity_burst",
        "new identities a local user may register in a burst (at least 1)",
    ),
    (
        "loop_guard",
        "turns two identities' direct messages may take within 600 s before the next is refused; 0 switches the guard off",
    ),
];

/// Where a setting in force came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nothing set it.
    Default,
    /// `<data dir>/relay.toml`.
    File,
    /// A `relay hub` flag.
    Flag,
}

impl Source {
    /// Its name in `relay status` and `hub_info`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "relay.toml",
            Source::Flag => "flag",
        }
    }
}

/// How the hub was started: it decides the default of `idle_exit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartedBy {
    /// `relay hub` in a terminal: runs until stopped (no idle exit unless asked).
    Hand,
    /// Spawned by a session (`relay mcp`, `relay send` …): exits [`IDLE_EXIT_DEFAULT`] after
    /// the last session left, unless told otherwise.
    OnDemand,
    /// A systemd user unit or launchd agent (`relay service install`): runs until stopped.
    Service,
}

impl StartedBy {
    /// Its name on the command line (`--started-by`) and in `relay status`.
    pub fn name(self) -> &'static str {
        match self {
            StartedBy::Hand => "hand",
            StartedBy::OnDemand => "on-demand",
            StartedBy::Service => "service",
        }
    }

    /// The value named `name`, or `None`.
    pub fn from_name(name: &str) -> Option<StartedBy> {
        [StartedBy::Hand, StartedBy::OnDemand, StartedBy::Service]
            .into_iter()
            .find(|started_by| started_by.name() == name)
    }
}

/// Settings as one source gives them: `None` where it says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsInput {
    /// `durability`.
    pub durability: Option<Durability>,
    /// `idle_exit`, seconds; 0 never.
    pub idle_exit: Option<u64>,
    /// `ws_port`.
    pub ws_port: Option<u16>,
    /// `no_ws`.
    pub no_ws: Option<bool>,
    /// `ping_interval`, seconds.
    pub ping_interval: Option<u64>,
    /// `ping_timeout`, seconds.
    pub ping_timeout: Option<u64>,
    /// `send_rate`.
    pub send_rate: Option<u32>,
    /// `send_burst`.
    pub send_burst: Option<u32>,
    /// `new_identity_rate`.
    pub new_identity_rate: Option<u32>,
    /// `new_identity_burst`.
    pub new_identity_burst: Option<u32>,
    /// `loop_guard`; 0 off.
    pub loop_guard: Option<u32>,
}

/// One setting in force: its key, its value as text, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The `relay.toml` key.
    pub name: &'static str,
    /// The value, as `relay.toml` would spell it (strings unquoted).
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// The settings a hub runs with.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// What a commit promises.
    pub durability: Durability,
    /// Exit this long after the last session left; `None` never.
    pub idle_exit: Option<Duration>,
    /// Loopback WebSocket port; `Some(0)` picks a free one, `None` disables it.
    pub ws_port: Option<u16>,
    /// Quiet time before a session is pinged.
    pub ping_interval: Duration,
    /// Time a pinged session has to answer.
    pub ping_timeout: Duration,
    /// Sends per identity.
    pub rate: RateConfig,
    /// New identities per local user.
    pub new_identity_rate: RateConfig,
    /// Turns of direction the loop guard allows per pair in its window; `None`: no guard.
    pub loop_guard: Option<u32>,
    /// Every setting, in [`SETTING_KEYS`] order, with its source.
    pub listed: Vec<Setting>,
}

/// `relay.toml` or a flag cannot be used. The hub does not start.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than [`SETTINGS_FILE_BYTES_MAX`].
    #[error("{} is {bytes} bytes, more than a settings file may be ({SETTINGS_FILE_BYTES_MAX})", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The file is not TOML.
    #[error("{} is not valid TOML: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's account, with line and column.
        message: String,
    },
    /// A key Relay does not know (a typo, or a setting of a newer version).
    #[error("{}: unknown key `{key}`; the keys are: {}", .path.display(), known_keys())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A known key with a value of the wrong type or out of range.
    #[error("{}: `{key}` must be {expected}, not {found}", .path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: String,
    },
    /// A flag with a value out of range.
    #[error("--{} must be {expected}, not {found}", .flag.replace('_', "-"))]
    BadFlag {
        /// The flag's key.
        flag: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: String,
    },
}

fn known_keys() -> String {
    SETTING_KEYS
        .iter()
        .map(|(key, _)| *key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The settings file of a data dir.
pub fn settings_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SETTINGS_FILE_NAME)
}

/// Reads `<data dir>/relay.toml`; a missing file gives no settings.
///
/// # Errors
/// The file cannot be read, is too large, or is not a valid settings file.
pub fn read_file(data_dir: &Path) -> Result<SettingsInput, SettingsError> {
    let path = settings_path(data_dir);
    let read = |source| SettingsError::Read {
        path: path.clone(),
        source,
    };
    let metadata = match std::fs::metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SettingsInput::default());
        }
        Err(error) => return Err(read(error)),
    };
    if metadata.len() > SETTINGS_FILE_BYTES_MAX {
        return Err(SettingsError::TooLarge {
            path,
            bytes: metadata.len(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(read)?;
    parse(&text, &path)
}

/// Parses the text of a settings file (`path` only names it in errors).
///
/// # Errors
/// Not TOML, an unknown key, or a bad value.
pub fn parse(text: &str, path: &Path) -> Result<SettingsInput, SettingsError> {
    let document: toml_edit::DocumentMut =
        text.parse()
            .map_err(|error: toml_edit::TomlError| SettingsError::Parse {
                path: path.to_owned(),
                message: error.to_string().trim().replace('\n', " "),
            })?;
    let mut input = SettingsInput::default();
    for (key, item) in document.as_table().iter() {
        let value = |name: &'static str| Value { path, name, item };
        match key {
            "durability" => input.durability = Some(value("durability").durability()?),
            "idle_exit" => {
                input.idle_exit =
                    Some(value("idle_exit").integer(0, u64::MAX, "seconds, 0 or more")?)
            }
            "ws_port" => {
                input.ws_port = Some(value("ws_port").integer(0, u16::MAX, "a port, 0 to 65535")?)
            }
            "no_ws" => input.no_ws = Some(value("no_ws").boolean()?),
            "ping_interval" => {
                input.ping_interval =
                    Some(value("ping_interval").integer(1, u64::MAX, AT_LEAST_1)?)
            }
            "ping_timeout" => {
                input.ping_timeout = Some(value("ping_timeout").integer(1, u64::MAX, AT_LEAST_1)?)
            }
            "send_rate" => {
                input.send_rate = Some(value("send_rate").integer(1, u32::MAX, AT_LEAST_1)?)
            }
            "send_burst" => {
                input.send_burst = Some(value("send_burst").integer(1, u32::MAX, AT_LEAST_1)?)
            }
            "new_identity_rate" => {
                input.new_identity_rate =
                    Some(value("new_identity_rate").integer(1, u32::MAX, AT_LEAST_1)?)
            }
            "new_identity_burst" => {
                input.new_identity_burst =
                    Some(value("new_identity_burst").integer(1, u32::MAX, AT_LEAST_1)?)
            }
            "loop_guard" => {
                input.loop_guard = Some(value("loop_guard").integer(
                    0,
                    u32::MAX,
                    "a whole number, 0 (off) or more",
                )?)
            }
            _ => {
                return Err(SettingsError::UnknownKey {
                    path: path.to_owned(),
                    key: key.to_owned(),
                });
            }
        }
    }
    Ok(input)
}

/// What a count or a duration in seconds must be.
const AT_LEAST_1: &str = "a whole number, at least 1";

/// Resolves the settings: each from the flags if given, else the file, else the default
/// (`idle_exit`'s default depends on `started_by`).
///
/// # Errors
/// A flag out of range (a count or a duration of 0).
pub fn resolve(
    flags: &SettingsInput,
    file: &SettingsInput,
    started_by: StartedBy,
) -> Result<HubSettings, SettingsError> {
    let mut listed = Vec::new();
    let mut pick =
        |name: &'static str, flag: Option<String>, from_file: Option<String>, default: String| {
            let (value, source) = match (flag, from_file) {
                (Some(value), _) => (value, Source::Flag),
                (None, Some(value)) => (value, Source::File),
                (None, None) => (default, Source::Default),
            };
            listed.push(Setting {
                name,
                value,
                source,
            });
        };
    let text = |value: Option<u64>| value.map(|value| value.to_string());
    let idle_default = match started_by {
        StartedBy::OnDemand => IDLE_EXIT_DEFAULT.as_secs(),
        StartedBy::Hand | StartedBy::Service => 0,
    };
    pick(
        "durability",
        flags.durability.map(durability_name).map(str::to_owned),
        file.durability.map(durability_name).map(str::to_owned),
        durability_name(Durability::Strict).to_owned(),
    );
    pick(
        "idle_exit",
        text(flags.idle_exit),
        text(file.idle_exit),
        idle_default.to_string(),
    );
    let port = |port: Option<u16>| port.map(|port| port.to_string());
    pick(
        "ws_port",
        port(flags.ws_port),
        port(file.ws_port),
        WS_PORT_DEFAULT.to_string(),
    );
    let flag = |set: Option<bool>| set.map(|set| set.to_string());
    pick(
        "no_ws",
        flag(flags.no_ws),
        flag(file.no_ws),
        false.to_string(),
    );
    let seconds = |duration: Duration| duration.as_secs().to_string();
    pick(
        "ping_interval",
        text(flags.ping_interval),
        text(file.ping_interval),
        seconds(PING_INTERVAL_DEFAULT),
    );
    pick(
        "ping_timeout",
        text(flags.ping_timeout),
        text(file.ping_timeout),
        seconds(PING_TIMEOUT_DEFAULT),
    );
    let count = |value: Option<u32>| value.map(|value| value.to_string());
    pick(
        "send_rate",
        count(flags.send_rate),
        count(file.send_rate),
        SEND_RATE_PER_SECOND_DEFAULT.to_string(),
    );
    pick(
        "send_burst",
        count(flags.send_burst),
        count(file.send_burst),
        SEND_BURST_DEFAULT.to_string(),
    );
    pick(
        "new_identity_rate",
        count(flags.new_identity_rate),
        count(file.new_identity_rate),
        NEW_IDENTITIES_PER_SECOND.to_string(),
    );
    pick(
        "new_identity_burst",
        count(flags.new_identity_burst),
        count(file.new_identity_burst),
        NEW_IDENTITIES_BURST.to_string(),
    );
    pick(
        "loop_guard",
        count(flags.loop_guard),
        count(file.loop_guard),
        CONVERSATION_MESSAGES_MAX.to_string(),
    );
    check_flags(flags)?;
    let loop_guard = flags
        .loop_guard
        .or(file.loop_guard)
        .unwrap_or(CONVERSATION_MESSAGES_MAX);
    let idle_exit = flags.idle_exit.or(file.idle_exit).unwrap_or(idle_default);
    let no_ws = flags.no_ws.or(file.no_ws).unwrap_or(false);
    let ws_port = flags.ws_port.or(file.ws_port).unwrap_or(WS_PORT_DEFAULT);
    Ok(HubSettings {
        durability: flags
            .durability
            .or(file.durability)
            .unwrap_or(Durability::Strict),
        idle_exit: (idle_exit > 0).then(|| Duration::from_secs(idle_exit)),
        ws_port: (!no_ws).then_some(ws_port),
        ping_interval: flags
            .ping_interval
            .or(file.ping_interval)
            .map_or(PING_INTERVAL_DEFAULT, Duration::from_secs),
        ping_timeout: flags
            .ping_timeout
            .or(file.ping_timeout)
            .map_or(PING_TIMEOUT_DEFAULT, Duration::from_secs),
        rate: RateConfig {
            per_second: flags
                .send_rate
                .or(file.send_rate)
                .unwrap_or(SEND_RATE_PER_SECOND_DEFAULT),
            burst: flags
                .send_burst
                .or(file.send_burst)
                .unwrap_or(SEND_BURST_DEFAULT),
        },
        new_identity_rate: RateConfig {
            per_second: flags
                .new_identity_rate
                .or(file.new_identity_rate)
                .unwrap_or(NEW_IDENTITIES_PER_SECOND),
            burst: flags
                .new_identity_burst
                .or(file.new_identity_burst)
                .unwrap_or(NEW_IDENTITIES_BURST),
        },
        loop_guard: (loop_guard > 0).then_some(loop_guard),
        listed,
    })
}

/// The `relay hub` flags that set `settings` (key and value pairs, as `hub_info` lists
/// them), for `relay restart`: the new hub gets the flags the old one was given.
pub fn flag_args(settings: &[(String, String)]) -> Vec<String> {
    let mut args = Vec::new();
    for (name, value) in settings {
        let flag = format!("--{}", name.replace('_', "-"));
        match (name.as_str(), value.as_str()) {
            ("no_ws", "true") => args.push(flag),
            ("no_ws", _) => {}
            _ => {
                args.push(flag);
                args.push(value.clone());
            }
        }
    }
    args
}

/// `"strict"` or `"os"`.
pub fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Strict => "strict",
        Durability::Os => "os",
    }
}

/// Counts and durations given as flags must be at least 1, as in the file.
fn check_flags(flags: &SettingsInput) -> Result<(), SettingsError> {
    let checks: [(&'static str, Option<u64>); 6] = [
        ("ping_interval", flags.ping_interval),
        ("ping_timeout", flags.ping_timeout),
        ("send_rate", flags.send_rate.map(u64::from)),
        ("send_burst", flags.send_burst.map(u64::from)),
        ("new_identity_rate", flags.new_identity_rate.map(u64::from)),
        (
            "new_identity_burst",
            flags.new_identity_burst.map(u64::from),
        ),
    ];
    for (flag, value) in checks {
        if value == Some(0) {
            return Err(SettingsError::BadFlag {
                flag,
                expected: AT_LEAST_1,
                found: "0".to_owned(),
            });
        }
    }
    Ok(())
}

/// One value of the file, with what an error about it must name.
struct Value<'a> {
    path: &'a Path,
    name: &'static str,
    item: &'a toml_edit::Item,
}

impl Value<'_> {
    fn bad(&self, expected: &'static str) -> SettingsError {
        let found = match self.item {
            toml_edit::Item::Value(value) => value.to_string().trim().to_owned(),
            toml_edit::Item::Table(_) | toml_edit::Item::ArrayOfTables(_) => "a table".to_owned(),
            toml_edit::Item::None => "nothing".to_owned(),
        };
        SettingsError::BadValue {
            path: self.path.to_owned(),
            key: self.name,
            expected,
            found,
        }
    }

    fn integer<T: TryFrom<i64> + PartialOrd>(
        &self,
        min: T,
        max: T,
        expected: &'static str,
    ) -> Result<T, SettingsError> {
        let number = self.item.as_integer().ok_or_else(|| self.bad(expected))?;
        let value = T::try_from(number).map_err(|_| self.bad(expected))?;
        if value < min || value > max {
            return Err(self.bad(expected));
        }
        Ok(value)
    }

    fn boolean(&self) -> Result<bool, SettingsError> {
        self.item.as_bool().ok_or_else(|| self.bad("true or false"))
    }

    fn durability(&self) -> Result<Durability, SettingsError> {
        match self.item.as_str() {
            Some("strict") => Ok(Durability::Strict),
            Some("os") => Ok(Durability::Os),
            _ => Err(self.bad("\"strict\" or \"os\"")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<SettingsInput, SettingsError> {
        parse(text, Path::new("/d/relay.toml"))
    }

    #[test]
    fn every_key_parses_and_a_flag_beats_the_file_which_beats_the_default() {
        let file = parsed(
            "durability = \"os\"\nidle_exit = 5\nws_port = 0\nno_ws = false\nping_interval = 2\n\
             ping_timeout = 3\nsend_rate = 4\nsend_burst = 6\nnew_identity_rate = 7\n\
             new_identity_burst = 8\nloop_guard = 10\n",
        )
        .expect("a valid file");
        let flags = SettingsInput {
            send_rate: Some(9),
            ..SettingsInput::default()
        };
        let settings = resolve(&flags, &file, StartedBy::Hand).expect("valid settings");
        assert_eq!(settings.durability, Durability::Os);
        assert_eq!(settings.idle_exit, Some(Duration::from_secs(5)));
        assert_eq!(settings.ws_port, Some(0));
        assert_eq!(settings.rate.per_second, 9);
        assert_eq!(settings.rate.burst, 6);
        assert_eq!(settings.loop_guard, Some(10));
        let source = |name: &str| {
            settings
                .listed
                .iter()
                .find(|setting| setting.name == name)
                .map(|setting| setting.source)
        };
        assert_eq!(source("send_rate"), Some(Source::Flag));
        assert_eq!(source("send_burst"), Some(Source::File));
        assert_eq!(settings.listed.len(), SETTING_KEYS.len());
    }

    #[test]
    fn a_hub_started_by_hand_never_idle_exits_by_default_and_one_on_demand_does() {
        let none = SettingsInput::default();
        let by_hand = resolve(&none, &none, StartedBy::Hand).expect("defaults");
        assert_eq!(by_hand.idle_exit, None);
        let on_demand = resolve(&none, &none, StartedBy::OnDemand).expect("defaults");
        assert_eq!(on_demand.idle_exit, Some(IDLE_EXIT_DEFAULT));
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_is_an_error_naming_the_key_and_the_file() {
        let unknown = parsed("send_rates = 4\n").expect_err("unknown key");
        let message = unknown.to_string();
        assert!(
            message.contains("/d/relay.toml") && message.contains("`send_rates`"),
            "{message}"
        );
        let bad = parsed("send_rate = 0\n").expect_err("out of range");
        assert!(
            bad.to_string()
                .contains("`send_rate` must be a whole number, at least 1, not 0"),
            "{bad}"
        );
        let wrong_type = parsed("durability = 1\n").expect_err("wrong type");
        assert!(
            wrong_type.to_string().contains("`durability`"),
            "{wrong_type}"
        );
        let table = parsed("[hub]\nsend_rate = 1\n").expect_err("a table");
        assert!(table.to_string().contains("`hub`"), "{table}");
        assert!(matches!(
            parsed("send_rate = "),
            Err(SettingsError::Parse { .. })
        ));
    }

    #[test]
    fn a_loop_guard_of_zero_switches_the_guard_off_and_none_keeps_the_default() {
        let none = SettingsInput::default();
        let default = resolve(&none, &none, StartedBy::Hand).expect("defaults");
        assert_eq!(default.loop_guard, Some(CONVERSATION_MESSAGES_MAX));
        let off = SettingsInput {
            loop_guard: Some(0),
            ..SettingsInput::default()
        };
        let from_flag = resolve(&off, &none, StartedBy::Hand).expect("0 is a valid flag");
        assert_eq!(from_flag.loop_guard, None);
        let file = parsed("loop_guard = 0\n").expect("0 is a valid value");
        let from_file = resolve(&none, &file, StartedBy::Hand).expect("valid settings");
        assert_eq!(from_file.loop_guard, None);
        let listed = from_file
            .listed
            .iter()
            .find(|setting| setting.name == "loop_guard")
            .expect("listed");
        assert_eq!((listed.value.as_str(), listed.source), ("0", Source::File));
        let negative = parsed("loop_guard = -1\n").expect_err("out of range");
        assert!(negative.to_string().contains("`loop_guard`"), "{negative}");
    }

    #[test]
    fn flags_of_zero_are_refused() {
        let flags = SettingsInput {
            send_burst: Some(0),
            ..SettingsInput::default()
        };
        let refused = resolve(&flags, &SettingsInput::default(), StartedBy::Hand);
        assert!(matches!(
            refused,
            Err(SettingsError::BadFlag {
                flag: "send_burst",
                ..
            })
        ));
    }
}
