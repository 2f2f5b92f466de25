//! Signing and verifying records (DESIGN.md §5).
//!
//! Every record a node sends is sealed with its own Ed25519 key ([`Keyring::seal`]); every
//! record it reads is verified before anything in it is believed ([`Keyring::admit`]). The
//! key of each sender is pinned: ahead by setting, or at first contact (trust on first use, as
//! SSH does) unless the master requires known ships. After pinning, a record signed with
//! another key for that sender is refused.

use std::collections::BTreeMap;
use std::sync::RwLock;

use offline_sync_model::{MASTER_SIGNER, PublicKey, SigningKey, Unsealed};
use offline_sync_storage::{KeySource, KeyStatus, PeerKey, Storage};

use crate::error::Result;

/// How a node signs and whom it trusts.
#[derive(Clone, Debug, Default)]
pub struct SigningConfig {
    /// This node's key (`SYNC_SIGNING_KEY` or `SYNC_SIGNING_KEY_FILE`); without one, the key
    /// kept in the node's database is used, made on its first start.
    pub key: Option<SigningKey>,
    /// Keys pinned ahead by setting: ship id → key on the master (`SYNC_SHIP_KEYS`), `master`
    /// → key on a replica (`SYNC_MASTER_PUBLIC_KEY`). A setting wins over an earlier pin.
    pub pinned: BTreeMap<String, PublicKey>,
    /// On the master: refuse ships whose key was neither pinned ahead nor approved by an
    /// admin (`SYNC_REQUIRE_KNOWN_SHIPS`). Their first record is kept as a pending key for an
    /// admin to approve.
    pub require_known: bool,
}

/// Why a record's sender was not admitted; the label of `offline_sync_rejected_total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    /// Whether the record's signature verified with the key pinned for its signer: only then
    /// is anything in it believed (its ship and seq, to answer it).
    pub(crate) verified: bool,
}

impl Refusal {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            verified: false,
        }
    }

    /// The same refusal of a record whose signature verified.
    pub(crate) fn verified(mut self) -> Self {
        self.verified = true;
        self
    }
}

/// This node's key and the keys it pinned for its peers, kept in memory and written through
/// to storage.
#[derive(Debug)]
pub(crate) struct Keyring {
    own: SigningKey,
    /// The name this node signs as: `master`, or its ship id.
    me: String,
    /// A std lock: held only to read or replace entries, never across an `.await`.
    peers: RwLock<BTreeMap<String, PeerKey>>,
    require_known: bool,
}

/// What [`Keyring::admit`] decided about a record's sender.
#[derive(Debug)]
pub(crate) enum Admit {
    /// Signed by the key pinned for its sender.
    Known,
    /// A sender seen for the first time, whose key is to be pinned (once the record is
    /// accepted).
    Pin(PeerKey),
}

impl Keyring {
    /// Loads this node's key (from the settings, or from storage where one is made on first
    /// start), writes the keys pinned by setting and loads every pinned key.
    pub(crate) async fn load(
        storage: &dyn Storage,
        me: &str,
        cfg: &SigningConfig,
        now_ms: u64,
    ) -> Result<Self> {
        let own = match &cfg.key {
            Some(k) => k.clone(),
            None => {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| crate::Error::Invalid {
                    reason: format!("no randomness to make a signing key: {e}"),
                })?;
                let seed = storage.signing_seed(fresh, now_ms).await?;
                let key = SigningKey::from_seed(seed);
                if seed == fresh {
                    tracing::info!(public_key = %key.public(), "made this node's signing key and kept it in its database");
                }
                key
            }
        };
        let mut peers: BTreeMap<String, PeerKey> = storage
            .peer_keys()
            .await?
            .into_iter()
            .map(|k| (k.signer.clone(), k))
            .collect();
        for (signer, key) in &cfg.pinned {
            let current = peers.get(signer);
            if current.is_some_and(|p| p.key == *key && p.status == KeyStatus::Trusted) {
                continue;
            }
            if current.is_some_and(|p| p.key == *key && p.status == KeyStatus::Revoked) {
                // A restart must not undo an admin's revocation; a new key in the setting
                // (a replaced ship) is pinned.
                tracing::warn!(signer, public_key = %key, "key given by setting was revoked by an admin; it stays revoked");
                continue;
            }
            let pin = PeerKey {
                signer: signer.clone(),
                key: *key,
                status: KeyStatus::Trusted,
                source: KeySource::Setting,
                first_seen_ms: current.map_or(now_ms, |p| p.first_seen_ms),
                updated_at_ms: now_ms,
            };
            storage.save_peer_key(&pin).await?;
            tracing::info!(signer, public_key = %key, "key pinned by setting");
            peers.insert(signer.clone(), pin);
        }
        tracing::info!(signer = me, public_key = %own.public(), "signing records");
        if me != MASTER_SIGNER && !peers.contains_key(MASTER_SIGNER) {
            tracing::warn!(
                "the master's key is not pinned (SYNC_MASTER_PUBLIC_KEY): the first key seen signing as master will be trusted"
            );
        }
        Ok(Self {
            own,
            me: me.to_owned(),
            peers: RwLock::new(peers),
            require_known: cfg.require_known,
        })
    }

    /// A keyring of `me` with a fixed key and nothing pinned.
    #[cfg(test)]
    pub(crate) fn for_tests(me: &str, require_known: bool) -> Self {
        Self {
            own: SigningKey::from_seed([9; 32]),
            me: me.to_owned(),
            peers: RwLock::new(BTreeMap::new()),
            require_known,
        }
    }

    /// This node's public key.
    pub(crate) fn public(&self) -> PublicKey {
        self.own.public()
    }

    /// Wraps an encoded v1 envelope into a record signed by this node.
    pub(crate) fn seal(&self, msg: &[u8]) -> Vec<u8> {
        self.own.seal(&self.me, msg)
    }

    /// The record to send for `msg`: its sensitive fields removed (never replaced), encoded
    /// and signed by this node.
    pub(crate) fn outgoing(
        &self,
        mut msg: offline_sync_model::Message,
        sensitive: &offline_sync_model::Sensitive,
    ) -> Vec<u8> {
        sensitive.strip_message(&mut msg);
        self.seal(&offline_sync_model::encode(&msg))
    }

    /// Whether the master's key is known and trusted (pinned ahead or at first contact).
    pub(crate) fn knows_master(&self) -> bool {
        self.read()
            .get(MASTER_SIGNER)
            .is_some_and(|p| p.status == KeyStatus::Trusted)
    }

    /// Every pinned key.
    pub(crate) fn peers(&self) -> Vec<PeerKey> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, PeerKey>> {
        self.peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces what is known of one sender (after storage kept it).
    pub(crate) fn remember(&self, key: PeerKey) {
        self.peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.signer.clone(), key);
    }

    /// Decides whether `record`, claiming to come from `record.by`, is admitted: its key must
    /// be the one pinned for its sender and its signature must verify (`verified`: whether it
    /// is the signature of the key the record names, see [`offline_sync_model::verify_all`]).
    /// `fresh` holds the keys pinned earlier in the same batch, not yet remembered. `pending`
    /// receives the key of a sender an admin must approve first.
    pub(crate) fn admit(
        &self,
        record: &Unsealed<'_>,
        verified: bool,
        fresh: &BTreeMap<String, PeerKey>,
        now_ms: u64,
    ) -> std::result::Result<Admit, (Refusal, Option<Box<PeerKey>>)> {
        let by = record.by.as_str();
        let known = fresh.get(by).cloned().or_else(|| self.read().get(by).cloned());
        let refuse = |reason, message: String| Err((Refusal::new(reason, message), None));
        match known {
            Some(p) if p.status == KeyStatus::Revoked => {
                refuse("revoked", format!("the key of {by} was revoked by an admin"))
            }
            Some(p) if p.key != record.key => refuse(
                "wrong_key",
                format!("{by} signed with another key than the one pinned for it"),
            ),
            Some(p) if p.status == KeyStatus::Pending => refuse(
                "unknown_sender",
                format!("{by} is waiting for an admin to approve its key"),
            ),
            Some(_) if verified => Ok(Admit::Known),
            Some(_) => refuse("bad_signature", format!("the signature of {by} does not verify")),
            None if !verified => refuse("bad_signature", format!("the signature of {by} does not verify")),
            None => {
                let mut pin = PeerKey {
                    signer: by.to_owned(),
                    key: record.key,
                    status: KeyStatus::Trusted,
                    source: KeySource::FirstContact,
                    first_seen_ms: now_ms,
                    updated_at_ms: now_ms,
                };
                if self.require_known && by != MASTER_SIGNER {
                    pin.status = KeyStatus::Pending;
                    return Err((
                        Refusal::new(
                            "unknown_sender",
                            format!(
                                "{by} is not a known ship (SYNC_REQUIRE_KNOWN_SHIPS): approve its key first"
                            ),
                        ),
                        Some(Box::new(pin)),
                    ));
                }
                Ok(Admit::Pin(pin))
            }
        }
    }
}

/// The keyring of a node, loaded on first use.
pub(crate) async fn loaded<'a>(
    cell: &'a tokio::sync::OnceCell<Keyring>,
    storage: &dyn Storage,
    me: &str,
    cfg: &SigningConfig,
    now_ms: u64,
) -> Result<&'a Keyring> {
    cell.get_or_try_init(|| Keyring::load(storage, me, cfg, now_ms))
        .await
}

/// Keeps the keys first seen in a batch (before the batch's effects, so a crash in between
/// leaves a pin and no effect, never an effect without its pin), then remembers them. A pin
/// never replaces a row already stored (by another process sharing the database): what is
/// stored wins and is remembered. The caller holds the node's writer lock.
pub(crate) async fn keep_pins(
    keys: &Keyring,
    storage: &dyn Storage,
    pins: BTreeMap<String, PeerKey>,
) -> Result<()> {
    for pin in pins.into_values() {
        if keys.read().contains_key(&pin.signer) {
            continue;
        }
        let stored = storage.pin_peer_key(&pin).await?;
        if stored != pin {
            tracing::warn!(signer = %pin.signer, "a key was already stored for this sender; keeping it");
            keys.remember(stored);
            continue;
        }
        match pin.status {
            KeyStatus::Trusted => tracing::warn!(
                signer = %pin.signer,
                public_key = %pin.key,
                "key pinned at first contact; from now on only this key is accepted for this sender"
            ),
            KeyStatus::Pending | KeyStatus::Revoked => tracing::warn!(
                signer = %pin.signer,
                public_key = %pin.key,
                "unknown sender refused; its key waits for an admin's approval"
            ),
        }
        keys.remember(pin);
    }
    Ok(())
}

/// An admin's view of a node's signing keys: its own public key, the keys it pinned for its
/// peers, and approving or revoking them.
#[derive(Debug)]
pub struct KeyAdmin<'a> {
    pub(crate) keys: &'a Keyring,
    pub(crate) storage: &'a dyn Storage,
    pub(crate) writer: &'a tokio::sync::Mutex<()>,
    pub(crate) now_ms: u64,
}

impl KeyAdmin<'_> {
    /// This node's public key (the one its peers pin).
    pub fn public_key(&self) -> PublicKey {
        self.keys.public()
    }

    /// Every key pinned for a peer, by sender.
    pub fn peers(&self) -> Vec<PeerKey> {
        self.keys.peers()
    }

    /// Whether `signer` can be a peer of this node: a ship on the master, the master on a ship.
    fn check_peer(&self, signer: &str) -> Result<()> {
        let ok = if self.keys.me == MASTER_SIGNER {
            offline_sync_model::ShipId::new(signer).is_ok()
        } else {
            signer == MASTER_SIGNER
        };
        if ok { Ok(()) } else { Err(crate::Error::NotFound) }
    }

    /// Trusts `signer`: with `key`, pins that key (replacing any other); without, approves
    /// the key already pinned for it (revoked earlier). A pending key — offered by whoever
    /// first claimed that name — is approved only with `key`, which the admin takes from the
    /// ship itself (its `GET /api/offline-sync/keys`). Errors: `NotFound` when no key is given
    /// and none was seen, or for a sender that cannot be a peer of this node; `Conflict` for a
    /// pending key approved without `key`.
    pub async fn approve(&self, signer: &str, key: Option<PublicKey>) -> Result<PeerKey> {
        self.set(signer, key, KeyStatus::Trusted).await
    }

    /// Refuses `signer`'s records from now on. Errors: `NotFound` when no key was seen for it,
    /// or for a sender that cannot be a peer of this node.
    pub async fn revoke(&self, signer: &str) -> Result<PeerKey> {
        self.set(signer, None, KeyStatus::Revoked).await
    }

    async fn set(&self, signer: &str, key: Option<PublicKey>, status: KeyStatus) -> Result<PeerKey> {
        self.check_peer(signer)?;
        let _w = self.writer.lock().await;
        let current = self.keys.read().get(signer).cloned();
        if status == KeyStatus::Trusted
            && key.is_none()
            && current.as_ref().is_some_and(|c| c.status == KeyStatus::Pending)
        {
            return Err(crate::Error::Conflict {
                reason: format!(
                    "the pending key of {signer} was offered by whoever first used that name: give publicKey, as the ship reports it"
                ),
            });
        }
        let key = key
            .or(current.as_ref().map(|c| c.key))
            .ok_or(crate::Error::NotFound)?;
        let row = PeerKey {
            signer: signer.to_owned(),
            key,
            status,
            source: KeySource::Admin,
            first_seen_ms: current.map_or(self.now_ms, |c| c.first_seen_ms),
            updated_at_ms: self.now_ms,
        };
        self.storage.save_peer_key(&row).await?;
        tracing::warn!(signer, public_key = %key, status = status.as_str(), "key changed by an admin");
        self.keys.remember(row.clone());
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(require_known: bool) -> Keyring {
        Keyring::for_tests("master", require_known)
    }

    fn sealed(seed: u8, by: &str) -> Vec<u8> {
        SigningKey::from_seed([seed; 32]).seal(by, br#"{"v":1}"#)
    }

    fn admit(k: &Keyring, record: &[u8]) -> std::result::Result<Admit, (Refusal, Option<Box<PeerKey>>)> {
        let r = offline_sync_model::unseal(record).unwrap();
        k.admit(&r, r.verify_with(&r.key), &BTreeMap::new(), 5)
    }

    #[test]
    fn first_contact_pins_and_another_key_is_refused_afterwards() {
        let k = keyring(false);
        let Ok(Admit::Pin(pin)) = admit(&k, &sealed(1, "ship-a")) else {
            panic!("first contact pins")
        };
        assert_eq!(pin.source, KeySource::FirstContact);
        k.remember(pin);
        assert!(matches!(admit(&k, &sealed(1, "ship-a")), Ok(Admit::Known)));
        let (refusal, _) = admit(&k, &sealed(2, "ship-a")).unwrap_err();
        assert_eq!(refusal.reason, "wrong_key");
    }

    #[test]
    fn a_forged_signature_is_refused_even_at_first_contact() {
        let k = keyring(false);
        let good = String::from_utf8(sealed(1, "ship-a")).unwrap();
        let forged = good.replace(r#"{"v":1}"#, r#"{"v":1,"x":1}"#);
        let (refusal, pin) = admit(&k, forged.as_bytes()).unwrap_err();
        assert_eq!((refusal.reason, pin), ("bad_signature", None));
    }

    #[test]
    fn strict_mode_keeps_unknown_ships_pending_and_revoked_keys_stay_out() {
        let k = keyring(true);
        let (refusal, pending) = admit(&k, &sealed(1, "ship-a")).unwrap_err();
        assert_eq!(refusal.reason, "unknown_sender");
        let mut pending = *pending.unwrap();
        assert_eq!(pending.status, KeyStatus::Pending);
        k.remember(pending.clone());
        assert_eq!(
            admit(&k, &sealed(1, "ship-a")).unwrap_err().0.reason,
            "unknown_sender"
        );
        pending.status = KeyStatus::Trusted;
        k.remember(pending.clone());
        assert!(matches!(admit(&k, &sealed(1, "ship-a")), Ok(Admit::Known)));
        pending.status = KeyStatus::Revoked;
        k.remember(pending);
        assert_eq!(admit(&k, &sealed(1, "ship-a")).unwrap_err().0.reason, "revoked");
    }
}
