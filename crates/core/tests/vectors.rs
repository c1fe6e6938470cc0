//! Format test vectors (SPEC.md, "Test vectors").
//!
//! Every file in `tests/vectors/` is a vector: a `#` comment saying what it shows,
//! then `key: value` lines — `kind`, `expect` (`ok`, or the exact error variant the
//! core must return, e.g. `Decrypt` or `UnknownVersion(2)`), the inputs and the
//! expected outputs, bytes in lowercase hex, text verbatim. Files named `fail_*` must
//! fail; every other file must succeed. The committed files are the source of truth:
//! `every_vector` checks each against the core *and* against `common::spec`, an
//! independent re-implementation of SPEC.md. `regenerate` (ignored) rewrites them:
//!
//! ```text
//! cargo test -p coffer-core --test vectors -- --ignored regenerate
//! ```
//!
//! `known_answers` checks the primitives themselves against their standards' own
//! published vectors (RFC 5869, RFC 4231, RFC 8032, RFC 9106, the GCM specification).

mod common;

use coffer_core::Coded;
use coffer_core::account::{
    self, AccountError, KdfParams, LoginChallenge, PasswordKey, RootSecret, check_public_key, derive_password_key,
    verify_login,
};
use coffer_core::b64;
use coffer_core::kv::{KvError, KvKeys, KvScope};
use coffer_core::proto::KvValue;
use coffer_core::validate;
use common::{Gen, Vector, head, hex, spec, unhex, unhex_array, vectors_dir};

// ---------------------------------------------------------------------------------
// Checking
// ---------------------------------------------------------------------------------

const COMMON_KEYS: &[&str] = &["kind", "expect", "code"];

fn allow(v: &Vector, keys: &[&str]) {
    for (key, _) in &v.fields {
        assert!(
            COMMON_KEYS.contains(&key.as_str()) || keys.contains(&key.as_str()),
            "{}: unexpected field {key}",
            v.name
        );
    }
}

/// Compares an outcome with the vector's `expect` (and `code`, for failures).
fn outcome<E: std::fmt::Debug>(v: &Vector, result: Result<(), E>, code: impl Fn(&E) -> &'static str) {
    let expect = v.get("expect");
    match result {
        Ok(()) => assert_eq!(expect, "ok", "{}: succeeded but should fail with {expect}", v.name),
        Err(e) => {
            assert_eq!(format!("{e:?}"), expect, "{}: wrong outcome", v.name);
            assert_eq!(code(&e), v.get("code"), "{}: wrong error code", v.name);
        }
    }
}

fn kdf_params(v: &Vector) -> KdfParams {
    KdfParams {
        alg: v.get("alg").to_owned(),
        mem_kib: v.u32("mem_kib"),
        iterations: v.u32("iterations"),
        parallelism: v.u32("parallelism"),
    }
}

fn scope(v: &Vector) -> KvScope<'_> {
    KvScope { user_id: v.get("user_id"), collection: v.get("collection"), id: v.get("id") }
}

fn kv_keys(v: &Vector) -> KvKeys {
    KvKeys::derive(&RootSecret::from_bytes(v.array("root")))
}

/// The full account chain: password → password key → login key, signature, wrap key,
/// wrapped root.
fn check_account(v: &Vector) {
    allow(
        v,
        &[
            "password",
            "salt",
            "alg",
            "mem_kib",
            "iterations",
            "parallelism",
            "username",
            "root",
            "nonce",
            "origin",
            "challenge_id",
            "challenge",
            "password_key",
            "login_seed",
            "login_public_key",
            "login_message",
            "signature",
            "wrap_key",
            "wrapped_root_aad",
            "wrapped_root",
        ],
    );
    assert_eq!(v.get("expect"), "ok");
    let (password, username) = (v.get("password"), v.get("username"));
    let salt: [u8; 16] = v.array("salt");
    let kdf = kdf_params(v);
    let (root, nonce, challenge) = (v.array::<32>("root"), v.array::<12>("nonce"), v.bytes("challenge"));
    let (origin, challenge_id) = (v.get("origin"), v.get("challenge_id"));
    let signed = LoginChallenge { origin, challenge_id, username, challenge: &challenge };
    let pwk: [u8; 32] = v.array("password_key");
    let seed: [u8; 32] = v.array("login_seed");
    let public: [u8; 32] = v.array("login_public_key");
    let wrap: [u8; 32] = v.array("wrap_key");
    let signature: [u8; 64] = v.array("signature");
    let wrapped = v.bytes("wrapped_root");

    // The document.
    assert_eq!(kdf.alg, "argon2id");
    assert_eq!(spec::argon2id(password.as_bytes(), &salt, kdf.mem_kib, kdf.iterations, kdf.parallelism), pwk);
    assert_eq!(spec::derive(&pwk, spec::LOGIN_KEY), seed);
    assert_eq!(spec::ed25519_public(&seed), public);
    assert_eq!(spec::login_message(origin, challenge_id, username, &challenge), v.bytes("login_message"));
    assert_eq!(spec::ed25519_sign(&seed, &v.bytes("login_message")), signature);
    assert_eq!(spec::derive(&pwk, spec::WRAP_KEY), wrap);
    assert_eq!(spec::wrapped_root_aad(username), v.bytes("wrapped_root_aad"));
    assert_eq!(spec::envelope(0x01, &wrap, &nonce, &v.bytes("wrapped_root_aad"), &root), wrapped);

    // The code.
    let derived = derive_password_key(password, &salt, &kdf).expect("valid params");
    for key in [derived, PasswordKey::from_bytes(pwk)] {
        let login = key.login_key();
        assert_eq!(login.public_key(), public);
        assert_eq!(login.sign_challenge(&signed), signature);
        let wrap_key = key.wrap_key();
        assert_eq!(wrap_key.wrap(&RootSecret::from_bytes(root), username, nonce), wrapped);
        assert_eq!(wrap_key.unwrap(username, &wrapped).expect("unwraps").as_bytes(), &root);
    }
    assert_eq!(account::login_message(&signed), v.bytes("login_message"));
    check_public_key(&public).expect("usable public key");
    verify_login(&public, &signed, &signature).expect("signature verifies");
    validate::username(username).expect("valid username");
}

/// Parameters a client must refuse before running Argon2.
fn check_password_key(v: &Vector) {
    allow(v, &["password", "salt", "alg", "mem_kib", "iterations", "parallelism", "login_public_key"]);
    let kdf = kdf_params(v);
    let result = derive_password_key(v.get("password"), &v.array("salt"), &kdf);
    assert_eq!(kdf.check().is_ok(), result.is_ok(), "{}: check() disagrees with derivation", v.name);
    let result = result.map(|key| {
        assert_eq!(hex(key.login_key().public_key()), v.get("login_public_key"));
    });
    outcome(v, result, |e: &AccountError| e.code().as_str());
}

/// What the accelerator checks at login.
fn check_login_verify(v: &Vector) {
    allow(v, &["login_public_key", "origin", "challenge_id", "username", "challenge", "signature"]);
    let challenge = v.bytes("challenge");
    let signed = LoginChallenge {
        origin: v.get("origin"),
        challenge_id: v.get("challenge_id"),
        username: v.get("username"),
        challenge: &challenge,
    };
    let result = verify_login(&v.array("login_public_key"), &signed, &v.array("signature"));
    outcome(v, result, |e: &AccountError| e.code().as_str());
}

/// Opening a wrapped root secret, from a password or from a password key.
fn check_unwrap_root(v: &Vector) {
    allow(
        v,
        &[
            "password",
            "salt",
            "alg",
            "mem_kib",
            "iterations",
            "parallelism",
            "password_key",
            "username",
            "wrapped_root",
            "root",
        ],
    );
    let key = match v.opt("password_key") {
        Some(pwk) => PasswordKey::from_bytes(unhex_array(pwk)),
        None => derive_password_key(v.get("password"), &v.array("salt"), &kdf_params(v)).expect("valid params"),
    };
    let result = key.wrap_key().unwrap(v.get("username"), &v.bytes("wrapped_root")).map(|root| {
        assert_eq!(hex(root.as_bytes()), v.get("root"), "{}: wrong root", v.name);
    });
    outcome(v, result, |e: &AccountError| e.code().as_str());
}

fn check_kv_sealed(v: &Vector) {
    allow(v, &["root", "user_id", "collection", "id", "json", "nonce", "seal_key", "aad", "envelope"]);
    let (keys, s, envelope) = (kv_keys(v), scope(v), v.bytes("envelope"));
    if v.get("expect") == "ok" {
        let (json, nonce, seal_key) = (v.get("json"), v.array::<12>("nonce"), v.array::<32>("seal_key"));
        let (user_id, collection, id) = (s.user_id, s.collection, s.id);
        // The document.
        assert_eq!(spec::derive(&v.array::<32>("root"), spec::KV_SEAL), seal_key);
        assert_eq!(spec::kv_aad(user_id, collection, id), v.bytes("aad"));
        assert_eq!(spec::envelope(0x01, &seal_key, &nonce, &v.bytes("aad"), json.as_bytes()), envelope);
        // The code.
        validate::any_collection(collection).expect("valid collection");
        validate::id(id).expect("valid id");
        validate::value_json(json).expect("valid value");
        assert_eq!(keys.seal(&s, json, nonce), envelope);
        let wire = keys.encode(&s, json, true, nonce);
        assert_eq!(wire, KvValue::Sealed { envelope: b64::encode(&envelope) });
        assert_eq!(keys.decode(&s, &wire).as_deref(), Ok(json));
    }
    let opened = keys.open(&s, &envelope);
    let decoded = keys.decode(&s, &KvValue::Sealed { envelope: b64::encode(&envelope) });
    assert_eq!(opened, decoded, "{}: open and decode disagree", v.name);
    if let Ok(json) = &opened {
        assert_eq!(json, v.get("json"));
    }
    outcome(v, opened.map(drop), |e: &KvError| e.code().as_str());
}

fn check_kv_plain(v: &Vector) {
    allow(v, &["root", "user_id", "collection", "id", "json", "mac_key", "mac_input", "mac"]);
    let (keys, s, json, mac) = (kv_keys(v), scope(v), v.get("json"), v.bytes("mac"));
    if v.get("expect") == "ok" {
        let mac_key = v.array::<32>("mac_key");
        assert_eq!(spec::derive(&v.array::<32>("root"), spec::KV_MAC), mac_key);
        assert_eq!(spec::kv_plain_input(s.user_id, s.collection, s.id, json), v.bytes("mac_input"));
        assert_eq!(spec::hmac_sha256(&mac_key, &[&v.bytes("mac_input")]).to_vec(), mac);
        assert_eq!(keys.mac_plain(&s, json).to_vec(), mac);
        let wire = keys.encode(&s, json, false, [0; 12]);
        assert_eq!(wire, KvValue::Plain { json: json.to_owned(), mac: b64::encode(&mac) });
    }
    let verified = keys.verify_plain(&s, json, &mac);
    let decoded = keys.decode(&s, &KvValue::Plain { json: json.to_owned(), mac: b64::encode(&mac) });
    assert_eq!(verified, decoded.as_ref().map(drop).map_err(Clone::clone), "{}: verify and decode disagree", v.name);
    outcome(v, verified, |e: &KvError| e.code().as_str());
}

/// A kv value as it travels (`KvValue` JSON), decoded by the reader.
fn check_kv_value(v: &Vector) {
    allow(v, &["root", "user_id", "collection", "id", "value", "json"]);
    let value: KvValue = serde_json::from_str(v.get("value")).expect("wire JSON parses");
    let result = kv_keys(v).decode(&scope(v), &value).map(|json| {
        assert_eq!(json, v.get("json"), "{}: wrong JSON", v.name);
    });
    outcome(v, result, |e: &KvError| e.code().as_str());
}

fn check(v: &Vector) {
    let expect = v.get("expect");
    assert_eq!(v.name.starts_with("fail_"), expect != "ok", "{}: fail_ names ⇔ expect ≠ ok", v.name);
    if expect == "ok" {
        assert!(v.opt("code").is_none(), "{}: ok vectors carry no code", v.name);
    }
    match v.get("kind") {
        "account" => check_account(v),
        "password-key" => check_password_key(v),
        "login-verify" => check_login_verify(v),
        "unwrap-root" => check_unwrap_root(v),
        "kv-sealed" => check_kv_sealed(v),
        "kv-plain" => check_kv_plain(v),
        "kv-value" => check_kv_value(v),
        other => panic!("{}: unknown kind {other}", v.name),
    }
}

fn load_all() -> Vec<Vector> {
    let mut files: Vec<_> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_str().unwrap();
            Vector::parse(name, &std::fs::read_to_string(path).unwrap())
        })
        .collect()
}

#[test]
fn every_vector() {
    let vectors = load_all();
    let mut failures = Vec::new();
    for v in &vectors {
        if let Err(panic) = std::panic::catch_unwind(|| check(v)) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {why}", v.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} vectors failed:\n{}", failures.len(), vectors.len(), failures.join("\n"));
    // Every kind has both directions covered, and nothing went missing.
    let count = |kind: &str, ok: bool| {
        vectors.iter().filter(|v| v.get("kind") == kind && (v.get("expect") == "ok") == ok).count()
    };
    for kind in ["account", "kv-sealed", "kv-plain", "kv-value", "login-verify", "unwrap-root"] {
        assert!(count(kind, true) > 0, "no ok vector of kind {kind}");
    }
    for kind in ["password-key", "kv-sealed", "kv-plain", "kv-value", "login-verify", "unwrap-root"] {
        assert!(count(kind, false) > 0, "no fail vector of kind {kind}");
    }
    assert!(vectors.len() >= 50, "only {} vectors", vectors.len());
}

// ---------------------------------------------------------------------------------
// Independent published vectors for the primitives the formats are built from
// ---------------------------------------------------------------------------------

#[test]
fn known_answers() {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use hkdf::Hkdf;
    use sha2::Sha256;

    // RFC 5869 A.1 (test case 1) and A.3 (test case 3: empty salt and info, as SPEC.md's
    // derivations use an empty salt). Both the hkdf crate the core uses and the spec's
    // own HKDF written from the RFC must agree.
    let ikm = [0x0b; 22];
    let salt = unhex("000102030405060708090a0b0c");
    let info = unhex("f0f1f2f3f4f5f6f7f8f9");
    let okm1 = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";
    let okm3 = "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8";
    let mut out = [0u8; 42];
    Hkdf::<Sha256>::new(Some(&salt), &ikm).expand(&info, &mut out).unwrap();
    assert_eq!(hex(out), okm1);
    Hkdf::<Sha256>::new(None, &ikm).expand(&[], &mut out).unwrap();
    assert_eq!(hex(out), okm3);
    assert_eq!(hex(spec::hkdf_sha256(&salt, &ikm, &info, 42)), okm1);
    assert_eq!(hex(spec::hkdf_sha256(&[], &ikm, &[], 42)), okm3);
    // `None` and an explicit 32 zero bytes are the same salt (RFC 5869 §2.2).
    Hkdf::<Sha256>::new(Some(&[0; 32]), &ikm).expand(&[], &mut out).unwrap();
    assert_eq!(hex(out), okm3);

    // RFC 4231 test cases 1 and 2 (HMAC-SHA256).
    assert_eq!(
        hex(spec::hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    );
    assert_eq!(
        hex(spec::hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );

    // The GCM specification (McGrew & Viega), test case 16: AES-256, 96-bit IV, AAD.
    let key: [u8; 32] = unhex_array("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    let iv: [u8; 12] = unhex_array("cafebabefacedbaddecaf888");
    let plaintext = unhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let sealed = spec::aes_gcm_seal(&key, &iv, &aad, &plaintext);
    assert_eq!(
        hex(&sealed),
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662\
         76fc6ece0f4e1768cddf8853bb2d551b"
    );
    let cipher = aes_gcm::Aes256Gcm::new(&key.into());
    let opened = cipher.decrypt(&iv.into(), Payload { msg: &sealed, aad: &aad }).unwrap();
    assert_eq!(opened, plaintext);
    // Test case 13: all-zero key and IV, nothing to encrypt: the bare tag.
    assert_eq!(hex(spec::aes_gcm_seal(&[0; 32], &[0; 12], &[], &[])), "530f8afbc74536b9a963b4f1c4cb738b");

    // RFC 8032 §7.1, TEST 1 (Ed25519, empty message).
    let seed: [u8; 32] = unhex_array("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    assert_eq!(hex(spec::ed25519_public(&seed)), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    assert_eq!(
        hex(spec::ed25519_sign(&seed, b"")),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );

    // RFC 9106 §5.3 (Argon2id v0x13 with secret and associated data). The core never
    // uses a secret or AD, but this pins the crate's Argon2id itself.
    let params = argon2::ParamsBuilder::new()
        .m_cost(32)
        .t_cost(3)
        .p_cost(4)
        .data(argon2::AssociatedData::new(&[0x04; 12]).unwrap())
        .output_len(32)
        .build()
        .unwrap();
    let argon =
        argon2::Argon2::new_with_secret(&[0x03; 8], argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .unwrap();
    let mut tag = [0u8; 32];
    argon.hash_password_into(&[0x01; 32], &[0x02; 16], &mut tag).unwrap();
    assert_eq!(hex(tag), "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659");
}

// ---------------------------------------------------------------------------------
// Generating
// ---------------------------------------------------------------------------------

const GENERATED: &str = "Generated by `cargo test -p coffer-core --test vectors -- --ignored regenerate`;\nthe committed file is the source of truth (SPEC.md, \"Test vectors\").";

const USER: &str = "usr_7f3a9c21";
const PASSWORD: &str = "correct horse battery staple";
const SALT: [u8; 16] = *b"coffer-salt-0001";
const CHALLENGE: [u8; 32] = *b"a fresh 32-byte login challenge!";
/// The accelerator's origin the vectors' logins are signed for.
const ORIGIN: &str = "https://coffer.example";
/// The vectors' challenge id.
const CHALLENGE_ID: &str = "Y2hhbGxlbmdlLWlkLTAx";

/// The login the vectors sign as `username`.
fn signed(username: &str) -> LoginChallenge<'_> {
    LoginChallenge { origin: ORIGIN, challenge_id: CHALLENGE_ID, username, challenge: &CHALLENGE }
}

fn fill(len: usize, start: u8, step: u8) -> Vec<u8> {
    (0..len).map(|i| start.wrapping_add(step.wrapping_mul(i as u8))).collect()
}

fn root_a() -> [u8; 32] {
    fill(32, 0x00, 1).try_into().unwrap()
}

fn root_b() -> [u8; 32] {
    fill(32, 0xa0, 3).try_into().unwrap()
}

fn nonce(n: u8) -> [u8; 12] {
    fill(12, n.wrapping_mul(0x11), 0x1d).try_into().unwrap()
}

fn flip(bytes: &[u8], index: usize, bit: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= 1 << bit;
    out
}

fn push_scope(v: &mut Vector, root: &[u8; 32], user: &str, collection: &str, id: &str) {
    v.push_hex("root", root).push("user_id", user).push("collection", collection).push("id", id);
}

fn kdf_fields(v: &mut Vector, kdf: &KdfParams) {
    v.push("alg", kdf.alg.clone())
        .push("mem_kib", kdf.mem_kib.to_string())
        .push("iterations", kdf.iterations.to_string())
        .push("parallelism", kdf.parallelism.to_string());
}

fn fast_kdf() -> KdfParams {
    KdfParams { mem_kib: KdfParams::MIN_MEM_KIB, iterations: 1, parallelism: 1, ..KdfParams::default() }
}

struct Account {
    username: String,
    password_key: [u8; 32],
    public: [u8; 32],
    signature: [u8; 64],
    wrapped: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
fn account(
    g: &mut Gen,
    name: &str,
    comment: &str,
    password: &str,
    salt: [u8; 16],
    kdf: &KdfParams,
    username: &str,
    root: [u8; 32],
    nonce: [u8; 12],
) -> Account {
    let pwk = spec::argon2id(password.as_bytes(), &salt, kdf.mem_kib, kdf.iterations, kdf.parallelism);
    let key = derive_password_key(password, &salt, kdf).unwrap();
    let seed = spec::derive(&pwk, spec::LOGIN_KEY);
    let wrap = spec::derive(&pwk, spec::WRAP_KEY);
    let public = key.login_key().public_key();
    let signature = key.login_key().sign_challenge(&signed(username));
    let wrapped = key.wrap_key().wrap(&RootSecret::from_bytes(root), username, nonce);
    let mut v = head("account", "ok", "");
    v.push("password", password).push_hex("salt", salt);
    kdf_fields(&mut v, kdf);
    v.push("username", username)
        .push_hex("root", root)
        .push_hex("nonce", nonce)
        .push("origin", ORIGIN)
        .push("challenge_id", CHALLENGE_ID)
        .push_hex("challenge", CHALLENGE)
        .push_hex("password_key", pwk)
        .push_hex("login_seed", seed)
        .push_hex("login_public_key", public)
        .push_hex("login_message", account::login_message(&signed(username)))
        .push_hex("signature", signature)
        .push_hex("wrap_key", wrap)
        .push_hex("wrapped_root_aad", spec::wrapped_root_aad(username))
        .push_hex("wrapped_root", &wrapped);
    g.emit(name, comment, v);
    Account { username: username.to_owned(), password_key: pwk, public, signature, wrapped }
}

fn gen_account(g: &mut Gen) {
    let kdf = fast_kdf();
    let ada = account(
        g,
        "account_ascii",
        "The whole account chain with the smallest parameters a client accepts\n(mem_kib 8192, iterations 1, parallelism 1).",
        PASSWORD,
        SALT,
        &kdf,
        "ada",
        root_a(),
        nonce(1),
    );
    let kdf2 = KdfParams { iterations: 2, parallelism: 2, ..fast_kdf() };
    account(
        g,
        "account_unicode",
        "A non-ASCII password (UTF-8 bytes go to Argon2id as they are), 2 passes, 2 lanes,\nand a username using every allowed punctuation character.",
        "pässwörd 🔑 密码",
        *b"\x00\x01\x02\x03\x04\x05\x06\x07\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff",
        &kdf2,
        "Ada.Lovelace_1815+test@example-org",
        root_b(),
        nonce(2),
    );

    // Login verification (the accelerator's side).
    let login = |expect: &str, public: &[u8], signed: LoginChallenge<'_>, signature: &[u8]| {
        let mut v = head("login-verify", expect, "Unauthorized");
        v.push_hex("login_public_key", public)
            .push("origin", signed.origin)
            .push("challenge_id", signed.challenge_id)
            .push("username", signed.username)
            .push_hex("challenge", signed.challenge)
            .push_hex("signature", signature);
        v
    };
    g.emit(
        "login_verify",
        "account_ascii's signature, as the accelerator checks it.",
        login("ok", &ada.public, signed(&ada.username), &ada.signature),
    );
    g.emit(
        "fail_login_bad_signature",
        "One bit of the signature flipped.",
        login("BadSignature", &ada.public, signed(&ada.username), &flip(&ada.signature, 10, 3)),
    );
    g.emit(
        "fail_login_wrong_username",
        "The username is bound into the signed message: ada's signature does not log in \"bob\".",
        login("BadSignature", &ada.public, signed("bob"), &ada.signature),
    );
    g.emit(
        "fail_login_wrong_challenge",
        "A signature over another challenge (replay).",
        login(
            "BadSignature",
            &ada.public,
            LoginChallenge { challenge: &flip(&CHALLENGE, 31, 0), ..signed(&ada.username) },
            &ada.signature,
        ),
    );
    g.emit(
        "fail_login_wrong_origin",
        "The origin is bound into the signed message: a server that relays another's challenge\nto the device gets a signature for its own origin, which the other refuses.",
        login(
            "BadSignature",
            &ada.public,
            LoginChallenge { origin: "https://relay.example", ..signed(&ada.username) },
            &ada.signature,
        ),
    );
    g.emit(
        "fail_login_wrong_challenge_id",
        "The challenge id is bound into the signed message: the signature does not answer\nanother challenge with the same bytes.",
        login(
            "BadSignature",
            &ada.public,
            LoginChallenge { challenge_id: "b3RoZXItY2hhbGxlbmdl", ..signed(&ada.username) },
            &ada.signature,
        ),
    );
    let other = derive_password_key("not the password", &SALT, &kdf).unwrap().login_key().public_key();
    g.emit(
        "fail_login_wrong_password",
        "The public key of another password checks ada's signature.",
        login("BadSignature", &other, signed(&ada.username), &ada.signature),
    );
    // s + L: the same signature made malleable; strict verification refuses it.
    let mut malleable = ada.signature;
    let ell = unhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = malleable[32 + i] as u16 + ell[i] as u16 + carry;
        malleable[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    g.emit(
        "fail_login_noncanonical_signature",
        "The signature's scalar S replaced by S + L (non-canonical): refused, no malleability.",
        login("BadSignature", &ada.public, signed(&ada.username), &malleable),
    );
    let mut identity = [0u8; 32];
    identity[0] = 1;
    g.emit(
        "fail_login_small_order_key",
        "The identity point as public key (small order): refused whatever the signature.",
        login("BadSignature", &identity, signed(&ada.username), &ada.signature),
    );

    // Refused KDF parameters.
    let params = |name: &str, comment: &str, kdf: KdfParams| {
        let mut v = head("password-key", "KdfParams", "InvalidInput");
        v.push("password", PASSWORD).push_hex("salt", SALT);
        kdf_fields(&mut v, &kdf);
        (name.to_owned(), comment.to_owned(), v)
    };
    for (name, comment, v) in [
        params(
            "fail_kdf_mem_too_small",
            "mem_kib one below MIN_MEM_KIB (8192).",
            KdfParams { mem_kib: 8191, ..fast_kdf() },
        ),
        params(
            "fail_kdf_mem_too_large",
            "mem_kib one above MAX_MEM_KIB (1048576).",
            KdfParams { mem_kib: 1024 * 1024 + 1, ..fast_kdf() },
        ),
        params("fail_kdf_iterations_zero", "iterations must be 1..=16.", KdfParams { iterations: 0, ..fast_kdf() }),
        params(
            "fail_kdf_iterations_too_many",
            "iterations must be 1..=16.",
            KdfParams { iterations: 17, ..fast_kdf() },
        ),
        params("fail_kdf_parallelism_zero", "parallelism must be 1..=16.", KdfParams { parallelism: 0, ..fast_kdf() }),
        params(
            "fail_kdf_parallelism_too_many",
            "parallelism must be 1..=16.",
            KdfParams { parallelism: 17, ..fast_kdf() },
        ),
        params(
            "fail_kdf_unknown_alg",
            "Only \"argon2id\" is known; anything else is refused, not guessed at.",
            KdfParams { alg: "argon2i".into(), ..fast_kdf() },
        ),
    ] {
        g.emit(&name, &comment, v);
    }

    // Unwrapping the root secret.
    let unwrap = |expect: &str, code: &str, username: &str, wrapped: &[u8]| {
        let mut v = head("unwrap-root", expect, code);
        v.push_hex("password_key", ada.password_key).push("username", username).push_hex("wrapped_root", wrapped);
        if expect == "ok" {
            v.push_hex("root", root_a());
        }
        v
    };
    g.emit(
        "unwrap_root",
        "account_ascii's wrapped root, opened from its password key.",
        unwrap("ok", "", "ada", &ada.wrapped),
    );
    let mut v = head("unwrap-root", "Unwrap", "Integrity");
    v.push("password", "correct horse battery stapler").push_hex("salt", SALT);
    kdf_fields(&mut v, &kdf);
    v.push("username", "ada").push_hex("wrapped_root", &ada.wrapped);
    g.emit("fail_root_wrong_password", "account_ascii's wrapped root, opened with a wrong password.", v);
    for (name, comment, expect, code, username, wrapped) in [
        (
            "fail_root_wrong_username",
            "The username is in the AAD: ada's wrapped root does not open as eve's.",
            "Unwrap",
            "Integrity",
            "eve",
            ada.wrapped.clone(),
        ),
        (
            "fail_root_nonce_bitflip",
            "One bit of the nonce flipped.",
            "Unwrap",
            "Integrity",
            "ada",
            flip(&ada.wrapped, 1, 0),
        ),
        (
            "fail_root_ciphertext_bitflip",
            "One bit of the sealed root flipped.",
            "Unwrap",
            "Integrity",
            "ada",
            flip(&ada.wrapped, 20, 5),
        ),
        (
            "fail_root_tag_bitflip",
            "One bit of the tag flipped.",
            "Unwrap",
            "Integrity",
            "ada",
            flip(&ada.wrapped, 60, 7),
        ),
        (
            "fail_root_unknown_version",
            "Version byte 0x02: refused before anything else is read.",
            "UnknownVersion(2)",
            "InvalidInput",
            "ada",
            [&[2u8][..], &ada.wrapped[1..]].concat(),
        ),
        (
            "fail_root_version_zero",
            "Version byte 0x00.",
            "UnknownVersion(0)",
            "InvalidInput",
            "ada",
            flip(&ada.wrapped, 0, 0),
        ),
        ("fail_root_truncated", "40 of 61 bytes.", "Malformed", "InvalidInput", "ada", ada.wrapped[..40].to_vec()),
        (
            "fail_root_truncated_tag",
            "The last byte of the tag missing: the length is checked first.",
            "Malformed",
            "InvalidInput",
            "ada",
            ada.wrapped[..60].to_vec(),
        ),
        (
            "fail_root_trailing_byte",
            "One byte too many.",
            "Malformed",
            "InvalidInput",
            "ada",
            [ada.wrapped.as_slice(), &[0]].concat(),
        ),
        ("fail_root_empty", "No bytes at all.", "Malformed", "InvalidInput", "ada", Vec::new()),
    ] {
        g.emit(name, comment, unwrap(expect, code, username, &wrapped));
    }
}

struct Sealed {
    envelope: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
fn sealed_ok(
    g: &mut Gen,
    name: &str,
    comment: &str,
    root: [u8; 32],
    user: &str,
    collection: &str,
    id: &str,
    json: &str,
    n: [u8; 12],
) -> Sealed {
    let keys = KvKeys::derive(&RootSecret::from_bytes(root));
    let s = KvScope { user_id: user, collection, id };
    let envelope = keys.seal(&s, json, n);
    let mut v = head("kv-sealed", "ok", "");
    push_scope(&mut v, &root, user, collection, id);
    v.push("json", json)
        .push_hex("nonce", n)
        .push_hex("seal_key", spec::derive(&root, spec::KV_SEAL))
        .push_hex("aad", spec::kv_aad(user, collection, id))
        .push_hex("envelope", &envelope);
    g.emit(name, comment, v);
    Sealed { envelope }
}

fn sealed_fail(
    g: &mut Gen,
    name: &str,
    comment: &str,
    expect: &str,
    root: [u8; 32],
    scope: (&str, &str, &str),
    envelope: &[u8],
) {
    let mut v = head("kv-sealed", expect, "Integrity");
    push_scope(&mut v, &root, scope.0, scope.1, scope.2);
    v.push_hex("envelope", envelope);
    g.emit(name, comment, v);
}

fn large_json() -> String {
    let items: Vec<String> = (0..60)
        .map(|i| {
            format!(
                r#"{{"n":{i},"title":"Item {i}: water the plants","done":{},"tags":["home","weekly"]}}"#,
                i % 3 == 0
            )
        })
        .collect();
    format!(r#"{{"items":[{}]}}"#, items.join(","))
}

fn gen_kv(g: &mut Gen) {
    let todo = r#"{"title":"Ship docs","done":false}"#;
    let a = sealed_ok(
        g,
        "kv_sealed_ascii",
        "A small JSON object in an ordinary collection.",
        root_a(),
        USER,
        "todos",
        "t1",
        todo,
        nonce(3),
    );
    sealed_ok(
        g,
        "kv_sealed_unicode",
        "Non-ASCII collection, id and value: names are framed as their UTF-8 bytes.",
        root_a(),
        USER,
        "日記",
        "🍵 früh/1",
        r#"{"note":"Grüße, 世界 🌍","emoji":"👩‍💻"}"#,
        nonce(4),
    );
    sealed_ok(
        g,
        "kv_sealed_empty_string",
        "The JSON text \"\" (an empty string): 2 bytes of plaintext.",
        root_a(),
        USER,
        "settings",
        "theme",
        r#""""#,
        nonce(5),
    );
    sealed_ok(g, "kv_sealed_null", "The JSON text null.", root_a(), USER, "settings", "cleared", "null", nonce(6));
    sealed_ok(
        g,
        "kv_sealed_reserved_collection",
        "A reserved ($-prefixed) collection, as the SDK uses for its own records.",
        root_a(),
        USER,
        "$spaces",
        "sp_01",
        r#"{"spaceKey":"q0vN4bQ6Qh3Dxwz2pS1T1m7Zq9bJk2x0d3Yc8r5tE1A","name":"Family"}"#,
        nonce(7),
    );
    let large = large_json();
    assert!(large.len() > 4096, "{}", large.len());
    sealed_ok(
        g,
        "kv_sealed_large",
        "A value of a few KiB (several AES blocks, one GCM message).",
        root_a(),
        USER,
        "todos",
        "bulk",
        &large,
        nonce(8),
    );
    let long_collection = "c".repeat(validate::MAX_NAME_BYTES);
    let long_id = "é".repeat(validate::MAX_NAME_BYTES / 2);
    sealed_ok(
        g,
        "kv_sealed_longest_names",
        "Collection and id at MAX_NAME_BYTES (256 bytes each; the id is 128 × U+00E9).",
        root_a(),
        USER,
        &long_collection,
        &long_id,
        "[1,2,3]",
        nonce(9),
    );
    sealed_ok(
        g,
        "kv_sealed_other_root",
        "Another account's root: same inputs, different keys.",
        root_b(),
        "usr_other",
        "todos",
        "t1",
        todo,
        nonce(3),
    );

    let env = &a.envelope;
    let here = (USER, "todos", "t1");
    for (name, comment, expect, root, scope, envelope) in [
        (
            "fail_kv_sealed_moved_id",
            "kv_sealed_ascii presented as another id.",
            "Decrypt",
            root_a(),
            (USER, "todos", "t2"),
            env.clone(),
        ),
        (
            "fail_kv_sealed_moved_collection",
            "kv_sealed_ascii presented in another collection.",
            "Decrypt",
            root_a(),
            (USER, "archive", "t1"),
            env.clone(),
        ),
        (
            "fail_kv_sealed_moved_user",
            "kv_sealed_ascii presented as another user's (same key, to isolate the AAD).",
            "Decrypt",
            root_a(),
            ("usr_other", "todos", "t1"),
            env.clone(),
        ),
        (
            "fail_kv_sealed_shifted_boundary",
            "Same concatenated name bytes, different split (\"todos\"+\"t1\" vs \"todost\"+\"1\"):\nlength prefixes keep the fields apart.",
            "Decrypt",
            root_a(),
            (USER, "todost", "1"),
            env.clone(),
        ),
        (
            "fail_kv_sealed_wrong_key",
            "kv_sealed_ascii opened under another account's root.",
            "Decrypt",
            root_b(),
            here,
            env.clone(),
        ),
        ("fail_kv_sealed_nonce_bitflip", "One bit of the nonce flipped.", "Decrypt", root_a(), here, flip(env, 1, 0)),
        (
            "fail_kv_sealed_ciphertext_bitflip",
            "One bit of the ciphertext flipped.",
            "Decrypt",
            root_a(),
            here,
            flip(env, 13, 7),
        ),
        (
            "fail_kv_sealed_tag_bitflip",
            "One bit of the tag flipped.",
            "Decrypt",
            root_a(),
            here,
            flip(env, env.len() - 1, 0),
        ),
        (
            "fail_kv_sealed_truncated_tag",
            "The last byte missing (still long enough to try).",
            "Decrypt",
            root_a(),
            here,
            env[..env.len() - 1].to_vec(),
        ),
        (
            "fail_kv_sealed_trailing_byte",
            "One byte appended.",
            "Decrypt",
            root_a(),
            here,
            [env.as_slice(), &[0]].concat(),
        ),
        (
            "fail_kv_sealed_truncated",
            "28 bytes: shorter than version + nonce + tag (29).",
            "Malformed",
            root_a(),
            here,
            env[..28].to_vec(),
        ),
        ("fail_kv_sealed_version_only", "Just the version byte.", "Malformed", root_a(), here, env[..1].to_vec()),
        ("fail_kv_sealed_empty", "No bytes at all.", "Malformed", root_a(), here, Vec::new()),
        (
            "fail_kv_sealed_unknown_version",
            "Version byte 0x02, otherwise kv_sealed_ascii: refused as unknown, not tried.",
            "UnknownVersion(2)",
            root_a(),
            here,
            [&[2u8][..], &env[1..]].concat(),
        ),
        (
            "fail_kv_sealed_version_zero",
            "Version byte 0x00.",
            "UnknownVersion(0)",
            root_a(),
            here,
            [&[0u8][..], &env[1..]].concat(),
        ),
        (
            "fail_kv_sealed_version_only_unknown",
            "A lone unknown version byte: the version is judged first.",
            "UnknownVersion(255)",
            root_a(),
            here,
            vec![0xff],
        ),
    ] {
        sealed_fail(g, name, comment, expect, root, scope, &envelope);
    }
    // A correctly sealed value that is not UTF-8: authenticates, then refused.
    let key = spec::derive(&root_a(), spec::KV_SEAL);
    let not_utf8 = spec::envelope(1, &key, &nonce(10), &spec::kv_aad(USER, "todos", "t1"), &[0xff, 0xfe, 0x22]);
    sealed_fail(
        g,
        "fail_kv_sealed_not_utf8",
        "Authentic, but the plaintext is not UTF-8 text.",
        "NotJson",
        root_a(),
        here,
        &not_utf8,
    );
    // Sealed under the MAC key rather than the seal key.
    let mac_key = spec::derive(&root_a(), spec::KV_MAC);
    let wrong = spec::envelope(1, &mac_key, &nonce(11), &spec::kv_aad(USER, "todos", "t1"), todo.as_bytes());
    sealed_fail(
        g,
        "fail_kv_sealed_under_mac_key",
        "Sealed under the kv MAC key: keys are not interchangeable.",
        "Decrypt",
        root_a(),
        here,
        &wrong,
    );

    // Plain values.
    let plain =
        |g: &mut Gen, name: &str, comment: &str, root: [u8; 32], user: &str, collection: &str, id: &str, json: &str| {
            let keys = KvKeys::derive(&RootSecret::from_bytes(root));
            let mac = keys.mac_plain(&KvScope { user_id: user, collection, id }, json);
            let mut v = head("kv-plain", "ok", "");
            push_scope(&mut v, &root, user, collection, id);
            v.push("json", json)
                .push_hex("mac_key", spec::derive(&root, spec::KV_MAC))
                .push_hex("mac_input", spec::kv_plain_input(user, collection, id, json))
                .push_hex("mac", mac);
            g.emit(name, comment, v);
            mac
        };
    let public = r#"{"title":"Public note","done":true}"#;
    let mac = plain(
        g,
        "kv_plain_ascii",
        "A plain (encrypt: false) value and its MAC.",
        root_a(),
        USER,
        "notes",
        "n1",
        public,
    );
    plain(
        g,
        "kv_plain_unicode",
        "Non-ASCII names and value.",
        root_a(),
        USER,
        "日記",
        "🍵 früh/1",
        r#"{"note":"Grüße, 世界 🌍"}"#,
    );
    plain(g, "kv_plain_empty_string", "The JSON text \"\".", root_a(), USER, "settings", "theme", r#""""#);
    let plain_fail =
        |g: &mut Gen, name: &str, comment: &str, root: [u8; 32], scope: (&str, &str, &str), json: &str, mac: &[u8]| {
            let mut v = head("kv-plain", "BadMac", "Integrity");
            push_scope(&mut v, &root, scope.0, scope.1, scope.2);
            v.push("json", json).push_hex("mac", mac);
            g.emit(name, comment, v);
        };
    let here = (USER, "notes", "n1");
    plain_fail(
        g,
        "fail_kv_plain_forged",
        "kv_plain_ascii's JSON changed (done: false), its MAC kept.",
        root_a(),
        here,
        r#"{"title":"Public note","done":false}"#,
        &mac,
    );
    plain_fail(
        g,
        "fail_kv_plain_reformatted",
        "Equivalent JSON with one more space: the MAC covers the exact text.",
        root_a(),
        here,
        r#"{"title": "Public note","done":true}"#,
        &mac,
    );
    plain_fail(
        g,
        "fail_kv_plain_moved_id",
        "kv_plain_ascii presented as another id.",
        root_a(),
        (USER, "notes", "n2"),
        public,
        &mac,
    );
    plain_fail(
        g,
        "fail_kv_plain_moved_collection",
        "kv_plain_ascii presented in another collection.",
        root_a(),
        (USER, "todos", "n1"),
        public,
        &mac,
    );
    plain_fail(
        g,
        "fail_kv_plain_moved_user",
        "kv_plain_ascii presented as another user's.",
        root_a(),
        ("usr_other", "notes", "n1"),
        public,
        &mac,
    );
    plain_fail(
        g,
        "fail_kv_plain_wrong_key",
        "kv_plain_ascii checked under another account's root.",
        root_b(),
        here,
        public,
        &mac,
    );
    plain_fail(
        g,
        "fail_kv_plain_mac_bitflip",
        "One bit of the MAC flipped.",
        root_a(),
        here,
        public,
        &flip(&mac, 0, 0),
    );
    plain_fail(g, "fail_kv_plain_mac_truncated", "31 of 32 MAC bytes.", root_a(), here, public, &mac[..31]);
    plain_fail(g, "fail_kv_plain_mac_empty", "No MAC at all.", root_a(), here, public, &[]);

    // Values as they travel.
    let wire = |g: &mut Gen,
                name: &str,
                comment: &str,
                expect: &str,
                code: &str,
                value: String,
                json: Option<&str>,
                scope: (&str, &str, &str)| {
        let mut v = head("kv-value", expect, code);
        push_scope(&mut v, &root_a(), scope.0, scope.1, scope.2);
        v.push("value", value);
        if let Some(json) = json {
            v.push("json", json);
        }
        g.emit(name, comment, v);
    };
    let sealed_wire = serde_json::to_string(&KvValue::Sealed { envelope: b64::encode(env) }).unwrap();
    let plain_wire = serde_json::to_string(&KvValue::Plain { json: public.into(), mac: b64::encode(mac) }).unwrap();
    wire(
        g,
        "kv_value_sealed",
        "kv_sealed_ascii as it travels and is stored (KvValue JSON).",
        "ok",
        "",
        sealed_wire.clone(),
        Some(todo),
        (USER, "todos", "t1"),
    );
    wire(
        g,
        "kv_value_plain",
        "kv_plain_ascii as it travels and is stored (KvValue JSON).",
        "ok",
        "",
        plain_wire.clone(),
        Some(public),
        (USER, "notes", "n1"),
    );
    wire(
        g,
        "fail_kv_value_sealed_moved",
        "kv_value_sealed presented as another id.",
        "Decrypt",
        "Integrity",
        sealed_wire,
        None,
        (USER, "todos", "t2"),
    );
    wire(
        g,
        "fail_kv_value_plain_moved",
        "kv_value_plain presented as another id.",
        "BadMac",
        "Integrity",
        plain_wire,
        None,
        (USER, "notes", "n2"),
    );
    let padded = format!("{}=", b64::encode(env));
    wire(
        g,
        "fail_kv_value_padded_envelope",
        "base64url with padding is not the encoding: refused before decryption.",
        "Malformed",
        "Integrity",
        serde_json::to_string(&KvValue::Sealed { envelope: padded }).unwrap(),
        None,
        (USER, "todos", "t1"),
    );
    let standard = b64::encode(env).replace('-', "+").replace('_', "/");
    assert_ne!(standard, b64::encode(env), "pick an envelope whose base64 has - or _");
    wire(
        g,
        "fail_kv_value_standard_alphabet",
        "The standard alphabet (+ and /) instead of base64url.",
        "Malformed",
        "Integrity",
        serde_json::to_string(&KvValue::Sealed { envelope: standard }).unwrap(),
        None,
        (USER, "todos", "t1"),
    );
    wire(
        g,
        "fail_kv_value_mac_not_base64",
        "A MAC that is not base64url at all.",
        "Malformed",
        "Integrity",
        serde_json::to_string(&KvValue::Plain { json: public.into(), mac: "not base64!".into() }).unwrap(),
        None,
        (USER, "notes", "n1"),
    );
}

#[test]
#[ignore = "rewrites tests/vectors/*.txt; run by hand after an intended format change"]
fn regenerate() {
    let mut g = Gen::new(check, GENERATED);
    gen_account(&mut g);
    gen_kv(&mut g);
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txt") {
            std::fs::remove_file(path).unwrap();
        }
    }
    for (name, text) in &g.files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    eprintln!("wrote {} vectors to {}", g.files.len(), dir.display());
}
