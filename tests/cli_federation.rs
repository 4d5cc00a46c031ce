//! `relay federation` as a user runs it: `init` writes a private, valid federation.toml and a
//! static key; `secret` piped into `init --secret-stdin` on another data dir gives both the same
//! secret; `init` never overwrites without `--force`; `show` names the bad key of a broken file.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const RELAY: &str = env!("CARGO_BIN_EXE_relay");

fn relay(data_dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(RELAY)
        .args(["federation"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("relay runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("stdin written");
    }
    drop(input);
    child.wait_with_output().expect("relay ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_secret_and_show_set_up_two_hubs() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let lab = dir.path().join("lab");
    let desk = dir.path().join("desk");
    let init = relay(
        &lab,
        &["init", "--hub-id", "lab", "--listen", "127.0.0.1:9700"],
        None,
    );
    assert!(init.status.success(), "{}", text(&init.stderr));
    let file = lab.join("federation.toml");
    let mode = std::fs::metadata(&file)
        .expect("written")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let key = std::fs::metadata(lab.join("federation").join("static.key")).expect("a key");
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    let secret = relay(&lab, &["secret"], None);
    assert!(secret.status.success());
    let joined = relay(
        &desk,
        &["init", "--hub-id", "desk", "--secret-stdin"],
        Some(&secret.stdout),
    );
    assert!(joined.status.success(), "{}", text(&joined.stderr));
    assert_eq!(relay(&desk, &["secret"], None).stdout, secret.stdout);

    let show = relay(&lab, &["show"], None);
    let shown = text(&show.stdout);
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert!(
        shown.contains("hub id:  lab") && shown.contains("127.0.0.1:9700"),
        "{shown}"
    );
    assert!(
        shown.contains("groups do not yet"),
        "says what is not built: {shown}"
    );

    let again = relay(&lab, &["init", "--hub-id", "lab"], None);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn a_broken_file_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::create_dir(dir.path().join("d")).expect("a data dir");
    let data_dir = dir.path().join("d");
    let cases = [
        ("hub_id = \"Lab\"\nsecret = \"00\"\n", "`hub_id`"),
        ("hub_id = \"lab\"\nsecret = \"00\"\n", "`secret`"),
        (
            "hub_id = \"lab\"\nsecret_file = \"missing\"\n",
            "`secret_file`",
        ),
        ("hub_id = \"lab\"\nport = 1\n", "port"),
    ];
    for (file, key) in cases {
        std::fs::write(data_dir.join("federation.toml"), file).expect("written");
        let show = relay(&data_dir, &["show"], None);
        assert!(!show.status.success(), "{file}");
        assert!(
            text(&show.stderr).contains(key),
            "{file}: {}",
            text(&show.stderr)
        );
    }
    let bad_id = relay(&data_dir, &["init", "--hub-id", "-x", "--force"], None);
    assert!(
        text(&bad_id.stderr).contains("--hub-id"),
        "{}",
        text(&bad_id.stderr)
    );
}

#[test]
fn the_hub_refuses_a_bad_federation_file_and_says_a_good_one_is_not_linked_yet() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("a temp dir");
    let data_dir = dir.path().join("d");
    std::fs::create_dir(&data_dir).expect("a data dir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).expect("0700");
    std::fs::write(
        data_dir.join("federation.toml"),
        "hub_id = \"a\"\nsecret = \"00\"\n",
    )
    .expect("written");
    let refused = Command::new(RELAY)
        .args(["hub", "--no-ws", "--idle-exit", "0", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("the hub runs");
    assert!(!refused.status.success(), "no partial start");
    assert!(
        text(&refused.stderr).contains("`secret`"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!data_dir.join("hub.sock").exists(), "nothing was served");

    let init = relay(&data_dir, &["init", "--hub-id", "a", "--force"], None);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let mut hub = Command::new(RELAY)
        .args(["hub", "--no-ws", "--idle-exit", "0", "--data-dir"])
        .arg(&data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hub starts");
    let mut stderr = std::io::BufReader::new(hub.stderr.take().expect("stderr"));
    let mut said = String::new();
    stderr.read_line(&mut said).expect("a line");
    let _ = hub.kill();
    let _ = hub.wait();
    assert!(said.contains("federation hub"), "{said}");
}
