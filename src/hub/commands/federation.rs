//! Federation in the core: importing a linked hub's records, logging its acknowledgements,
//! and addressing `name@hub`.
//!
//! Imports arrive from the link manager (`crate::federation::link`) through the core's queue,
//! like client requests, and are appended as `link_imported` records in the same batches, so one
//! commit covers both and the answer (the new progress, which the link acks) is released only
//! after it. A record the state cannot take (a full mailbox, a name the origin may not speak
//! for) is still logged, marked refused, so the progress moves on and the reason stays in the
//! log: a peer cannot stop a link with one bad record, and nothing is dropped unseen.

use relay_replay::event::GroupMessageSent;
use relay_replay::event::LinkAcknowledged;
use relay_replay::event::LinkImported;
use relay_replay::federation::{HUB_SEPARATOR, is_group_submission, split_qualified};
use relay_replay::{Event, IdentityId};
use tokio::sync::oneshot;

use crate::federation::link::LinkProgress;
use crate::federation::wire::ShippedRecord;
use crate::hub::core::{Core, LinkImportError, Release, error};
use crate::hub::limits::LINK_ACK_LOG_INTERVAL;
use crate::protocol::notification::{MessageKind, ReceiptStatus};
use crate::protocol::{ErrorCode, RpcError};

/// Where a message to a name goes.
pub(in crate::hub) enum Recipient {
    /// A peer of this hub.
    Local(IdentityId),
    /// A peer of a linked hub, written `name@hub` (its identity here, if it has one yet).
    Remote(String, Option<IdentityId>),
}

impl Core {
    /// Resolves a recipient name: `name` or `name@<this hub>` is local; `name@<peer hub>` is a
    /// peer of a linked hub.
    pub(in crate::hub) fn recipient_named(&self, name: &str) -> Result<Recipient, RpcError> {
        let Some((local, hub)) = split_qualified(name) else {
            return self.identity_named(name).map(Recipient::Local);
        };
        let Some(federation) = &self.config.federation else {
            return Err(error(
                ErrorCode::PeerNotFound,
                format!(
                    "{name:?} names hub {hub:?}, but this hub is not federated (no federation.toml; see `relay federation init`)"
                ),
            ));
        };
        if hub == federation.hub_id {
            return self.identity_named(local).map(Recipient::Local);
        }
        if !federation.peers.contains(hub) || local.contains(HUB_SEPARATOR) {
            return Err(error(
                ErrorCode::PeerNotFound,
                format!(
                    "{name:?} names hub {hub:?}, which is not a [[peer]] of federation.toml (peers: {})",
                    federation
                        .peers
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let known = self
            .state
            .identity_by_name(name)
            .map(|identity| identity.id);
        Ok(Recipient::Remote(name.to_owned(), known))
    }

    /// A peer that may join a group homed here, as the group's events name it, with its
    /// identity when it has one: a peer of this hub, or `name@hub` of a linked hub (whose
    /// identity the invite creates on first mention).
    pub(in crate::hub) fn member_named(
        &self,
        name: &str,
    ) -> Result<(String, Option<IdentityId>), RpcError> {
        match self.recipient_named(name)? {
            Recipient::Local(identity) => Ok((self.caller_name(identity)?, Some(identity))),
            Recipient::Remote(name, known) => Ok((name, known)),
        }
    }

    /// What we last imported from `peer`.
    pub(in crate::hub) fn link_progress(&self, peer: &str) -> Option<LinkProgress> {
        self.state
            .federation()
            .link_progress(peer)
            .map(|progress| LinkProgress {
                log_id: progress.log_id,
                offset: progress.offset,
                crc: progress.crc,
            })
    }

    /// The lowest offset of our log a configured peer hub has not committed (`u64::MAX` when
    /// the hub is not federated): retention keeps everything from there.
    pub(in crate::hub) fn links_hold(&self) -> u64 {
        let Some(federation) = &self.config.federation else {
            return u64::MAX;
        };
        let acks = self.state.federation();
        federation
            .peers
            .iter()
            // The last record a peer committed stays: its link resumes by checking its CRC.
            .map(|peer| acks.link_acknowledged(peer).saturating_sub(1))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// A linked hub committed our log below `durable`: logged at most every
    /// [`LINK_ACK_LOG_INTERVAL`] per hub (the newest ack in between is logged with the next).
    pub(in crate::hub) fn link_acked(&mut self, peer: &str, durable: u64) {
        let logged = self.state.federation().link_acknowledged(peer);
        if durable <= logged || durable > self.log.next_offset() {
            return;
        }
        let now = std::time::Instant::now();
        let due = self
            .link_acks
            .get(peer)
            .is_none_or(|(at, _)| now.duration_since(*at) >= LINK_ACK_LOG_INTERVAL);
        if !due {
            if let Some((_, pending)) = self.link_acks.get_mut(peer) {
                *pending = Some(durable);
            }
            return;
        }
        let event = LinkAcknowledged {
            peer_hub: peer.to_owned(),
            durable,
        };
        match self.emit_unless_full(event.into()) {
            Ok(()) => {
                self.link_acks.insert(peer.to_owned(), (now, None));
            }
            Err(refused) => {
                tracing::warn!(peer, error = %refused.message, "could not log a link acknowledgement");
            }
        }
    }

    /// Imports a linked hub's records: each one after our progress becomes a `link_imported`
    /// record (marked refused when the state cannot take it), deliveries to online peers are
    /// pushed, receipts go to the senders of our messages; the answer follows the commit.
    pub(in crate::hub) fn link_import(
        &mut self,
        peer: &str,
        log_id: u128,
        records: Vec<ShippedRecord>,
        reply: oneshot::Sender<Result<LinkProgress, LinkImportError>>,
        release: &mut Release,
    ) {
        let Some(local_hub) = self
            .config
            .federation
            .as_ref()
            .map(|federation| federation.hub_id.clone())
        else {
            let _ = reply.send(Err(LinkImportError::Refused(
                "this hub is not federated".to_owned(),
            )));
            return;
        };
        for record in records {
            if let Err(refused) = self.import_one(peer, &local_hub, log_id, record, release) {
                let _ = reply.send(Err(refused));
                return;
            }
        }
        let progress = self.link_progress(peer);
        release.after_commit.push(Box::new(move |committed| {
            let answer = match (committed, progress) {
                (true, Some(progress)) => Ok(progress),
                (true, None) => Err(LinkImportError::Refused(
                    "nothing imported: the batch held no record after the progress".to_owned(),
                )),
                (false, _) => Err(LinkImportError::Unavailable(
                    "the hub could not commit the import".to_owned(),
                )),
            };
            let _ = reply.send(answer);
        }));
    }

    fn import_one(
        &mut self,
        peer: &str,
        local_hub: &str,
        log_id: u128,
        record: ShippedRecord,
        release: &mut Release,
    ) -> Result<(), LinkImportError> {
        if let Some(progress) = self.state.federation().link_progress(peer)
            && progress.log_id == log_id
            && record.offset <= progress.offset
        {
            return Ok(());
        }
        let event = LinkImported {
            origin_hub: peer.to_owned(),
            local_hub: local_hub.to_owned(),
            origin_log_id: log_id,
            origin_offset: record.offset,
            origin_timestamp_us: record.timestamp_us,
            origin_crc: record.crc,
            kind: record.kind,
            schema_version: record.schema_version,
            payload: record.payload,
            refused: None,
        };
        let translated = relay_replay::apply::translated_import(&event).ok();
        if let Some(submission) = translated
            .as_ref()
            .filter(|event| is_group_submission(event))
        {
            return self.import_submission(peer, event, submission, release);
        }
        // A copy's members, who hear of its deletion once it is gone.
        let members_before = match &translated {
            Some(Event::GroupDeleted(deleted)) => self.group_members(&deleted.group),
            _ => Vec::new(),
        };
        match self.emit(event.clone().into()) {
            Ok(_) => {
                if let Some(translated) = translated {
                    self.after_import(peer, &translated, release);
                    self.after_group_import(&translated, members_before, release);
                }
                Ok(())
            }
            Err(refused) if is_storage(&refused) => {
                Err(LinkImportError::Unavailable(refused.message))
            }
            Err(refused) => self.import_refused(peer, event, refused),
        }
    }

    /// Logs a linked hub's record the state cannot take, marked refused with the reason: the
    /// progress moves on and the reason stays in the log.
    fn import_refused(
        &mut self,
        peer: &str,
        mut event: LinkImported,
        refused: RpcError,
    ) -> Result<(), LinkImportError> {
        tracing::warn!(
            peer,
            origin_offset = event.origin_offset,
            reason = %refused.message,
            "a linked hub's record could not be applied; logged as refused"
        );
        event.refused = Some(refused.message);
        match self.emit(event.into()) {
            Ok(_) => Ok(()),
            Err(refused) if is_storage(&refused) => {
                Err(LinkImportError::Unavailable(refused.message))
            }
            Err(refused) => Err(LinkImportError::Refused(refused.message)),
        }
    }

    /// A linked hub's member posts to or leaves a group homed here: this hub logs it as its
    /// own event (a post gets this hub's id), in one batch with the import, so the group's
    /// order is this log's and the event ships to every member hub; then it pushes the post to
    /// the members online here. What the group refuses (the author is no member) is logged as
    /// a refused import.
    fn import_submission(
        &mut self,
        peer: &str,
        event: LinkImported,
        submission: &Event,
        release: &mut Release,
    ) -> Result<(), LinkImportError> {
        let import: Event = event.clone().into();
        let submission = submission.clone();
        let logged = self.atomically("link_import", 2, move |core| {
            let own = match submission {
                Event::GroupMessageSent(post) => GroupMessageSent {
                    id: format!("g-{}", core.log.next_offset()),
                    ..post
                }
                .into(),
                other => other,
            };
            core.emit(own.clone())?;
            core.emit(import)?;
            Ok(own)
        });
        match logged {
            Ok(own) => {
                if let Event::GroupMessageSent(post) = &own {
                    let author = self
                        .state
                        .identity_by_name(&post.from)
                        .map(|author| author.id);
                    self.push_group_message(post, author, release);
                }
                Ok(())
            }
            Err(refused) if is_storage(&refused) => {
                Err(LinkImportError::Unavailable(refused.message))
            }
            Err(refused) => self.import_refused(peer, event, refused),
        }
    }

    /// Pushes an imported delivery to its online recipient, or a receipt to the sender of one
    /// of our messages.
    fn after_import(&mut self, peer: &str, event: &Event, release: &mut Release) {
        let (kind, from, to, id, body, ask_id, reply_to, urgent) = match event {
            Event::MessageSent(message) => (
                MessageKind::Direct,
                &message.from,
                &message.to,
                &message.id,
                &message.body,
                None,
                message.reply_to.clone(),
                message.urgent,
            ),
            Event::AskSent(ask) => (
                MessageKind::Ask,
                &ask.from,
                &ask.to,
                &ask.id,
                &ask.body,
                Some(ask.ask_id.clone()),
                None,
                ask.urgent,
            ),
            Event::ReplySent(reply) => (
                MessageKind::Reply,
                &reply.from,
                &reply.to,
                &reply.id,
                &reply.body,
                None,
                Some(reply.reply_to.clone()),
                reply.urgent,
            ),
            Event::MessagePushed(step) => {
                return self.import_receipt(&step.message_id, ReceiptStatus::Delivered, release);
            }
            Event::MessageRead(step) => {
                return self.import_receipt(&step.message_id, ReceiptStatus::Read, release);
            }
            Event::MessageStatusReported(step) => {
                let status = match step.status.as_str() {
                    "held" => ReceiptStatus::Held,
                    "refused" => ReceiptStatus::Refused,
                    "expired" => ReceiptStatus::Expired,
                    _ => return,
                };
                return self.import_receipt(&step.message_id, status, release);
            }
            _ => return,
        };
        let Ok(recipient) = self.identity_named(to) else {
            return;
        };
        let late = self
            .state
            .message(id)
            .is_some_and(|(_, message)| message.late());
        let mut push = self.message_push(kind, from, body, id);
        push.ask_id = ask_id.as_deref();
        push.reply_to = reply_to.as_deref();
        push.urgent = urgent;
        push.late = late;
        push.origin_hub = Some(peer);
        self.push(recipient, crate::hub::core::Outbound::push(&push), release);
    }

    /// Tells this hub's members of a copy what its home changed: a post is pushed, an invite,
    /// a removal or the deletion is a notice.
    fn after_group_import(
        &mut self,
        event: &Event,
        members_before: Vec<IdentityId>,
        release: &mut Release,
    ) {
        let local = |core: &Core, name: &str| {
            (!name.contains(HUB_SEPARATOR))
                .then(|| {
                    core.state
                        .identity_by_name(name)
                        .map(|identity| identity.id)
                })
                .flatten()
        };
        match event {
            Event::GroupMessageSent(post) if post.group.contains(HUB_SEPARATOR) => {
                let author = self
                    .state
                    .identity_by_name(&post.from)
                    .map(|author| author.id);
                self.push_group_message(post, author, release);
            }
            Event::GroupMemberInvited(invite) => {
                if let Some(member) = local(self, &invite.member) {
                    let text = format!(
                        "you were added to group {} by {}",
                        invite.group, invite.actor
                    );
                    self.notice(member, text, Some(&invite.group), release);
                }
            }
            Event::GroupMemberRemoved(removal) => {
                if let Some(member) = local(self, &removal.member) {
                    let text = format!(
                        "you were removed from group {} by {}: {}",
                        removal.group, removal.actor, removal.reason
                    );
                    self.notice(member, text, Some(&removal.group), release);
                }
            }
            Event::GroupDeleted(deleted) => {
                for member in members_before {
                    let text = format!("group {} was deleted by {}", deleted.group, deleted.actor);
                    self.notice(member, text, Some(&deleted.group), release);
                }
            }
            _ => {}
        }
    }

    fn import_receipt(&mut self, message_id: &str, status: ReceiptStatus, release: &mut Release) {
        if let Some((recipient, message)) = self.state.message(message_id) {
            let sender = message.from();
            self.send_receipt(sender, message_id, recipient, status, release);
        }
    }
}

fn is_storage(refused: &RpcError) -> bool {
    matches!(
        refused.code,
        ErrorCode::StorageError | ErrorCode::StorageFull
    )
}
