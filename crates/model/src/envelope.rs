//! Wire envelopes v1 (DESIGN.md §5): JSON objects `{"v":1,"kind":...}` readable by any Kafka
//! client.

use serde::{Deserialize, Serialize};

use crate::change::{Ack, Change, Commit, Heartbeat, ResyncRequest, SnapshotPart};
use crate::document::validate_fields;

/// The envelope version this build writes and reads.
pub const WIRE_VERSION: u64 = 1;

/// Largest envelope accepted; anything bigger becomes a dead letter.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// One message on a topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// Ship → master: a local change.
    Change(Change),
    /// Ship → master: sign of life.
    Heartbeat(Heartbeat),
    /// Master → ships: a committed change.
    Commit(Commit),
    /// Master → ships: the answer to a change that produced no commit.
    Ack(Ack),
    /// Ship → master: a page of the master's state asked for.
    ResyncRequest(ResyncRequest),
    /// Master → one ship, on the snapshot topic: part of a page of its state.
    SnapshotPart(SnapshotPart),
}

/// Why a record is not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Larger than [`MAX_ENVELOPE_BYTES`].
    #[error("record of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size of the record.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON.
    #[error("malformed json: {0}")]
    Json(String),
    /// JSON, but not an object with a numeric `v`.
    #[error("not an envelope: {0}")]
    NotAnEnvelope(&'static str),
    /// A version this build does not read.
    #[error("unknown envelope version {0}")]
    UnknownVersion(u64),
    /// A kind this build does not know.
    #[error("unknown envelope kind {0:?}")]
    UnknownKind(String),
    /// A known kind with missing or invalid members.
    #[error("invalid {kind} envelope: {reason}")]
    Invalid {
        /// The kind.
        kind: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Serialize)]
struct Versioned<'a> {
    v: u64,
    #[serde(flatten)]
    msg: &'a Message,
}

const KINDS: [&str; 6] = [
    "change",
    "heartbeat",
    "commit",
    "ack",
    "resync_request",
    "snapshot_part",
];

/// Encodes a message as an envelope.
pub fn encode(msg: &Message) -> Vec<u8> {
    // Serializing plain data with string keys into a Vec cannot fail.
    serde_json::to_vec(&Versioned { v: WIRE_VERSION, msg }).unwrap_or_default()
}

/// Decodes and validates an envelope.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or(DecodeError::NotAnEnvelope("not a json object"))?;
    let v = obj
        .get("v")
        .ok_or(DecodeError::NotAnEnvelope("missing \"v\""))?
        .as_u64()
        .ok_or(DecodeError::NotAnEnvelope("\"v\" is not a number"))?;
    if v != WIRE_VERSION {
        return Err(DecodeError::UnknownVersion(v));
    }
    let kind = obj
        .get("kind")
        .and_then(|k| k.as_str())
        .ok_or(DecodeError::NotAnEnvelope("missing \"kind\""))?
        .to_owned();
    if !KINDS.contains(&kind.as_str()) {
        return Err(DecodeError::UnknownKind(kind));
    }
    let msg: Message = serde_json::from_value(value).map_err(|e| DecodeError::Invalid {
        kind: kind.clone(),
        reason: e.to_string(),
    })?;
    if let Message::Change(c) = &msg {
        validate_fields(&c.fields).map_err(|e| DecodeError::Invalid {
            kind,
            reason: e.to_string(),
        })?;
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::{AckOutcome, Op};
    use crate::hlc::Hlc;
    use crate::ids::{ContentType, DocumentId, ShipId};

    fn change() -> Message {
        Message::Change(Change {
            resent: false,
            ship: ShipId::new("s1").unwrap(),
            seq: 4,
            ct: ContentType::new("api::a.a").unwrap(),
            id: DocumentId::new_v7(),
            op: Op::Update,
            fields: serde_json::json!({"title": "x"}).as_object().unwrap().clone(),
            base: 3,
            unseen: Default::default(),
            hlc: Hlc { ms: 1, c: 2 },
        })
    }

    #[test]
    fn every_kind_round_trips() {
        let ack = Message::Ack(Ack {
            ship: ShipId::new("s1").unwrap(),
            seq: 2,
            outcome: AckOutcome::Gap { expected: 1 },
        });
        let hb = Message::Heartbeat(Heartbeat {
            ship: ShipId::new("s1").unwrap(),
            pending: 1,
            oldest_unacked_ms: Some(5),
            applied_csn: 3,
            last_seq: 4,
            sent_seq: 0,
            answered_seq: None,
            resync: Some("running: 40 of 100 documents".into()),
        });
        let request = Message::ResyncRequest(ResyncRequest {
            ship: ShipId::new("s1").unwrap(),
            request: 7,
            after: 3,
            from: Some((ContentType::new("api::a.a").unwrap(), DocumentId::new_v7())),
            limit: 500,
        });
        let part = Message::SnapshotPart(SnapshotPart {
            ship: ShipId::new("s1").unwrap(),
            request: 7,
            part: 0,
            parts: 1,
            data: "H4sI".into(),
        });
        for m in [change(), ack, hb, request, part] {
            assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn the_envelope_carries_version_and_kind() {
        let v: serde_json::Value = serde_json::from_slice(&encode(&change())).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["kind"], "change");
        assert_eq!(v["op"], "update");
    }

    #[test]
    fn malformed_records_are_refused_with_a_reason() {
        assert!(matches!(decode(b"{nope"), Err(DecodeError::Json(_))));
        assert!(matches!(decode(b"[1]"), Err(DecodeError::NotAnEnvelope(_))));
        assert!(matches!(
            decode(br#"{"kind":"change"}"#),
            Err(DecodeError::NotAnEnvelope(_))
        ));
        assert_eq!(
            decode(br#"{"v":2,"kind":"change"}"#),
            Err(DecodeError::UnknownVersion(2))
        );
        assert_eq!(
            decode(br#"{"v":1,"kind":"gossip"}"#),
            Err(DecodeError::UnknownKind("gossip".into()))
        );
        assert!(matches!(
            decode(br#"{"v":1,"kind":"change","ship":"s1"}"#),
            Err(DecodeError::Invalid { .. })
        ));
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(decode(&big), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn invalid_identifiers_and_field_names_are_refused() {
        let mut v: serde_json::Value = serde_json::from_slice(&encode(&change())).unwrap();
        v["ct"] = "bad type".into();
        assert!(matches!(
            decode(v.to_string().as_bytes()),
            Err(DecodeError::Invalid { .. })
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&encode(&change())).unwrap();
        v["fields"] = serde_json::json!({"documentId": 1});
        assert!(matches!(
            decode(v.to_string().as_bytes()),
            Err(DecodeError::Invalid { .. })
        ));
    }
}
