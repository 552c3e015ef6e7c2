//! The chain rules: how an event's hash is computed, how an entry is
//! appended after the head, and how a stored chain is checked against
//! itself and against the heads anchored on-chain.

use std::collections::BTreeMap;

use meditrustal_crypto::Digest;

use crate::types::{AnchoredHead, AuditEntry, AuditEvent, ChainHead};

/// `prev_hash` of event 1: 32 zero bytes.
pub const GENESIS_HASH: Digest = Digest::from_bytes([0; 32]);

/// Domain separation tag and version of the hash input. A change to the
/// encoding needs a new tag, and events keep the tag they were written with.
const HASH_DOMAIN: &[u8] = b"meditrustal.audit.v1";

/// How far from its position [`ChainVerifier`] looks for the sequence
/// number an event was written with, to tell a reordered event from an
/// edited one. Events moved further are reported as changed.
const REORDER_SEARCH_WINDOW: u64 = 64;

/// Computes the hash of the event at `seq` with `entry` after `prev_hash`.
///
/// The hash is [`Digest::of_parts`]: SHA-256 over parts, each preceded by
/// its length as a big-endian u64. The parts, in order, are the tag
/// `meditrustal.audit.v1`, `seq` (8 big-endian bytes), `occurred_at` (Unix
/// microseconds, 8 big-endian bytes), actor id, actor role, action,
/// outcome, reason, patient id, record id, request id, client address and
/// `prev_hash`. Ids are the UUID's 16 bytes, names and codes their UTF-8
/// text, and the address its canonical text (RFC 5952 for IPv6). Each
/// optional field is one part: the byte 0 when absent, or the byte 1
/// followed by the value.
pub fn event_hash(seq: u64, entry: &AuditEntry, prev_hash: &Digest) -> Digest {
    let seq_bytes = seq.to_be_bytes();
    let time_bytes = entry.occurred_at.timestamp_micros().to_be_bytes();
    let actor_id = optional(
        entry
            .actor
            .map(|actor| actor.user_id.0.into_bytes().to_vec()),
    );
    let actor_role = optional(
        entry
            .actor
            .map(|actor| actor.role.as_str().as_bytes().to_vec()),
    );
    let reason = optional(
        entry
            .reason
            .as_ref()
            .map(|r| r.as_str().as_bytes().to_vec()),
    );
    let patient = optional(entry.patient_id.map(|id| id.0.into_bytes().to_vec()));
    let record = optional(entry.record_id.map(|id| id.into_bytes().to_vec()));
    let request = optional(
        entry
            .request_id
            .as_ref()
            .map(|id| id.as_str().as_bytes().to_vec()),
    );
    let client_ip = optional(entry.client_ip.map(|ip| ip.to_string().into_bytes()));

    Digest::of_parts(&[
        HASH_DOMAIN,
        &seq_bytes,
        &time_bytes,
        &actor_id,
        &actor_role,
        entry.action.as_str().as_bytes(),
        entry.outcome.as_str().as_bytes(),
        &reason,
        &patient,
        &record,
        &request,
        &client_ip,
        prev_hash.as_bytes(),
    ])
}

fn optional(value: Option<Vec<u8>>) -> Vec<u8> {
    match value {
        None => vec![0],
        Some(bytes) => {
            let mut part = Vec::with_capacity(bytes.len() + 1);
            part.push(1);
            part.extend_from_slice(&bytes);
            part
        }
    }
}

/// Places `entry` after `head` (`None` for an empty chain): the next
/// sequence number, linked to the head's hash. Stores call this while they
/// hold the append lock, so that no two events get the same place.
pub fn chain_after(head: Option<&ChainHead>, entry: AuditEntry) -> AuditEvent {
    let (seq, prev_hash) = match head {
        None => (1, GENESIS_HASH),
        Some(head) => (head.seq.saturating_add(1), head.hash),
    };
    let hash = event_hash(seq, &entry, &prev_hash);
    AuditEvent {
        seq,
        entry,
        prev_hash,
        hash,
    }
}

/// The first problem found in a stored chain. Each variant names the first
/// event (by sequence number) that is not as it was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// Sequence numbers `first` to `last` are absent: those events were
    /// deleted. A rolled-back append leaves no gap, because the number is
    /// assigned inside the appending transaction.
    #[error("{}", describe_missing(*first, *last))]
    Missing {
        /// First missing sequence number.
        first: u64,
        /// Last missing sequence number.
        last: u64,
    },
    /// The event's stored hash does not match its stored fields: a field or
    /// the hash was changed after the event was written.
    #[error(
        "event {seq} does not match its hash: a field or the hash was changed after it was written"
    )]
    FieldsChanged {
        /// The changed event.
        seq: u64,
    },
    /// The event at `seq` matches its hash only as event `written_as`:
    /// events were reordered or renumbered.
    #[error("event {seq} was written as event {written_as}: events were reordered or renumbered")]
    Reordered {
        /// Position at which the event is stored.
        seq: u64,
        /// Sequence number its hash was computed with.
        written_as: u64,
    },
    /// The event matches its own hash but does not link to the previous
    /// event: an event before it was removed or replaced, and the hashes
    /// were recomputed.
    #[error("event {seq} does not link to the event before it: an earlier event was removed or replaced and hashes were recomputed")]
    BrokenLink {
        /// The first event whose `prev_hash` is wrong.
        seq: u64,
    },
    /// The event's hash differs from the head anchored on-chain for its
    /// sequence number: the chain up to this event was rewritten after the
    /// anchor.
    #[error("event {seq} has hash {stored}, but the head anchored in block {block_number} is {anchored}: the chain up to event {seq} was rewritten")]
    AnchorMismatch {
        /// The anchored sequence number.
        seq: u64,
        /// Block that contains the anchor.
        block_number: u64,
        /// Hash on-chain.
        anchored: Digest,
        /// Hash in the database.
        stored: Digest,
    },
    /// A head is anchored for an event that the database no longer has:
    /// events at the end of the chain were deleted.
    #[error("event {seq} is anchored in block {block_number} but the stored chain ends {}: events at the end were deleted", match last_seq { Some(last) => format!("at event {last}"), None => "before event 1".to_owned() })]
    AnchorBeyondChain {
        /// The anchored sequence number.
        seq: u64,
        /// Block that contains the anchor.
        block_number: u64,
        /// Last stored event, if any.
        last_seq: Option<u64>,
    },
}

fn describe_missing(first: u64, last: u64) -> String {
    if first == last {
        format!("event {first} is missing: it was deleted")
    } else {
        format!("events {first} to {last} are missing: they were deleted")
    }
}

impl ChainBreak {
    /// Sequence number of the first event that is not as written.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Missing { first, .. } => *first,
            Self::FieldsChanged { seq }
            | Self::Reordered { seq, .. }
            | Self::BrokenLink { seq }
            | Self::AnchorMismatch { seq, .. }
            | Self::AnchorBeyondChain { seq, .. } => *seq,
        }
    }
}

/// Checks a stored chain event by event, in ascending sequence order,
/// against the chain rules and the anchored heads. Keeps only the previous
/// hash and the anchors, so memory grows with the number of anchors, not
/// with the number of events.
#[derive(Debug)]
pub struct ChainVerifier {
    anchors: BTreeMap<u64, AnchoredHead>,
    expected_seq: u64,
    prev_hash: Digest,
    checked: u64,
}

impl ChainVerifier {
    /// Starts a check at event 1 against `anchors`. Read the anchors before
    /// the events, so that an event appended meanwhile cannot look deleted.
    pub fn new(anchors: impl IntoIterator<Item = AnchoredHead>) -> Self {
        Self {
            anchors: anchors
                .into_iter()
                .map(|anchor| (anchor.seq, anchor))
                .collect(),
            expected_seq: 1,
            prev_hash: GENESIS_HASH,
            checked: 0,
        }
    }

    /// Checks the next stored event. Errors: the [`ChainBreak`] at this
    /// event. After an error the verifier's state is unspecified.
    pub fn check(&mut self, event: &AuditEvent) -> Result<(), ChainBreak> {
        if event.seq > self.expected_seq {
            return Err(ChainBreak::Missing {
                first: self.expected_seq,
                last: event.seq - 1,
            });
        }
        let position = self.expected_seq;
        if event.seq < position
            || event_hash(position, &event.entry, &event.prev_hash) != event.hash
        {
            return Err(self.classify_mismatch(position, event));
        }
        if event.prev_hash != self.prev_hash {
            return Err(ChainBreak::BrokenLink { seq: position });
        }
        if let Some(anchor) = self.anchors.get(&position) {
            if anchor.head_hash != event.hash {
                return Err(ChainBreak::AnchorMismatch {
                    seq: position,
                    block_number: anchor.block_number,
                    anchored: anchor.head_hash,
                    stored: event.hash,
                });
            }
        }

        self.prev_hash = event.hash;
        self.expected_seq = position.saturating_add(1);
        self.checked += 1;
        Ok(())
    }

    /// Tells a reordered event (its hash matches another nearby sequence
    /// number) from a changed one.
    fn classify_mismatch(&self, position: u64, event: &AuditEvent) -> ChainBreak {
        let first = position.saturating_sub(REORDER_SEARCH_WINDOW).max(1);
        let last = position.saturating_add(REORDER_SEARCH_WINDOW);
        let written_as = (first..=last)
            .filter(|candidate| *candidate != position)
            .find(|candidate| event_hash(*candidate, &event.entry, &event.prev_hash) == event.hash);
        match written_as {
            Some(written_as) => ChainBreak::Reordered {
                seq: position,
                written_as,
            },
            None => ChainBreak::FieldsChanged { seq: position },
        }
    }

    /// Ends the check: every anchor must name a stored event. Returns the
    /// number of events checked. Errors: [`ChainBreak::AnchorBeyondChain`]
    /// for the lowest anchor past the last event.
    pub fn finish(self) -> Result<u64, ChainBreak> {
        let last_seq = self.expected_seq.checked_sub(1).filter(|seq| *seq > 0);
        let beyond = self
            .anchors
            .range(self.expected_seq..)
            .next()
            .map(|(_, anchor)| *anchor);
        match beyond {
            Some(anchor) => Err(ChainBreak::AnchorBeyondChain {
                seq: anchor.seq,
                block_number: anchor.block_number,
                last_seq,
            }),
            None => Ok(self.checked),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use meditrustal_identity::{Role, UserId};
    use uuid::Uuid;

    use super::*;
    use crate::types::{Action, Actor, Outcome, ReasonCode, RequestId};

    fn entry(n: u64) -> AuditEntry {
        let time = Utc
            .timestamp_micros(1_700_000_000_000_000 + n as i64)
            .unwrap();
        AuditEntry::new(Action::RecordRead, Outcome::Success, time)
            .by(Actor {
                user_id: UserId(Uuid::from_u128(u128::from(n))),
                role: Role::Patient,
            })
            .patient(UserId(Uuid::from_u128(7)))
            .record(Uuid::from_u128(1000 + u128::from(n)))
            .reason(ReasonCode::OWNER)
            .origin(
                RequestId::parse(&format!("req-{n}")),
                Some("127.0.0.1".parse().unwrap()),
            )
    }

    fn chain(length: u64) -> Vec<AuditEvent> {
        let mut events: Vec<AuditEvent> = Vec::new();
        for n in 1..=length {
            let head = events.last().map(AuditEvent::head);
            events.push(chain_after(head.as_ref(), entry(n)));
        }
        events
    }

    fn anchor(event: &AuditEvent, block_number: u64) -> AnchoredHead {
        AnchoredHead {
            seq: event.seq,
            head_hash: event.hash,
            block_number,
        }
    }

    fn verify(events: &[AuditEvent], anchors: Vec<AnchoredHead>) -> Result<u64, ChainBreak> {
        let mut verifier = ChainVerifier::new(anchors);
        for event in events {
            verifier.check(event)?;
        }
        verifier.finish()
    }

    #[test]
    fn hash_matches_fixed_vector() {
        let event = chain_after(None, entry(1));

        assert_eq!(event.seq, 1);
        assert_eq!(event.prev_hash, GENESIS_HASH);
        assert_eq!(
            event.hash.to_string(),
            "0x01ec761badd476a2aa293e03e4f554190502fdefd598a526c1660f74c834f61d"
        );
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let bare = AuditEntry::new(Action::Login, Outcome::Denied, Utc::now());
        let with_reason = bare.clone().reason(ReasonCode::INVALID_CREDENTIALS);
        let with_patient = bare.clone().patient(UserId(Uuid::nil()));

        let hashes = [
            event_hash(1, &bare, &GENESIS_HASH),
            event_hash(1, &with_reason, &GENESIS_HASH),
            event_hash(1, &with_patient, &GENESIS_HASH),
            event_hash(2, &bare, &GENESIS_HASH),
        ];

        for (i, first) in hashes.iter().enumerate() {
            for second in &hashes[i + 1..] {
                assert_ne!(first, second);
            }
        }
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let original = entry(3);
        let prev = Digest::from_bytes([5; 32]);
        let base = event_hash(3, &original, &prev);
        let mut variants = Vec::new();
        let mut changed = original.clone();
        changed.occurred_at += chrono::Duration::microseconds(1);
        variants.push(("occurred_at", changed));
        let mut changed = original.clone();
        changed.actor = None;
        variants.push(("actor", changed));
        let mut changed = original.clone();
        changed.actor = Some(Actor {
            role: Role::Doctor,
            ..original.actor.unwrap()
        });
        variants.push(("actor role", changed));
        variants.push(("action", {
            let mut changed = original.clone();
            changed.action = Action::RecordVerify;
            changed
        }));
        variants.push(("outcome", {
            let mut changed = original.clone();
            changed.outcome = Outcome::Denied;
            changed
        }));
        variants.push(("reason", original.clone().reason(ReasonCode::NOT_OWNER)));
        variants.push(("patient", original.clone().patient(UserId(Uuid::nil()))));
        variants.push(("record", original.clone().record(Uuid::nil())));
        variants.push((
            "request id",
            original
                .clone()
                .origin(RequestId::parse("other"), original.client_ip),
        ));
        variants.push((
            "client ip",
            original
                .clone()
                .origin(original.request_id.clone(), Some("::1".parse().unwrap())),
        ));

        for (field, variant) in variants {
            assert_ne!(
                event_hash(3, &variant, &prev),
                base,
                "{field} is not hashed"
            );
        }
        assert_ne!(
            event_hash(3, &original, &GENESIS_HASH),
            base,
            "prev_hash is not hashed"
        );
    }

    #[test]
    fn intact_chain_with_anchors_verifies() {
        let events = chain(10);
        let anchors = vec![anchor(&events[3], 5), anchor(&events[9], 9)];

        assert_eq!(verify(&events, anchors), Ok(10));
    }

    #[test]
    fn empty_chain_verifies() {
        assert_eq!(verify(&[], Vec::new()), Ok(0));
    }

    #[test]
    fn deleted_event_is_named_by_its_number() {
        let mut events = chain(10);
        events.remove(4);

        assert_eq!(
            verify(&events, Vec::new()),
            Err(ChainBreak::Missing { first: 5, last: 5 })
        );
    }

    #[test]
    fn deleted_first_events_are_reported() {
        let events = chain(5);

        assert_eq!(
            verify(&events[2..], Vec::new()),
            Err(ChainBreak::Missing { first: 1, last: 2 })
        );
    }

    #[test]
    fn changed_field_is_named_by_its_event() {
        let mut events = chain(10);
        events[6].entry.outcome = Outcome::Denied;

        assert_eq!(
            verify(&events, Vec::new()),
            Err(ChainBreak::FieldsChanged { seq: 7 })
        );
    }

    #[test]
    fn changed_hash_is_named_by_its_event() {
        let mut events = chain(10);
        events[2].hash = Digest::from_bytes([9; 32]);

        assert_eq!(
            verify(&events, Vec::new()),
            Err(ChainBreak::FieldsChanged { seq: 3 })
        );
    }

    #[test]
    fn swapped_events_are_reported_as_reordered() {
        let mut events = chain(10);
        events.swap(4, 5);
        events[4].seq = 5;
        events[5].seq = 6;

        assert_eq!(
            verify(&events, Vec::new()),
            Err(ChainBreak::Reordered {
                seq: 5,
                written_as: 6
            })
        );
    }

    #[test]
    fn deletion_with_renumbering_is_reported_as_reordered() {
        let mut events = chain(10);
        events.remove(2);
        for (index, event) in events.iter_mut().enumerate() {
            event.seq = index as u64 + 1;
        }

        assert_eq!(
            verify(&events, Vec::new()),
            Err(ChainBreak::Reordered {
                seq: 3,
                written_as: 4
            })
        );
    }

    #[test]
    fn rehashed_replacement_breaks_the_next_link() {
        let mut events = chain(10);
        let forged = chain_after(Some(&events[2].head()), entry(99));
        events[3] = forged;

        assert_eq!(
            verify(&events, Vec::new()),
            Err(ChainBreak::BrokenLink { seq: 5 })
        );
    }

    #[test]
    fn rewritten_chain_is_caught_by_its_anchor() {
        let original = chain(10);
        let anchors = vec![anchor(&original[5], 12)];
        let mut rewritten: Vec<AuditEvent> = original[..2].to_vec();
        for n in 3..=10 {
            let head = rewritten.last().map(AuditEvent::head);
            let mut forged = entry(n);
            if n == 3 {
                forged.outcome = Outcome::Denied;
            }
            rewritten.push(chain_after(head.as_ref(), forged));
        }

        assert_eq!(
            verify(&rewritten, anchors),
            Err(ChainBreak::AnchorMismatch {
                seq: 6,
                block_number: 12,
                anchored: original[5].hash,
                stored: rewritten[5].hash,
            })
        );
    }

    #[test]
    fn truncated_tail_is_caught_by_its_anchor() {
        let events = chain(10);
        let anchors = vec![anchor(&events[3], 4), anchor(&events[8], 8)];

        assert_eq!(
            verify(&events[..7], anchors),
            Err(ChainBreak::AnchorBeyondChain {
                seq: 9,
                block_number: 8,
                last_seq: Some(7)
            })
        );
    }

    #[test]
    fn break_messages_name_the_event() {
        let cases = [
            (
                ChainBreak::Missing { first: 4, last: 6 },
                "events 4 to 6 are missing: they were deleted",
            ),
            (
                ChainBreak::Missing { first: 5, last: 5 },
                "event 5 is missing: it was deleted",
            ),
            (
                ChainBreak::FieldsChanged { seq: 7 },
                "event 7 does not match its hash: a field or the hash was changed after it was written",
            ),
            (
                ChainBreak::Reordered {
                    seq: 5,
                    written_as: 6,
                },
                "event 5 was written as event 6: events were reordered or renumbered",
            ),
            (
                ChainBreak::AnchorBeyondChain {
                    seq: 9,
                    block_number: 8,
                    last_seq: None,
                },
                "event 9 is anchored in block 8 but the stored chain ends before event 1: events at the end were deleted",
            ),
        ];
        for (problem, message) in cases {
            assert_eq!(problem.to_string(), message);
        }
    }
}
