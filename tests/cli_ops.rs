//! Running Relay day to day, through the real binary: `relay status`, `stop`, `restart`,
//! `doctor`, `service --dry-run`, `completions`, `man`, `<data dir>/relay.toml`, the idle-exit
//! default of a hub started by hand, a taken WebSocket port, and version-skew warnings.
//!
//! Every test uses its own temporary data dir and `HOME` (so no real client config or
//! `~/.relay` is read), loopback only, and stops every hub it starts by its pid. A hub of
//! another version is played by [`FakeHub`], a few lines of JSON on the data dir's socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

/// How long anything that should happen at once may take.
const DEADLINE: Duration = Duration::from_secs(15);

/// A data dir and a home directory of the test's own.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("home")).expect("home");
        Scratch { dir }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `relay <args> --data-dir <data dir>` with this scratch's HOME.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(RELAY);
        command
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("RELAY_HOME")
            .env_remove("RELAY_LOG")
            .env_remove("CLAUDE_CODE_MESSAGING_SOCKET")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", self.home())
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        command
    }

    fn relay(&self, args: &[&str]) -> Output {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("relay runs");
        let started = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if started.elapsed() > DEADLINE * 2 {
                let _ = child.kill();
                panic!("relay {args:?} did not end within {:?}", DEADLINE * 2);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    }

    /// `relay <args>` for commands that take no data dir (completions, man).
    fn relay_plain(&self, args: &[&str]) -> Output {
        Command::new(RELAY)
            .args(args)
            .env("HOME", self.home())
            .stdin(Stdio::null())
            .output()
            .expect("relay runs")
    }

    fn status_json(&self) -> Value {
        let output = self.relay(&["status", "--json"]);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        serde_json::from_slice(&output.stdout).expect("status --json is JSON")
    }

    /// `relay hub` in the foreground as a child of the test, once its socket answers.
    fn hub(&self, extra: &[&str]) -> HubChild {
        std::fs::create_dir_all(self.data_dir()).expect("data dir");
        std::fs::set_permissions(self.data_dir(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let mut args = vec!["hub"];
        args.extend_from_slice(extra);
        let child = self
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("relay hub starts");
        wait_for_socket(&self.data_dir());
        HubChild { child }
    }

    fn write_settings(&self, text: &str) {
        std::fs::create_dir_all(self.data_dir()).expect("data dir");
        std::fs::set_permissions(self.data_dir(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        std::fs::write(self.data_dir().join("relay.toml"), text).expect("relay.toml");
    }
}

/// A hub started by the test; SIGKILLed and reaped on drop if still running.
struct HubChild {
    child: Child,
}

impl HubChild {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the hub to exit by itself.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(started.elapsed() < DEADLINE, "the hub did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        }
        text
    }
}

impl Drop for HubChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hub the test did not start as its child (spawned on demand, or by `relay restart`):
/// stopped by its pid on drop.
struct Detached(u32);

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(self.0.to_string())
            .status();
    }
}

fn wait_for_socket(data_dir: &Path) {
    let started = Instant::now();
    while UnixStream::connect(data_dir.join("hub.sock")).is_err() {
        assert!(started.elapsed() < DEADLINE, "no hub answered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn process_exists(pid: u32) -> bool {
    // A zombie (exited, not reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z')
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn setting<'a>(status: &'a Value, name: &str) -> (&'a str, &'a str) {
    let found = status["hub"]["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|setting| setting["name"] == name)
        .unwrap_or_else(|| panic!("no setting {name}: {status}"));
    (
        found["value"].as_str().expect("value"),
        found["source"].as_str().expect("source"),
    )
}

#[test]
fn status_says_no_hub_runs_with_exit_4() {
    let scratch = Scratch::new();
    let output = scratch.relay(&["status"]);
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert!(
        text(&output.stdout).contains("hub: not running"),
        "{output:?}"
    );
    let json = scratch.relay(&["status", "--json"]);
    assert_eq!(json.status.code(), Some(4));
    let value: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["running"], false);
    // status never starts a hub.
    assert!(!scratch.data_dir().join("hub.sock").exists());
}

#[test]
fn status_shows_pid_version_settings_with_sources_sessions_and_log() {
    let scratch = Scratch::new();
    scratch.write_settings("send_burst = 77\n");
    let hub = scratch.hub(&["--ws-port", "0", "--send-rate", "9"]);
    // A session that says how its pushes reach the model.
    let mut session = UnixStream::connect(scratch.data_dir().join("hub.sock")).expect("connect");
    let mut reader = BufReader::new(session.try_clone().expect("clone"));
    let mut call = |method: &str, params: Value| {
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        writeln!(session, "{request}").expect("write");
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        serde_json::from_str::<Value>(&line).expect("JSON")
    };
    call(
        "hello",
        json!({"versions": {"min": 1, "max": 1}, "client": "test/1"}),
    );
    let registered = call(
        "register",
        json!({"name": "api", "cwd": "/src/api", "client": "claude", "delivery": "claude-socket"}),
    );
    assert_eq!(registered["result"]["name"], "api", "{registered}");

    let status = scratch.status_json();
    assert_eq!(status["running"], true);
    assert_eq!(status["hub"]["pid"], hub.pid());
    assert_eq!(status["hub"]["hub_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["hub"]["started_by"], "hand");
    assert_eq!(setting(&status, "send_rate"), ("9", "flag"));
    assert_eq!(setting(&status, "send_burst"), ("77", "relay.toml"));
    assert_eq!(setting(&status, "ping_interval"), ("30", "default"));
    // Started by hand: no idle exit unless asked.
    assert_eq!(setting(&status, "idle_exit"), ("0", "default"));
    let sessions = status["hub"]["sessions"].as_array().expect("sessions");
    assert!(
        sessions.iter().any(|session| session["name"] == "api"
            && session["client"] == "claude"
            && session["delivery"] == "claude-socket"),
        "{status}"
    );
    assert!(
        status["hub"]["log"]["next_offset"]
            .as_u64()
            .expect("offset")
            >= 2
    );
    assert!(status["hub"]["ws_port"].as_u64().is_some(), "{status}");

    let output = scratch.relay(&["status"]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    for expected in [
        format!("pid {}", hub.pid()),
        "SETTING".to_owned(),
        "send_burst          77      relay.toml".to_owned(),
        "NAME".to_owned(),
        "claude-socket".to_owned(),
        "log: ".to_owned(),
        "snapshot: ".to_owned(),
    ] {
        assert!(
            stdout.contains(&expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert!(
        text(&output.stderr).is_empty(),
        "no skew warning: {output:?}"
    );
}

#[test]
fn stop_ends_the_hub_cleanly_and_says_so_when_none_runs() {
    let scratch = Scratch::new();
    let mut hub = scratch.hub(&["--ws-port", "0"]);
    let output = scratch.relay(&["stop"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(hub.wait_exit().success(), "SIGTERM is a clean exit");
    assert!(
        !scratch.data_dir().join("hub.sock").exists(),
        "the hub removed its socket before it exited"
    );
    let again = scratch.relay(&["stop"]);
    assert_eq!(again.status.code(), Some(4), "{again:?}");
    assert!(text(&again.stderr).contains("no hub runs"), "{again:?}");
}

#[test]
fn restart_starts_a_new_hub_with_the_old_ones_flags() {
    let scratch = Scratch::new();
    let mut hub = scratch.hub(&["--ws-port", "0", "--send-rate", "7", "--durability", "os"]);
    let old_pid = hub.pid();
    let output = scratch.relay(&["restart"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(hub.wait_exit().success());
    let status = scratch.status_json();
    let new_pid = u32::try_from(status["hub"]["pid"].as_u64().expect("pid")).expect("pid");
    let _new = Detached(new_pid);
    assert_ne!(new_pid, old_pid);
    assert_eq!(setting(&status, "send_rate"), ("7", "flag"));
    assert_eq!(setting(&status, "durability"), ("os", "flag"));
    assert_eq!(setting(&status, "ws_port"), ("0", "flag"));
    assert_eq!(status["hub"]["started_by"], "hand");
    let stopped = scratch.relay(&["stop"]);
    assert_eq!(stopped.status.code(), Some(0), "{stopped:?}");
    assert!(!process_exists(new_pid), "relay stop waited for the exit");
}

#[test]
fn a_hub_spawned_on_demand_honours_relay_toml_and_keeps_its_idle_exit() {
    let scratch = Scratch::new();
    scratch.write_settings(
        "# shared by every hub of this data dir\nws_port = 0\nsend_rate = 1\nsend_burst = 3\nping_timeout = 45\n",
    );
    let sent = scratch.relay(&["peers", "--as", "alice"]);
    assert_eq!(sent.status.code(), Some(0), "{sent:?}");
    let status = scratch.status_json();
    let _hub = Detached(u32::try_from(status["hub"]["pid"].as_u64().expect("pid")).expect("pid"));
    assert_eq!(status["hub"]["started_by"], "on-demand");
    assert_eq!(setting(&status, "send_burst"), ("3", "relay.toml"));
    assert_eq!(setting(&status, "ping_timeout"), ("45", "relay.toml"));
    assert_eq!(setting(&status, "idle_exit"), ("600", "default"));
    // The burst of 3 is in force: the fourth send in a row is refused.
    let mut refused = None;
    for attempt in 0..6 {
        let output = scratch.relay(&["send", "alice", &format!("n{attempt}"), "--as", "bob"]);
        if !output.status.success() {
            refused = Some(text(&output.stderr));
            break;
        }
    }
    let refused = refused.expect("a send past the burst is refused");
    assert!(refused.contains("rate_limited"), "{refused}");
    assert_eq!(scratch.relay(&["stop"]).status.code(), Some(0));
}

#[test]
fn a_bad_relay_toml_stops_the_hub_naming_the_key_and_the_file() {
    let scratch = Scratch::new();
    scratch.write_settings("send_rates = 5\n");
    let output = scratch.relay(&["hub"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    let file = scratch.data_dir().join("relay.toml");
    assert!(
        stderr.contains(&file.display().to_string()) && stderr.contains("unknown key `send_rates`"),
        "{stderr}"
    );
    assert!(
        !scratch.data_dir().join("log").exists(),
        "the hub opened nothing"
    );

    scratch.write_settings("durability = \"fast\"\n");
    let output = scratch.relay(&["hub"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("`durability` must be \"strict\" or \"os\", not \"fast\""),
        "{output:?}"
    );

    // A session that spawns the hub hears why at once, not after the 15 s spawn wait.
    let started = Instant::now();
    let output = scratch.relay(&["peers", "--as", "alice"]);
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(text(&output.stderr).contains("`durability`"), "{output:?}");
}

#[test]
fn a_taken_websocket_port_is_said_on_the_terminal_with_its_cause() {
    let scratch = Scratch::new();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = holder.local_addr().expect("addr").port().to_string();
    let hub = scratch.hub(&["--ws-port", &port]);
    let status = scratch.status_json();
    let error = status["hub"]["ws_error"]
        .as_str()
        .expect("ws_error")
        .to_owned();
    assert!(error.to_lowercase().contains("in use"), "{error}");
    let stderr = hub.stderr();
    assert!(
        stderr.contains(&format!("no websocket on 127.0.0.1:{port}"))
            && stderr.contains("ws_port = 0"),
        "{stderr}"
    );
}

#[test]
fn the_default_websocket_port_is_not_ecorelays() {
    let help = text(&Scratch::new().relay(&["hub", "--help"]).stdout);
    assert!(help.contains("[default: 24716]"), "{help}");
    assert!(!help.contains("19736"), "{help}");
    for documented in ["RELAY_LOG", "--log-format", "relay.toml", "idle"] {
        assert!(
            help.contains(documented),
            "{documented} missing from relay hub --help"
        );
    }
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let scratch = Scratch::new();
    let mut hub = scratch.hub(&["--ws-port", "0", "--log-format", "json"]);
    assert_eq!(scratch.relay(&["stop"]).status.code(), Some(0));
    hub.wait_exit();
    let log = std::fs::read_to_string(scratch.data_dir().join("logs/hub.log")).expect("hub.log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 3, "{log}");
    for line in lines {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
}

#[test]
fn doctor_passes_on_a_healthy_setup() {
    let scratch = Scratch::new();
    let _hub = scratch.hub(&["--ws-port", "0"]);
    let output = scratch.relay(&["doctor"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("ok    hub: runs"), "{stdout}");
    assert!(stdout.contains("ok    disk:"), "{stdout}");
    assert!(stdout.contains("no problems found"), "{stdout}");
    let json = scratch.relay(&["doctor", "--json"]);
    let value: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(value["ok"], true);
    assert!(value["checks"].as_array().expect("checks").len() >= 5);
}

#[test]
fn doctor_fails_a_data_dir_others_can_read_and_says_how_to_fix_it() {
    let scratch = Scratch::new();
    let mut hub = scratch.hub(&["--ws-port", "0"]);
    assert_eq!(scratch.relay(&["stop"]).status.code(), Some(0));
    hub.wait_exit();
    let data_dir = scratch.data_dir();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let open = data_dir.join("logs/hub.log");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = scratch.relay(&["doctor"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("{} (644)", open.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("fix: chmod -R go-rwx {}", data_dir.display())),
        "{stdout}"
    );
    assert!(stdout.contains("mode 755"), "{stdout}");

    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let output = scratch.relay(&["doctor"]);
    assert!(
        text(&output.stdout).contains(&format!("fix: chmod 700 {}", data_dir.display())),
        "{output:?}"
    );
}

#[test]
fn doctor_fails_a_client_config_that_runs_another_binary() {
    let scratch = Scratch::new();
    let installed = scratch.relay(&["install", "codex"]);
    assert!(installed.status.success(), "{installed:?}");
    let output = scratch.relay(&["doctor"]);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("ok    client Codex CLI: runs this binary"),
        "{stdout}"
    );

    let config = scratch.home().join(".codex/config.toml");
    let original = std::fs::read_to_string(&config).expect("config.toml");
    assert!(original.contains(RELAY), "{original}");
    std::fs::write(&config, original.replace(RELAY, "/opt/old/relay")).expect("write");
    let output = scratch.relay(&["doctor"]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("fail  client Codex CLI"), "{stdout}");
    assert!(stdout.contains("fix: relay install codex"), "{stdout}");
}

/// A hub of another version on the data dir's socket: answers `hello` with `hub_version`,
/// `register` with the name asked for, `hub_info` with a minimal description, and anything
/// else with `unknown_method`.
struct FakeHub {
    _dir: PathBuf,
}

impl FakeHub {
    fn start(data_dir: &Path, hub_version: &'static str, knows_hub_info: bool) -> FakeHub {
        std::fs::create_dir_all(data_dir).expect("data dir");
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let listener = UnixListener::bind(data_dir.join("hub.sock")).expect("bind");
        let data = data_dir.display().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let data = data.clone();
                std::thread::spawn(move || {
                    fake_connection(stream, hub_version, knows_hub_info, &data)
                });
            }
        });
        FakeHub {
            _dir: data_dir.to_owned(),
        }
    }
}

fn fake_connection(stream: UnixStream, hub_version: &str, knows_hub_info: bool, data_dir: &str) {
    let mut writer = stream.try_clone().expect("clone");
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let Ok(request) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(method) = request["method"].as_str() else {
            continue;
        };
        let id = request["id"].clone();
        let answer = match method {
            "hello" => {
                json!({"jsonrpc": "2.0", "id": id, "result": {"version": 1, "hub_version": hub_version, "hub_id": "00000000000000000000000000000001"}})
            }
            "register" => {
                json!({"jsonrpc": "2.0", "id": id, "result": {"name": request["params"]["name"].as_str().unwrap_or("session")}})
            }
            "hub_info" if knows_hub_info => json!({"jsonrpc": "2.0", "id": id, "result": {
                "hub_version": hub_version, "hub_id": "00000000000000000000000000000001",
                "pid": std::process::id(), "data_dir": data_dir, "started_at": 0, "started_by": "hand",
                "settings": [], "sessions": [],
                "log": {"first_offset": 0, "next_offset": 1, "durable_offset": 1, "segments": 1, "bytes": 1}}}),
            "peers" => json!({"jsonrpc": "2.0", "id": id, "result": {"me": "alice", "peers": []}}),
            _ => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "fake hub"}})
            }
        };
        if writeln!(writer, "{answer}").is_err() {
            return;
        }
    }
}

#[test]
fn the_cli_and_doctor_warn_of_a_hub_of_another_version_and_name_relay_restart() {
    let scratch = Scratch::new();
    let _fake = FakeHub::start(&scratch.data_dir(), "0.0.1", true);
    let peers = scratch.relay(&["peers", "--as", "alice"]);
    assert!(peers.status.success(), "{peers:?}");
    let stderr = text(&peers.stderr);
    assert!(
        stderr.contains("the hub runs relay 0.0.1") && stderr.contains("relay restart"),
        "{stderr}"
    );
    let status = scratch.relay(&["status"]);
    assert_eq!(status.status.code(), Some(0));
    assert!(text(&status.stderr).contains("relay restart"), "{status:?}");
    let doctor = scratch.relay(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(3), "{doctor:?}");
    let stdout = text(&doctor.stdout);
    assert!(stdout.contains("fail  hub: runs: pid"), "{stdout}");
    assert!(stdout.contains("fix: relay restart"), "{stdout}");
}

#[test]
fn relay_mcp_warns_of_a_hub_of_another_version_on_stderr_only() {
    let scratch = Scratch::new();
    let _fake = FakeHub::start(&scratch.data_dir(), "0.0.1", true);
    let mut mcp = scratch
        .command(&["mcp", "--no-spawn", "--as", "alice", "--client", "agy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay mcp starts");
    let stderr = mcp.stderr.take().expect("stderr");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let started = Instant::now();
    let warning = loop {
        let remaining = DEADLINE.saturating_sub(started.elapsed());
        match seen.recv_timeout(remaining) {
            Ok(line) if line.contains("version skew") => break line,
            Ok(_) => {}
            Err(_) => panic!("relay mcp printed no version-skew warning"),
        }
    };
    assert!(warning.contains("relay restart"), "{warning}");
    drop(mcp.stdin.take());
    let _ = mcp.kill();
    let output = mcp.wait_with_output().expect("output");
    assert!(
        output.stdout.is_empty(),
        "stdout is MCP's alone: {:?}",
        text(&output.stdout)
    );
}

#[test]
fn service_install_dry_run_prints_the_unit_and_writes_nothing() {
    let scratch = Scratch::new();
    let output = scratch.relay(&["service", "install", "--dry-run", "--manager", "systemd"]);
    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    let data_dir = scratch.data_dir().display().to_string();
    assert!(
        stdout.contains(&format!(
            "ExecStart=\"{RELAY}\" hub --data-dir \"{data_dir}\" --started-by service"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("[Install]\nWantedBy=default.target"),
        "{stdout}"
    );
    assert!(
        stdout.contains(".config/systemd/user/relay-hub-"),
        "{stdout}"
    );
    assert!(
        stdout.contains("would run: systemctl --user enable --now relay-hub-"),
        "{stdout}"
    );
    assert!(
        stdout.contains("dry run: nothing was written or run"),
        "{stdout}"
    );

    let output = scratch.relay(&["service", "install", "--dry-run", "--manager", "launchd"]);
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("<key>Label</key>\n  <string>dev.relay.hub."),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("    <string>{data_dir}</string>")),
        "{stdout}"
    );
    assert!(
        stdout.contains("would run: launchctl bootstrap gui/"),
        "{stdout}"
    );

    let output = scratch.relay(&["service", "uninstall", "--dry-run", "--manager", "systemd"]);
    assert!(
        text(&output.stdout).contains("would run: systemctl --user disable --now"),
        "{output:?}"
    );
    let written: Vec<_> = walk(&scratch.home());
    assert!(written.is_empty(), "a dry run wrote {written:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        found.push(entry.path());
        if entry.path().is_dir() {
            found.extend(walk(&entry.path()));
        }
    }
    found
}

#[test]
fn completions_parse_and_the_man_page_is_roff() {
    let scratch = Scratch::new();
    let bash = scratch.relay_plain(&["completions", "bash"]);
    assert!(bash.status.success(), "{bash:?}");
    let script = scratch.dir.path().join("relay.bash");
    std::fs::write(&script, &bash.stdout).expect("write");
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash -n");
    assert!(checked.status.success(), "bash -n: {checked:?}");
    assert!(
        text(&bash.stdout).contains("status"),
        "subcommands are completed"
    );
    for shell in ["zsh", "fish", "powershell"] {
        let output = scratch.relay_plain(&["completions", shell]);
        assert!(
            output.status.success() && text(&output.stdout).contains("doctor"),
            "{shell}: {output:?}"
        );
    }
    let man = scratch.relay_plain(&["man"]);
    assert!(man.status.success());
    let page = text(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH relay"),
        "{}",
        &page[..page.len().min(200)]
    );
    let pages = scratch.dir.path().join("man");
    let output = scratch.relay_plain(&["man", "--out-dir", pages.to_str().expect("UTF-8")]);
    assert!(output.status.success(), "{output:?}");
    assert!(pages.join("relay-status.1").exists() && pages.join("relay.1").exists());
}

#[test]
fn a_hub_too_old_to_describe_itself_is_named_with_its_version() {
    let scratch = Scratch::new();
    let _fake = FakeHub::start(&scratch.data_dir(), "0.0.1", false);
    let status = scratch.relay(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    assert!(
        text(&status.stdout).contains("relay 0.0.1, too old to describe itself"),
        "{status:?}"
    );
    let doctor = scratch.relay(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(3), "{doctor:?}");
    assert!(
        text(&doctor.stdout).contains("fix: relay restart"),
        "{doctor:?}"
    );
}
