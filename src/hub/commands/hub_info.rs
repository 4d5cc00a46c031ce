//! `hub_info`: what the hub is and does, for `relay status` and `relay doctor`.
//!
//! Read-only and open to any greeted session, registered or not, so a status check neither
//! takes a name nor spends the new-identity budget. It appends nothing.
//!
//! What the daemon decided at start (settings and their sources, how it was started, the
//! WebSocket port or why there is none) is set once per process with [`set_facts`]: one hub
//! runs per process. A core without facts (the fuzz harness) answers with those fields empty.
//! The newest snapshot is looked up on disk (one directory listing).

use std::sync::OnceLock;

use crate::federation::link::LinkStatus;
use crate::hub::core::{Core, Json, client_name, to_json};
use crate::protocol::{
    HubInfoResult, HubLinkInfo, HubLogInfo, HubSessionInfo, HubSettingInfo, HubSnapshotInfo,
    RpcError,
};

/// What the daemon decided at start.
#[derive(Clone, Debug, Default)]
pub struct HubFacts {
    /// The data dir, as given.
    pub data_dir: String,
    /// Start time, microseconds since the epoch.
    pub started_at_us: u64,
    /// `hand`, `on-demand` or `service`.
    pub started_by: String,
    /// Every setting: key, value, source.
    pub settings: Vec<HubSettingInfo>,
    /// The WebSocket port bound.
    pub ws_port: Option<u16>,
    /// Why there is no WebSocket endpoint.
    pub ws_error: Option<String>,
}

static FACTS: OnceLock<HubFacts> = OnceLock::new();

/// Records the daemon's facts; later calls change nothing (one hub per process).
pub fn set_facts(facts: HubFacts) {
    let _ = FACTS.set(facts);
}

impl Core {
    /// `hub_info`.
    pub(in crate::hub) fn hub_info(&self) -> Result<Json, RpcError> {
        let facts = FACTS.get().cloned().unwrap_or_default();
        let mut sessions: Vec<HubSessionInfo> = self
            .sessions
            .values()
            .map(|session| {
                let identity = session
                    .identity
                    .and_then(|identity| self.state.identity(identity));
                HubSessionInfo {
                    name: identity.map(|identity| identity.name().to_owned()),
                    client: identity.map(|identity| client_name(&identity.client)),
                    delivery: session.delivery.clone(),
                }
            })
            .collect();
        sessions.sort_by(|a, b| a.name.cmp(&b.name));
        let segments = self.log.segments();
        let log = HubLogInfo {
            first_offset: self.log.first_offset(),
            next_offset: self.log.next_offset(),
            durable_offset: self.log.durable_offset(),
            segments: segments.len() as u64,
            bytes: segments.iter().map(|segment| segment.file_bytes).sum(),
        };
        let snapshot = crate::snapshots::list(&self.config.snapshot_dir, self.log.log_id())
            .into_iter()
            .next()
            .map(|(next_offset, path)| HubSnapshotInfo {
                next_offset,
                written_at: std::fs::metadata(path)
                    .and_then(|metadata| metadata.modified())
                    .ok()
                    .and_then(|modified| modified.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |since| since.as_micros() as u64),
            });
        to_json(&HubInfoResult {
            hub_version: env!("CARGO_PKG_VERSION").to_owned(),
            hub_id: format!("{:032x}", self.config.hub_id),
            pid: std::process::id(),
            data_dir: facts.data_dir,
            started_at: facts.started_at_us,
            started_by: facts.started_by,
            settings: facts.settings,
            ws_port: facts.ws_port,
            ws_error: facts.ws_error,
            sessions,
            log,
            snapshot,
            federation_hub_id: self
                .config
                .federation
                .as_ref()
                .map(|federation| federation.hub_id.clone()),
            links: self.link_infos(),
        })
    }

    /// The state of every configured federation link.
    fn link_infos(&self) -> Vec<HubLinkInfo> {
        let Some(federation) = &self.config.federation else {
            return Vec::new();
        };
        let reports = crate::hub::link_host::link_reports();
        federation
            .peers
            .iter()
            .map(|peer| {
                let report = reports.get(peer);
                let (state, error) = match report.map(|report| &report.status) {
                    Some(LinkStatus::Connecting) => ("connecting", None),
                    Some(LinkStatus::Up) => ("up", None),
                    Some(LinkStatus::Down { error }) => ("down", Some(error.clone())),
                    Some(LinkStatus::Refused { reason }) => ("refused", Some(reason.clone())),
                    None => ("down", Some("no link has run yet".to_owned())),
                };
                let acknowledged = self.state.federation().link_acknowledged(peer);
                HubLinkInfo {
                    hub_id: peer.clone(),
                    state: state.to_owned(),
                    error,
                    since: report
                        .and_then(|report| report.since.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |since| since.as_micros() as u64),
                    acknowledged,
                    behind: self.log.next_offset().saturating_sub(acknowledged),
                    imported: self
                        .state
                        .federation()
                        .link_progress(peer)
                        .map(|progress| progress.offset),
                }
            })
            .collect()
    }
}
