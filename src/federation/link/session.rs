//! One link's protocol, both directions over one Noise link: a receiving loop (imports the
//! peer's batches, answers its `Resume`, reads its acks) and a sending loop (our `Resume`, our
//! batches from a cursor into our log within the window, acks, heartbeats, the refusal).
//!
//! The two loops share the link's task. The receiver never waits on the sender: what it has
//! for the sender (an ack to send, the peer's `Resume`, the peer's acks, why the link ends) goes
//! through watch channels, so a full TCP buffer in one direction never stalls the other. Only
//! the sender writes, and it is never cancelled inside a write, so a `Refuse` it sends is
//! always a whole frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    HostError, LINK_BATCH_BYTES, LINK_WINDOW_BYTES, LINK_WINDOW_RECORDS, LinkHost, LinkProgress,
    LinkTiming, PRESENCE_INTERVAL_MIN,
};
use crate::federation::config::HubId;
use crate::federation::noise::{LINK_FRAME_BYTES_MAX, Link, LinkError, LinkReader, LinkWriter};
use crate::federation::wire::{
    self, BATCH_RECORDS_MAX, LinkFrame, NO_PREVIOUS, SHIPPED_PAYLOAD_BYTES_MAX, ShippedRecord,
};

/// Bytes of a batch frame before its records: tag, log id, count.
const BATCH_HEAD_BYTES: usize = 1 + 16 + 4;

/// Bytes of a shipped record before its payload (as [`wire`] lays it out).
const RECORD_HEAD_BYTES: usize = 8 + 8 + 8 + 2 + 2 + 16 + 4 + 4;

/// How a link ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEnd {
    /// Replaced by a newer link to the same peer, or the hub is stopping.
    Stopped,
    /// The link failed (i/o, deadline, the host unavailable): a retry may fix it.
    Failed(String),
    /// We refused the peer (and told it why).
    RefusedByUs(String),
    /// The peer refused us.
    RefusedByPeer(String),
}

/// What the receiver tells the sender when it stops.
#[derive(Clone, Debug)]
enum Ending {
    /// Send this refusal, then close.
    Refuse(String),
    /// The peer refused.
    PeerRefused(String),
    /// The link failed.
    Failed(String),
}

/// The peer's `Resume`.
#[derive(Clone, Copy, Debug)]
struct Resume {
    log_id: u128,
    from: u64,
    last_crc: Option<u32>,
}

/// Runs the protocol on `link` until it ends, `stop` flips (a newer link replaced it) or
/// `shutdown` flips.
pub(super) async fn run<H, S>(
    host: &H,
    link: Link<S>,
    timing: &LinkTiming,
    mut stop: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) -> LinkEnd
where
    H: LinkHost,
    S: AsyncRead + AsyncWrite + Send,
{
    let Link {
        peer,
        reader,
        mut writer,
    } = link;
    let progress = match host.progress(&peer).await {
        Ok(progress) => progress,
        Err(error) => {
            writer.close().await;
            return LinkEnd::Failed(format!("reading the progress from {peer}: {error}"));
        }
    };
    let shipped_end = AtomicU64::new(0);
    let (resume_tx, resume_rx) = watch::channel(None::<Resume>);
    let (our_ack_tx, our_ack_rx) = watch::channel(None::<u64>);
    let (peer_ack_tx, peer_ack_rx) = watch::channel(0u64);
    let (ending_tx, ending_rx) = watch::channel(None::<Ending>);
    let receiving = async {
        let ending = receive(
            host,
            &peer,
            reader,
            timing,
            progress,
            &shipped_end,
            &resume_tx,
            &our_ack_tx,
            &peer_ack_tx,
        )
        .await;
        let _ = ending_tx.send(Some(ending));
        // The sender ends the link; this side waits to be dropped with it.
        std::future::pending::<()>().await;
    };
    let sending = Sender {
        host,
        peer: &peer,
        timing,
        shipped_end: &shipped_end,
        shipping: None,
        last_sent: Instant::now(),
    }
    .run(
        &mut writer,
        progress,
        &mut stop,
        &mut shutdown,
        resume_rx,
        our_ack_rx,
        peer_ack_rx,
        ending_rx,
    );
    let end = tokio::select! {
        end = sending => end,
        () = receiving => LinkEnd::Failed("the receiving loop stopped".to_owned()),
    };
    writer.close().await;
    // What the peer said of its sessions no longer holds once the link is gone.
    host.peer_presence(&peer, Vec::new());
    end
}

/// Reads the peer's frames until the link must end; says why.
#[allow(clippy::too_many_arguments)]
async fn receive<H: LinkHost, S: AsyncRead>(
    host: &H,
    peer: &HubId,
    mut reader: LinkReader<S>,
    timing: &LinkTiming,
    progress: Option<LinkProgress>,
    shipped_end: &AtomicU64,
    resume_tx: &watch::Sender<Option<Resume>>,
    our_ack_tx: &watch::Sender<Option<u64>>,
    peer_ack_tx: &watch::Sender<u64>,
) -> Ending {
    // The last offset of the peer's log we hold (`None`: nothing yet), and its log id.
    let mut mine: Option<u64> = progress.map(|progress| progress.offset);
    let mut known_log: Option<u128> = progress.map(|progress| progress.log_id);
    let mut resumed = false;
    // Bounded: each pass reads one frame of at most LINK_FRAME_BYTES_MAX or ends the link.
    loop {
        let bytes = match tokio::time::timeout(timing.idle, reader.recv()).await {
            Err(_) => {
                return Ending::Failed(format!(
                    "nothing from {peer} for {:?} (no heartbeat)",
                    timing.idle
                ));
            }
            Ok(Err(LinkError::Closed)) => {
                return Ending::Failed(format!("{peer} closed the link"));
            }
            Ok(Err(error)) => return Ending::Failed(error.to_string()),
            Ok(Ok(bytes)) => bytes,
        };
        let frame = match wire::decode(&bytes) {
            Ok(frame) => frame,
            Err(error) => return Ending::Refuse(format!("a malformed frame: {error}")),
        };
        match frame {
            LinkFrame::Resume {
                log_id,
                from,
                last_crc,
            } => {
                if resumed {
                    return Ending::Refuse("a second Resume on one link".to_owned());
                }
                resumed = true;
                resume_tx.send_replace(Some(Resume {
                    log_id,
                    from,
                    last_crc,
                }));
            }
            LinkFrame::Batch { log_id, records } => {
                if let Some(known) = known_log
                    && known != log_id
                {
                    return Ending::Refuse(format!(
                        "log id mismatch: a batch of log {log_id:032x}, but this hub imported \
                         from log {known:032x} of {peer}; the peer's log was re-created"
                    ));
                }
                let (Some(first), Some(last)) = (records.first(), records.last()) else {
                    continue;
                };
                let last_offset = last.offset;
                let previous = (first.previous != NO_PREVIOUS).then_some(first.previous);
                // `previous` is the last offset the peer believes we hold; the records between
                // it and the first record are not for us. Past what we hold is a gap.
                if previous > mine {
                    return Ending::Refuse(format!(
                        "a gap: the batch follows offset {}, but this hub holds {}",
                        first.previous,
                        describe(mine)
                    ));
                }
                // At or below what we hold: a resend; those records are duplicates.
                let fresh: Vec<ShippedRecord> = records
                    .into_iter()
                    .filter(|record| Some(record.offset) > mine)
                    .collect();
                if !fresh.is_empty() {
                    match host.import(peer, log_id, fresh).await {
                        Ok(progress) => {
                            mine = Some(progress.offset);
                            known_log = Some(log_id);
                        }
                        Err(HostError::Refused(reason)) => {
                            return Ending::Refuse(format!("import refused: {reason}"));
                        }
                        Err(error) => return Ending::Failed(error.to_string()),
                    }
                }
                // Never past what the peer shipped on this link, even if the hub holds more.
                let held = mine.unwrap_or(0).min(last_offset);
                our_ack_tx.send_replace(Some(held.saturating_add(1)));
            }
            LinkFrame::Ack { durable } => {
                let shipped = shipped_end.load(Ordering::Acquire);
                if durable > shipped {
                    return Ending::Refuse(format!(
                        "an ack of offset {durable}, but only records below {shipped} were \
                         shipped on this link"
                    ));
                }
                if durable > *peer_ack_tx.borrow() {
                    host.acknowledged(peer, durable);
                    peer_ack_tx.send_replace(durable);
                }
            }
            LinkFrame::Heartbeat => {}
            LinkFrame::Presence { online } => host.peer_presence(peer, online),
            LinkFrame::Refuse { reason } => return Ending::PeerRefused(reason),
        }
    }
}

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// `offset N` or `nothing`.
fn describe(offset: Option<u64>) -> String {
    match offset {
        Some(offset) => format!("up to offset {offset}"),
        None => "nothing".to_owned(),
    }
}

/// Where shipping stands once the peer's `Resume` was accepted.
struct Shipping {
    /// The next offset of our log to scan.
    cursor: u64,
    /// `previous` of the next record shipped.
    previous: u64,
    /// Shipped and not yet acked: (offset, payload bytes), in offset order. At most
    /// [`LINK_WINDOW_RECORDS`] entries.
    in_flight: VecDeque<(u64, usize)>,
    /// Payload bytes in `in_flight`.
    in_flight_bytes: usize,
}

impl Shipping {
    fn has_room(&self) -> bool {
        self.in_flight.len() < LINK_WINDOW_RECORDS && self.in_flight_bytes < LINK_WINDOW_BYTES
    }

    fn release(&mut self, durable: u64) {
        while let Some(&(offset, bytes)) = self.in_flight.front() {
            if offset >= durable {
                break;
            }
            self.in_flight.pop_front();
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes);
        }
    }
}

/// The sending loop's state.
struct Sender<'a, H> {
    host: &'a H,
    peer: &'a HubId,
    timing: &'a LinkTiming,
    /// One past the last offset shipped on this link (or the resume point): acks may not pass
    /// it.
    shipped_end: &'a AtomicU64,
    shipping: Option<Shipping>,
    last_sent: Instant,
}

/// What one step of the sending loop decided.
enum Step {
    Go,
    End(LinkEnd),
}

impl<H: LinkHost> Sender<'_, H> {
    #[allow(clippy::too_many_arguments)]
    async fn run<S: AsyncWrite>(
        mut self,
        writer: &mut LinkWriter<S>,
        progress: Option<LinkProgress>,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
        mut resume_rx: watch::Receiver<Option<Resume>>,
        mut our_ack_rx: watch::Receiver<Option<u64>>,
        mut peer_ack_rx: watch::Receiver<u64>,
        mut ending_rx: watch::Receiver<Option<Ending>>,
    ) -> LinkEnd {
        let resume = LinkFrame::Resume {
            log_id: progress.map_or(0, |progress| progress.log_id),
            from: progress.map_or(0, |progress| progress.offset.saturating_add(1)),
            last_crc: progress.map(|progress| progress.crc),
        };
        if let Step::End(end) = self.send(writer, &resume).await {
            return end;
        }
        let mut presence_rx = self.host.presence();
        let online = presence_rx.borrow_and_update().clone();
        if let Step::End(end) = self.send(writer, &LinkFrame::Presence { online }).await {
            return end;
        }
        // A change of presence within PRESENCE_INTERVAL_MIN of the last one waits until then.
        let mut presence_sent = Instant::now();
        let mut presence_due: Option<Instant> = None;
        let mut committed_rx = self.host.committed();
        // Bounded by the link's life: every pass waits for one event or ships one batch.
        loop {
            let committed = *committed_rx.borrow_and_update();
            let can_ship = self
                .shipping
                .as_ref()
                .is_some_and(|shipping| shipping.cursor < committed && shipping.has_room());
            let heartbeat_at = self.last_sent + self.timing.heartbeat;
            let step = tokio::select! {
                biased;
                () = stopped(stop) => Step::End(LinkEnd::Stopped),
                () = stopped(shutdown) => Step::End(LinkEnd::Stopped),
                Ok(()) = ending_rx.changed() => {
                    let ending = ending_rx.borrow_and_update().clone();
                    match ending {
                        Some(Ending::Refuse(reason)) => self.refuse(writer, reason).await,
                        Some(Ending::PeerRefused(reason)) => {
                            Step::End(LinkEnd::RefusedByPeer(reason))
                        }
                        Some(Ending::Failed(error)) => Step::End(LinkEnd::Failed(error)),
                        None => Step::Go,
                    }
                }
                Ok(()) = our_ack_rx.changed() => {
                    let durable = *our_ack_rx.borrow_and_update();
                    match durable {
                        Some(durable) => self.send(writer, &LinkFrame::Ack { durable }).await,
                        None => Step::Go,
                    }
                }
                Ok(()) = resume_rx.changed(), if self.shipping.is_none() => {
                    let resume = *resume_rx.borrow_and_update();
                    match resume {
                        Some(resume) => self.start_shipping(writer, resume, committed).await,
                        None => Step::Go,
                    }
                }
                Ok(()) = peer_ack_rx.changed() => {
                    let durable = *peer_ack_rx.borrow_and_update();
                    if let Some(shipping) = self.shipping.as_mut() {
                        shipping.release(durable);
                    }
                    Step::Go
                }
                Ok(()) = committed_rx.changed() => Step::Go,
                Ok(()) = presence_rx.changed(), if presence_due.is_none() => {
                    presence_due = Some(presence_sent + PRESENCE_INTERVAL_MIN);
                    Step::Go
                }
                () = sleep_until_due(presence_due) => {
                    presence_due = None;
                    presence_sent = Instant::now();
                    let online = presence_rx.borrow_and_update().clone();
                    self.send(writer, &LinkFrame::Presence { online }).await
                }
                () = std::future::ready(()), if can_ship => self.ship(writer).await,
                () = tokio::time::sleep_until(heartbeat_at) => {
                    self.send(writer, &LinkFrame::Heartbeat).await
                }
            };
            if let Step::End(end) = step {
                return end;
            }
        }
    }

    async fn send<S: AsyncWrite>(&mut self, writer: &mut LinkWriter<S>, frame: &LinkFrame) -> Step {
        match writer.send(&wire::encode(frame)).await {
            Ok(()) => {
                self.last_sent = Instant::now();
                Step::Go
            }
            Err(error) => Step::End(LinkEnd::Failed(error.to_string())),
        }
    }

    async fn refuse<S: AsyncWrite>(&mut self, writer: &mut LinkWriter<S>, reason: String) -> Step {
        // The link ends either way; the refusal is best effort.
        let _ = self
            .send(
                writer,
                &LinkFrame::Refuse {
                    reason: reason.clone(),
                },
            )
            .await;
        Step::End(LinkEnd::RefusedByUs(reason))
    }

    /// Checks the peer's `Resume` against our log; ships from its `from` if it holds.
    async fn start_shipping<S: AsyncWrite>(
        &mut self,
        writer: &mut LinkWriter<S>,
        resume: Resume,
        committed: u64,
    ) -> Step {
        let ours = self.host.log_id();
        if resume.log_id == 0 && resume.from != 0 {
            let reason = format!(
                "a first-contact Resume (log id 0) from offset {}; it must start at 0",
                resume.from
            );
            return self.refuse(writer, reason).await;
        }
        if resume.log_id != 0 && resume.log_id != ours {
            let reason = format!(
                "log id mismatch: {} imported from log {:032x} of this hub, but its log is \
                 {ours:032x} (re-created?); it will not be shipped again from zero",
                self.peer, resume.log_id
            );
            return self.refuse(writer, reason).await;
        }
        if resume.from > 0 {
            let last = resume.from - 1;
            if resume.from > committed {
                let reason = format!(
                    "{} resumes after offset {last}, but this hub's log has committed only \
                     below {committed}",
                    self.peer
                );
                return self.refuse(writer, reason).await;
            }
            let Some(expected) = resume.last_crc else {
                let reason = format!("a Resume from offset {} without a CRC", resume.from);
                return self.refuse(writer, reason).await;
            };
            match self.host.record_crc(last).await {
                Ok(crc) if crc == expected => {}
                Ok(crc) => {
                    let reason = format!(
                        "CRC mismatch at offset {last}: {} holds CRC {expected:08x}, this hub's \
                         log has {crc:08x}; the logs differ, so shipping stops",
                        self.peer
                    );
                    return self.refuse(writer, reason).await;
                }
                Err(HostError::Gone { from, first }) => {
                    let reason = format!(
                        "{} resumes after offset {last}, but this hub's log no longer has \
                         offset {from} (it starts at {first})",
                        self.peer
                    );
                    return self.refuse(writer, reason).await;
                }
                Err(HostError::Refused(reason)) => return self.refuse(writer, reason).await,
                Err(error @ HostError::Unavailable(_)) => {
                    return Step::End(LinkEnd::Failed(error.to_string()));
                }
            }
        }
        self.shipped_end.store(resume.from, Ordering::Release);
        // The peer holds everything below `from` (its progress is answered after its commit):
        // that is an ack, so one lost with the last link does not hold retention back.
        if resume.from > 0 {
            self.host.acknowledged(self.peer, resume.from);
        }
        self.shipping = Some(Shipping {
            cursor: resume.from,
            previous: resume.from.checked_sub(1).unwrap_or(NO_PREVIOUS),
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
        });
        Step::Go
    }

    /// Scans from the cursor and ships what is for the peer, within the window.
    async fn ship<S: AsyncWrite>(&mut self, writer: &mut LinkWriter<S>) -> Step {
        let Some(shipping) = self.shipping.as_ref() else {
            return Step::Go;
        };
        let cursor = shipping.cursor;
        let max_records = BATCH_RECORDS_MAX.min(LINK_WINDOW_RECORDS - shipping.in_flight.len());
        let max_bytes =
            LINK_BATCH_BYTES.min(LINK_WINDOW_BYTES.saturating_sub(shipping.in_flight_bytes));
        let scan = match self
            .host
            .records_for(self.peer, cursor, max_records, max_bytes)
            .await
        {
            Ok(scan) => scan,
            Err(HostError::Gone { from, first }) => {
                let reason = format!(
                    "{} needs records from offset {from}, but this hub's log starts at {first} \
                     (retention dropped them)",
                    self.peer
                );
                return self.refuse(writer, reason).await;
            }
            Err(HostError::Refused(reason)) => return self.refuse(writer, reason).await,
            Err(error @ HostError::Unavailable(_)) => {
                return Step::End(LinkEnd::Failed(error.to_string()));
            }
        };
        let mut previous = shipping.previous;
        let mut next = scan.next;
        let mut records = Vec::with_capacity(scan.records.len().min(max_records));
        let mut frame_bytes = BATCH_HEAD_BYTES;
        let mut payload_bytes = 0usize;
        let mut sizes = Vec::with_capacity(records.capacity());
        for mut record in scan.records {
            let after = records
                .last()
                .map_or(cursor, |last: &ShippedRecord| last.offset.saturating_add(1));
            if record.offset < after {
                return Step::End(LinkEnd::Failed(format!(
                    "this hub's scan for {} returned offset {} out of order (after {after})",
                    self.peer, record.offset
                )));
            }
            if record.payload.len() > SHIPPED_PAYLOAD_BYTES_MAX {
                return Step::End(LinkEnd::Failed(format!(
                    "record {} has a payload of {} bytes; a link ships at most {}",
                    record.offset,
                    record.payload.len(),
                    SHIPPED_PAYLOAD_BYTES_MAX
                )));
            }
            let size = RECORD_HEAD_BYTES + record.payload.len();
            // At least one record per batch; the rest within the bounds (what does not fit is
            // scanned again next time).
            if !records.is_empty()
                && (records.len() >= max_records
                    || frame_bytes + size > LINK_FRAME_BYTES_MAX
                    || payload_bytes + record.payload.len() > max_bytes)
            {
                next = record.offset;
                break;
            }
            frame_bytes += size;
            payload_bytes += record.payload.len();
            record.previous = previous;
            previous = record.offset;
            sizes.push((record.offset, record.payload.len()));
            records.push(record);
        }
        if records.is_empty() && next <= cursor {
            return Step::End(LinkEnd::Failed(format!(
                "this hub's scan for {} from offset {cursor} made no progress",
                self.peer
            )));
        }
        if let Some(last) = records.last() {
            self.shipped_end
                .store(last.offset.saturating_add(1), Ordering::Release);
        }
        let shipped = !records.is_empty();
        if let Some(shipping) = self.shipping.as_mut() {
            shipping.cursor = next;
            shipping.previous = previous;
            for (offset, bytes) in sizes {
                shipping.in_flight.push_back((offset, bytes));
                shipping.in_flight_bytes += bytes;
            }
        }
        if !shipped {
            return Step::Go;
        }
        let batch = LinkFrame::Batch {
            log_id: self.host.log_id(),
            records,
        };
        self.send(writer, &batch).await
    }
}

/// Returns once `flag` is true or its sender is gone.
async fn stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|&stopped| stopped).await;
}
