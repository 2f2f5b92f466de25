//! Signed records (wire v2, DESIGN.md §5): every record a node sends is a v1 envelope wrapped
//! with its sender's Ed25519 signature, so that a receiver knows who wrote it before it reads
//! anything else.
//!
//! ```text
//! {"v":2,"by":"ship-bravo","key":"<public key, base64>","sig":"<signature, base64>","msg":{"v":1,"kind":"change",...}}
//! ```
//!
//! `by` is the sender (a ship id, or `master`); `key` its public key (32 bytes), which a
//! receiver compares with the key it pinned for `by`; `sig` the Ed25519 signature (64 bytes)
//! of the bytes `offline-sync-v2`, NUL, `by`, NUL, then `msg` exactly as it appears in the
//! record. `msg` is an ordinary v1 envelope, readable by any Kafka client.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ed25519_dalek::Signer as _;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::envelope::MAX_ENVELOPE_BYTES;

/// The envelope version of a signed record.
pub const SIGNED_VERSION: u64 = 2;

/// The name a master signs as; no ship may use it.
pub const MASTER_SIGNER: &str = "master";

/// What a signature covers before the sender and the message, so that a signature made for
/// anything else never verifies here.
const CONTEXT: &[u8] = b"offline-sync-v2";

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key from its 32 bytes, as given: bytes that are no curve point make a key no
    /// signature verifies with (see [`PublicKey::check`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses the base64 form (standard or URL-safe alphabet, with or without padding) of 32
    /// bytes. Whether they are a curve point is [`PublicKey::check`]'s question.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        decode_key(text).map(Self)
    }

    /// Refuses 32 bytes that are no Ed25519 public key (for settings, where a typo deserves
    /// an error at start-up rather than refused records later).
    pub fn check(self) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0)
            .map(|_| self)
            .map_err(|_| KeyError::NotAKey)
    }

    /// The standard base64 form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks that `sig` is this key's signature of `msg` sent by `by`.
    pub fn verify(&self, by: &str, msg: &[u8], sig: &[u8; 64]) -> bool {
        let Some(key) = verifying_key(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        key.verify_strict(&signed_bytes(by, msg), &sig).is_ok()
    }
}

/// Keys decompressed so far: a curve point is taken out of its 32 bytes once, not once per
/// record (a node verifies records of a handful of senders). Bounded: emptied when full.
static VERIFYING_KEYS: std::sync::Mutex<BTreeMap<[u8; 32], Option<ed25519_dalek::VerifyingKey>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// How many keys [`VERIFYING_KEYS`] holds before it starts again.
const VERIFYING_KEYS_KEPT: usize = 1024;

/// The curve point of a public key; `None` for bytes that are no point, or a weak key (one of
/// small order, which `verify_strict` refuses and no honest node has).
fn verifying_key(bytes: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
    let mut keys = VERIFYING_KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(key) = keys.get(bytes) {
        return *key;
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(bytes)
        .ok()
        .filter(|k| !k.is_weak());
    if keys.len() >= VERIFYING_KEYS_KEPT {
        keys.clear();
    }
    keys.insert(*bytes, key);
    key
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// An Ed25519 signing key (the secret half). `Debug` shows only the public half.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key from its 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Parses the base64 form of the 32-byte seed. The error never repeats the text.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        decode_key(text).map(Self::from_seed)
    }

    /// The 32-byte seed (to store it).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The base64 form of the seed (for `keygen` and settings).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Wraps the v1 envelope `msg` into a signed record sent by `by`.
    pub fn seal(&self, by: &str, msg: &[u8]) -> Vec<u8> {
        let sig = self.0.sign(&signed_bytes(by, msg)).to_bytes();
        let by = serde_json::Value::String(by.to_owned()).to_string();
        let mut out = Vec::with_capacity(msg.len() + by.len() + 180);
        out.extend_from_slice(b"{\"v\":2,\"by\":");
        out.extend_from_slice(by.as_bytes());
        out.extend_from_slice(b",\"key\":\"");
        out.extend_from_slice(self.public().to_base64().as_bytes());
        out.extend_from_slice(b"\",\"sig\":\"");
        out.extend_from_slice(STANDARD.encode(sig).as_bytes());
        out.extend_from_slice(b"\",\"msg\":");
        out.extend_from_slice(msg);
        out.push(b'}');
        out
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not base64.
    #[error("not base64")]
    Base64,
    /// Base64 of the wrong length.
    #[error("{got} bytes where {expected} were expected")]
    Length {
        /// Bytes a key has.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// 32 bytes that are no Ed25519 public key.
    #[error("not an Ed25519 public key")]
    NotAKey,
}

/// The 32 bytes of a key in base64.
fn decode_key(text: &str) -> Result<[u8; 32], KeyError> {
    decode_base64(text.trim())?
        .try_into()
        .map_err(|b: Vec<u8>| KeyError::Length {
            expected: 32,
            got: b.len(),
        })
}

fn decode_base64(text: &str) -> Result<Vec<u8>, KeyError> {
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or(KeyError::Base64)
}

fn signed_bytes(by: &str, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CONTEXT.len() + by.len() + msg.len() + 2);
    out.extend_from_slice(CONTEXT);
    out.push(0);
    out.extend_from_slice(by.as_bytes());
    out.push(0);
    out.extend_from_slice(msg);
    out
}

/// Why a record is not a well-formed signed record. [`SealError::reason`] names each one for
/// the `offline_sync_rejected_total{reason}` metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Larger than [`MAX_ENVELOPE_BYTES`].
    #[error("record of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size of the record.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A record without a signature (a v1 envelope, or no `sig`).
    #[error("unsigned record: every record must be signed by its sender")]
    Unsigned,
    /// Not a signed envelope.
    #[error("malformed signed record: {0}")]
    Malformed(String),
}

impl SealError {
    /// The metric label of this refusal.
    pub fn reason(&self) -> &'static str {
        match self {
            SealError::TooLarge { .. } => "too_large",
            SealError::Unsigned => "unsigned",
            SealError::Malformed(_) => "malformed",
        }
    }
}

/// A signed record taken apart, not yet verified.
#[derive(Debug)]
pub struct Unsealed<'a> {
    /// Who says they sent it.
    pub by: String,
    /// The key it says it was signed with.
    pub key: PublicKey,
    sig: [u8; 64],
    /// The v1 envelope, exactly as it appears in the record.
    pub msg: &'a [u8],
}

impl Unsealed<'_> {
    /// Whether the signature is `key`'s over this record's sender and message.
    pub fn verify_with(&self, key: &PublicKey) -> bool {
        key.verify(&self.by, self.msg, &self.sig)
    }
}

/// Fewest records [`verify_all`] checks in one batch equation; fewer are checked one by one.
const BATCH_FROM: usize = 4;

/// Most message bytes one batch equation covers: each message is copied with its sender for
/// the check, so a batch of large records is checked a part at a time.
const BATCH_BYTES: usize = 1024 * 1024;

/// Whether each record's signature is that of the key it names (`verify_with(&r.key)` for
/// each), for a batch of records at about a third of the cost: Ed25519 batch verification
/// checks one random linear combination of the signatures' equations, which holds for all
/// only if each holds (a forged signature passes with probability 2⁻¹²⁸). When it does not
/// hold, each record of the part is checked alone, so one bad record refuses only itself.
///
/// A batch is not `verify_strict`: a sender can make, with its own secret key, a signature
/// whose R carries a small-order part, which a batch may accept and a lone check refuses. It
/// forges nothing (it needs the signer's key, and the signer could as well sign properly);
/// it only lets a sender's own odd record be taken in one batch and refused alone. Keys of
/// small order, with which a signature could be made without any secret, verify nothing.
pub fn verify_all(records: &[&Unsealed<'_>]) -> Vec<bool> {
    let keys: Vec<Option<ed25519_dalek::VerifyingKey>> =
        records.iter().map(|r| verifying_key(r.key.as_bytes())).collect();
    let mut out = vec![false; records.len()];
    let mut part: Vec<usize> = Vec::new();
    let mut bytes = 0usize;
    let candidates = (0..records.len()).filter(|&i| keys[i].is_some());
    for i in candidates.chain([records.len()]) {
        let size = records.get(i).map_or(usize::MAX, |r| r.msg.len());
        if !part.is_empty() && bytes.saturating_add(size) > BATCH_BYTES {
            verify_part(records, &keys, &part, &mut out);
            part.clear();
            bytes = 0;
        }
        if i < records.len() {
            part.push(i);
            bytes += size;
        }
    }
    out
}

/// [`verify_all`] of the records `part` names, whose keys are all curve points.
fn verify_part(
    records: &[&Unsealed<'_>],
    keys: &[Option<ed25519_dalek::VerifyingKey>],
    part: &[usize],
    out: &mut [bool],
) {
    if part.len() >= BATCH_FROM {
        let messages: Vec<Vec<u8>> = part
            .iter()
            .map(|&i| signed_bytes(&records[i].by, records[i].msg))
            .collect();
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let signatures: Vec<ed25519_dalek::Signature> = part
            .iter()
            .map(|&i| ed25519_dalek::Signature::from_bytes(&records[i].sig))
            .collect();
        let points: Vec<ed25519_dalek::VerifyingKey> = part.iter().filter_map(|&i| keys[i]).collect();
        if ed25519_dalek::verify_batch(&messages, &signatures, &points).is_ok() {
            for &i in part {
                out[i] = true;
            }
            return;
        }
    }
    for &i in part {
        out[i] = records[i].verify_with(&records[i].key);
    }
}

#[derive(Deserialize)]
struct Outer<'a> {
    v: Option<u64>,
    by: Option<String>,
    key: Option<String>,
    sig: Option<String>,
    #[serde(borrow)]
    msg: Option<&'a RawValue>,
}

/// Takes a signed record apart without trusting anything in it yet.
pub fn unseal(bytes: &[u8]) -> Result<Unsealed<'_>, SealError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(SealError::TooLarge {
            size: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    let outer: Outer<'_> =
        serde_json::from_slice(bytes).map_err(|e| SealError::Malformed(format!("not a json object: {e}")))?;
    match outer.v {
        Some(SIGNED_VERSION) => {}
        Some(1) | None => return Err(SealError::Unsigned),
        Some(v) => return Err(SealError::Malformed(format!("unknown envelope version {v}"))),
    }
    let (Some(by), Some(key), Some(sig), Some(msg)) = (outer.by, outer.key, outer.sig, outer.msg) else {
        if outer_sig_missing(bytes) {
            return Err(SealError::Unsigned);
        }
        return Err(SealError::Malformed(
            "a signed record needs \"by\", \"key\", \"sig\" and \"msg\"".into(),
        ));
    };
    let key = PublicKey::parse(&key).map_err(|e| SealError::Malformed(format!("key: {e}")))?;
    let sig: [u8; 64] = decode_base64(&sig)
        .map_err(|e| SealError::Malformed(format!("sig: {e}")))?
        .try_into()
        .map_err(|b: Vec<u8>| {
            SealError::Malformed(format!("sig: {} bytes where 64 were expected", b.len()))
        })?;
    Ok(Unsealed {
        by,
        key,
        sig,
        msg: msg.get().as_bytes(),
    })
}

/// Whether a v2 record simply lacks its signature (told apart from other damage so the
/// reason says "unsigned").
fn outer_sig_missing(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .is_some_and(|v| v.get("sig").is_none_or(serde_json::Value::is_null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed([n; 32])
    }

    #[test]
    fn a_sealed_record_opens_and_verifies_with_its_key_only() {
        let msg = br#"{"v":1,"kind":"heartbeat","ship":"s1","pending":0,"applied_csn":0,"last_seq":0}"#;
        let sealed = key(1).seal("s1", msg);
        let v: serde_json::Value = serde_json::from_slice(&sealed).unwrap();
        assert_eq!((v["v"].as_u64(), v["by"].as_str()), (Some(2), Some("s1")));
        assert_eq!(v["msg"]["kind"], "heartbeat", "the message stays readable");
        let u = unseal(&sealed).unwrap();
        assert_eq!(u.msg, &msg[..]);
        assert_eq!(u.key, key(1).public());
        assert!(u.verify_with(&key(1).public()));
        assert!(!u.verify_with(&key(2).public()));
    }

    #[test]
    fn a_changed_sender_or_message_breaks_the_signature() {
        let msg = br#"{"v":1,"kind":"ack"}"#;
        let sealed = String::from_utf8(key(1).seal("s1", msg)).unwrap();
        let other_sender = sealed.replace("\"by\":\"s1\"", "\"by\":\"s2\"");
        assert!(
            !unseal(other_sender.as_bytes())
                .unwrap()
                .verify_with(&key(1).public())
        );
        let other_msg = sealed.replace("\"ack\"", "\"act\"");
        assert!(
            !unseal(other_msg.as_bytes())
                .unwrap()
                .verify_with(&key(1).public())
        );
        // Whitespace inside the message is part of what was signed, too.
        let spaced = sealed.replace("{\"v\":1,", "{ \"v\":1,");
        assert!(!unseal(spaced.as_bytes()).unwrap().verify_with(&key(1).public()));
    }

    #[test]
    fn a_batch_refuses_exactly_its_forged_records() {
        let msgs: Vec<Vec<u8>> = (0..40)
            .map(|i| format!(r#"{{"v":1,"kind":"ack","seq":{i}}}"#).into_bytes())
            .collect();
        let mut sealed: Vec<Vec<u8>> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| key(1 + (i % 3) as u8).seal(&format!("s{}", i % 3), m))
            .collect();
        let all = |sealed: &[Vec<u8>]| {
            let opened: Vec<Unsealed<'_>> = sealed.iter().map(|s| unseal(s).unwrap()).collect();
            verify_all(&opened.iter().collect::<Vec<_>>())
        };
        assert_eq!(all(&sealed), vec![true; 40]);
        assert_eq!(all(&sealed[..2]), vec![true; 2], "a few are checked one by one");

        // Another sender's name over a good signature, a changed message, a signature made by
        // another key than the one named.
        sealed[3] = String::from_utf8(sealed[3].clone())
            .unwrap()
            .replace("\"by\":\"s0\"", "\"by\":\"s1\"")
            .into_bytes();
        sealed[17] = String::from_utf8(sealed[17].clone())
            .unwrap()
            .replace("\"seq\":17", "\"seq\":71")
            .into_bytes();
        let forged = key(9).seal("s2", &msgs[29]);
        let other = unseal(&forged).unwrap();
        let named = key(3).public().to_base64();
        sealed[29] = format!(
            r#"{{"v":2,"by":"s2","key":"{named}","sig":"{}","msg":{}}}"#,
            STANDARD.encode(other.sig),
            String::from_utf8(msgs[29].clone()).unwrap()
        )
        .into_bytes();
        let verdicts = all(&sealed);
        let refused: Vec<usize> = (0..40).filter(|&i| !verdicts[i]).collect();
        assert_eq!(refused, vec![3, 17, 29]);
        let opened: Vec<Unsealed<'_>> = sealed.iter().map(|s| unseal(s).unwrap()).collect();
        for (r, ok) in opened.iter().zip(&verdicts) {
            assert_eq!(r.verify_with(&r.key), *ok, "a batch agrees with one by one");
        }
    }

    #[test]
    fn large_records_are_checked_a_part_at_a_time() {
        let pad = "x".repeat(200 * 1024);
        let mut sealed: Vec<Vec<u8>> = (0..12)
            .map(|i| key(1).seal("s1", format!(r#"{{"v":1,"seq":{i},"pad":"{pad}"}}"#).as_bytes()))
            .collect();
        sealed[9] = String::from_utf8(sealed[9].clone())
            .unwrap()
            .replace("\"seq\":9", "\"seq\":8")
            .into_bytes();
        let opened: Vec<Unsealed<'_>> = sealed.iter().map(|s| unseal(s).unwrap()).collect();
        let verdicts = verify_all(&opened.iter().collect::<Vec<_>>());
        let refused: Vec<usize> = (0..12).filter(|&i| !verdicts[i]).collect();
        assert_eq!(
            refused,
            vec![9],
            "only the changed record, whichever part it is in"
        );
    }

    #[test]
    fn a_key_that_is_no_point_or_weak_verifies_nothing() {
        let msg = br#"{"v":1,"kind":"ack"}"#;
        let good_record = key(1).seal("s1", msg);
        let good = unseal(&good_record).unwrap();
        let sig = STANDARD.encode(good.sig);
        let identity = {
            let mut b = [0u8; 32];
            b[0] = 1;
            STANDARD.encode(b)
        };
        for bad_key in [STANDARD.encode([2u8; 32]), identity] {
            let record = format!(
                r#"{{"v":2,"by":"s1","key":"{bad_key}","sig":"{sig}","msg":{}}}"#,
                String::from_utf8_lossy(msg)
            );
            let r = unseal(record.as_bytes()).unwrap();
            assert!(!r.verify_with(&r.key));
            let batch: Vec<&Unsealed<'_>> = std::iter::repeat_n(&r, 5).chain([&good]).collect();
            assert_eq!(verify_all(&batch), vec![false, false, false, false, false, true]);
        }
    }

    #[test]
    fn unsigned_and_malformed_records_are_told_apart() {
        assert_eq!(
            unseal(br#"{"v":1,"kind":"change"}"#).unwrap_err(),
            SealError::Unsigned
        );
        assert_eq!(
            unseal(br#"{"v":2,"by":"s1","key":"x","msg":{}}"#).unwrap_err(),
            SealError::Unsigned
        );
        assert_eq!(unseal(b"nope").unwrap_err().reason(), "malformed");
        assert_eq!(unseal(br#"{"v":3}"#).unwrap_err().reason(), "malformed");
        let bad_key = format!(
            r#"{{"v":2,"by":"s1","key":"AAAA","sig":"{}","msg":{{}}}}"#,
            STANDARD.encode([0u8; 64])
        );
        assert_eq!(unseal(bad_key.as_bytes()).unwrap_err().reason(), "malformed");
        let big = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert_eq!(unseal(&big).unwrap_err().reason(), "too_large");
    }

    #[test]
    fn keys_round_trip_through_base64_and_debug_hides_the_secret() {
        let k = key(7);
        assert_eq!(SigningKey::parse(&k.to_base64()).unwrap().public(), k.public());
        assert_eq!(PublicKey::parse(&k.public().to_base64()).unwrap(), k.public());
        let url_safe = URL_SAFE_NO_PAD.encode(k.public().as_bytes());
        assert_eq!(PublicKey::parse(&url_safe).unwrap(), k.public());
        assert!(!format!("{k:?}").contains(&k.to_base64()));
        assert_eq!(
            PublicKey::parse("AAAA").unwrap_err(),
            KeyError::Length { expected: 32, got: 3 }
        );
        assert_eq!(PublicKey::parse("!!").unwrap_err(), KeyError::Base64);
        let not_a_point = PublicKey::from_bytes([2; 32]);
        assert_eq!(not_a_point.check(), Err(KeyError::NotAKey));
        assert_eq!(k.public().check(), Ok(k.public()));
    }
}
