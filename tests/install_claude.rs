//! `relay install claude` / `relay uninstall claude` from the outside: the built binary runs
//! with a scratch `HOME`, a scrubbed environment and a `PATH` without `claude` (or with a fake
//! one), and the tests read the files it leaves. Also checks the Claude Code plugin's files.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

/// A `PATH` with the usual tools and, on this machine, no `claude`.
const PATH_WITHOUT_CLAUDE: &str = "/usr/bin:/bin";

/// A scratch home and working directory, and how to run `relay` in them.
struct Scratch {
    _root: tempfile::TempDir,
    home: PathBuf,
    work: PathBuf,
    /// Extra environment variables for every run.
    env: Vec<(String, String)>,
    path: String,
}

impl Scratch {
    fn new() -> Scratch {
        for dir in PATH_WITHOUT_CLAUDE.split(':') {
            assert!(
                !Path::new(dir).join("claude").exists(),
                "these tests need a PATH without claude, but {dir}/claude exists"
            );
        }
        let root = tempfile::tempdir().expect("temp dir");
        let home = root.path().join("home");
        let work = root.path().join("work");
        fs::create_dir_all(&home).expect("home");
        fs::create_dir_all(&work).expect("work");
        Scratch {
            _root: root,
            home,
            work,
            env: Vec::new(),
            path: PATH_WITHOUT_CLAUDE.to_owned(),
        }
    }

    /// Runs `relay <args>` in `work` with only `HOME`, `PATH` and `env` set.
    fn relay(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(args)
            .current_dir(&self.work)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .output()
            .expect("run relay")
    }

    /// Runs `relay <args>`, asserts it succeeded and returns its stdout.
    fn relay_ok(&self, args: &[&str]) -> String {
        let output = self.relay(args);
        assert!(
            output.status.success(),
            "relay {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stdout).expect("utf-8 stdout")
    }

    fn claude_json(&self) -> PathBuf {
        self.home.join(".claude.json")
    }

    fn settings_json(&self) -> PathBuf {
        self.home.join(".claude").join("settings.json")
    }
}

fn relay_binary() -> String {
    fs::canonicalize(env!("CARGO_BIN_EXE_relay"))
        .expect("canonical relay path")
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

fn expected_entry() -> Value {
    json!({
        "type": "stdio",
        "command": relay_binary(),
        "args": ["mcp", "--client", "claude"],
        "env": {},
    })
}

fn read_json(path: &Path) -> Value {
    let text =
        fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.strip_prefix(dir).expect("under dir").to_owned());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn install_writes_the_server_entry_and_the_allow_rule() {
    let scratch = Scratch::new();
    let stdout = scratch.relay_ok(&["install", "claude"]);
    assert_eq!(
        read_json(&scratch.claude_json())["mcpServers"]["relay"],
        expected_entry()
    );
    assert_eq!(
        read_json(&scratch.settings_json()),
        json!({"permissions": {"allow": ["mcp__relay"]}})
    );
    assert_eq!(mode(&scratch.claude_json()), 0o600);
    assert!(stdout.contains("added mcpServers.relay"), "{stdout}");
    assert!(
        stdout.contains("added permissions.allow mcp__relay"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&scratch.claude_json().display().to_string()),
        "{stdout}"
    );
    // New files have no original to keep.
    assert_eq!(
        files_under(&scratch.home),
        [
            PathBuf::from(".claude/settings.json"),
            PathBuf::from(".claude.json")
        ]
    );
}

#[test]
fn second_install_changes_nothing() {
    let scratch = Scratch::new();
    scratch.relay_ok(&["install", "claude"]);
    let config_before = fs::read(scratch.claude_json()).expect("config");
    let settings_before = fs::read(scratch.settings_json()).expect("settings");
    let stdout = scratch.relay_ok(&["install", "claude"]);
    assert!(stdout.contains("already installed"), "{stdout}");
    assert!(!stdout.contains("added"), "{stdout}");
    assert_eq!(
        fs::read(scratch.claude_json()).expect("config"),
        config_before
    );
    assert_eq!(
        fs::read(scratch.settings_json()).expect("settings"),
        settings_before
    );
    assert_eq!(
        files_under(&scratch.home).len(),
        2,
        "no backups for unchanged files"
    );
}

#[test]
fn dry_run_writes_nothing() {
    let scratch = Scratch::new();
    let stdout = scratch.relay_ok(&["install", "claude", "--dry-run"]);
    assert!(stdout.contains("would add mcpServers.relay"), "{stdout}");
    assert!(
        stdout.contains("would add permissions.allow mcp__relay"),
        "{stdout}"
    );
    assert!(files_under(&scratch.home).is_empty());

    fs::write(scratch.claude_json(), "{\"numStartups\": 1}\n").expect("seed");
    scratch.relay_ok(&["install", "claude", "--dry-run"]);
    scratch.relay_ok(&["uninstall", "claude", "--dry-run"]);
    assert_eq!(
        fs::read_to_string(scratch.claude_json()).expect("config"),
        "{\"numStartups\": 1}\n"
    );
    assert_eq!(files_under(&scratch.home), [PathBuf::from(".claude.json")]);
}

#[test]
fn unrelated_keys_are_kept_in_their_order() {
    let scratch = Scratch::new();
    fs::write(
        scratch.claude_json(),
        r#"{"numStartups": 3, "mcpServers": {"other": {"command": "other-server", "args": []}}, "zeta": [1, 2], "alpha": {"nested": true}}"#,
    )
    .expect("seed config");
    fs::create_dir_all(scratch.home.join(".claude")).expect("dir");
    fs::write(
        scratch.settings_json(),
        r#"{"model": "opus", "permissions": {"deny": ["Read(.env)"], "allow": ["Bash(ls:*)"]}}"#,
    )
    .expect("seed settings");
    scratch.relay_ok(&["install", "claude"]);

    let config = read_json(&scratch.claude_json());
    assert_eq!(config["numStartups"], 3);
    assert_eq!(config["zeta"], json!([1, 2]));
    assert_eq!(config["alpha"], json!({"nested": true}));
    assert_eq!(
        config["mcpServers"]["other"],
        json!({"command": "other-server", "args": []})
    );
    assert_eq!(config["mcpServers"]["relay"], expected_entry());
    let text = fs::read_to_string(scratch.claude_json()).expect("config");
    let positions: Vec<usize> = [
        "\"numStartups\"",
        "\"mcpServers\"",
        "\"other\"",
        "\"relay\"",
        "\"zeta\"",
        "\"alpha\"",
    ]
    .iter()
    .map(|key| text.find(key).unwrap_or_else(|| panic!("{key} in {text}")))
    .collect();
    assert!(positions.is_sorted(), "keys reordered: {text}");

    let settings = read_json(&scratch.settings_json());
    assert_eq!(
        settings,
        json!({"model": "opus", "permissions": {"deny": ["Read(.env)"], "allow": ["Bash(ls:*)", "mcp__relay"]}})
    );
    let text = fs::read_to_string(scratch.settings_json()).expect("settings");
    assert!(
        text.find("\"model\"") < text.find("\"permissions\""),
        "{text}"
    );
    assert!(text.find("\"deny\"") < text.find("\"allow\""), "{text}");
}

#[test]
fn first_change_backs_up_the_original_and_later_changes_keep_that_backup() {
    let scratch = Scratch::new();
    let original = "{\"numStartups\": 7}\n";
    fs::write(scratch.claude_json(), original).expect("seed");
    fs::set_permissions(scratch.claude_json(), fs::Permissions::from_mode(0o600)).expect("chmod");
    let backup = scratch.home.join(".claude.json.relay-backup");

    let stdout = scratch.relay_ok(&["install", "claude"]);
    assert!(stdout.contains(&backup.display().to_string()), "{stdout}");
    assert_eq!(fs::read_to_string(&backup).expect("backup"), original);
    assert_eq!(mode(&backup), 0o600, "the backup is as private as the file");
    assert_eq!(
        mode(&scratch.claude_json()),
        0o600,
        "the rewrite keeps the mode"
    );

    scratch.relay_ok(&["uninstall", "claude"]);
    assert_eq!(fs::read_to_string(&backup).expect("backup"), original);
    assert!(
        !scratch
            .home
            .join(".claude.json.relay-backup.relay-backup")
            .exists()
            && files_under(&scratch.home)
                .iter()
                .all(|path| !path.to_string_lossy().contains("relay-tmp")),
        "{:?}",
        files_under(&scratch.home)
    );
}

#[test]
fn claude_config_dir_is_honoured() {
    let mut scratch = Scratch::new();
    let config_dir = scratch.home.join("claude-work");
    scratch.env.push((
        "CLAUDE_CONFIG_DIR".to_owned(),
        config_dir.display().to_string(),
    ));
    scratch.relay_ok(&["install", "claude"]);
    assert_eq!(
        read_json(&config_dir.join(".claude.json"))["mcpServers"]["relay"],
        expected_entry()
    );
    assert_eq!(
        read_json(&config_dir.join("settings.json"))["permissions"]["allow"],
        json!(["mcp__relay"])
    );
    assert_eq!(
        files_under(&scratch.home),
        [
            PathBuf::from("claude-work/.claude.json"),
            PathBuf::from("claude-work/settings.json")
        ]
    );
}

#[test]
fn project_scope_writes_in_the_current_directory() {
    let scratch = Scratch::new();
    let stdout = scratch.relay_ok(&["install", "claude", "--scope", "project"]);
    assert!(stdout.contains("project scope"), "{stdout}");
    assert_eq!(
        read_json(&scratch.work.join(".mcp.json"))["mcpServers"]["relay"],
        expected_entry()
    );
    assert_eq!(
        read_json(&scratch.work.join(".claude/settings.json"))["permissions"]["allow"],
        json!(["mcp__relay"])
    );
    assert!(
        files_under(&scratch.home).is_empty(),
        "{:?}",
        files_under(&scratch.home)
    );

    scratch.relay_ok(&["uninstall", "claude", "--scope", "project"]);
    assert_eq!(
        read_json(&scratch.work.join(".mcp.json")),
        json!({"mcpServers": {}})
    );
}

#[test]
fn uninstall_removes_both_and_a_second_uninstall_changes_nothing() {
    let scratch = Scratch::new();
    let stdout = scratch.relay_ok(&["uninstall", "claude"]);
    assert!(stdout.contains("not installed"), "{stdout}");
    assert!(
        files_under(&scratch.home).is_empty(),
        "uninstall creates no files"
    );

    scratch.relay_ok(&["install", "claude"]);
    let stdout = scratch.relay_ok(&["uninstall", "claude"]);
    assert!(stdout.contains("removed mcpServers.relay"), "{stdout}");
    assert!(
        stdout.contains("removed permissions.allow mcp__relay"),
        "{stdout}"
    );
    assert_eq!(read_json(&scratch.claude_json()), json!({"mcpServers": {}}));
    assert_eq!(
        read_json(&scratch.settings_json()),
        json!({"permissions": {"allow": []}})
    );

    let config_before = fs::read(scratch.claude_json()).expect("config");
    let settings_before = fs::read(scratch.settings_json()).expect("settings");
    let stdout = scratch.relay_ok(&["uninstall", "claude"]);
    assert!(
        stdout.contains("not installed; nothing changed"),
        "{stdout}"
    );
    assert_eq!(
        fs::read(scratch.claude_json()).expect("config"),
        config_before
    );
    assert_eq!(
        fs::read(scratch.settings_json()).expect("settings"),
        settings_before
    );
}

#[test]
fn invalid_json_is_refused_and_nothing_is_written() {
    let scratch = Scratch::new();
    fs::write(scratch.claude_json(), "{\"numStartups\": 1,").expect("seed");
    let output = scratch.relay(&["install", "claude"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit code 1: failed, error printed"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&scratch.claude_json().display().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains("is not valid JSON") && stderr.contains("line 1"),
        "{stderr}"
    );
    assert_eq!(
        fs::read_to_string(scratch.claude_json()).expect("config"),
        "{\"numStartups\": 1,"
    );
    assert_eq!(
        files_under(&scratch.home),
        [PathBuf::from(".claude.json")],
        "no settings, no backup"
    );

    // A bad settings file stops the install before the valid config is touched.
    fs::write(scratch.claude_json(), "{}").expect("valid config");
    fs::create_dir_all(scratch.home.join(".claude")).expect("dir");
    fs::write(scratch.settings_json(), "not json").expect("bad settings");
    let output = scratch.relay(&["install", "claude"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("settings.json is not valid JSON"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        fs::read_to_string(scratch.claude_json()).expect("config"),
        "{}"
    );
    assert_eq!(files_under(&scratch.home).len(), 2);
}

#[test]
fn unknown_client_is_a_usage_error_and_help_has_examples() {
    let scratch = Scratch::new();
    let output = scratch.relay(&["install", "vim"]);
    assert_eq!(output.status.code(), Some(2));
    for subcommand in ["install", "uninstall"] {
        let help = scratch.relay_ok(&[subcommand, "--help"]);
        assert!(
            help.contains("Examples:") && help.contains(&format!("relay {subcommand} claude")),
            "{help}"
        );
    }
}

/// A fake `claude`: logs each call's arguments, answers `mcp get relay` with failure until
/// `mcp add` ran (then with what `claude mcp get` prints), and forgets on `mcp remove`.
const FAKE_CLAUDE: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$FAKE_CLAUDE_DIR/calls.log"
printf 'HOME=%s\n' "$HOME" > "$FAKE_CLAUDE_DIR/env.log"
case "$1 $2" in
"mcp get")
  if [ -f "$FAKE_CLAUDE_DIR/added" ]; then cat "$FAKE_CLAUDE_DIR/added"; exit 0; fi
  echo "No MCP server found with name: $3" >&2
  exit 1;;
"mcp add")
  printf '%s:\n  Scope: User config (available in all your projects)\n  Status: ok\n  Type: stdio\n  Command: %s\n  Args: %s %s %s\n  Environment:\n' "$5" "$7" "$8" "$9" "${10}" > "$FAKE_CLAUDE_DIR/added"
  exit 0;;
"mcp remove")
  rm -f "$FAKE_CLAUDE_DIR/added"
  exit 0;;
esac
exit 2
"#;

// With a `claude` on PATH, the server entry goes through `claude mcp get/add/remove` (run with
// the same HOME) and relay writes only the settings file.
#[test]
fn claude_on_path_is_asked_to_add_and_remove_the_server() {
    let mut scratch = Scratch::new();
    let fake_dir = scratch.home.parent().expect("root").join("fake-claude");
    fs::create_dir_all(&fake_dir).expect("fake dir");
    let fake = fake_dir.join("claude");
    fs::write(&fake, FAKE_CLAUDE).expect("fake claude");
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).expect("chmod");
    scratch.path = format!("{}:{PATH_WITHOUT_CLAUDE}", fake_dir.display());
    scratch
        .env
        .push(("FAKE_CLAUDE_DIR".to_owned(), fake_dir.display().to_string()));
    let calls = || fs::read_to_string(fake_dir.join("calls.log")).expect("calls");

    let stdout = scratch.relay_ok(&["install", "claude"]);
    let add = format!(
        "mcp add --scope user relay -- {} mcp --client claude",
        relay_binary()
    );
    assert_eq!(calls(), format!("mcp get relay\n{add}\n"));
    assert!(stdout.contains(&format!("ran: claude {add}")), "{stdout}");
    assert_eq!(
        fs::read_to_string(fake_dir.join("env.log")).expect("env"),
        format!("HOME={}\n", scratch.home.display())
    );
    assert!(
        !scratch.claude_json().exists(),
        "claude, not relay, writes .claude.json"
    );
    assert_eq!(
        read_json(&scratch.settings_json())["permissions"]["allow"],
        json!(["mcp__relay"])
    );

    let stdout = scratch.relay_ok(&["install", "claude"]);
    assert!(stdout.contains("already installed"), "{stdout}");
    assert_eq!(calls(), format!("mcp get relay\n{add}\nmcp get relay\n"));

    scratch.relay_ok(&["uninstall", "claude"]);
    assert_eq!(
        calls(),
        format!(
            "mcp get relay\n{add}\nmcp get relay\nmcp get relay\nmcp remove --scope user relay\n"
        )
    );
    assert_eq!(
        read_json(&scratch.settings_json())["permissions"]["allow"],
        json!([])
    );
}

/// The front matter of a command file: the lines between the opening and closing `---`.
fn front_matter(text: &str) -> Option<Vec<&str>> {
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(rest[..end].lines().collect())
}

#[test]
fn plugin_files_parse_and_every_command_has_a_description() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let marketplace = read_json(&root.join(".claude-plugin/marketplace.json"));
    assert!(
        marketplace["name"]
            .as_str()
            .is_some_and(|name| !name.is_empty())
    );
    assert!(marketplace["owner"]["name"].as_str().is_some());
    let plugins = marketplace["plugins"].as_array().expect("plugins array");
    let entry = plugins
        .iter()
        .find(|plugin| plugin["name"] == "relay")
        .expect("relay entry");
    let source = entry["source"].as_str().expect("a relative source");
    assert!(source.starts_with("./"), "{source}");
    let plugin_dir = root.join(source);

    let manifest = read_json(&plugin_dir.join(".claude-plugin/plugin.json"));
    assert_eq!(manifest["name"], "relay");
    assert!(
        manifest["description"]
            .as_str()
            .is_some_and(|text| text.contains("PATH"))
    );
    assert_eq!(
        read_json(&plugin_dir.join(".mcp.json")),
        json!({"relay": {"command": "relay", "args": ["mcp", "--client", "claude"]}})
    );

    let commands = files_under(&plugin_dir.join("commands"));
    for name in ["inbox.md", "peers.md", "rename.md", "send.md"] {
        assert!(
            commands.contains(&PathBuf::from(name)),
            "commands/{name} missing: {commands:?}"
        );
    }
    for command in &commands {
        let text = fs::read_to_string(plugin_dir.join("commands").join(command)).expect("command");
        let lines =
            front_matter(&text).unwrap_or_else(|| panic!("{command:?} has no front matter"));
        assert!(
            lines.iter().any(|line| line
                .strip_prefix("description:")
                .is_some_and(|text| !text.trim().is_empty())),
            "{command:?} has no description"
        );
        let tool = format!(
            "relay_{}",
            command.to_string_lossy().trim_end_matches(".md")
        );
        assert!(
            lines.iter().any(|line| line.starts_with("allowed-tools:")
                && line.contains(&format!("mcp__relay__{tool}"))
                && line.contains(&format!("mcp__plugin_relay_relay__{tool}"))),
            "{command:?} does not allow {tool} under both names"
        );
    }
}
