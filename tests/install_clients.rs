//! `relay install <client>` / `relay uninstall <client>` for Codex, OpenCode, Copilot, Gemini,
//! Cursor and Antigravity, and `relay install --detect`, from the outside: the built binary runs
//! with a scratch `HOME`, a scrubbed environment (each case sets the client's location
//! variables) and a `PATH` without any real client, and the tests read the files it leaves.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

/// A `PATH` with the usual tools and, on this machine, none of the clients.
const PATH_WITHOUT_CLIENTS: &str = "/usr/bin:/bin";

/// The executables `--detect` looks for.
const CLIENT_BINARIES: &[&str] = &[
    "claude",
    "codex",
    "opencode",
    "copilot",
    "gemini",
    "agent",
    "cursor-agent",
    "agy",
];

/// Every client `relay install` knows besides Claude Code.
const CLIENTS: &[&str] = &["codex", "opencode", "copilot", "gemini", "cursor", "agy"];

/// A scratch home and working directory, and how to run `relay` in them.
struct Scratch {
    root: tempfile::TempDir,
    home: PathBuf,
    work: PathBuf,
    /// Extra environment variables for every run.
    env: Vec<(String, String)>,
    path: String,
}

impl Scratch {
    fn new() -> Scratch {
        for dir in PATH_WITHOUT_CLIENTS.split(':') {
            for name in CLIENT_BINARIES {
                assert!(
                    !Path::new(dir).join(name).exists(),
                    "these tests need a PATH without {name}, but {dir}/{name} exists"
                );
            }
        }
        let root = tempfile::tempdir().expect("temp dir");
        let home = root.path().join("home");
        let work = root.path().join("work");
        fs::create_dir_all(&home).expect("home");
        fs::create_dir_all(&work).expect("work");
        Scratch {
            root,
            home,
            work,
            env: Vec::new(),
            path: PATH_WITHOUT_CLIENTS.to_owned(),
        }
    }

    fn set(&mut self, name: &str, value: &Path) {
        self.env
            .push((name.to_owned(), value.display().to_string()));
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

    /// Every file under the scratch root (home and work), with its bytes and mtime.
    fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
        files_under(self.root.path())
            .into_iter()
            .map(|relative| {
                let path = self.root.path().join(&relative);
                let bytes = fs::read(&path).expect("read");
                let mtime = fs::metadata(&path)
                    .and_then(|metadata| metadata.modified())
                    .expect("mtime");
                (relative, (bytes, mtime))
            })
            .collect()
    }

    /// Every file under the scratch root, relative to it.
    fn files(&self) -> Vec<PathBuf> {
        files_under(self.root.path())
    }
}

fn relay_binary() -> String {
    fs::canonicalize(env!("CARGO_BIN_EXE_relay"))
        .expect("canonical relay path")
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

fn read_json(path: &Path) -> Value {
    let text =
        fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
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

/// A shipped asset with its command placeholder filled in, as relay writes it.
fn filled_asset(asset: &str, client: &str, data_dir: Option<&str>) -> String {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join(asset));
    let mut command = vec![
        relay_binary(),
        "deliver".into(),
        "--client".into(),
        client.into(),
    ];
    if let Some(dir) = data_dir {
        command.extend(["--data-dir".to_owned(), dir.to_owned()]);
    }
    let literal = format!(
        "[{}]",
        command
            .iter()
            .map(|arg| serde_json::to_string(arg).expect("json"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(
        text.matches("__RELAY_DELIVER_COMMAND__").count(),
        1,
        "{asset} holds the placeholder once"
    );
    text.replace("__RELAY_DELIVER_COMMAND__", &literal)
}

fn mcp_args(client: &str) -> Value {
    json!(["mcp", "--client", client])
}

#[test]
fn codex_writes_one_table_with_its_codex_home() {
    let mut scratch = Scratch::new();
    let codex_home = scratch.home.join("codex-work");
    scratch.set("CODEX_HOME", &codex_home);
    let stdout = scratch.relay_ok(&["install", "codex"]);
    let config = codex_home.join("config.toml");
    assert!(
        stdout.contains(&format!("{}: added mcp_servers.relay", config.display())),
        "{stdout}"
    );
    assert_eq!(
        read(&config),
        format!(
            "[mcp_servers.relay]\ncommand = \"{}\"\nargs = [\"mcp\", \"--client\", \"codex\"]\n\
             env = {{ CODEX_HOME = \"{}\" }}\n",
            relay_binary(),
            codex_home.display()
        )
    );
    assert!(!scratch.home.join(".codex").exists());
}

#[test]
fn codex_keeps_comments_and_other_servers_and_uninstall_removes_only_relay() {
    let scratch = Scratch::new();
    let config = scratch.home.join(".codex").join("config.toml");
    fs::create_dir_all(config.parent().expect("dir")).expect("dir");
    let original = "# Codex settings, by hand\nmodel = \"o3\"  # the big one\n\n\
                    [mcp_servers.docs]\n# docs server\ncommand = \"docs-mcp\"\nargs = []\n";
    fs::write(&config, original).expect("seed");
    let stdout = scratch.relay_ok(&["install", "codex"]);
    let backup = scratch.home.join(".codex/config.toml.relay-backup");
    assert!(
        stdout.contains(&format!("backup: {}", backup.display())),
        "{stdout}"
    );
    assert_eq!(read(&backup), original);
    let text = read(&config);
    assert!(
        text.starts_with(original),
        "the user's text stays first:\n{text}"
    );
    assert!(text.contains("[mcp_servers.relay]\n"), "{text}");
    assert!(
        text.contains(&format!(
            "env = {{ CODEX_HOME = \"{}\" }}",
            scratch.home.join(".codex").display()
        )),
        "{text}"
    );

    let stdout = scratch.relay_ok(&["uninstall", "codex"]);
    assert!(stdout.contains("removed mcp_servers.relay"), "{stdout}");
    assert!(stdout.contains("(kept from an earlier run)"), "{stdout}");
    assert_eq!(read(&config).trim_end(), original.trim_end());
    assert_eq!(read(&backup), original, "uninstall keeps the first backup");
}

#[test]
fn codex_invalid_toml_is_refused_with_the_file_named() {
    let scratch = Scratch::new();
    let config = scratch.home.join(".codex").join("config.toml");
    fs::create_dir_all(config.parent().expect("dir")).expect("dir");
    fs::write(&config, "model = \n").expect("seed");
    let output = scratch.relay(&["install", "codex"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&config.display().to_string()) && stderr.contains("is not valid TOML"),
        "{stderr}"
    );
    assert_eq!(read(&config), "model = \n");
}

#[test]
fn opencode_honours_opencode_config_and_writes_the_plugin() {
    let mut scratch = Scratch::new();
    let xdg = scratch.home.join("xdg");
    let custom = scratch.home.join("custom").join("oc.json");
    scratch.set("XDG_CONFIG_HOME", &xdg);
    scratch.set("OPENCODE_CONFIG", &custom);
    fs::create_dir_all(custom.parent().expect("dir")).expect("dir");
    fs::write(
        &custom,
        "{\"theme\": \"dark\", \"mcp\": {\"other\": {\"type\": \"remote\"}}}\n",
    )
    .expect("seed");
    let stdout = scratch.relay_ok(&["install", "opencode"]);
    assert!(stdout.contains("added mcp.relay"), "{stdout}");
    let mut command = vec![json!(relay_binary())];
    command.extend(["mcp", "--client", "opencode"].map(|arg| json!(arg)));
    assert_eq!(
        read_json(&custom),
        json!({
            "theme": "dark",
            "mcp": {
                "other": {"type": "remote"},
                "relay": {"type": "local", "command": command, "enabled": true},
            },
        })
    );
    let plugin = xdg.join("opencode/plugins/relay.js");
    assert_eq!(
        read(&plugin),
        filled_asset("assets/opencode/relay.js", "opencode", None)
    );
    assert!(!xdg.join("opencode/opencode.json").exists());

    let stdout = scratch.relay_ok(&["uninstall", "opencode"]);
    assert!(
        stdout.contains("removed mcp.relay") && stdout.contains("removed the Relay plugin"),
        "{stdout}"
    );
    assert!(!plugin.exists());
    assert_eq!(
        read_json(&custom),
        json!({"theme": "dark", "mcp": {"other": {"type": "remote"}}})
    );
}

#[test]
fn opencode_config_with_comments_is_refused_and_left_alone() {
    let mut scratch = Scratch::new();
    let xdg = scratch.home.join(".config");
    scratch.set("XDG_CONFIG_HOME", &xdg);
    let config = xdg.join("opencode/opencode.json");
    fs::create_dir_all(config.parent().expect("dir")).expect("dir");
    let original = "{\n  // my model\n  \"model\": \"x/y\",\n}\n";
    fs::write(&config, original).expect("seed");
    let output = scratch.relay(&["install", "opencode"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&config.display().to_string()) && stderr.contains("comments"),
        "{stderr}"
    );
    assert_eq!(read(&config), original);
    assert_eq!(
        scratch.files(),
        [PathBuf::from("home/.config/opencode/opencode.json")],
        "no plugin, no backup"
    );
}

#[test]
fn copilot_writes_entry_extension_and_experimental_mode_and_uninstall_keeps_the_mode() {
    let mut scratch = Scratch::new();
    let copilot_home = scratch.home.join("cp");
    scratch.set("COPILOT_HOME", &copilot_home);
    fs::create_dir_all(&copilot_home).expect("dir");
    fs::write(
        copilot_home.join("settings.json"),
        "{\n  \"theme\": \"dim\"\n}\n",
    )
    .expect("seed");
    let stdout = scratch.relay_ok(&["install", "copilot"]);
    assert!(stdout.contains("added experimental"), "{stdout}");
    assert_eq!(
        read_json(&copilot_home.join("mcp-config.json")),
        json!({"mcpServers": {"relay": {
            "type": "local",
            "command": relay_binary(),
            "args": mcp_args("copilot"),
            "tools": ["*"],
        }}})
    );
    let extension = copilot_home.join("extensions/relay/extension.mjs");
    assert_eq!(
        read(&extension),
        filled_asset("assets/copilot/extension.mjs", "copilot", None)
    );
    assert_eq!(
        read(&copilot_home.join("settings.json")),
        "{\n  \"theme\": \"dim\",\n  \"experimental\": true\n}\n"
    );

    let stdout = scratch.relay_ok(&["uninstall", "copilot"]);
    assert!(stdout.contains("experimental mode stays on"), "{stdout}");
    assert!(!copilot_home.join("extensions/relay").exists());
    assert!(copilot_home.join("extensions").exists());
    assert_eq!(
        read_json(&copilot_home.join("mcp-config.json")),
        json!({"mcpServers": {}})
    );
    assert_eq!(
        read_json(&copilot_home.join("settings.json")),
        json!({"theme": "dim", "experimental": true})
    );
}

#[test]
fn gemini_honours_gemini_cli_home_keeps_other_hooks_and_passes_the_data_dir() {
    let mut scratch = Scratch::new();
    let gemini_home = scratch.home.join("gh");
    scratch.set("GEMINI_CLI_HOME", &gemini_home);
    let settings = gemini_home.join(".gemini/settings.json");
    fs::create_dir_all(settings.parent().expect("dir")).expect("dir");
    let user_group =
        json!({"matcher": "*", "hooks": [{"type": "command", "command": "notify-send done"}]});
    fs::write(
        &settings,
        serde_json::to_string(
            &json!({"general": {"vimMode": true}, "hooks": {"AfterAgent": [user_group]}}),
        )
        .expect("json"),
    )
    .expect("seed");
    let data_dir = scratch.home.join("relay-data");
    scratch.relay_ok(&["install", "gemini", "--data-dir", "../home/relay-data"]);
    let data_dir = data_dir.display().to_string();
    let hook = |event: &str, name: &str| {
        json!({"matcher": "*", "hooks": [{
            "name": name,
            "type": "command",
            "command": format!("{} hook gemini {event} --data-dir {data_dir}", relay_binary()),
            "timeout": 10000,
        }]})
    };
    assert_eq!(
        read_json(&settings),
        json!({
            "general": {"vimMode": true},
            "hooks": {
                "AfterAgent": [user_group, hook("after-agent", "relay-after-agent")],
                "AfterTool": [hook("after-tool", "relay-after-tool")],
            },
            "mcpServers": {"relay": {
                "command": relay_binary(),
                "args": ["mcp", "--client", "gemini", "--data-dir", data_dir],
            }},
        })
    );
    assert!(!scratch.home.join(".gemini").exists());

    let stdout = scratch.relay_ok(&["uninstall", "gemini"]);
    assert!(
        stdout.contains("removed mcpServers.relay, removed hooks.AfterAgent relay, removed hooks.AfterTool relay"),
        "{stdout}"
    );
    assert_eq!(
        read_json(&settings),
        json!({
            "general": {"vimMode": true},
            "hooks": {"AfterAgent": [user_group], "AfterTool": []},
            "mcpServers": {},
        })
    );
}

#[test]
fn cursor_merges_hooks_and_says_agent_mcp_enable_may_be_needed() {
    let scratch = Scratch::new();
    let hooks = scratch.home.join(".cursor/hooks.json");
    fs::create_dir_all(hooks.parent().expect("dir")).expect("dir");
    fs::write(
        &hooks,
        r#"{"version": 1, "hooks": {"afterFileEdit": [{"command": "./fmt.sh"}], "stop": [{"command": "./audit.sh"}]}}"#,
    )
    .expect("seed");
    let stdout = scratch.relay_ok(&["install", "cursor"]);
    assert!(stdout.contains("agent mcp enable relay"), "{stdout}");
    let ours = json!({"command": format!("{} hook cursor stop", relay_binary()), "loop_limit": 5});
    assert_eq!(
        read_json(&hooks),
        json!({"version": 1, "hooks": {
            "afterFileEdit": [{"command": "./fmt.sh"}],
            "stop": [{"command": "./audit.sh"}, ours],
        }})
    );
    assert_eq!(
        read_json(&scratch.home.join(".cursor/mcp.json")),
        json!({"mcpServers": {"relay": {"command": relay_binary(), "args": mcp_args("cursor")}}})
    );
    scratch.relay_ok(&["uninstall", "cursor"]);
    assert_eq!(
        read_json(&hooks),
        json!({"version": 1, "hooks": {
            "afterFileEdit": [{"command": "./fmt.sh"}],
            "stop": [{"command": "./audit.sh"}],
        }})
    );
}

#[test]
fn agy_is_pull_only_and_has_no_project_scope() {
    let scratch = Scratch::new();
    let stdout = scratch.relay_ok(&["install", "agy"]);
    assert!(stdout.contains("relay_inbox"), "{stdout}");
    assert_eq!(
        read_json(&scratch.home.join(".gemini/antigravity-cli/mcp_config.json")),
        json!({"mcpServers": {"relay": {"command": relay_binary(), "args": mcp_args("agy")}}})
    );
    let output = scratch.relay(&["install", "agy", "--scope", "project"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("project-scope"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Sets the location variables of every client to scratch places.
fn with_every_location(scratch: &mut Scratch) {
    let home = scratch.home.clone();
    scratch.set("XDG_CONFIG_HOME", &home.join("xdg"));
    scratch.set("CODEX_HOME", &home.join("codex"));
    scratch.set("COPILOT_HOME", &home.join("copilot"));
    scratch.set("GEMINI_CLI_HOME", &home.join("gemini"));
}

#[test]
fn every_client_second_install_changes_no_file_and_says_so() {
    for client in CLIENTS {
        let mut scratch = Scratch::new();
        with_every_location(&mut scratch);
        let stdout = scratch.relay_ok(&["install", client]);
        assert!(stdout.contains("relay is installed"), "{client}: {stdout}");
        let before = scratch.snapshot();
        assert!(!before.is_empty(), "{client} wrote nothing");
        assert!(
            before
                .keys()
                .all(|path| !path.to_string_lossy().contains("relay-backup")),
            "{client}: new files have no backup: {:?}",
            before.keys()
        );
        std::thread::sleep(Duration::from_millis(20));
        let stdout = scratch.relay_ok(&["install", client]);
        assert!(
            stdout.contains("relay is already installed; nothing changed"),
            "{client}: {stdout}"
        );
        assert!(!stdout.contains("added"), "{client}: {stdout}");
        assert_eq!(scratch.snapshot(), before, "{client}: files changed");

        scratch.relay_ok(&["uninstall", client]);
        let after_uninstall = scratch.snapshot();
        let stdout = scratch.relay_ok(&["uninstall", client]);
        assert!(
            stdout.contains("relay is not installed; nothing changed"),
            "{client}: {stdout}"
        );
        assert_eq!(scratch.snapshot(), after_uninstall, "{client}");
    }
}

#[test]
fn every_client_dry_run_prints_the_plan_and_writes_nothing() {
    for client in CLIENTS {
        let mut scratch = Scratch::new();
        with_every_location(&mut scratch);
        let stdout = scratch.relay_ok(&["install", client, "--dry-run"]);
        assert!(stdout.contains("would add"), "{client}: {stdout}");
        assert!(
            stdout.contains("dry run, nothing was written"),
            "{client}: {stdout}"
        );
        assert!(
            scratch.files().is_empty(),
            "{client}: {:?}",
            scratch.files()
        );

        scratch.relay_ok(&["install", client]);
        let before = scratch.snapshot();
        let stdout = scratch.relay_ok(&["uninstall", client, "--dry-run"]);
        assert!(stdout.contains("would remove"), "{client}: {stdout}");
        assert_eq!(scratch.snapshot(), before, "{client}");
    }
}

#[test]
fn every_client_backs_up_an_existing_file_once() {
    for client in CLIENTS {
        let mut scratch = Scratch::new();
        with_every_location(&mut scratch);
        // Seed each file the client edits with something of the user's.
        scratch.relay_ok(&["install", client]);
        let seeded: Vec<(PathBuf, String)> = scratch
            .files()
            .into_iter()
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "json" || ext == "toml")
            })
            .map(|relative| {
                let path = scratch.root.path().join(relative);
                let text = if path.extension().is_some_and(|ext| ext == "toml") {
                    "# mine\nmodel = \"m\"\n".to_owned()
                } else {
                    "{\"mine\": true}\n".to_owned()
                };
                fs::write(&path, &text).expect("seed");
                (path, text)
            })
            .collect();
        assert!(!seeded.is_empty(), "{client}");
        scratch.relay_ok(&["install", client]);
        for (path, original) in &seeded {
            let backup = PathBuf::from(format!("{}.relay-backup", path.display()));
            assert_eq!(&read(&backup), original, "{client}: {}", backup.display());
            assert!(read(path).contains("mine"), "{client}: {}", path.display());
        }
        scratch.relay_ok(&["uninstall", client]);
        for (path, original) in &seeded {
            let backup = PathBuf::from(format!("{}.relay-backup", path.display()));
            assert_eq!(&read(&backup), original, "{client}: the backup is kept");
        }
    }
}

#[test]
fn project_scope_writes_the_project_files() {
    let expected: &[(&str, &[&str])] = &[
        ("codex", &["work/.codex/config.toml"]),
        (
            "opencode",
            &["work/.opencode/plugins/relay.js", "work/opencode.json"],
        ),
        (
            "copilot",
            &[
                "home/copilot/settings.json",
                "work/.github/extensions/relay/extension.mjs",
                "work/.github/mcp.json",
            ],
        ),
        ("gemini", &["work/.gemini/settings.json"]),
        (
            "cursor",
            &["work/.cursor/hooks.json", "work/.cursor/mcp.json"],
        ),
    ];
    for (client, files) in expected {
        let mut scratch = Scratch::new();
        with_every_location(&mut scratch);
        let stdout = scratch.relay_ok(&["install", client, "--scope", "project"]);
        assert!(stdout.contains("(project scope)"), "{client}: {stdout}");
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        assert_eq!(scratch.files(), files, "{client}");
        scratch.relay_ok(&["uninstall", client, "--scope", "project"]);
    }
    let scratch = Scratch::new();
    scratch.relay_ok(&["install", "copilot", "--scope", "project"]);
    assert_eq!(
        read_json(&scratch.work.join(".github/mcp.json"))["mcpServers"]["relay"]["args"],
        mcp_args("copilot")
    );
}

#[test]
fn detect_installs_for_the_clients_found_and_skips_the_others() {
    let mut scratch = Scratch::new();
    fs::create_dir_all(scratch.home.join(".codex")).expect("codex dir");
    fs::create_dir_all(scratch.home.join(".cursor")).expect("cursor dir");
    let bin = scratch.root.path().join("bin");
    fs::create_dir_all(&bin).expect("bin");
    let gemini = bin.join("gemini");
    fs::write(&gemini, "#!/bin/sh\nexit 0\n").expect("fake gemini");
    fs::set_permissions(&gemini, fs::Permissions::from_mode(0o755)).expect("chmod");
    scratch.path = format!("{}:{PATH_WITHOUT_CLIENTS}", bin.display());

    let stdout = scratch.relay_ok(&["install", "--detect", "--dry-run"]);
    assert!(
        stdout.contains(&format!(
            "found: Codex CLI ({} exists)",
            scratch.home.join(".codex").display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("found: Gemini CLI ({} on PATH)", gemini.display())),
        "{stdout}"
    );
    assert!(stdout.contains("found: Cursor CLI"), "{stdout}");
    for skipped in [
        "Claude Code",
        "OpenCode",
        "GitHub Copilot CLI",
        "Antigravity",
    ] {
        assert!(stdout.contains(&format!("skipped: {skipped}")), "{stdout}");
    }
    assert!(!scratch.home.join(".codex/config.toml").exists());

    let stdout = scratch.relay_ok(&["install", "--detect"]);
    assert!(
        stdout.contains("Codex CLI (user scope): relay is installed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Gemini CLI (user scope): relay is installed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Cursor CLI (user scope): relay is installed"),
        "{stdout}"
    );
    assert_eq!(
        files_under(&scratch.home),
        [
            PathBuf::from(".codex/config.toml"),
            PathBuf::from(".cursor/hooks.json"),
            PathBuf::from(".cursor/mcp.json"),
            PathBuf::from(".gemini/settings.json"),
        ]
    );
    let before = scratch.snapshot();
    let stdout = scratch.relay_ok(&["install", "--detect"]);
    assert_eq!(
        stdout.matches("already installed; nothing changed").count(),
        3,
        "{stdout}"
    );
    assert_eq!(scratch.snapshot(), before);

    // A client and --detect together is a usage error; so is neither.
    assert_eq!(
        scratch
            .relay(&["install", "codex", "--detect"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(scratch.relay(&["install"]).status.code(), Some(2));
}

#[test]
fn help_shows_an_example_for_every_client() {
    let scratch = Scratch::new();
    for subcommand in ["install", "uninstall"] {
        let help = scratch.relay_ok(&[subcommand, "--help"]);
        for client in CLIENTS {
            assert!(
                help.contains(&format!("relay {subcommand} {client}")),
                "{subcommand} --help lacks {client}: {help}"
            );
        }
    }
    assert!(
        scratch
            .relay_ok(&["install", "--help"])
            .contains("--detect")
    );
}
