//! Waiting for a nats-server a test started: it must be ours and greet as NATS, because the
//! free port it was given may have been taken by something else in the meantime (then ours
//! exits, and the hubs would talk to a stranger and nothing would ever arrive).

use std::io::Read;
use std::net::TcpStream;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

/// How long one greeting may take to arrive.
const GREETING_WAIT: Duration = Duration::from_secs(5);

/// Waits until `child`, a nats-server told to listen on `port`, answers there with its `INFO`
/// greeting; panics saying why if it exits first or `deadline` passes.
pub(crate) fn wait_until_serving(child: &mut Child, port: u16, deadline: Duration) {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nats-server exited with {status} before serving 127.0.0.1:{port} (taken?)");
        }
        if greets_as_nats(port) {
            return;
        }
        assert!(
            started.elapsed() < deadline,
            "nats-server did not serve 127.0.0.1:{port} within {deadline:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a server on `port` greets as NATS does, with an `INFO` line.
fn greets_as_nats(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(GREETING_WAIT));
    let mut greeting = [0_u8; 4];
    stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO"
}
