//! The hub's links through NATS JetStream: the same records the direct links ship, carried by
//! the [`super::jetstream`] transport, over the same [`LinkHost`] seam.
//!
//! One task publishes, per peer, this hub's records for it from a cursor into our log (the
//! cursor starts at the peer's durable offset in the KV bucket, so a restart resumes where the
//! peer had committed; the window is that durable offset plus [`NATS_WINDOW_RECORDS`]), and
//! answers resend requests by publishing again from the offset asked for. Another consumes this
//! hub's inbox: each record is imported through the host (durable when it returns), then the
//! durable offset is stored and only then the messages are acked. A PubAck is never delivery:
//! the origin's log stays the system of record until the peer's durable offset passes a record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::config::{FederationConfig, HubId};
use super::jetstream::{AckHandle, Inbound, JetStreamTransport, NatsConfig, NatsError};
use super::link::{LinkHost, LinkStatus};
use super::wire::NO_PREVIOUS;

/// Records of our log published to one peer and not yet in its durable offset, at most: a
/// peer that is down does not fill its inbox stream with everything we have for it.
pub const NATS_WINDOW_RECORDS: u64 = 8192;

/// Records per publish batch and per inbox read.
pub const NATS_BATCH_RECORDS: usize = 256;

/// Payload bytes per publish batch, about.
pub const NATS_BATCH_BYTES: usize = 1 << 20;

/// How often a publisher reads its peer's durable offset (acks, window) while it has sent
/// records the peer has not committed.
pub const NATS_DURABLE_POLL: Duration = Duration::from_millis(200);

/// The longest wait between two connection attempts to the NATS server.
pub const NATS_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Runs the JetStream links for every `[[peer]]` until `shutdown` flips. Connection failures
/// are retried with back-off (and reported for peers that have no other route); nothing here
/// stops the hub.
pub async fn run<H: LinkHost>(
    federation: Arc<FederationConfig>,
    nats: NatsConfig,
    host: H,
    shutdown: watch::Receiver<bool>,
) {
    let peers: Vec<HubId> = federation
        .peers
        .iter()
        .map(|peer| peer.hub_id.clone())
        .collect();
    // Peers reachable only through NATS get their status from here.
    let nats_only: Vec<HubId> = federation
        .peers
        .iter()
        .filter(|peer| peer.address.is_none() && federation.relay.is_none())
        .map(|peer| peer.hub_id.clone())
        .collect();
    let me = federation.hub_id.clone();
    let (resend_tx, resend_rx) = mpsc::channel::<(HubId, u64)>(64);
    let receiving = receive_loop(&nats, &me, &peers, &nats_only, &host, shutdown.clone());
    let publishing = publish_loop(&nats, &me, &peers, &host, resend_rx, shutdown.clone());
    let resends = resend_loop(&nats, &me, &peers, resend_tx, shutdown.clone());
    tokio::join!(receiving, publishing, resends);
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stopping| stopping).await;
}

/// Connects, retrying with back-off until it works or shutdown.
async fn connect<H: LinkHost>(
    nats: &NatsConfig,
    me: &HubId,
    peers: &[HubId],
    report_to: &[HubId],
    host: &H,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<JetStreamTransport> {
    let mut delay = Duration::from_millis(200);
    let mut logged = false;
    loop {
        if *shutdown.borrow() {
            return None;
        }
        match JetStreamTransport::connect(nats, me, peers).await {
            Ok(transport) => {
                for peer in report_to {
                    host.report(peer, LinkStatus::Up);
                }
                if logged {
                    tracing::info!(url = %nats.url, "connected to the NATS server again");
                }
                return Some(transport);
            }
            Err(error) => {
                if !logged {
                    tracing::warn!(url = %nats.url, %error, "cannot use the NATS server; retrying");
                    logged = true;
                }
                for peer in report_to {
                    host.report(
                        peer,
                        LinkStatus::Down {
                            error: format!("NATS {}: {error}", nats.url),
                        },
                    );
                }
            }
        }
        tokio::select! {
            () = stopped(shutdown) => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(NATS_BACKOFF_MAX);
    }
}

/// Consumes this hub's inbox: import, store the durable offset, then ack.
async fn receive_loop<H: LinkHost>(
    nats: &NatsConfig,
    me: &HubId,
    peers: &[HubId],
    nats_only: &[HubId],
    host: &H,
    mut shutdown: watch::Receiver<bool>,
) {
    // Bounded by the hub's life: every pass connects once and reads until an error.
    loop {
        let Some(mut transport) = connect(nats, me, peers, nats_only, host, &mut shutdown).await
        else {
            return;
        };
        loop {
            let read = tokio::select! {
                () = stopped(&mut shutdown) => return,
                read = transport.next(NATS_BATCH_RECORDS, Duration::from_secs(1)) => read,
            };
            let batch = match read {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "reading the NATS inbox failed; reconnecting");
                    break;
                }
            };
            if let Err(error) = import_batch(&mut transport, me, host, batch).await {
                tracing::warn!(%error, "a NATS import failed; reconnecting");
                break;
            }
        }
    }
}

/// Imports one read of the inbox, origin by origin, in order.
async fn import_batch<H: LinkHost>(
    transport: &mut JetStreamTransport,
    me: &HubId,
    host: &H,
    batch: Vec<Inbound>,
) -> Result<(), NatsError> {
    let mut by_origin: Vec<(HubId, u128, Vec<Inbound>)> = Vec::new();
    for inbound in batch {
        match by_origin.last_mut() {
            Some((origin, log_id, items))
                if *origin == inbound.origin && *log_id == inbound.log_id =>
            {
                items.push(inbound);
            }
            _ => by_origin.push((inbound.origin.clone(), inbound.log_id, vec![inbound])),
        }
    }
    for (origin, log_id, items) in by_origin {
        let (records, handles): (Vec<_>, Vec<AckHandle>) = items
            .into_iter()
            .map(|item| (item.record, item.handle))
            .unzip();
        let progress = match host.progress(&origin).await {
            Ok(progress) => progress,
            Err(error) => {
                transport.release(handles).await?;
                return Err(NatsError::Refused(error.to_string()));
            }
        };
        if let Some(progress) = progress
            && progress.log_id != log_id
        {
            let reason = format!(
                "log id mismatch: {origin} publishes log {log_id:032x}, this hub imported from {:032x}; its log was re-created, nothing is imported again from zero",
                progress.log_id
            );
            tracing::error!(peer = %origin, "{reason}");
            host.report(&origin, LinkStatus::Refused { reason });
            // Terminated, not redelivered: the records cannot be taken.
            transport.ack(handles).await?;
            continue;
        }
        let held = progress.map(|progress| progress.offset);
        let fresh: Vec<_> = records
            .into_iter()
            .filter(|record| Some(record.offset) > held)
            .collect();
        let Some(last) = fresh.last().map(|record| record.offset) else {
            transport.ack(handles).await?;
            continue;
        };
        match host.import(&origin, log_id, fresh).await {
            Ok(progress) => {
                let durable = progress.offset.min(last).saturating_add(1);
                transport.store_durable(&origin, me, durable).await?;
                transport.ack(handles).await?;
            }
            Err(error) => {
                tracing::warn!(peer = %origin, %error, "importing from NATS failed; redelivered later");
                transport.release(handles).await?;
            }
        }
    }
    Ok(())
}

/// Where publishing to one peer stands.
struct Outbox {
    /// The next offset of our log to scan.
    cursor: u64,
    /// `previous` of the next record published.
    previous: u64,
    /// The peer's durable offset, as last read.
    durable: u64,
    /// Records below this offset are published again with resend ids (a resend request).
    resending_below: u64,
}

/// Publishes our records for every peer, within each peer's window.
async fn publish_loop<H: LinkHost>(
    nats: &NatsConfig,
    me: &HubId,
    peers: &[HubId],
    host: &H,
    mut resends: mpsc::Receiver<(HubId, u64)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut committed = host.committed();
    // Bounded by the hub's life: every pass connects once and publishes until an error.
    loop {
        let Some(transport) = connect(nats, me, peers, &[], host, &mut shutdown).await else {
            return;
        };
        let mut outboxes: HashMap<HubId, Outbox> = HashMap::new();
        for peer in peers {
            let durable = match transport.durable(me, peer).await {
                Ok(durable) => durable.unwrap_or(0),
                Err(error) => {
                    tracing::warn!(peer = %peer, %error, "reading a durable offset failed");
                    0
                }
            };
            if durable > 0 {
                host.acknowledged(peer, durable);
            }
            outboxes.insert(
                peer.clone(),
                Outbox {
                    cursor: durable,
                    previous: durable.checked_sub(1).unwrap_or(NO_PREVIOUS),
                    durable,
                    resending_below: 0,
                },
            );
        }
        if let Err(error) = publish_until_error(
            &transport,
            host,
            &mut outboxes,
            &mut committed,
            &mut resends,
            &mut shutdown,
        )
        .await
        {
            tracing::warn!(%error, "publishing to NATS failed; reconnecting");
            tokio::select! {
                () = stopped(&mut shutdown) => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        } else {
            return;
        }
    }
}

/// Publishes until shutdown (`Ok`) or an error of the transport.
async fn publish_until_error<H: LinkHost>(
    transport: &JetStreamTransport,
    host: &H,
    outboxes: &mut HashMap<HubId, Outbox>,
    committed: &mut watch::Receiver<u64>,
    resends: &mut mpsc::Receiver<(HubId, u64)>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), NatsError> {
    let me = transport.me().clone();
    let log_id = host.log_id();
    // Bounded by the hub's life: every pass publishes one batch or waits for something.
    loop {
        let end = *committed.borrow_and_update();
        let mut busy = false;
        let mut waiting_for_acks = false;
        for (peer, outbox) in outboxes.iter_mut() {
            if outbox.cursor > outbox.durable.saturating_add(NATS_WINDOW_RECORDS) {
                waiting_for_acks = true;
                continue;
            }
            if outbox.cursor >= end {
                waiting_for_acks |= outbox.cursor > outbox.durable;
                continue;
            }
            let scan = host
                .records_for(peer, outbox.cursor, NATS_BATCH_RECORDS, NATS_BATCH_BYTES)
                .await
                .map_err(|error| NatsError::Refused(error.to_string()))?;
            let mut records = scan.records;
            for record in &mut records {
                record.previous = outbox.previous;
                outbox.previous = record.offset;
            }
            if !records.is_empty() {
                let (again, first_time): (Vec<_>, Vec<_>) = records
                    .into_iter()
                    .partition(|record| record.offset < outbox.resending_below);
                if !again.is_empty() {
                    transport.resend_batch(peer, log_id, &again).await?;
                }
                if !first_time.is_empty() {
                    transport.publish_batch(peer, log_id, &first_time).await?;
                }
                busy = true;
            }
            outbox.cursor = scan.next;
        }
        if busy {
            continue;
        }
        let poll = async {
            if waiting_for_acks {
                tokio::time::sleep(NATS_DURABLE_POLL).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = stopped(shutdown) => return Ok(()),
            _ = committed.changed() => {}
            Some((peer, from)) = resends.recv() => {
                if let Some(outbox) = outboxes.get_mut(&peer) {
                    tracing::info!(peer = %peer, from, "publishing again on the peer's request");
                    outbox.resending_below = outbox.resending_below.max(outbox.cursor);
                    outbox.cursor = from.min(outbox.cursor);
                    outbox.previous = from.checked_sub(1).unwrap_or(NO_PREVIOUS);
                }
            }
            () = poll => {
                for (peer, outbox) in outboxes.iter_mut() {
                    if let Some(durable) = transport.durable(&me, peer).await?
                        && durable > outbox.durable
                    {
                        outbox.durable = durable;
                        host.acknowledged(peer, durable);
                    }
                }
            }
        }
    }
}

/// Hands resend requests addressed to this hub to the publisher.
async fn resend_loop(
    nats: &NatsConfig,
    me: &HubId,
    peers: &[HubId],
    to_publisher: mpsc::Sender<(HubId, u64)>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Bounded by the hub's life: every pass subscribes once and reads until it ends.
    loop {
        if *shutdown.borrow() {
            return;
        }
        let subscribed = match JetStreamTransport::connect(nats, me, peers).await {
            Ok(transport) => transport
                .resend_requests()
                .await
                .map(|requests| (transport, requests)),
            Err(error) => Err(error),
        };
        let Ok((_transport, mut requests)) = subscribed else {
            tokio::select! {
                () = stopped(&mut shutdown) => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        loop {
            let request = tokio::select! {
                () = stopped(&mut shutdown) => return,
                request = requests.next(Duration::from_secs(5)) => request,
            };
            if let Some(request) = request {
                let _ = to_publisher.send((request.from_hub, request.from)).await;
            }
        }
    }
}
