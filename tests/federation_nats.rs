//! The JetStream transport (`src/federation/jetstream.rs`) against a real nats-server on
//! 127.0.0.1 (a free port, a temp store dir, `-js`), each hub a user with its own nkey and the
//! narrowest permissions of `docs/federation.md` in the server's config file.
//!
//! Two hubs and ten hubs exchange records exactly once (a republish is deduped); a SIGKILL of
//! the server mid-stream loses nothing acknowledged and doubles nothing; a gap in the chain
//! brings a resend request to the origin; a hub publishing as another is refused by the server
//! and by the receiver. Skipped, saying so, only when nats-server is not installed (CI
//! installs it). `RELAY_NATS_BENCH=1` also prints the loopback round-trip figures.

#[path = "support/nats.rs"]
mod nats_support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relay::federation::config::HubId;
use relay::federation::jetstream::{
    self, Inbound, JetStreamTransport, NatsAuth, NatsConfig, NatsError,
};
use relay::federation::wire::{NO_PREVIOUS, ShippedRecord, record_crc};

/// How long anything that should happen at once may take.
const DEADLINE: Duration = Duration::from_secs(20);

fn installed() -> bool {
    let found = Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        println!(
            "SKIPPED: nats-server is not installed (apt-get install -y nats-server; .ci/run does)"
        );
    }
    found
}

fn hub(id: &str) -> HubId {
    HubId::new(id).expect("a hub id")
}

/// The permissions of `docs/federation.md` for hub `me`; hub `mute`'s user lacks the first
/// (publishing records), to see the transport name the server's refusal.
fn permissions(me: &str) -> String {
    let stream = format!("RELAY_IN_{me}");
    let consumer = format!("relay-{me}");
    let records = if me == "mute" {
        "relay.in.none.none".to_owned()
    } else {
        format!("relay.in.*.{me}")
    };
    let publish = [
        records,
        format!("relay.ctl.*.{me}"),
        "$JS.API.INFO".to_owned(),
        format!("$JS.API.STREAM.CREATE.{stream}"),
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
        format!("$JS.ACK.{stream}.{consumer}.>"),
        "$JS.API.STREAM.CREATE.KV_RELAY_DURABLE".to_owned(),
        "$JS.API.STREAM.INFO.KV_RELAY_DURABLE".to_owned(),
        "$JS.API.DIRECT.GET.KV_RELAY_DURABLE.>".to_owned(),
        format!("$KV.RELAY_DURABLE.*.{me}"),
    ];
    let subscribe = [format!("_INBOX_{me}.>"), format!("relay.ctl.{me}.*")];
    let list = |subjects: &[String]| {
        subjects
            .iter()
            .map(|subject| format!("\"{subject}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }} }}",
        list(&publish),
        list(&subscribe)
    )
}

/// A nats-server with JetStream and one nkey user per hub; killed on drop.
struct Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    seeds: BTreeMap<String, PathBuf>,
}

impl Server {
    fn start(hubs: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut users = Vec::new();
        let mut seeds = BTreeMap::new();
        for id in hubs {
            let pair = nkeys::KeyPair::new_user();
            let seed_path = dir.path().join(format!("{id}.nk"));
            std::fs::write(&seed_path, pair.seed().expect("a seed")).expect("seed file");
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&seed_path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
            seeds.insert((*id).to_owned(), seed_path);
            users.push(format!(
                "    {{ nkey: \"{}\", permissions: {} }}",
                pair.public_key(),
                permissions(id)
            ));
        }
        let store = dir.path().join("store");
        let conf = format!(
            "listen: \"127.0.0.1:{port}\"\nmax_payload: 2MB\n\
             jetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 16GB }}\n\
             authorization {{\n  users = [\n{}\n  ]\n}}\n",
            store.display(),
            users.join(",\n")
        );
        std::fs::write(dir.path().join("nats.conf"), conf).expect("config");
        let mut server = Server {
            child: None,
            port,
            dir,
            seeds,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .expect("log file");
        let child = Command::new("nats-server")
            .arg("-js")
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        let child = self.child.insert(child);
        nats_support::wait_until_serving(child, self.port, DEADLINE);
    }

    /// SIGKILL, by the child's own pid.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaped");
        }
    }

    fn config(&self, id: &str) -> NatsConfig {
        NatsConfig {
            url: format!("nats://127.0.0.1:{}", self.port),
            auth: NatsAuth::Nkey(self.seeds[id].clone()),
        }
    }

    fn seed(&self, id: &str) -> &Path {
        &self.seeds[id]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("nats-server log, last lines first:\n{}", tail.join("\n"));
        }
    }
}

/// The records of an origin's log for one peer: offsets 0, 2, 4, … chained by `previous`.
fn records(origin_hub: u128, count: u64) -> Vec<ShippedRecord> {
    (0..count)
        .map(|index| {
            let offset = index * 2;
            let payload = format!("record {offset} of {origin_hub}").into_bytes();
            ShippedRecord {
                offset,
                previous: if index == 0 { NO_PREVIOUS } else { offset - 2 },
                timestamp_us: 1_700_000_000_000_000 + offset,
                kind: 1,
                schema_version: 1,
                origin_hub,
                crc: record_crc(
                    offset,
                    1_700_000_000_000_000 + offset,
                    1,
                    1,
                    origin_hub,
                    &payload,
                ),
                payload,
            }
        })
        .collect()
}

fn log_id(id: &str) -> u128 {
    id.bytes()
        .fold(7u128, |sum, byte| sum * 131 + u128::from(byte))
}

async fn connect(server: &Server, me: &str, peers: &[&str]) -> JetStreamTransport {
    let peers: Vec<HubId> = peers.iter().map(|id| hub(id)).collect();
    JetStreamTransport::connect(&server.config(me), &hub(me), &peers)
        .await
        .expect("the transport connects")
}

/// Receives, committing each batch (durable stored, then acked), until `want` records came
/// or the deadline; then checks that nothing more arrives for a moment.
async fn receive_all(
    transport: &mut JetStreamTransport,
    want: usize,
) -> BTreeMap<String, Vec<ShippedRecord>> {
    let mut got: BTreeMap<String, Vec<ShippedRecord>> = BTreeMap::new();
    let mut count = 0;
    let start = Instant::now();
    while count < want {
        if start.elapsed() > DEADLINE {
            let pending = transport.pending().await;
            panic!(
                "only {count} of {want} records arrived; (waiting, unacked): {pending:?}; {:?}",
                transport.counters()
            );
        }
        let batch = transport
            .next(256, Duration::from_millis(500))
            .await
            .expect("next");
        count += batch.len();
        commit(transport, batch, &mut got).await;
    }
    let more = transport
        .next(256, Duration::from_millis(300))
        .await
        .expect("next");
    assert!(more.is_empty(), "records after the last: {more:?}");
    got
}

async fn commit(
    transport: &mut JetStreamTransport,
    batch: Vec<Inbound>,
    got: &mut BTreeMap<String, Vec<ShippedRecord>>,
) {
    let me = transport.me().clone();
    let mut durables: BTreeMap<HubId, u64> = BTreeMap::new();
    let mut handles = Vec::new();
    for inbound in batch {
        durables.insert(inbound.origin.clone(), inbound.record.offset + 1);
        got.entry(inbound.origin.to_string())
            .or_default()
            .push(inbound.record);
        handles.push(inbound.handle);
    }
    for (origin, durable) in durables {
        transport
            .store_durable(&origin, &me, durable)
            .await
            .expect("durable stored");
    }
    transport.ack(handles).await.expect("acked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_exchange_records_exactly_once_and_a_republish_is_deduped() {
    if !installed() {
        return;
    }
    let server = Server::start(&["a", "b"]);
    let mut a = connect(&server, "a", &["b"]).await;
    let mut b = connect(&server, "b", &["a"]).await;
    let from_a = records(log_id("a"), 100);
    let from_b = records(log_id("b"), 100);
    a.publish_batch(&hub("b"), log_id("a"), &from_a)
        .await
        .expect("a publishes");
    b.publish_batch(&hub("a"), log_id("b"), &from_b)
        .await
        .expect("b publishes");
    // Published again (a link manager retrying after a lost PubAck): the server drops them.
    a.publish_batch(&hub("b"), log_id("a"), &from_a[..50])
        .await
        .expect("a republishes");
    a.publish(&hub("b"), log_id("a"), &from_a[99])
        .await
        .expect("a republishes one");

    let at_b = receive_all(&mut b, 100).await;
    assert_eq!(at_b.get("a"), Some(&from_a));
    let at_a = receive_all(&mut a, 100).await;
    assert_eq!(at_a.get("b"), Some(&from_b));
    assert_eq!(
        a.durable(&hub("a"), &hub("b")).await.expect("durable"),
        Some(199),
        "a reads b's durable offset for its records"
    );
    assert_eq!(
        b.durable(&hub("b"), &hub("a")).await.expect("durable"),
        Some(199)
    );
    let (waiting, unacked) = b.pending().await.expect("pending");
    assert_eq!((waiting, unacked), (0, 0));
    // A hub that is not a peer is not published to.
    assert!(matches!(
        a.publish(&hub("c"), log_id("a"), &from_a[0]).await,
        Err(NatsError::Refused(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_hubs_exchange_records_exactly_once() {
    if !installed() {
        return;
    }
    let ids: Vec<String> = (0..10).map(|index| format!("h{index}")).collect();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    let server = Server::start(&names);
    let mut transports = Vec::new();
    for me in &names {
        let peers: Vec<&str> = names.iter().copied().filter(|id| id != me).collect();
        transports.push(connect(&server, me, &peers).await);
    }
    const EACH: u64 = 20;
    for (index, transport) in transports.iter().enumerate() {
        let me = names[index];
        for dest in names.iter().filter(|id| **id != me) {
            transport
                .publish_batch(&hub(dest), log_id(me), &records(log_id(me), EACH))
                .await
                .expect("published");
        }
    }
    for (index, transport) in transports.iter_mut().enumerate() {
        let got = receive_all(transport, 9 * EACH as usize).await;
        assert_eq!(got.len(), 9, "hub {index} heard from every other hub");
        for (origin, list) in got {
            assert_eq!(list, records(log_id(&origin), EACH), "{origin} to h{index}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_server_loses_nothing_acknowledged_and_doubles_nothing() {
    if !installed() {
        return;
    }
    let mut server = Server::start(&["a", "b"]);
    let a = std::sync::Arc::new(connect(&server, "a", &["b"]).await);
    let all = records(log_id("a"), 100);
    // a answers resend requests from its log, as the hub's link manager will.
    let mut requests = a.resend_requests().await.expect("subscribed");
    let origin = std::sync::Arc::clone(&a);
    let log = all.clone();
    let resends = tokio::spawn(async move {
        while let Some(request) = requests.next(Duration::from_secs(60)).await {
            let again: Vec<ShippedRecord> = log
                .iter()
                .filter(|record| record.offset >= request.from)
                .cloned()
                .collect();
            if let Err(error) = origin
                .resend_batch(&request.from_hub, log_id("a"), &again)
                .await
            {
                println!("a resend failed (b asks again): {error}");
            }
        }
    });
    let mut committed: BTreeMap<String, Vec<ShippedRecord>> = BTreeMap::new();
    {
        // b's inbox exists once b connected.
        let mut b = connect(&server, "b", &["a"]).await;
        a.publish_batch(&hub("b"), log_id("a"), &all[..60])
            .await
            .expect("the first 60 are acknowledged by the server");
        let mut held = Vec::new();
        let start = Instant::now();
        while held.len() < 60 {
            assert!(start.elapsed() < DEADLINE, "only {} arrived", held.len());
            held.extend(b.next(256, Duration::from_millis(500)).await.expect("next"));
        }
        // The first 40 committed; the last 20 handed out but not committed when all dies.
        let rest = held.split_off(40);
        commit(&mut b, held, &mut committed).await;
        drop(rest);
        server.kill();
    }
    server.spawn();

    // a goes on after the restart (its client reconnects); a publish may fail while it does.
    let start = Instant::now();
    loop {
        match a.publish_batch(&hub("b"), log_id("a"), &all[60..]).await {
            Ok(()) => break,
            Err(error) => {
                assert!(
                    start.elapsed() < DEADLINE,
                    "a cannot publish again: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // b restarts too: its durable offset comes back from the bucket. Whatever the server
    // kept of its consumer's state, b gets the 41st to the 100th, each once (from the
    // server's copies or, past a gap, from a's resend).
    let mut b = connect(&server, "b", &["a"]).await;
    let after = receive_all(&mut b, 60).await;
    let after = after.get("a").cloned().unwrap_or_default();
    assert_eq!(after, all[40..].to_vec(), "41st to 100th, each once");
    let mut everything = committed.remove("a").unwrap_or_default();
    everything.extend(after);
    assert_eq!(everything, all, "nothing lost, nothing doubled");

    // Every copy still on the server (acks the crash lost, held-back originals, resent
    // copies) comes back within the ack wait and is dropped by offset, none handed out.
    let start = Instant::now();
    loop {
        let late = b.next(256, Duration::from_secs(1)).await.expect("next");
        assert!(late.is_empty(), "a redelivery was handed out: {late:?}");
        if b.pending().await.expect("pending") == (0, 0) {
            break;
        }
        assert!(
            start.elapsed() < jetstream::ACK_WAIT + DEADLINE,
            "copies left on the server: {:?}; {:?}",
            b.pending().await,
            b.counters()
        );
    }
    resends.abort();
    println!("after the SIGKILL: {:?}", b.counters());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_chain_brings_a_resend_request_to_the_origin() {
    if !installed() {
        return;
    }
    let server = Server::start(&["a", "b"]);
    let a = connect(&server, "a", &["b"]).await;
    let mut b = connect(&server, "b", &["a"]).await;
    let mut requests = a.resend_requests().await.expect("subscribed");
    let all = records(log_id("a"), 6);
    // Offset 4 (the third record) never reaches the server.
    let mut sent = all.clone();
    sent.remove(2);
    a.publish_batch(&hub("b"), log_id("a"), &sent)
        .await
        .expect("published");

    let mut got: BTreeMap<String, Vec<ShippedRecord>> = BTreeMap::new();
    let start = Instant::now();
    while got.get("a").map_or(0, Vec::len) < 2 {
        assert!(start.elapsed() < DEADLINE, "the first two did not arrive");
        let batch = b.next(256, Duration::from_millis(500)).await.expect("next");
        commit(&mut b, batch, &mut got).await;
    }
    let held = b.next(256, Duration::from_millis(300)).await.expect("next");
    assert!(
        held.is_empty(),
        "records after the gap are held back: {held:?}"
    );
    assert_eq!(
        got.get("a"),
        Some(&all[..2].to_vec()),
        "the chain stops at the gap"
    );

    let request = requests
        .next(Duration::from_secs(5))
        .await
        .expect("a resend request reaches the origin");
    assert_eq!(request.from_hub, hub("b"));
    assert_eq!(
        request.from, 3,
        "from the offset after the last one b has (2)"
    );
    assert_eq!(request.log_id, log_id("a"));
    assert_eq!(request.last_crc, Some(all[1].crc));
    let again: Vec<ShippedRecord> = all
        .iter()
        .filter(|record| record.offset >= request.from)
        .cloned()
        .collect();
    a.resend_batch(&hub("b"), log_id("a"), &again)
        .await
        .expect("resent");

    let start = Instant::now();
    while got.get("a").map_or(0, Vec::len) < all.len() {
        assert!(
            start.elapsed() < DEADLINE,
            "the resend did not arrive: {got:?}"
        );
        let batch = b.next(256, Duration::from_millis(500)).await.expect("next");
        commit(&mut b, batch, &mut got).await;
    }
    assert_eq!(got.get("a"), Some(&all));
    // The held-back originals come back after the nak delay and are dropped by offset.
    let late = b.next(256, Duration::from_secs(1)).await.expect("next");
    assert!(late.is_empty(), "{late:?}");
    let counters = b.counters();
    assert!(counters.gaps.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(
        counters
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_publishing_as_another_is_refused_by_the_server_and_the_receiver() {
    if !installed() {
        return;
    }
    let server = Server::start(&["a", "b", "evil", "stranger", "mute"]);
    let mut b = connect(&server, "b", &["a", "evil"]).await;
    let evil = connect(&server, "evil", &["b"]).await;
    let forged = records(log_id("a"), 1);

    // 1. The server: evil may publish only on relay.in.*.evil.
    let raw = async_nats::ConnectOptions::new()
        .custom_inbox_prefix("_INBOX_evil")
        .nkey(std::fs::read_to_string(server.seed("evil")).expect("seed"))
        .connect(format!("127.0.0.1:{}", server.port))
        .await
        .expect("evil connects");
    let context = async_nats::jetstream::new(raw.clone());
    let as_a = jetstream::inbox_subject(&hub("b"), &hub("a"));
    let mut headers = jetstream::headers(&hub("a"), log_id("a"), &forged[0]);
    headers.insert(
        "Nats-Msg-Id",
        jetstream::message_id(&hub("a"), log_id("a"), 0).as_str(),
    );
    let refused = match context
        .publish_with_headers(
            as_a.clone(),
            headers.clone(),
            forged[0].payload.clone().into(),
        )
        .await
    {
        Ok(ack) => tokio::time::timeout(Duration::from_secs(3), ack)
            .await
            .map_or(true, |acked| acked.is_err()),
        Err(_) => true,
    };
    assert!(refused, "the server stored a publish on {as_a}");
    // The transport names the refusal, without waiting out the PubAck.
    let mute = connect(&server, "mute", &["b"]).await;
    let start = Instant::now();
    let denied = mute
        .publish(&hub("b"), log_id("mute"), &records(log_id("mute"), 1)[0])
        .await;
    assert!(
        matches!(denied, Err(NatsError::PermissionDenied { .. })),
        "{denied:?}"
    );
    assert!(
        start.elapsed() < jetstream::REQUEST_TIMEOUT,
        "{:?}",
        start.elapsed()
    );

    // 2. The receiver: on evil's own subject, with headers claiming to be a.
    let own = jetstream::inbox_subject(&hub("b"), &hub("evil"));
    context
        .publish_with_headers(own, headers, forged[0].payload.clone().into())
        .await
        .expect("sent")
        .await
        .expect("the server stores it: the subject is evil's");
    // A hub that is no peer of b, on its own subject.
    let stranger_records = records(log_id("stranger"), 1);
    let stranger = connect(&server, "stranger", &["b"]).await;
    stranger
        .publish(&hub("b"), log_id("stranger"), &stranger_records[0])
        .await
        .expect("the server stores it");
    // And evil's own honest record still gets through.
    let honest = records(log_id("evil"), 1);
    evil.publish(&hub("b"), log_id("evil"), &honest[0])
        .await
        .expect("published");
    let got = receive_all(&mut b, 1).await;
    assert_eq!(got.get("evil"), Some(&honest));
    assert_eq!(got.len(), 1, "{got:?}");
    let counters = b.counters();
    assert_eq!(
        counters
            .impersonations
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        counters
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the stranger's record"
    );
}

/// Loopback figures for `relay bench federation --nats`, only when asked:
/// `RELAY_NATS_BENCH=1 cargo test --release --test federation_nats bench -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_roundtrip_on_loopback_when_asked() {
    if std::env::var_os("RELAY_NATS_BENCH").is_none() {
        println!(
            "not run: RELAY_NATS_BENCH=1 cargo test --release --test federation_nats bench -- --nocapture"
        );
        return;
    }
    if !installed() {
        return;
    }
    let server = Server::start(&["a", "b"]);
    // b's inbox must exist before a publishes: connect it once.
    drop(connect(&server, "b", &["a"]).await);
    for (records, payload_bytes, batch) in
        [(20_000, 256, 256), (2_000, 65_536, 64), (1_000, 256, 1)]
    {
        let setup = jetstream::BenchSetup {
            origin: (server.config("a"), hub("a")),
            dest: (server.config("b"), hub("b")),
            records,
            payload_bytes,
            batch,
        };
        let figures = jetstream::bench_roundtrip(&setup).await.expect("bench ran");
        println!("batch {batch}: {figures}");
        assert_eq!(figures.records, records);
    }
}
