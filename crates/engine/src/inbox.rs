//! Turning fetched records into messages and dead letters. Input from the broker is
//! untrusted: a record is believed only once its signature verifies with the key pinned for
//! its sender (DESIGN.md §5), and its sender is the one the topic allows — the master on
//! `master-updates`; on `ship-updates` the ship that the record key, the signer and the
//! message all name. Anything else becomes a dead letter with its reason, counted in
//! `offline_sync_rejected_total{reason}`, and consumption goes on.

use std::collections::BTreeMap;

use offline_sync_model::{
    Change, ContentType, Csn, DocumentId, MASTER_SIGNER, Message, SealError, ShipId, Unsealed, decode,
    unseal, verify_all,
};
use offline_sync_storage::{NewDeadLetter, PeerKey, Storage, Unreadable};
use offline_sync_transport::{Batch, Fetched};

use crate::keys::{Admit, Keyring, Refusal};

/// Which side reads the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    /// Reads `ship-updates`: changes and heartbeats.
    Master,
    /// Reads `master-updates`: commits and acknowledgements.
    Replica,
}

/// What a node reads records with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inbox<'a> {
    pub(crate) reader: Reader,
    pub(crate) keys: &'a Keyring,
    /// On the master, its last CSN: a change claiming a base above it is refused.
    pub(crate) last_csn: Option<Csn>,
    pub(crate) now_ms: u64,
}

/// Messages and dead letters of one fetched batch, and the offset after it.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) messages: Vec<Message>,
    /// The offset of each message, in the same order.
    pub(crate) offsets: Vec<i64>,
    pub(crate) dead_letters: Vec<NewDeadLetter>,
    /// Keys seen for the first time in this batch, to keep before its effects: pinned at
    /// first contact, or pending an admin's approval.
    pub(crate) pins: BTreeMap<String, PeerKey>,
    /// Signed changes whose claims are impossible: dead-lettered, and answered as refused so
    /// that their ship moves on.
    pub(crate) refused: Vec<(Change, String)>,
    /// The reason label of every record refused, for `offline_sync_rejected_total`: counted
    /// once, when the record is first read (see [`Decoded::count_rejections`]), not again when
    /// its dead letter is retried.
    pub(crate) rejected: Vec<(i64, &'static str)>,
    /// Signed changes whose content could not be read but whose seq could: dead-lettered,
    /// and answered as refused by ship and seq so that their ship moves on.
    pub(crate) unreadable: Vec<Unreadable>,
    pub(crate) next: i64,
}

impl Decoded {
    /// Counts the records this batch refused in `offline_sync_rejected_total`.
    pub(crate) fn count_rejections(&self) {
        for (_, reason) in &self.rejected {
            crate::metrics::rejected(reason);
        }
    }
}

impl Inbox<'_> {
    pub(crate) fn decode_batch(&self, topic: &str, partition: u32, batch: &Batch, from: i64) -> Decoded {
        let mut out = Decoded {
            next: from,
            ..Decoded::default()
        };
        let sealed: Vec<Result<Unsealed<'_>, SealError>> =
            batch.records.iter().map(|f| unseal(&f.record.value)).collect();
        let verified = verify_all(&sealed.iter().filter_map(|s| s.as_ref().ok()).collect::<Vec<_>>());
        let mut verified = verified.into_iter();
        for (f, sealed) in batch.records.iter().zip(sealed) {
            out.next = f.offset + 1;
            let opened = sealed
                .map_err(|e| Refusal::new(e.reason(), e.to_string()))
                .and_then(|s| {
                    let ok = verified.next().unwrap_or(false);
                    self.open(f, &s, ok, &mut out.pins)
                });
            let opened = opened.and_then(|msg| match msg {
                Message::Change(c) if self.last_csn.is_some_and(|last| c.base > last) => {
                    let refusal = Refusal::new(
                        "impossible_base",
                        format!(
                            "change {} of {} claims base version {} above the master's last CSN {}",
                            c.seq,
                            c.ship,
                            c.base,
                            self.last_csn.unwrap_or_default()
                        ),
                    );
                    out.refused.push((c, refusal.message.clone()));
                    Err(refusal)
                }
                msg => Ok(msg),
            });
            if let (Err(refusal), Reader::Master) = (&opened, self.reader)
                && refusal.verified
                && let Some(mut unreadable) = readable_position(f)
            {
                unreadable.reason = format!("{}: {}", refusal.reason, refusal.message);
                out.unreadable.push(unreadable);
            }
            match opened {
                Ok(msg) => {
                    out.messages.push(msg);
                    out.offsets.push(f.offset);
                }
                Err(refusal) => {
                    tracing::warn!(
                        topic,
                        partition,
                        offset = f.offset,
                        reason = refusal.reason,
                        error = %refusal.message,
                        "record refused, dead-lettered"
                    );
                    out.rejected.push((f.offset, refusal.reason));
                    out.dead_letters.push(NewDeadLetter {
                        topic: topic.to_owned(),
                        partition,
                        offset: f.offset,
                        key: f.record.key.clone(),
                        payload: f.record.value.clone(),
                        reason: format!("{}: {}", refusal.reason, refusal.message),
                    });
                }
            }
        }
        out
    }

    /// [`Inbox::decode_batch`], then keeps the keys first seen in the batch. The caller holds
    /// the node's writer lock, so no commit and no admin decision on a key comes between.
    pub(crate) async fn decode_and_pin(
        &self,
        storage: &dyn Storage,
        topic: &str,
        partition: u32,
        fetched: &Batch,
        from: i64,
    ) -> crate::Result<Decoded> {
        let mut decoded = self.decode_batch(topic, partition, fetched, from);
        let pins = std::mem::take(&mut decoded.pins);
        crate::keys::keep_pins(self.keys, storage, pins).await?;
        Ok(decoded)
    }

    /// Admits one record taken apart (`verified`: whether its signature is that of the key it
    /// names) and decodes its message, or says why not.
    fn open(
        &self,
        f: &Fetched,
        sealed: &Unsealed<'_>,
        verified: bool,
        pins: &mut BTreeMap<String, PeerKey>,
    ) -> Result<Message, Refusal> {
        let by = sealed.by.as_str();
        match self.reader {
            Reader::Master => {
                if ShipId::new(by).is_err() {
                    return Err(Refusal::new("not_a_ship", format!("{by:?} is not a ship id")));
                }
                let key = f.record.key.as_deref().unwrap_or_default();
                if key != by.as_bytes() {
                    return Err(Refusal::new(
                        "key_mismatch",
                        format!(
                            "record key {:?} differs from the signer {by:?}",
                            String::from_utf8_lossy(key)
                        ),
                    ));
                }
            }
            Reader::Replica if by != MASTER_SIGNER => {
                return Err(Refusal::new(
                    "not_master",
                    format!("signed by {by:?}; only the master writes to this topic"),
                ));
            }
            Reader::Replica => {}
        }
        match self.keys.admit(sealed, verified, pins, self.now_ms) {
            Ok(Admit::Known) => {}
            Ok(Admit::Pin(pin)) => {
                pins.insert(pin.signer.clone(), pin);
            }
            Err((refusal, pending)) => {
                if let Some(p) = pending {
                    pins.insert(p.signer.clone(), *p);
                }
                return Err(refusal);
            }
        }
        let msg = decode(sealed.msg).map_err(|e| Refusal::new("malformed", e.to_string()).verified())?;
        let sender = match (&msg, self.reader) {
            (Message::Change(c), Reader::Master) => Some(&c.ship),
            (Message::Heartbeat(h), Reader::Master) => Some(&h.ship),
            (Message::ResyncRequest(r), Reader::Master) => Some(&r.ship),
            (Message::Commit(_) | Message::Ack(_) | Message::SnapshotPart(_), Reader::Replica) => None,
            _ => {
                return Err(Refusal::new(
                    "unexpected_kind",
                    "unexpected message kind on this topic",
                ));
            }
        };
        if let Some(ship) = sender
            && ship.as_str() != by
        {
            return Err(Refusal::new(
                "ship_mismatch",
                format!("a message of ship {ship} signed by {by}"),
            ));
        }
        Ok(msg)
    }
}

/// The ship and seq of a change record — and its document, when that much can be read — for
/// one whose signature verified with the key pinned for its signer (the ship the record key
/// names) but whose content cannot be read as a change: enough to answer it as refused.
/// `None` when the record names no seq.
pub(crate) fn readable_position(f: &Fetched) -> Option<Unreadable> {
    let sealed = unseal(&f.record.value).ok()?;
    let ship = ShipId::new(sealed.by.as_str()).ok()?;
    if f.record.key.as_deref() != Some(ship.as_str().as_bytes()) {
        return None;
    }
    let msg: serde_json::Value = serde_json::from_slice(sealed.msg).ok()?;
    // Only a change of this wire version is this build's to refuse: one of another version may
    // be read by a newer build, so it stays a dead letter, its seq unanswered.
    if msg.get("v")?.as_u64()? != offline_sync_model::WIRE_VERSION
        || msg.get("kind")?.as_str()? != "change"
        || msg.get("ship")?.as_str()? != ship.as_str()
    {
        return None;
    }
    let seq = msg.get("seq")?.as_u64()?;
    let ct = msg
        .get("ct")
        .and_then(|v| v.as_str())
        .and_then(|v| ContentType::new(v).ok());
    let id = msg
        .get("id")
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse::<DocumentId>().ok());
    Some(Unreadable {
        ship,
        seq,
        target: ct.zip(id),
        reason: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use offline_sync_model::{Ack, AckOutcome, Heartbeat, SigningKey, encode};
    use offline_sync_transport::Record;

    use super::*;

    fn rec(offset: i64, key: &str, value: Vec<u8>) -> Fetched {
        Fetched {
            offset,
            record: Record {
                key: Some(key.as_bytes().to_vec()),
                value,
            },
        }
    }

    fn hb(ship: &str) -> Message {
        Message::Heartbeat(Heartbeat {
            ship: ShipId::new(ship).unwrap(),
            pending: 0,
            oldest_unacked_ms: None,
            applied_csn: 0,
            last_seq: 0,
            sent_seq: 0,
            answered_seq: None,
            resync: None,
        })
    }

    fn signed(seed: u8, by: &str, msg: &Message) -> Vec<u8> {
        SigningKey::from_seed([seed; 32]).seal(by, &encode(msg))
    }

    fn inbox(reader: Reader, keys: &Keyring, last_csn: Option<Csn>) -> Inbox<'_> {
        Inbox {
            reader,
            keys,
            last_csn,
            now_ms: 1,
        }
    }

    fn duplicate_ack(ship: &str) -> Message {
        Message::Ack(Ack {
            ship: ShipId::new(ship).unwrap(),
            seq: 1,
            outcome: AckOutcome::Duplicate { last_seq: 1 },
        })
    }

    fn reasons(d: &Decoded) -> Vec<String> {
        d.dead_letters
            .iter()
            .map(|l| l.reason.split(':').next().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn only_signed_records_of_the_right_sender_get_through_to_the_master() {
        let keys = Keyring::for_tests("master", false);
        let inbox = inbox(Reader::Master, &keys, None);
        let ack = duplicate_ack("s1");
        let batch = Batch {
            records: vec![
                rec(10, "s1", b"\x00\xffbinary".to_vec()),
                rec(11, "s1", encode(&hb("s1"))),
                rec(12, "s2", signed(1, "s1", &hb("s1"))),
                rec(13, "s1", signed(1, "s1", &hb("victim"))),
                rec(14, "s1", signed(1, "s1", &ack)),
                rec(15, "s1", signed(1, "s1", &hb("s1"))),
                rec(16, "s1", signed(2, "s1", &hb("s1"))),
                rec(17, "master", signed(3, "master", &hb("s1"))),
            ],
            high_watermark: 18,
        };
        let d = inbox.decode_batch("ship-updates", 0, &batch, 10);
        assert_eq!(d.next, 18);
        assert_eq!(d.messages, vec![hb("s1")]);
        assert_eq!(
            reasons(&d),
            [
                "malformed",
                "unsigned",
                "key_mismatch",
                "ship_mismatch",
                "unexpected_kind",
                "wrong_key",
                "not_a_ship"
            ]
        );
        assert_eq!(d.dead_letters[0].key.as_deref(), Some(&b"s1"[..]));
        assert_eq!(
            d.pins.get("s1").map(|p| p.key),
            Some(SigningKey::from_seed([1; 32]).public()),
            "the first valid signature pins the ship's key"
        );
    }

    #[test]
    fn a_replica_takes_only_what_the_master_signed() {
        let keys = Keyring::for_tests("ship", false);
        let inbox = inbox(Reader::Replica, &keys, None);
        let ack = duplicate_ack("ship");
        let commit = |ct: &str| {
            Message::Commit(offline_sync_model::Commit {
                csn: 1,
                origin: offline_sync_model::Origin::Master,
                seq: None,
                ct: ContentType::new(ct).unwrap(),
                id: offline_sync_model::DocumentId::new_v7(),
                op: offline_sync_model::CommitOp::Put,
                fields: Default::default(),
                hlc: Default::default(),
                resolves: None,
                conflict: None,
            })
        };
        let batch = Batch {
            records: vec![
                rec(0, "x", signed(5, "master", &ack)),
                rec(1, "x", signed(5, "other-ship", &ack)),
                rec(2, "x", signed(5, "master", &hb("ship"))),
                rec(
                    3,
                    "x",
                    signed(5, "master", &commit("plugin::users-permissions.user")),
                ),
                rec(4, "x", signed(6, "master", &ack)),
            ],
            high_watermark: 5,
        };
        let d = inbox.decode_batch("master-updates", 0, &batch, 0);
        let users = d.messages[1].clone();
        assert_eq!(
            d.messages,
            vec![ack, users],
            "a commit of a type this ship does not sync still takes its CSN (storage passes it)"
        );
        assert_eq!(d.offsets, vec![0, 3]);
        assert_eq!(reasons(&d), ["not_master", "unexpected_kind", "wrong_key"]);
    }

    #[test]
    fn a_change_claiming_a_base_the_master_never_reached_is_refused_and_answered() {
        let keys = Keyring::for_tests("master", false);
        let inbox = inbox(Reader::Master, &keys, Some(69));
        let id = offline_sync_model::DocumentId::new_v7();
        let change = |base| {
            Message::Change(offline_sync_model::Change {
                resent: false,
                ship: ShipId::new("s1").unwrap(),
                seq: 1,
                ct: ContentType::new("api::a.a").unwrap(),
                id,
                op: offline_sync_model::Op::Update,
                fields: Default::default(),
                base,
                unseen: Default::default(),
                hlc: Default::default(),
            })
        };
        let batch = Batch {
            records: vec![
                rec(0, "s1", signed(1, "s1", &change(1_000_000_069))),
                rec(1, "s1", signed(1, "s1", &change(69))),
            ],
            high_watermark: 2,
        };
        let d = inbox.decode_batch("ship-updates", 0, &batch, 0);
        assert_eq!(d.messages, vec![change(69)]);
        assert_eq!(reasons(&d), ["impossible_base"]);
        assert_eq!(d.refused.len(), 1);
        assert_eq!(d.refused[0].0.base, 1_000_000_069);
    }

    #[test]
    fn an_empty_batch_keeps_the_offset() {
        let keys = Keyring::for_tests("ship", false);
        let inbox = inbox(Reader::Replica, &keys, None);
        let d = inbox.decode_batch("t", 0, &Batch::default(), 42);
        assert_eq!(d.next, 42);
    }
}
