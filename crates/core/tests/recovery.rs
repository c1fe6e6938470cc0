//! SPEC.md §3.8 (recovery codes): a code and its keys re-derived from the SPEC's
//! text — the checksum, the base32 digits and the key in the password key's place —
//! and pinned.

use coffer_core::account::{LoginChallenge, PasswordKey, RootSecret, verify_login};
use coffer_core::recovery::RecoveryCode;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

#[test]
fn a_code_and_its_keys_are_what_3_8_says() {
    let secret: [u8; 20] = core::array::from_fn(|i| i as u8);
    let code = RecoveryCode::from_bytes(secret);

    // 160 bits of secret, 20 of checksum, 36 Crockford digits in groups of four.
    let digest = Sha256::digest([&b"coffer/v1/recovery-check"[..], &secret].concat());
    let mut bits: Vec<bool> = secret.iter().flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1)).collect();
    bits.extend(digest[..3].iter().flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1)).take(20));
    let alphabet = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let digits: String =
        bits.chunks(5).map(|c| char::from(alphabet[c.iter().fold(0usize, |n, &b| n * 2 + usize::from(b))])).collect();
    let grouped: Vec<String> = digits.as_bytes().chunks(4).map(|g| String::from_utf8(g.to_vec()).unwrap()).collect();
    assert_eq!(*code.encode(), grouped.join("-"));

    // rk = derive(secret, "coffer/v1/recovery-key"), in the password key's place.
    let mut rk = [0u8; 32];
    Hkdf::<Sha256>::new(None, &secret).expand(b"coffer/v1/recovery-key", &mut rk).unwrap();
    let expected = PasswordKey::from_bytes(rk);
    assert_eq!(code.key().login_key().public_key(), expected.login_key().public_key());
    let root = RootSecret::from_bytes([9; 32]);
    let wrapped = code.key().wrap_key().wrap(&root, "ada", [3; 12]);
    assert_eq!(expected.wrap_key().unwrap("ada", &wrapped).unwrap().as_bytes(), root.as_bytes());
    let login =
        LoginChallenge { origin: "https://coffer.example", challenge_id: "c", username: "ada", challenge: &[1; 32] };
    let signature = code.key().login_key().sign_challenge(&login);
    verify_login(&expected.login_key().public_key(), &login, &signature).unwrap();

    // Pinned: a change to the format is a visible diff here.
    assert_eq!(*code.encode(), "000G-40R4-0M30-E209-185G-R38E-1W81-24GK-GCHD");
}
