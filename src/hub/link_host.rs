//! The hub's side of federation links: [`HubLinkHost`] implements the link manager's
//! [`LinkHost`] over the core's queue and a read-only view of the log.
//!
//! Shipping reads our log with its own [`LogReader`] on a blocking thread, never through the
//! core: a link catching up on a million records costs the core nothing. Imports go through
//! the core's queue like client requests, so they are validated, appended and committed with
//! everything else, and answered after the commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use relay_log::{LogReader, ReadError};
use relay_replay::decode;
use relay_replay::federation::{may_ship, ships_to};
use tokio::sync::{mpsc, oneshot, watch};

use super::core::{CoreInput, LinkImportError};
use crate::federation::config::HubId;
use crate::federation::link::{HostError, LinkHost, LinkProgress, LinkStatus, Scan};
use crate::federation::wire::{NO_PREVIOUS, ShippedRecord, record_crc};

/// Records one scan looks at, matching or not, before it returns its progress: a link far
/// behind on a log mostly of local traffic still yields often.
pub const LINK_SCAN_RECORDS_MAX: usize = 65_536;

/// How each linked hub's link stands, for `relay status` (`hub_info`).
#[derive(Clone, Debug)]
pub struct LinkReport {
    /// The state.
    pub status: LinkStatus,
    /// When it last changed.
    pub since: SystemTime,
}

/// Every link's latest report, by peer hub id.
static LINK_REPORTS: Mutex<BTreeMap<String, LinkReport>> = Mutex::new(BTreeMap::new());

/// The peers online at each linked hub, as its link last said (not logged).
static REMOTE_PRESENCE: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());

/// The peers online at each linked hub whose link is up: `hub → names` (local to that hub).
pub fn remote_presence() -> BTreeMap<String, Vec<String>> {
    REMOTE_PRESENCE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The latest report of every link.
pub fn link_reports() -> BTreeMap<String, LinkReport> {
    LINK_REPORTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The hub behind its federation links.
#[derive(Clone)]
pub struct HubLinkHost {
    log_id: u128,
    log_dir: PathBuf,
    committed: watch::Receiver<u64>,
    presence: watch::Receiver<Vec<String>>,
    core: mpsc::Sender<CoreInput>,
    reader: Arc<Mutex<Option<LogReader>>>,
}

impl HubLinkHost {
    /// A host over the log in `log_dir` (id `log_id`) and the core behind `core`, with the
    /// core's commit point and presence.
    pub fn new(
        log_id: u128,
        log_dir: PathBuf,
        committed: watch::Receiver<u64>,
        presence: watch::Receiver<Vec<String>>,
        core: mpsc::Sender<CoreInput>,
    ) -> HubLinkHost {
        HubLinkHost {
            log_id,
            log_dir,
            committed,
            presence,
            core,
            reader: Arc::new(Mutex::new(None)),
        }
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut LogReader) -> Result<T, HostError> + Send + 'static,
    ) -> Result<T, HostError> {
        let reader = self.reader.clone();
        let dir = self.log_dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = reader.lock().unwrap_or_else(PoisonError::into_inner);
            if guard.is_none() {
                let opened = LogReader::open(&dir)
                    .map_err(|error| HostError::Unavailable(format!("opening the log: {error}")))?;
                *guard = Some(opened);
            }
            match guard.as_mut() {
                Some(reader) => work(reader),
                None => Err(HostError::Unavailable("the log is not open".to_owned())),
            }
        })
        .await
        .map_err(|error| HostError::Unavailable(format!("the log reader stopped: {error}")))?
    }
}

/// The groups homed here that ship to one linked hub, asked of the core once per scan and only
/// when the scan meets a group event (most scans meet none).
struct Routes {
    peer: String,
    core: mpsc::Sender<CoreInput>,
    known: Option<BTreeSet<String>>,
}

impl Routes {
    fn new(peer: &str, core: mpsc::Sender<CoreInput>) -> Routes {
        Routes {
            peer: peer.to_owned(),
            core,
            known: None,
        }
    }

    /// The groups; an empty set when the core is stopping (the link stops with it). Called on
    /// the blocking thread of a scan, never on the runtime.
    fn get(&mut self) -> &BTreeSet<String> {
        self.known.get_or_insert_with(|| {
            let (reply, answer) = oneshot::channel();
            let query = CoreInput::LinkRoutesQuery {
                peer: self.peer.clone(),
                reply,
            };
            if self.core.blocking_send(query).is_err() {
                return BTreeSet::new();
            }
            answer.blocking_recv().unwrap_or_default()
        })
    }
}

/// Scans `reader` from `from` to below `committed` for records for `peer`. The flag says
/// whether the reader's view ended before `committed` (a segment it does not map yet).
fn scan(
    reader: &LogReader,
    peer: &str,
    from: u64,
    committed: u64,
    max_records: usize,
    max_bytes: usize,
    routes: &mut Routes,
) -> Result<(Scan, bool), HostError> {
    let mut found = Scan {
        records: Vec::new(),
        next: from,
    };
    if from >= committed {
        return Ok((found, false));
    }
    let iter = reader
        .iter_from(from)
        .map_err(|error| gone_or(error, from))?;
    let mut bytes = 0;
    for (looked, record) in iter.enumerate() {
        let record = record.map_err(|error| HostError::Unavailable(error.to_string()))?;
        if record.offset >= committed || looked >= LINK_SCAN_RECORDS_MAX {
            return Ok((found, false));
        }
        found.next = record.offset + 1;
        let Some(kind) = relay_replay::EventKind::from_number(record.kind) else {
            continue;
        };
        if !may_ship(kind) {
            continue;
        }
        let Ok(event) = decode(record.kind, record.schema_version, record.payload) else {
            continue;
        };
        if !ships_to(&event, peer, |group| routes.get().contains(group)) {
            continue;
        }
        bytes += record.payload.len();
        found.records.push(ShippedRecord {
            offset: record.offset,
            previous: NO_PREVIOUS,
            timestamp_us: record.timestamp_us,
            kind: record.kind,
            schema_version: record.schema_version,
            origin_hub: record.origin_hub,
            crc: record_crc(
                record.offset,
                record.timestamp_us,
                record.kind,
                record.schema_version,
                record.origin_hub,
                record.payload,
            ),
            payload: record.payload.to_vec(),
        });
        if found.records.len() >= max_records || bytes >= max_bytes {
            return Ok((found, false));
        }
    }
    let view_ended = found.next < committed;
    Ok((found, view_ended))
}

fn gone_or(error: ReadError, from: u64) -> HostError {
    match error {
        ReadError::OutOfRange { first, .. } if from < first => HostError::Gone { from, first },
        other => HostError::Unavailable(other.to_string()),
    }
}

impl LinkHost for HubLinkHost {
    fn log_id(&self) -> u128 {
        self.log_id
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    async fn records_for(
        &self,
        peer: &HubId,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Scan, HostError> {
        let committed = *self.committed.borrow();
        let peer = peer.as_str().to_owned();
        let mut routes = Routes::new(&peer, self.core.clone());
        self.with_reader(move |reader| {
            let (found, view_ended) = scan(
                reader,
                &peer,
                from,
                committed,
                max_records,
                max_bytes,
                &mut routes,
            )?;
            if !view_ended {
                return Ok(found);
            }
            // The reader's view ended before the commit point: a new segment, or records the
            // mapping did not show yet. Look again with a fresh view, from where it stopped.
            reader
                .refresh()
                .map_err(|error| HostError::Unavailable(format!("refreshing the log: {error}")))?;
            let (mut more, _) = scan(
                reader,
                &peer,
                found.next,
                committed,
                max_records.saturating_sub(found.records.len()).max(1),
                max_bytes,
                &mut routes,
            )?;
            let mut found = found;
            found.records.append(&mut more.records);
            found.next = more.next;
            Ok(found)
        })
        .await
    }

    async fn record_crc(&self, offset: u64) -> Result<u32, HostError> {
        self.with_reader(move |reader| {
            let read = match reader.read(offset) {
                Err(ReadError::OutOfRange { .. }) => {
                    reader.refresh().map_err(|error| {
                        HostError::Unavailable(format!("refreshing the log: {error}"))
                    })?;
                    reader.read(offset)
                }
                other => other,
            };
            let record = read.map_err(|error| gone_or(error, offset))?;
            Ok(record_crc(
                record.offset,
                record.timestamp_us,
                record.kind,
                record.schema_version,
                record.origin_hub,
                record.payload,
            ))
        })
        .await
    }

    async fn progress(&self, peer: &HubId) -> Result<Option<LinkProgress>, HostError> {
        let (reply, answer) = oneshot::channel();
        let query = CoreInput::LinkProgressQuery {
            peer: peer.as_str().to_owned(),
            reply,
        };
        self.core
            .send(query)
            .await
            .map_err(|_| HostError::Unavailable("the hub is stopping".to_owned()))?;
        answer
            .await
            .map_err(|_| HostError::Unavailable("the hub is stopping".to_owned()))
    }

    async fn import(
        &self,
        peer: &HubId,
        log_id: u128,
        records: Vec<ShippedRecord>,
    ) -> Result<LinkProgress, HostError> {
        let (reply, answer) = oneshot::channel();
        let import = CoreInput::LinkImport {
            peer: peer.as_str().to_owned(),
            log_id,
            records,
            reply,
        };
        self.core
            .send(import)
            .await
            .map_err(|_| HostError::Unavailable("the hub is stopping".to_owned()))?;
        match answer.await {
            Ok(Ok(progress)) => Ok(progress),
            Ok(Err(LinkImportError::Refused(reason))) => Err(HostError::Refused(reason)),
            Ok(Err(LinkImportError::Unavailable(reason))) => Err(HostError::Unavailable(reason)),
            Err(_) => Err(HostError::Unavailable("the hub is stopping".to_owned())),
        }
    }

    fn acknowledged(&self, peer: &HubId, durable: u64) {
        // A full queue drops this ack; the next one carries at least as much.
        let _ = self.core.try_send(CoreInput::LinkAcked {
            peer: peer.as_str().to_owned(),
            durable,
        });
    }

    fn presence(&self) -> watch::Receiver<Vec<String>> {
        self.presence.clone()
    }

    fn peer_presence(&self, peer: &HubId, online: Vec<String>) {
        let mut presence = REMOTE_PRESENCE
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if online.is_empty() {
            presence.remove(peer.as_str());
        } else {
            presence.insert(peer.as_str().to_owned(), online);
        }
    }

    fn report(&self, peer: &HubId, status: LinkStatus) {
        match &status {
            LinkStatus::Up => tracing::info!(peer = %peer, "federation link up"),
            LinkStatus::Refused { reason } => {
                tracing::warn!(peer = %peer, reason, "federation link refused");
            }
            _ => {}
        }
        LINK_REPORTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                peer.as_str().to_owned(),
                LinkReport {
                    status,
                    since: SystemTime::now(),
                },
            );
    }
}
