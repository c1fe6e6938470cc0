//! SPEC.md §3.6–3.7 (a user's X25519 key pair, and messages sealed to it): X25519 as
//! the core computes it against RFC 7748's own vectors, and a key pair and a message
//! re-derived from the SPEC's text with the primitives directly, their bytes pinned.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use coffer_core::account::RootSecret;
use coffer_core::identity::{UserKeys, seal_to};
use curve25519_dalek::montgomery::MontgomeryPoint;
use hkdf::Hkdf;
use sha2::Sha256;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> [u8; N] {
    let bytes: Vec<u8> = (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect();
    bytes.try_into().unwrap()
}

fn derive(ikm: &[u8], label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, ikm).expand(label, &mut out).unwrap();
    out
}

#[test]
fn x25519_is_rfc_7748() {
    // RFC 7748 §6.1: Alice and Bob's key pairs and their shared secret.
    let alice: [u8; 32] = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let bob: [u8; 32] = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let alice_public = MontgomeryPoint::mul_base_clamped(alice);
    let bob_public = MontgomeryPoint::mul_base_clamped(bob);
    assert_eq!(hex(alice_public.as_bytes()), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    assert_eq!(hex(bob_public.as_bytes()), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    assert_eq!(hex(bob_public.mul_clamped(alice).as_bytes()), shared);
    assert_eq!(hex(alice_public.mul_clamped(bob).as_bytes()), shared);
    // RFC 7748 §5.2, the first test vector (an arbitrary u-coordinate).
    let scalar: [u8; 32] = unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    let u: [u8; 32] = unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    assert_eq!(
        hex(MontgomeryPoint(u).mul_clamped(scalar).as_bytes()),
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
    );
}

#[test]
fn a_key_pair_and_a_sealed_message_are_what_3_6_and_3_7_say() {
    let root = [0x42u8; 32];
    let keys = UserKeys::derive(&RootSecret::from_bytes(root));

    // §3.6 with the literal label.
    let secret = derive(&root, b"coffer/v1/user-x25519");
    let public = MontgomeryPoint::mul_base_clamped(secret).to_bytes();
    assert_eq!(keys.public_key(), public);

    // §3.7 with the literal labels.
    let ephemeral = [7u8; 32];
    let sealed = seal_to(&public, b"space s1 epoch 2", b"a new space key", ephemeral).unwrap();
    let ephemeral_public = MontgomeryPoint::mul_base_clamped(ephemeral).to_bytes();
    let shared = MontgomeryPoint(public).mul_clamped(ephemeral).to_bytes();
    let key = derive(&[shared, ephemeral_public, public].concat(), b"coffer/v1/sealed-to");
    let mut aad = b"coffer/v1/sealed-to".to_vec();
    aad.extend_from_slice(&16u32.to_be_bytes());
    aad.extend_from_slice(b"space s1 epoch 2");
    let body = Aes256Gcm::new(&key.into())
        .encrypt(&Nonce::from([0u8; 12]), Payload { msg: b"a new space key", aad: &aad })
        .unwrap();
    let mut expected = vec![0x01];
    expected.extend_from_slice(&ephemeral_public);
    expected.extend(body);
    assert_eq!(sealed, expected);
    assert_eq!(keys.open(b"space s1 epoch 2", &sealed).unwrap(), b"a new space key");

    // Pinned: a change to the format is a visible diff here.
    assert_eq!(hex(&public), "44816322c81f78478431cb11bbc910aa25936bb2a680cf7134832dc20753a67d");
    assert_eq!(
        hex(&sealed),
        "0113be4feaeaf204c7fd3358fc9c00721881d174278128227ec674f37f7fe97b6d21ef33dd94fbf1e59130d084cf522c249addf1ee33e08afd6db7205e0fadda"
    );
}

#[test]
fn a_proof_of_the_root_is_what_3_9_says() {
    use coffer_core::account::{LoginChallenge, login_message};
    use coffer_core::identity::ServerKeys;
    use hmac::{Hmac, Mac};

    let user = UserKeys::derive(&RootSecret::from_bytes([0x42; 32]));
    let server_secret = [0x24u8; 32];
    let server = ServerKeys::derive(&server_secret);
    // The accelerator's pair, with the literal label.
    let server_x = derive(&server_secret, b"coffer/v1/server-x25519");
    assert_eq!(server.public_key(), MontgomeryPoint::mul_base_clamped(server_x).to_bytes());

    let login = LoginChallenge {
        origin: "https://coffer.example",
        challenge_id: "ch_01",
        username: "ada",
        challenge: &[0x61; 32],
    };
    let proof = user.root_proof(&server.public_key(), &login).unwrap();
    let shared = MontgomeryPoint(user.public_key()).mul_clamped(server_x).to_bytes();
    let key = derive(&[shared, user.public_key(), server.public_key()].concat(), b"coffer/v1/root-proof");
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&key).unwrap();
    mac.update(b"coffer/v1/root-proof");
    mac.update(&login_message(&login));
    let expected: [u8; 32] = mac.finalize().into_bytes().into();
    assert_eq!(proof, expected);
    assert!(server.check_root_proof(&user.public_key(), &login, &proof));

    // Pinned: a change to the format is a visible diff here.
    assert_eq!(hex(&proof), "9bf91a24e7e04d27ad6a0c605eadad85011d388b4b55a4f57e6a1e8f611fe504");
}
