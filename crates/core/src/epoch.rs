//! A space's key epochs (SPEC.md F.12): the roster the accelerator cannot forge, the
//! rotation that makes a new space key when a member goes, and the chain back that
//! lets the remaining members open what was written under every earlier key.
//!
//! - **Roster.** Each member's entry is their user id and X25519 public key (§3.6)
//!   with a MAC under the current space key ([`roster_mac`]). Only someone holding
//!   the space key can make one, so a rotation seals the new key only to entries
//!   that check ([`check_roster_entry`]): the accelerator cannot slip in a key of
//!   its own.
//! - **Rotation** ([`rotate`]). A new random key for epoch `n + 1`, sealed to each
//!   roster entry (§3.7, bound to the space, the epoch and the member), the roster
//!   re-MACed under it, the space's name sealed again, and the old key sealed under
//!   the new one: the epoch's *link*.
//! - **The chain** ([`EpochKeys`]). A member accepts a newer epoch's key only if its
//!   links lead down to the newest key the member already holds — so a key the
//!   accelerator sealed to the member itself (anyone can seal to a public key) is
//!   refused — and reaches older epochs by opening links downwards.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::b64;
use crate::identity::{self, IdentityError, PUBLIC_KEY_LEN, UserKeys};
use crate::primitives::{NONCE_LEN, TAG_LEN, hkdf32, open, push_lp, seal};
use crate::proto::storage::{Member, RotateRequest, RotatedMember};
use crate::space::{self, SPACE_KEY_LEN, SpaceError, SpaceKey};
use crate::{Coded, ErrorCode};

/// HKDF label of the key roster entries are MACed under.
pub const LABEL_ROSTER_MAC_KEY: &[u8] = b"coffer/v1/roster-mac-key";
/// Domain prefix of a roster entry's MAC input.
pub const LABEL_ROSTER_ENTRY: &[u8] = b"coffer/v1/roster-entry";
/// Domain prefix of the context an epoch's key is sealed to a member for (§3.7).
pub const LABEL_EPOCH_KEY: &[u8] = b"coffer/v1/space-epoch-key";
/// HKDF label of the key an epoch's link is sealed under.
pub const LABEL_EPOCH_LINK_KEY: &[u8] = b"coffer/v1/epoch-link-key";
/// Domain prefix of an epoch link's AAD.
pub const LABEL_EPOCH_LINK: &[u8] = b"coffer/v1/epoch-link";
/// First byte of an epoch link.
pub const EPOCH_LINK_VERSION: u8 = 1;
/// Bytes of a roster MAC (HMAC-SHA256).
pub const ROSTER_MAC_LEN: usize = 32;
/// Bytes of an epoch link: version, nonce, the previous key sealed.
pub const EPOCH_LINK_LEN: usize = 1 + NONCE_LEN + SPACE_KEY_LEN + TAG_LEN;
/// Bytes of an epoch's key sealed to a member (§3.7 around a 32-byte key).
pub const SEALED_EPOCH_KEY_LEN: usize = 1 + PUBLIC_KEY_LEN + SPACE_KEY_LEN + TAG_LEN;
/// The newest epoch a space may reach: every rotation keeps a link, so the chain
/// is bounded (a link is 61 bytes; this many is under 1 MiB).
pub const MAX_EPOCH: u32 = 16384;

/// Why a roster entry, an epoch's key or a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EpochError {
    /// A roster entry whose MAC does not check under the space key, or whose public
    /// key is not usable: the accelerator altered the roster, or the entry is not
    /// this space's. Nothing is sealed to it.
    #[error(
        "the roster entry of member {user_id:?} does not check under the space key (altered by the accelerator, or not this space's): refusing to seal the space's key to it"
    )]
    ForgedEntry {
        /// The member the entry claims to be.
        user_id: String,
    },
    /// An epoch's key sealed to this user did not open.
    #[error("the space key sealed to this account for epoch {epoch} does not open (altered, or not sealed to it)")]
    KeyDecrypt {
        /// The epoch.
        epoch: u32,
    },
    /// An epoch's link did not open, or the chain did not lead to the key this member
    /// holds: the newer key was not made by a holder of the older one.
    #[error(
        "the space's key for epoch {epoch} does not lead back to the key this account holds (the accelerator offered a key no member made); it was refused"
    )]
    BrokenChain {
        /// The epoch whose link failed.
        epoch: u32,
    },
    /// The accelerator still lists a member the rotation is for removing.
    #[error(
        "the accelerator still lists member {user_id:?}, whom this rotation removes: refusing to seal the space's new key to them"
    )]
    Departed {
        /// The member.
        user_id: String,
    },
    /// The space has rotated as often as a space may.
    #[error("this space's key has been rotated {MAX_EPOCH} times, the most a space may")]
    Exhausted,
    /// A link is missing from the accelerator's answer.
    #[error("the accelerator's answer is missing the link of epoch {epoch}")]
    MissingLink {
        /// The epoch.
        epoch: u32,
    },
    /// A space id that is not a valid id, or a name that does not seal.
    #[error(transparent)]
    Space(#[from] SpaceError),
}

impl Coded for EpochError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        match self {
            EpochError::Exhausted => ErrorCode::TooLarge,
            EpochError::Space(e) => e.code(),
            _ => ErrorCode::Integrity,
        }
    }
}

/// `HMAC-SHA256(derive(space key, LABEL_ROSTER_MAC_KEY), LABEL_ROSTER_ENTRY ‖
/// lp(space id) ‖ lp(user id) ‖ public key)`: the MAC of a member's roster entry.
pub fn roster_mac(key: &SpaceKey, space_id: &str, user_id: &str, public_key: &[u8; PUBLIC_KEY_LEN]) -> [u8; 32] {
    let mac_key = hkdf32(key.as_bytes(), LABEL_ROSTER_MAC_KEY);
    let mut input = LABEL_ROSTER_ENTRY.to_vec();
    push_lp(&mut input, space_id.as_bytes());
    push_lp(&mut input, user_id.as_bytes());
    input.extend_from_slice(public_key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(mac_key.as_ref()).expect("HMAC takes keys of any length");
    mac.update(&input);
    mac.finalize().into_bytes().into()
}

/// Checks a roster entry as the accelerator lists it (public key and MAC base64url)
/// and returns its public key: the MAC must check under `key` and the key must be
/// usable (§3.6).
pub fn check_roster_entry(
    key: &SpaceKey,
    space_id: &str,
    user_id: &str,
    public_key: &str,
    mac: &str,
) -> Result<[u8; PUBLIC_KEY_LEN], EpochError> {
    let forged = || EpochError::ForgedEntry { user_id: user_id.to_owned() };
    let public = b64::decode_array::<PUBLIC_KEY_LEN>(public_key).ok_or_else(forged)?;
    let mac = b64::decode_array::<ROSTER_MAC_LEN>(mac).ok_or_else(forged)?;
    if !bool::from(roster_mac(key, space_id, user_id, &public).ct_eq(&mac)) {
        return Err(forged());
    }
    identity::check_public_key(&public).map_err(|_| forged())?;
    Ok(public)
}

/// `LABEL_EPOCH_KEY ‖ lp(space id) ‖ u32(epoch) ‖ lp(user id)`: what an epoch's key
/// sealed to a member is bound to.
pub fn epoch_key_context(space_id: &str, epoch: u32, user_id: &str) -> Vec<u8> {
    let mut context = LABEL_EPOCH_KEY.to_vec();
    push_lp(&mut context, space_id.as_bytes());
    context.extend_from_slice(&epoch.to_be_bytes());
    push_lp(&mut context, user_id.as_bytes());
    context
}

/// Seals an epoch's key to a member (§3.7); `ephemeral`: 32 fresh random bytes.
pub fn seal_epoch_key(
    recipient: &[u8; PUBLIC_KEY_LEN],
    space_id: &str,
    epoch: u32,
    user_id: &str,
    key: &SpaceKey,
    ephemeral: [u8; 32],
) -> Result<Vec<u8>, IdentityError> {
    identity::seal_to(recipient, &epoch_key_context(space_id, epoch, user_id), key.as_bytes(), ephemeral)
}

/// Opens an epoch's key sealed to this user.
pub fn open_epoch_key(
    user: &UserKeys,
    space_id: &str,
    epoch: u32,
    user_id: &str,
    sealed: &[u8],
) -> Result<SpaceKey, EpochError> {
    let plain = Zeroizing::new(
        user.open(&epoch_key_context(space_id, epoch, user_id), sealed)
            .map_err(|_| EpochError::KeyDecrypt { epoch })?,
    );
    let bytes: [u8; SPACE_KEY_LEN] = plain.as_slice().try_into().map_err(|_| EpochError::KeyDecrypt { epoch })?;
    Ok(SpaceKey::from_bytes(bytes))
}

fn link_aad(space_id: &str, epoch: u32) -> Vec<u8> {
    let mut aad = LABEL_EPOCH_LINK.to_vec();
    push_lp(&mut aad, space_id.as_bytes());
    aad.extend_from_slice(&epoch.to_be_bytes());
    aad
}

/// Epoch `epoch`'s link: the previous epoch's key sealed under this epoch's key,
/// `EPOCH_LINK_VERSION ‖ nonce ‖ seal(derive(key, LABEL_EPOCH_LINK_KEY), nonce,
/// LABEL_EPOCH_LINK ‖ lp(space id) ‖ u32(epoch), previous)`. `nonce`: 12 random bytes.
pub fn seal_link(key: &SpaceKey, space_id: &str, epoch: u32, previous: &SpaceKey, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let link_key = hkdf32(key.as_bytes(), LABEL_EPOCH_LINK_KEY);
    let mut out = Vec::with_capacity(EPOCH_LINK_LEN);
    out.push(EPOCH_LINK_VERSION);
    out.extend_from_slice(&nonce);
    out.extend(seal(&link_key, &nonce, &link_aad(space_id, epoch), previous.as_bytes()));
    out
}

/// Opens epoch `epoch`'s link with that epoch's key, giving epoch `epoch − 1`'s key.
pub fn open_link(key: &SpaceKey, space_id: &str, epoch: u32, sealed: &[u8]) -> Result<SpaceKey, EpochError> {
    let broken = EpochError::BrokenChain { epoch };
    if sealed.len() != EPOCH_LINK_LEN || sealed[0] != EPOCH_LINK_VERSION {
        return Err(broken);
    }
    let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().expect("length checked");
    let link_key = hkdf32(key.as_bytes(), LABEL_EPOCH_LINK_KEY);
    let plain =
        Zeroizing::new(open(&link_key, &nonce, &link_aad(space_id, epoch), &sealed[1 + NONCE_LEN..]).ok_or(broken)?);
    Ok(SpaceKey::from_bytes(plain.as_slice().try_into().expect("a 32-byte key sealed")))
}

/// The keys of one space a member holds: an unbroken run of epochs, each key proven
/// by the chain to lead to the one the member first held.
#[derive(Debug, Clone)]
pub struct EpochKeys {
    space_id: String,
    keys: BTreeMap<u32, SpaceKey>,
}

impl EpochKeys {
    /// Starts from a key the member trusts (made it, proved an invite's, or read it
    /// from its own sealed store) for `epoch`.
    pub fn new(space_id: &str, epoch: u32, key: SpaceKey) -> Self {
        EpochKeys { space_id: space_id.to_owned(), keys: BTreeMap::from([(epoch, key)]) }
    }

    /// The newest epoch held and its key.
    pub fn newest(&self) -> (u32, &SpaceKey) {
        let (&epoch, key) = self.keys.last_key_value().expect("never empty");
        (epoch, key)
    }

    /// The oldest epoch held.
    pub fn oldest(&self) -> u32 {
        *self.keys.first_key_value().expect("never empty").0
    }

    /// Epoch `epoch`'s key, if held.
    pub fn get(&self, epoch: u32) -> Option<&SpaceKey> {
        self.keys.get(&epoch)
    }

    /// Takes epoch `epoch`'s key (newer than the newest held) only if the links of
    /// the epochs between, opened downwards from it, end at the newest key held.
    /// `link(e)` is epoch `e`'s link as the accelerator gave it.
    pub fn accept<'a>(
        &mut self,
        epoch: u32,
        key: SpaceKey,
        link: impl Fn(u32) -> Option<&'a [u8]>,
    ) -> Result<(), EpochError> {
        let (held_epoch, held) = self.newest();
        if epoch <= held_epoch {
            return if self.get(epoch) == Some(&key) { Ok(()) } else { Err(EpochError::BrokenChain { epoch }) };
        }
        let mut found = vec![(epoch, key)];
        for e in (held_epoch + 1..=epoch).rev() {
            let sealed = link(e).ok_or(EpochError::MissingLink { epoch: e })?;
            let previous = open_link(&found.last().expect("never empty").1, &self.space_id, e, sealed)?;
            found.push((e - 1, previous));
        }
        let (_, reached) = found.pop().expect("the held epoch's key");
        if !bool::from(reached.as_bytes().ct_eq(held.as_bytes())) {
            return Err(EpochError::BrokenChain { epoch: held_epoch + 1 });
        }
        self.keys.extend(found);
        Ok(())
    }

    /// Reaches down to epoch `epoch` from the oldest key held, opening each link on
    /// the way (`link(e)` as in [`accept`](Self::accept)).
    pub fn descend<'a>(&mut self, epoch: u32, link: impl Fn(u32) -> Option<&'a [u8]>) -> Result<(), EpochError> {
        while self.oldest() > epoch {
            let e = self.oldest();
            let sealed = link(e).ok_or(EpochError::MissingLink { epoch: e })?;
            let previous = open_link(&self.keys[&e], &self.space_id, e, sealed)?;
            self.keys.insert(e - 1, previous);
        }
        Ok(())
    }
}

/// A rotation's result: the request for the accelerator, and the new key.
pub struct Rotation {
    /// `POST /v1/spaces/{space}/rotate`'s body.
    pub request: RotateRequest,
    /// The new epoch's key (kept by the rotator once the accelerator took it).
    pub key: SpaceKey,
}

/// Makes epoch `current + 1` of a space: `fresh` is a new random key; `draw` fills
/// a buffer with fresh random bytes (ephemeral keys, nonces). Every roster entry in
/// `members` must check under `current`'s key (one that does not, or a MAC without
/// a public key → `ForgedEntry`, and nothing is made); members with no entry are
/// left out (they hold no key for the new epoch); `departed`, the member being
/// removed, must not be listed at all (`Departed`). The name is sealed again under
/// the new key.
pub fn rotate(
    space_id: &str,
    current: (u32, &SpaceKey),
    members: &[Member],
    departed: Option<&str>,
    name: &str,
    fresh: SpaceKey,
    draw: &mut dyn FnMut(&mut [u8]),
) -> Result<Rotation, EpochError> {
    let (epoch, key) = current;
    if epoch >= MAX_EPOCH {
        return Err(EpochError::Exhausted);
    }
    let next = epoch + 1;
    let mut rotated = Vec::with_capacity(members.len());
    for m in members {
        if departed == Some(m.user_id.as_str()) {
            return Err(EpochError::Departed { user_id: m.user_id.clone() });
        }
        let (public_key, mac) = match (&m.public_key, &m.roster_mac) {
            (_, None) => continue,
            (Some(public_key), Some(mac)) => (public_key, mac),
            (None, Some(_)) => return Err(EpochError::ForgedEntry { user_id: m.user_id.clone() }),
        };
        let public = check_roster_entry(key, space_id, &m.user_id, public_key, mac)?;
        let mut ephemeral = Zeroizing::new([0u8; 32]);
        draw(ephemeral.as_mut());
        let sealed = seal_epoch_key(&public, space_id, next, &m.user_id, &fresh, *ephemeral)
            .map_err(|_| EpochError::ForgedEntry { user_id: m.user_id.clone() })?;
        rotated.push(RotatedMember {
            user_id: m.user_id.clone(),
            sealed_key: b64::encode(sealed),
            roster_mac: b64::encode(roster_mac(&fresh, space_id, &m.user_id, &public)),
        });
    }
    let (mut link_nonce, mut name_nonce) = ([0u8; NONCE_LEN], [0u8; NONCE_LEN]);
    draw(&mut link_nonce);
    draw(&mut name_nonce);
    let request = RotateRequest {
        epoch: next,
        sealed_name: b64::encode(space::seal_space_name(&fresh, space_id, name, name_nonce)?),
        sealed_previous: b64::encode(seal_link(&fresh, space_id, next, key, link_nonce)),
        members: rotated,
    };
    Ok(Rotation { request, key: fresh })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::RootSecret;
    use crate::proto::storage::Role;

    fn user(byte: u8) -> UserKeys {
        UserKeys::derive(&RootSecret::from_bytes([byte; 32]))
    }

    fn member(key: &SpaceKey, id: &str, keys: &UserKeys) -> Member {
        Member {
            user_id: id.into(),
            username: id.into(),
            role: Role::Writer,
            joined_at_ms: 1,
            public_key: Some(b64::encode(keys.public_key())),
            roster_mac: Some(b64::encode(roster_mac(key, "s", id, &keys.public_key()))),
        }
    }

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |buf: &mut [u8]| {
            n = n.wrapping_add(1);
            buf.fill(n);
        }
    }

    #[test]
    fn a_rotation_seals_the_new_key_to_each_entry_and_links_back() {
        let (k0, ada, bob) = (SpaceKey::from_bytes([1; 32]), user(1), user(2));
        let members = [member(&k0, "ada", &ada), member(&k0, "bob", &bob)];
        let r = rotate("s", (0, &k0), &members, None, "Team", SpaceKey::from_bytes([2; 32]), &mut counter()).unwrap();
        assert_eq!(r.request.epoch, 1);
        assert_eq!(r.request.members.len(), 2);
        for (m, keys) in r.request.members.iter().zip([&ada, &bob]) {
            let sealed = b64::decode(&m.sealed_key).unwrap();
            assert_eq!(sealed.len(), SEALED_EPOCH_KEY_LEN);
            assert_eq!(open_epoch_key(keys, "s", 1, &m.user_id, &sealed).unwrap(), r.key);
            assert_eq!(open_epoch_key(keys, "s", 2, &m.user_id, &sealed), Err(EpochError::KeyDecrypt { epoch: 2 }));
            check_roster_entry(&r.key, "s", &m.user_id, &b64::encode(keys.public_key()), &m.roster_mac).unwrap();
        }
        let link = b64::decode(&r.request.sealed_previous).unwrap();
        assert_eq!(link.len(), EPOCH_LINK_LEN);
        assert_eq!(open_link(&r.key, "s", 1, &link).unwrap(), k0);
        assert_eq!(open_link(&r.key, "t", 1, &link), Err(EpochError::BrokenChain { epoch: 1 }));
        let name = b64::decode(&r.request.sealed_name).unwrap();
        assert_eq!(space::open_space_name(&r.key, "s", &name).unwrap(), "Team");
    }

    #[test]
    fn a_forged_entry_stops_the_rotation() {
        let (k0, ada, mallory) = (SpaceKey::from_bytes([1; 32]), user(1), user(9));
        let mut swapped = member(&k0, "ada", &ada);
        swapped.public_key = Some(b64::encode(mallory.public_key()));
        let made_up = member(&SpaceKey::from_bytes([7; 32]), "eve", &mallory);
        for forged in [swapped, made_up] {
            let err = rotate(
                "s",
                (0, &k0),
                std::slice::from_ref(&forged),
                None,
                "T",
                SpaceKey::from_bytes([2; 32]),
                &mut counter(),
            )
            .err()
            .unwrap();
            assert_eq!(err, EpochError::ForgedEntry { user_id: forged.user_id.clone() });
            assert_eq!(err.code(), ErrorCode::Integrity);
        }
        // An entry under another user id does not check either.
        let mut moved = member(&k0, "ada", &ada);
        moved.user_id = "bob".into();
        assert!(rotate("s", (0, &k0), &[moved], None, "T", SpaceKey::from_bytes([2; 32]), &mut counter()).is_err());
        // No entry at all: left out, not refused.
        let mut none = member(&k0, "old", &ada);
        none.roster_mac = None;
        let r = rotate("s", (0, &k0), &[none], None, "T", SpaceKey::from_bytes([2; 32]), &mut counter()).unwrap();
        assert!(r.request.members.is_empty());
        // A MAC without a key is named, not left out.
        let mut keyless = member(&k0, "bob", &ada);
        keyless.public_key = None;
        let err = rotate("s", (0, &k0), &[keyless], None, "T", SpaceKey::from_bytes([2; 32]), &mut counter());
        assert_eq!(err.err(), Some(EpochError::ForgedEntry { user_id: "bob".into() }));
        // The member being removed, still listed: refused, even with a genuine entry.
        let listed = [member(&k0, "ada", &ada), member(&k0, "bob", &mallory)];
        let err = rotate("s", (0, &k0), &listed, Some("bob"), "T", SpaceKey::from_bytes([2; 32]), &mut counter());
        assert_eq!(err.err(), Some(EpochError::Departed { user_id: "bob".into() }));
    }

    #[test]
    fn the_chain_accepts_only_keys_that_lead_to_the_one_held() {
        let keys: Vec<SpaceKey> = (0..4).map(|i| SpaceKey::from_bytes([i + 1; 32])).collect();
        let links: Vec<Vec<u8>> =
            (1..4).map(|e| seal_link(&keys[e], "s", e as u32, &keys[e - 1], [e as u8; 12])).collect();
        let link = |e: u32| links.get(e as usize - 1).map(Vec::as_slice);
        let mut held = EpochKeys::new("s", 1, keys[1].clone());
        held.accept(3, keys[3].clone(), link).unwrap();
        assert_eq!(held.newest(), (3, &keys[3]));
        assert_eq!(held.get(2), Some(&keys[2]));
        held.descend(0, link).unwrap();
        assert_eq!(held.get(0), Some(&keys[0]));

        // A key the accelerator made and sealed to the member: no link leads back.
        let mut held = EpochKeys::new("s", 1, keys[1].clone());
        let bogus = SpaceKey::from_bytes([9; 32]);
        assert_eq!(held.accept(2, bogus.clone(), link), Err(EpochError::BrokenChain { epoch: 2 }));
        let own = seal_link(&bogus, "s", 2, &SpaceKey::from_bytes([8; 32]), [0; 12]);
        assert_eq!(held.accept(2, bogus, |_| Some(own.as_slice())), Err(EpochError::BrokenChain { epoch: 2 }));
        assert_eq!(held.accept(3, keys[3].clone(), |_| None), Err(EpochError::MissingLink { epoch: 3 }));
        assert_eq!(held.newest(), (1, &keys[1]), "nothing taken from a refused chain");
    }
}
