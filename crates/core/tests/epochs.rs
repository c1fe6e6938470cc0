//! SPEC.md F.12 (a space's key epochs): a roster MAC, an epoch's key sealed to a
//! member and an epoch's link, re-derived from the SPEC's text with the primitives
//! directly and pinned; and a rotation read back by each member it names.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer_core::account::RootSecret;
use coffer_core::b64;
use coffer_core::epoch::{self, EpochKeys, open_epoch_key, roster_mac, seal_epoch_key, seal_link};
use coffer_core::identity::UserKeys;
use coffer_core::proto::storage::{Member, Role};
use coffer_core::space::{SpaceKey, open_space_name};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn derive(ikm: &[u8], label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, ikm).expand(label, &mut out).unwrap();
    out
}

fn lp(bytes: &[u8]) -> Vec<u8> {
    [&(bytes.len() as u32).to_be_bytes()[..], bytes].concat()
}

#[test]
fn a_roster_mac_a_sealed_key_and_a_link_are_what_f12_says() {
    let space_key = [0x11u8; 32];
    let key = SpaceKey::from_bytes(space_key);
    let ada = UserKeys::derive(&RootSecret::from_bytes([0x42; 32]));
    let public = ada.public_key();

    // The roster entry's MAC, with the literal labels.
    let mac_key = derive(&space_key, b"coffer/v1/roster-mac-key");
    let input = [&b"coffer/v1/roster-entry"[..], &lp(b"spc"), &lp(b"usr_ada"), &public].concat();
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&mac_key).unwrap();
    mac.update(&input);
    let expected: [u8; 32] = mac.finalize().into_bytes().into();
    assert_eq!(roster_mac(&key, "spc", "usr_ada", &public), expected);

    // The epoch's key sealed to ada: §3.7 with the F.12 context.
    let context = [&b"coffer/v1/space-epoch-key"[..], &lp(b"spc"), &3u32.to_be_bytes(), &lp(b"usr_ada")].concat();
    let sealed = seal_epoch_key(&public, "spc", 3, "usr_ada", &key, [7; 32]).unwrap();
    assert_eq!(sealed, coffer_core::identity::seal_to(&public, &context, &space_key, [7; 32]).unwrap());
    assert_eq!(sealed.len(), epoch::SEALED_EPOCH_KEY_LEN);
    assert_eq!(open_epoch_key(&ada, "spc", 3, "usr_ada", &sealed).unwrap(), key);

    // Epoch 3's link: epoch 2's key under epoch 3's.
    let previous = [0x22u8; 32];
    let link = seal_link(&key, "spc", 3, &SpaceKey::from_bytes(previous), [9; 12]);
    let link_key = derive(&space_key, b"coffer/v1/epoch-link-key");
    let aad = [&b"coffer/v1/epoch-link"[..], &lp(b"spc"), &3u32.to_be_bytes()].concat();
    let body = Aes256Gcm::new(&link_key.into())
        .encrypt(&Nonce::from([9u8; 12]), Payload { msg: &previous, aad: &aad })
        .unwrap();
    assert_eq!(link, [&[0x01][..], &[9; 12], &body].concat());

    // Pinned: a change to the format is a visible diff here.
    assert_eq!(hex(&expected), "75393a48e3be9692461de0b91b06b23502ebb659f0134222d1e9c696c88ea8d8");
    assert_eq!(
        hex(&link),
        "01090909090909090909090909f3872d151daa86e4b3b2e3b3fdf01cde645e9d3e3dba737221e34fb20722169f831472e0f0c7cbb02544749eabbca66e"
    );
}

fn member(key: &SpaceKey, user_id: &str, keys: &UserKeys) -> Member {
    Member {
        user_id: user_id.into(),
        username: user_id.into(),
        role: Role::Writer,
        joined_at_ms: 0,
        public_key: Some(b64::encode(keys.public_key())),
        roster_mac: Some(b64::encode(roster_mac(key, "spc", user_id, &keys.public_key()))),
    }
}

#[test]
fn two_rotations_are_read_back_by_each_member_they_name() {
    let users: Vec<UserKeys> = (1..=3).map(|i| UserKeys::derive(&RootSecret::from_bytes([i; 32]))).collect();
    let k0 = SpaceKey::from_bytes([0xa0; 32]);
    let mut draw = {
        let mut n = 0u8;
        move |buf: &mut [u8]| {
            n += 1;
            buf.fill(n);
        }
    };
    // Epoch 1: all three; epoch 2: the third is gone.
    let roster0: Vec<Member> = ["a", "b", "c"].iter().zip(&users).map(|(id, u)| member(&k0, id, u)).collect();
    let r1 =
        epoch::rotate("spc", (0, &k0), &roster0, None, "Team", SpaceKey::from_bytes([0xa1; 32]), &mut draw).unwrap();
    let roster1: Vec<Member> = r1
        .request
        .members
        .iter()
        .zip(&users)
        .take(2)
        .map(|(m, u)| Member { roster_mac: Some(m.roster_mac.clone()), ..member(&k0, &m.user_id, u) })
        .collect();
    let r2 =
        epoch::rotate("spc", (1, &r1.key), &roster1, Some("c"), "Team", SpaceKey::from_bytes([0xa2; 32]), &mut draw)
            .unwrap();
    assert_eq!(r2.request.members.len(), 2);

    let links = [b64::decode(&r1.request.sealed_previous).unwrap(), b64::decode(&r2.request.sealed_previous).unwrap()];
    let link = |e: u32| links.get(e as usize - 1).map(Vec::as_slice);
    for (m, u) in r2.request.members.iter().zip(&users) {
        // Each remaining member, holding epoch 0's key, takes epoch 2's and reaches back.
        let offered = open_epoch_key(u, "spc", 2, &m.user_id, &b64::decode(&m.sealed_key).unwrap()).unwrap();
        let mut held = EpochKeys::new("spc", 0, k0.clone());
        held.accept(2, offered, link).unwrap();
        assert_eq!(held.newest(), (2, &r2.key));
        assert_eq!(held.get(1), Some(&r1.key));
        let name = b64::decode(&r2.request.sealed_name).unwrap();
        assert_eq!(open_space_name(held.newest().1, "spc", &name).unwrap(), "Team");
    }
    // A member who joins at epoch 2 reaches epoch 0 by descending.
    let mut joiner = EpochKeys::new("spc", 2, r2.key.clone());
    joiner.descend(0, link).unwrap();
    assert_eq!(joiner.get(0), Some(&k0));
    // The third member, holding every key up to epoch 1, has nothing sealed for epoch 2.
    assert!(r2.request.members.iter().all(|m| m.user_id != "c"));
}
