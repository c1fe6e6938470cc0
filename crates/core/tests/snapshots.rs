//! Snapshots of every serialized format for fixed inputs (`tests/snapshots/*.snap`),
//! so any change to a wire body, a frame, an envelope, an error code or an error
//! message shows up as a reviewable diff. After an intended change:
//! `INSTA_UPDATE=always cargo test -p coffer-core --test snapshots`, then review the diff.

use coffer_core::Coded;
use coffer_core::account::{self, AccountError, KdfParams, PasswordKey, RootSecret, derive_password_key};
use coffer_core::kv::{KvError, KvKeys, KvScope};
use coffer_core::legacy::LegacyError;
use coffer_core::names::NameError;
use coffer_core::proto::*;
use coffer_core::validate;
use coffer_core::{ErrorCode, b64};

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `Name: {"compact":"json"}` lines, one per value.
fn lines(items: &[(&str, String)]) -> String {
    items.iter().map(|(name, json)| format!("{name}: {json}\n")).collect()
}

fn json<T: serde::Serialize>(x: &T) -> String {
    serde_json::to_string(x).unwrap()
}

fn kdf() -> KdfParams {
    KdfParams::default()
}

#[test]
fn auth_bodies() {
    let salt = b64::encode(b"coffer-salt-0001");
    let public = b64::encode([0x33; 32]);
    let wrapped = b64::encode([0x01; account::WRAPPED_ROOT_LEN]);
    let text = lines(&[
        ("KdfParams::default()", json(&kdf())),
        ("SaltRequest", json(&SaltRequest { username: "ada".into() })),
        ("SaltResponse", json(&SaltResponse { salt: salt.clone(), kdf: kdf() })),
        (
            "SignUpRequest",
            json(&SignUpRequest {
                username: "ada".into(),
                salt: salt.clone(),
                kdf: kdf(),
                login_public_key: public.clone(),
                wrapped_root: wrapped.clone(),
                user_public_key: Some(b64::encode([0x44; 32])),
            }),
        ),
        (
            "PublishKeyRequest",
            json(&PublishKeyRequest {
                origin: "https://coffer.example".into(),
                challenge_id: "ch_03".into(),
                signature: b64::encode([0x93; 64]),
                user_public_key: b64::encode([0x44; 32]),
            }),
        ),
        ("ChallengeRequest", json(&ChallengeRequest { username: "ada".into() })),
        (
            "ChallengeResponse",
            json(&ChallengeResponse {
                challenge_id: "ch_01".into(),
                challenge: b64::encode([0x61; 32]),
                expires_in_ms: 60_000,
                server_public_key: b64::encode([0x55; 32]),
            }),
        ),
        (
            "LoginRequest",
            json(&LoginRequest {
                origin: "https://coffer.example".into(),
                challenge_id: "ch_01".into(),
                signature: b64::encode([0x93; 64]),
            }),
        ),
        (
            "SessionResponse",
            json(&SessionResponse {
                token: "tok_secret".into(),
                user_id: "usr_7f3a9c21".into(),
                username: "ada".into(),
                wrapped_root: wrapped.clone(),
                kv_seq: 42,
                expires_at_ms: 1_767_225_600_000,
                user_public_key: Some(b64::encode([0x44; 32])),
            }),
        ),
        (
            "SessionInfo",
            json(&SessionInfo {
                user_id: "usr_7f3a9c21".into(),
                username: "ada".into(),
                kv_seq: 42,
                expires_at_ms: 1_767_225_600_000,
                user_public_key: Some(b64::encode([0x44; 32])),
            }),
        ),
        (
            "ChangePasswordRequest",
            json(&ChangePasswordRequest {
                origin: "https://coffer.example".into(),
                challenge_id: "ch_02".into(),
                signature: b64::encode([0x93; 64]),
                salt,
                kdf: kdf(),
                login_public_key: public,
                wrapped_root: wrapped,
            }),
        ),
    ]);
    insta::assert_snapshot!(text);
}

fn sealed() -> KvValue {
    KvValue::Sealed { envelope: b64::encode([0x01, 0xaa, 0xbb]) }
}

fn plain() -> KvValue {
    KvValue::Plain { json: r#"{"title":"Public note"}"#.into(), mac: b64::encode([0x8c; 32]) }
}

#[test]
fn kv_bodies() {
    let text = lines(&[
        ("KvValue::Sealed", json(&sealed())),
        ("KvValue::Plain", json(&plain())),
        ("KvSetRequest", json(&KvSetRequest { collection: "todos".into(), id: "t1".into(), value: sealed() })),
        ("KvKeyRequest", json(&KvKeyRequest { collection: "todos".into(), id: "t1".into() })),
        ("KvListRequest", json(&KvListRequest { collection: "todos".into(), page: PageQuery::default() })),
        (
            "KvListRequest (a later page)",
            json(&KvListRequest {
                collection: "todos".into(),
                page: PageQuery { after: Some("t1000".into()), limit: Some(500) },
            }),
        ),
        ("KvWriteResponse", json(&KvWriteResponse { seq: 7 })),
        ("KvGetResponse", json(&KvGetResponse { value: Some(plain()) })),
        ("KvDeleteResponse existed", json(&KvDeleteResponse { existed: true, seq: Some(8) })),
        ("KvDeleteResponse absent", json(&KvDeleteResponse { existed: false, seq: None })),
        ("KvListResponse", json(&KvListResponse { ids: vec!["a".into(), "b".into(), "é".into()], next: None })),
        ("KvListResponse (more to come)", json(&KvListResponse { ids: vec!["a".into()], next: Some("a".into()) })),
        (
            "KvLegacyResponse",
            json(&KvLegacyResponse {
                keys: vec![KvLegacyKey { collection: "todos".into(), id: "t1".into(), value: sealed() }],
            }),
        ),
        (
            "KvRenameRequest",
            json(&KvRenameRequest {
                renames: vec![KvRename {
                    from: KvKeyRequest { collection: "todos".into(), id: "t1".into() },
                    to: KvKeyRequest { collection: "c0l".into(), id: "1d".into() },
                }],
            }),
        ),
        ("KvRenameResponse", json(&KvRenameResponse { renamed: 1, dropped: 0 })),
    ]);
    insta::assert_snapshot!(text);
}

#[test]
fn feed_frames() {
    let set =
        ChangeEvent { seq: 5, collection: "todos".into(), id: "t1".into(), op: ChangeOp::Set, value: Some(sealed()) };
    let delete = ChangeEvent { seq: 6, collection: "todos".into(), id: "t1".into(), op: ChangeOp::Delete, value: None };
    let text = lines(&[
        ("ClientFrame::Auth resume", json(&ClientFrame::Auth { token: "tok_secret".into(), since: Some(4) })),
        ("ClientFrame::Auth from head", json(&ClientFrame::Auth { token: "tok_secret".into(), since: None })),
        ("ServerFrame::Ready", json(&ServerFrame::Ready { seq: 6 })),
        ("ServerFrame::Change set", json(&ServerFrame::Change(set))),
        ("ServerFrame::Change delete", json(&ServerFrame::Change(delete))),
        ("ServerFrame::Resync", json(&ServerFrame::Resync { seq: 1200 })),
        (
            "ServerFrame::Error",
            json(&ServerFrame::Error(ErrorBody {
                code: ErrorCode::Unauthorized,
                message: "the session was revoked; sign in again".into(),
            })),
        ),
    ]);
    insta::assert_snapshot!(text);
}

#[test]
fn error_codes() {
    let mut out = String::new();
    for code in ErrorCode::ALL {
        let body = ErrorBody { code, message: "…".into() };
        out.push_str(&format!("{} {} {}\n", code.http_status(), code, json(&body)));
    }
    let text = out;
    insta::assert_snapshot!(text);
}

/// What each core error says to a person, and its code.
#[test]
fn error_messages() {
    let account = [
        AccountError::KdfParams,
        AccountError::UnknownVersion(2),
        AccountError::Malformed,
        AccountError::Unwrap,
        AccountError::BadSignature,
    ];
    let kv = [KvError::UnknownVersion(2), KvError::Malformed, KvError::Decrypt, KvError::BadMac, KvError::NotJson];
    let validation = [
        validate::collection("").unwrap_err(),
        validate::id(&"x".repeat(validate::MAX_NAME_BYTES + 1)).unwrap_err(),
        validate::collection("$files").unwrap_err(),
        validate::id("a\u{7f}b").unwrap_err(),
        validate::username("ada lovelace").unwrap_err(),
        validate::value_json(&format!("\"{}\"", "x".repeat(validate::MAX_VALUE_BYTES))).unwrap_err(),
        validate::value_json("{").unwrap_err(),
    ];
    let mut out = String::new();
    for e in account {
        out.push_str(&format!("{:?} [{}] {}\n", e, e.code(), e));
    }
    for e in kv {
        out.push_str(&format!("{:?} [{}] {}\n", e, e.code(), e));
    }
    for e in [NameError::Malformed, NameError::Forged] {
        out.push_str(&format!("{:?} [{}] {}\n", e, e.code(), e));
    }
    let legacy = [
        LegacyError::TooMany(1001),
        LegacyError::Name(validate::id("").unwrap_err()),
        LegacyError::NotOurs { collection: "medical".into(), id: "x".into(), error: KvError::Decrypt },
    ];
    for e in legacy {
        out.push_str(&format!("{:?} [{}] {}\n", e, e.code(), e));
    }
    for e in validation {
        let name = format!("{e:?}");
        let name = name.split([' ', '(', '{']).next().unwrap().to_owned();
        out.push_str(&format!("{} [{}] {}\n", name, e.code(), e));
    }
    let text = out;
    insta::assert_snapshot!(text);
}

/// The binary formats for fixed inputs, in hex. The vectors in `tests/vectors/` pin
/// the same formats with many more cases; these make a change visible at a glance.
#[test]
fn binary_formats() {
    let root = RootSecret::from_bytes(std::array::from_fn(|i| i as u8));
    let keys = KvKeys::derive(&root);
    let scope = KvScope { user_id: "usr_7f3a9c21", collection: "todos", id: "t1" };
    let todo = r#"{"title":"Ship docs","done":false}"#;
    let envelope = keys.seal(&scope, todo, [0x24; 12]);
    let mac = keys.mac_plain(&scope, todo);
    let pwk = PasswordKey::from_bytes([0x5a; 32]);
    let login = pwk.login_key();
    let challenge = [0x61; 32];
    let signed = account::LoginChallenge {
        origin: "https://coffer.example",
        challenge_id: "ch_01",
        username: "ada",
        challenge: &challenge,
    };
    let fast = KdfParams { mem_kib: KdfParams::MIN_MEM_KIB, iterations: 1, ..KdfParams::default() };
    let from_password = derive_password_key("correct horse battery staple", b"coffer-salt-0001", &fast).unwrap();
    let wire = serde_json::to_string(&keys.encode(&scope, todo, true, [0x24; 12])).unwrap();
    let text = [
        format!("kv sealed envelope: {}", hex(&envelope)),
        format!("kv sealed wire: {wire}"),
        format!("kv plain mac: {}", hex(mac)),
        format!("login message: {}", hex(account::login_message(&signed))),
        format!("login public key: {}", hex(login.public_key())),
        format!("login signature: {}", hex(login.sign_challenge(&signed))),
        format!("wrapped root: {}", hex(pwk.wrap_key().wrap(&root, "ada", [0x42; 12]))),
        format!("argon2id 8192/1/1 login public key: {}", hex(from_password.login_key().public_key())),
    ]
    .join("\n");
    insta::assert_snapshot!(text);
}
