//! Relay's Codex delivery adapter (`relay::clients::codex::app_server`) against the protocol
//! fake of the Codex app-server daemon (`mcp_support::codex_app_server`): an idle thread gets a
//! new turn, a busy one has the text join its turn, the thread Codex named in `_meta` wins over
//! the cwd, helper threads are never chosen, and every failure (no daemon, a stale socket, a
//! stuck daemon, a closed thread) comes back as an error that says what is missing, within its
//! bound. The fake itself is checked first (it refuses an `Origin` header, as documented).

mod mcp_support;

use std::path::Path;
use std::time::{Duration, Instant};

use mcp_support::codex_app_server::{FakeAppServer, Mode, now_ms};
use relay::clients::codex::app_server::{
    AppServer, CodexError, CodexTarget, DELIVERY_TIMEOUT, PROBE_TIMEOUT, thread_from_meta,
};
use serde_json::json;

/// Slack on top of a named bound for a test's own scheduling.
const SLACK: Duration = Duration::from_millis(1500);

fn adapter(fake: &FakeAppServer, cwd: &Path) -> AppServer {
    AppServer::new(CodexTarget::new(fake.socket_path()), cwd.to_owned())
}

fn project() -> tempfile::TempDir {
    tempfile::tempdir().expect("a project dir")
}

#[test]
fn the_fake_refuses_an_origin_header_and_requests_before_initialize() {
    let fake = FakeAppServer::start(Mode::Normal);
    let stream = std::os::unix::net::UnixStream::connect(fake.socket_path()).expect("connect");
    let request = tungstenite::http::Request::builder()
        .uri("ws://localhost/")
        .header("Host", "localhost")
        .header("Origin", "http://localhost")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .expect("a request");
    match tungstenite::client(request, stream) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }

    let stream = std::os::unix::net::UnixStream::connect(fake.socket_path()).expect("connect");
    let (mut socket, _) = tungstenite::client("ws://localhost/", stream).expect("upgrade");
    socket
        .send(tungstenite::Message::text(
            json!({"id": 1, "method": "thread/loaded/list", "params": {}}).to_string(),
        ))
        .expect("send");
    let answer: serde_json::Value =
        serde_json::from_str(socket.read().expect("an answer").to_text().expect("text"))
            .expect("json");
    assert_eq!(answer["error"]["message"], "Not initialized");
    assert!(answer.get("jsonrpc").is_none());
}

#[tokio::test]
async fn an_idle_thread_gets_a_new_turn() {
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    let thread = fake.add_thread(cwd.path());
    let codex = adapter(&fake, cwd.path());

    let delivered = codex
        .deliver("<peer-message>hi</peer-message>", false)
        .await;
    let delivered = delivered.expect("delivered");

    assert_eq!(delivered.thread_id, thread);
    assert!(!delivered.joined);
    let inputs = fake.inputs();
    assert_eq!(inputs.len(), 1, "{inputs:?}");
    assert_eq!(inputs[0].method, "turn/start");
    assert_eq!(inputs[0].outcome, "started");
    assert_eq!(inputs[0].text, "<peer-message>hi</peer-message>");
    assert_eq!(fake.active_turn(&thread), Some(delivered.turn_id));
    let handshakes = fake.handshakes();
    assert!(
        handshakes
            .iter()
            .all(|handshake| handshake.origin.is_none())
    );
    assert_eq!(codex.thread_id(), Some(thread));
}

#[tokio::test]
async fn a_busy_thread_has_the_text_join_its_turn() {
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    let thread = fake.add_thread(cwd.path());
    let running = fake.make_busy(&thread);
    let codex = adapter(&fake, cwd.path());

    let delivered = codex.deliver("first", true).await.expect("delivered");
    let again = codex.deliver("second", false).await.expect("delivered");

    assert!(delivered.joined && again.joined);
    assert_eq!(delivered.turn_id, running);
    assert_eq!(again.turn_id, running);
    let outcomes: Vec<(String, String)> = fake
        .inputs()
        .into_iter()
        .map(|input| (input.text, input.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("first".to_owned(), "joined".to_owned()),
            ("second".to_owned(), "joined".to_owned())
        ]
    );
    fake.finish_turn(&thread);
    let later = codex.deliver("third", false).await.expect("delivered");
    assert!(!later.joined);
    assert_ne!(later.turn_id, running);
}

#[tokio::test]
async fn the_thread_named_in_meta_wins_over_the_cwd() {
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    let by_cwd = fake.add_thread(cwd.path());
    let elsewhere = project();
    let named = fake.add_thread(elsewhere.path());
    let codex = adapter(&fake, cwd.path());
    let meta = json!({"callId": "call_1", "x-codex-turn-metadata": {"thread_id": named,
        "turn_id": "t-1"}, "threadId": named, "progressToken": 1});
    let thread = thread_from_meta(meta.as_object().expect("an object")).expect("a thread");

    codex.note_thread(&thread);
    let delivered = codex
        .deliver("to the named one", false)
        .await
        .expect("delivered");

    assert_eq!(delivered.thread_id, named);
    assert!(fake.inputs().iter().all(|input| input.thread_id != by_cwd));
}

#[tokio::test]
async fn helper_threads_and_other_directories_are_never_chosen() {
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    let other = project();
    let long_ago = now_ms() - 3_600_000;
    let own = fake.add_thread_with(cwd.path(), long_ago, false, "user");
    let title = fake.add_thread_with(cwd.path(), now_ms(), true, "thread_title");
    let elsewhere = fake.add_thread(other.path());
    fake.touch(&title, now_ms() / 1000 + 100);
    fake.touch(&elsewhere, now_ms() / 1000 + 100);
    let codex = adapter(&fake, cwd.path());

    let delivered = codex.deliver("hello", false).await.expect("delivered");

    assert_eq!(delivered.thread_id, own);
}

#[tokio::test]
async fn of_two_threads_in_one_directory_the_one_created_just_before_the_session_wins() {
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    // A resumed, busier session in the same directory, and ours, created just now.
    let older = fake.add_thread_with(cwd.path(), now_ms() - 600_000, false, "user");
    fake.touch(&older, now_ms() / 1000 + 100);
    let ours = fake.add_thread_with(cwd.path(), now_ms() - 200, false, "user");
    let codex = adapter(&fake, cwd.path());

    let delivered = codex.deliver("hello", false).await.expect("delivered");

    assert_eq!(delivered.thread_id, ours);
}

#[tokio::test]
async fn no_thread_in_the_directory_says_so() {
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    let other = project();
    fake.add_thread(other.path());
    let codex = adapter(&fake, cwd.path());

    let error = codex.deliver("hello", false).await.expect_err("no thread");

    assert!(matches!(error, CodexError::NoThread(_)), "{error:?}");
    assert!(error.to_string().contains("call any relay tool"), "{error}");
    assert!(matches!(codex.probe().await, Err(CodexError::NoThread(_))));
    assert!(fake.inputs().is_empty());
}

#[tokio::test]
async fn no_socket_is_a_clear_error() {
    let home = tempfile::tempdir().expect("a dir");
    let socket = home
        .path()
        .join("app-server-control/app-server-control.sock");
    let codex = AppServer::new(CodexTarget::new(socket.clone()), home.path().to_owned());

    let error = codex.deliver("hello", false).await.expect_err("no daemon");

    assert!(
        matches!(&error, CodexError::NoSocket(path) if *path == socket),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains(&socket.display().to_string()), "{text}");
    assert!(text.contains("Codex TUI"), "{text}");
}

#[tokio::test]
async fn a_dead_daemon_leaves_a_dangling_symlink_or_a_stale_socket() {
    let mut fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    fake.add_thread(cwd.path());
    let codex = adapter(&fake, cwd.path());
    codex.deliver("before", false).await.expect("delivered");

    fake.kill();
    let error = codex
        .deliver("after", false)
        .await
        .expect_err("daemon gone");
    assert!(matches!(error, CodexError::NoSocket(_)), "{error:?}");

    // A socket file nobody listens on: the daemon was killed before it could remove it.
    let dir = tempfile::tempdir().expect("a dir");
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let codex = AppServer::new(CodexTarget::new(stale), cwd.path().to_owned());
    let error = codex.deliver("hello", false).await.expect_err("refused");
    assert!(matches!(error, CodexError::Refused(_)), "{error:?}");
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out_within_the_bound() {
    let fake = FakeAppServer::start(Mode::Silent);
    let cwd = project();
    fake.add_thread(cwd.path());
    let codex = adapter(&fake, cwd.path());

    let started = Instant::now();
    let error = codex.deliver("hello", false).await.expect_err("timeout");
    let waited = started.elapsed();

    assert!(
        matches!(error, CodexError::Timeout(bound) if bound == DELIVERY_TIMEOUT),
        "{error:?}"
    );
    assert!(
        waited >= DELIVERY_TIMEOUT && waited < DELIVERY_TIMEOUT + SLACK,
        "{waited:?}"
    );
    let started = Instant::now();
    assert!(matches!(codex.probe().await, Err(CodexError::Timeout(_))));
    assert!(started.elapsed() < PROBE_TIMEOUT + SLACK);
}

#[tokio::test]
async fn a_closed_thread_is_an_error_and_a_cwd_choice_is_made_again() {
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    let first = fake.add_thread(cwd.path());
    let codex = adapter(&fake, cwd.path());
    codex.deliver("one", false).await.expect("delivered");

    fake.close_thread(&first);
    let error = codex.deliver("two", false).await.expect_err("closed");
    assert!(
        matches!(&error, CodexError::ThreadGone(id) if *id == first),
        "{error:?}"
    );
    assert!(error.to_string().contains(&first), "{error}");

    // Chosen by cwd, so forgotten: a new session in the directory is found next time.
    let second = fake.add_thread(cwd.path());
    let delivered = codex.deliver("three", false).await.expect("delivered");
    assert_eq!(delivered.thread_id, second);

    // Named by Codex: kept, and its loss reported, never replaced by a guess.
    let named = AppServer::new(CodexTarget::new(fake.socket_path()), cwd.path().to_owned());
    named.note_thread(&first);
    let error = named.deliver("four", false).await.expect_err("closed");
    assert!(matches!(error, CodexError::ThreadGone(_)), "{error:?}");
    assert!(matches!(
        named.probe().await,
        Err(CodexError::ThreadGone(_))
    ));
    assert!(fake.inputs().iter().all(|input| input.text != "four"));
}

#[tokio::test]
async fn probe_reports_a_reachable_thread() {
    let fake = FakeAppServer::start(Mode::Normal);
    let cwd = project();
    fake.add_thread(cwd.path());
    let codex = adapter(&fake, cwd.path());

    codex.probe().await.expect("reachable");

    assert!(fake.inputs().is_empty(), "a probe delivers nothing");
    let requests = fake.requests();
    assert_eq!(requests.first().map(String::as_str), Some("initialize"));
    assert!(!requests.iter().any(|method| method.starts_with("turn/")));
}
