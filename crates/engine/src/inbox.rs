//! Turning fetched records into messages and dead letters. Input from the broker is
//! untrusted: anything that is not a valid envelope of the kind this side reads becomes a
//! dead letter with its reason, and consumption goes on.

use offline_sync_model::{Message, decode};
use offline_sync_storage::NewDeadLetter;
use offline_sync_transport::Batch;

/// Which side reads the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    /// Reads `ship-updates`: changes and heartbeats.
    Master,
    /// Reads `master-updates`: commits and acknowledgements.
    Replica,
}

/// Messages and dead letters of one fetched batch, and the offset after it.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) messages: Vec<Message>,
    pub(crate) dead_letters: Vec<NewDeadLetter>,
    pub(crate) next: i64,
}

pub(crate) fn decode_batch(reader: Reader, topic: &str, partition: u32, batch: &Batch, from: i64) -> Decoded {
    let mut out = Decoded {
        next: from,
        ..Decoded::default()
    };
    for f in &batch.records {
        out.next = f.offset + 1;
        let dead = |reason: String| NewDeadLetter {
            topic: topic.to_owned(),
            partition,
            offset: f.offset,
            key: f.record.key.clone(),
            payload: f.record.value.clone(),
            reason,
        };
        match decode(&f.record.value) {
            Ok(msg) => {
                let expected = matches!(
                    (&msg, reader),
                    (Message::Change(_) | Message::Heartbeat(_), Reader::Master)
                        | (Message::Commit(_) | Message::Ack(_), Reader::Replica)
                );
                if expected {
                    out.messages.push(msg);
                } else {
                    tracing::warn!(
                        topic,
                        partition,
                        offset = f.offset,
                        "unexpected message kind, dead-lettered"
                    );
                    out.dead_letters
                        .push(dead(format!("unexpected message kind on {topic}")));
                }
            }
            Err(e) => {
                tracing::warn!(topic, partition, offset = f.offset, error = %e, "invalid envelope, dead-lettered");
                out.dead_letters.push(dead(e.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use offline_sync_model::{Ack, AckOutcome, ShipId, encode};
    use offline_sync_transport::{Fetched, Record};

    use super::*;

    fn rec(offset: i64, value: Vec<u8>) -> Fetched {
        Fetched {
            offset,
            record: Record {
                key: Some(b"k".to_vec()),
                value,
            },
        }
    }

    #[test]
    fn garbage_and_misdirected_messages_become_dead_letters() {
        let ack = Message::Ack(Ack {
            ship: ShipId::new("s").unwrap(),
            seq: 1,
            outcome: AckOutcome::Duplicate { last_seq: 1 },
        });
        let batch = Batch {
            records: vec![
                rec(10, b"\x00\xffbinary".to_vec()),
                rec(11, br#"{"v":1,"kind":"change""#.to_vec()),
                rec(12, encode(&ack)),
                rec(13, br#"{"v":9,"kind":"ack"}"#.to_vec()),
            ],
            high_watermark: 14,
        };
        let d = decode_batch(Reader::Master, "ship-updates", 0, &batch, 10);
        assert_eq!(d.next, 14);
        assert!(d.messages.is_empty());
        let reasons: Vec<_> = d
            .dead_letters
            .iter()
            .map(|l| (l.offset, l.reason.clone()))
            .collect();
        assert_eq!(reasons.len(), 4);
        assert!(reasons[0].1.contains("malformed json"));
        assert!(reasons[2].1.contains("unexpected message kind"));
        assert!(reasons[3].1.contains("unknown envelope version 9"));
        assert_eq!(d.dead_letters[0].key.as_deref(), Some(&b"k"[..]));

        let r = decode_batch(Reader::Replica, "master-updates", 0, &batch, 10);
        assert_eq!(r.messages, vec![ack]);
        assert_eq!(r.dead_letters.len(), 3);
    }

    #[test]
    fn an_empty_batch_keeps_the_offset() {
        let d = decode_batch(Reader::Replica, "t", 0, &Batch::default(), 42);
        assert_eq!(d.next, 42);
    }
}
