//! Property tests: round trips of every format, and tampering that must always fail.
//! Failures are persisted in `crates/core/proptest-regressions/props.txt` (commit it
//! when it appears: those cases then run first, every time).

use coffer_core::Coded;
use coffer_core::account::{
    AccountError, KdfParams, LoginChallenge, PasswordKey, RootSecret, WRAPPED_ROOT_LEN, WRAPPED_ROOT_VERSION,
    verify_login,
};
use coffer_core::kv::{KvError, KvKeys, KvScope, MAC_LEN, SEALED_VERSION};
use coffer_core::proto::*;
use coffer_core::{ErrorCode, b64, validate};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use serde_json::Value;

/// 256 cases per property (proptest's default); failures saved beside `src/`.
/// `cargo test` runs integration tests from the package root, so the path is
/// `crates/core/proptest-regressions/props.txt`.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/props.txt"))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------

/// Any text at all, including control characters and astral code points.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z0-9._$-]{0,12}", "\\PC{0,16}"]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON text as the SDK produces it, or any text (the envelope does not care).
fn json_ish() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => json_value().prop_map(|v| serde_json::to_string(&v).unwrap()),
        1 => json_value().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
        1 => any::<String>(),
    ]
}

#[derive(Debug, Clone)]
struct Scope {
    user_id: String,
    collection: String,
    id: String,
}

impl Scope {
    fn kv(&self) -> KvScope<'_> {
        KvScope { user_id: &self.user_id, collection: &self.collection, id: &self.id }
    }
}

fn scope() -> impl Strategy<Value = Scope> {
    (text(), text(), text()).prop_map(|(user_id, collection, id)| Scope { user_id, collection, id })
}

fn keys(root: [u8; 32]) -> KvKeys {
    KvKeys::derive(&RootSecret::from_bytes(root))
}

fn flip(bytes: &[u8], bit: Index) -> Vec<u8> {
    let bit = bit.index(bytes.len() * 8);
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

// ---------------------------------------------------------------------------------
// kv
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kv_sealed_round_trip(root: [u8; 32], s in scope(), json in json_ish(), nonce: [u8; 12]) {
        let k = keys(root);
        let env = k.seal(&s.kv(), &json, nonce);
        prop_assert_eq!(env.len(), 1 + 12 + json.len() + 16);
        prop_assert_eq!(env[0], SEALED_VERSION);
        prop_assert_eq!(&env[1..13], &nonce[..]);
        prop_assert_eq!(k.open(&s.kv(), &env), Ok(json.clone()));
        let wire = k.encode(&s.kv(), &json, true, nonce);
        prop_assert_eq!(k.decode(&s.kv(), &wire), Ok(json.clone()));
        let back: KvValue = serde_json::from_str(&serde_json::to_string(&wire).unwrap()).unwrap();
        prop_assert_eq!(back, wire);
    }

    #[test]
    fn kv_plain_round_trip(root: [u8; 32], s in scope(), json in json_ish()) {
        let k = keys(root);
        let wire = k.encode(&s.kv(), &json, false, [0; 12]);
        let KvValue::Plain { json: carried, mac } = &wire else { panic!("plain") };
        prop_assert_eq!(carried, &json);
        prop_assert_eq!(b64::decode(mac).unwrap().len(), MAC_LEN);
        prop_assert_eq!(k.decode(&s.kv(), &wire), Ok(json.clone()));
        let back: KvValue = serde_json::from_str(&serde_json::to_string(&wire).unwrap()).unwrap();
        prop_assert_eq!(back, wire);
    }

    /// Any single-bit flip anywhere in an envelope fails, never yields a value.
    #[test]
    fn kv_sealed_any_bit_flip_fails(root: [u8; 32], s in scope(), json in json_ish(), nonce: [u8; 12], bit: Index) {
        let k = keys(root);
        let env = k.seal(&s.kv(), &json, nonce);
        let bad = flip(&env, bit);
        let err = k.open(&s.kv(), &bad).unwrap_err();
        if bad[0] != SEALED_VERSION {
            prop_assert_eq!(err, KvError::UnknownVersion(bad[0]));
        } else {
            prop_assert_eq!(err, KvError::Decrypt);
        }
    }

    /// Cutting or extending an envelope fails.
    #[test]
    fn kv_sealed_resized_fails(root: [u8; 32], s in scope(), json in json_ish(), nonce: [u8; 12], cut: Index, extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let k = keys(root);
        let env = k.seal(&s.kv(), &json, nonce);
        let short = &env[..cut.index(env.len())];
        prop_assert!(k.open(&s.kv(), short).is_err());
        let long = [env.as_slice(), &extra].concat();
        prop_assert_eq!(k.open(&s.kv(), &long), Err(KvError::Decrypt));
    }

    /// A value is bound to its exact (user, collection, id) and to its account.
    #[test]
    fn kv_bound_to_scope_and_key(root: [u8; 32], other_root: [u8; 32], a in scope(), b in scope(), json in json_ish(), nonce: [u8; 12]) {
        let k = keys(root);
        let sealed = k.encode(&a.kv(), &json, true, nonce);
        let plain = k.encode(&a.kv(), &json, false, nonce);
        let same = (&a.user_id, &a.collection, &a.id) == (&b.user_id, &b.collection, &b.id);
        if !same {
            prop_assert_eq!(k.decode(&b.kv(), &sealed), Err(KvError::Decrypt));
            prop_assert_eq!(k.decode(&b.kv(), &plain), Err(KvError::BadMac));
        }
        if root != other_root {
            let other = keys(other_root);
            prop_assert_eq!(other.decode(&a.kv(), &sealed), Err(KvError::Decrypt));
            prop_assert_eq!(other.decode(&a.kv(), &plain), Err(KvError::BadMac));
        }
    }

    /// A plain value's MAC covers the exact text: any other text fails.
    #[test]
    fn kv_plain_forgery_fails(root: [u8; 32], s in scope(), json in json_ish(), forged in json_ish(), bit: Index) {
        let k = keys(root);
        let mac = k.mac_plain(&s.kv(), &json);
        if forged != json {
            prop_assert_eq!(k.verify_plain(&s.kv(), &forged, &mac), Err(KvError::BadMac));
        }
        prop_assert_eq!(k.verify_plain(&s.kv(), &json, &flip(&mac, bit)), Err(KvError::BadMac));
        prop_assert_eq!(k.verify_plain(&s.kv(), &json, &mac[..MAC_LEN - 1]), Err(KvError::BadMac));
    }

    /// Whatever bytes arrive, `open` and `decode` return an error or a string; never panic.
    #[test]
    fn kv_open_arbitrary_bytes(root: [u8; 32], s in scope(), bytes in prop::collection::vec(any::<u8>(), 0..96), text in any::<String>()) {
        let k = keys(root);
        prop_assert!(k.open(&s.kv(), &bytes).is_err());
        let _ = k.decode(&s.kv(), &KvValue::Sealed { envelope: text.clone() });
        let _ = k.decode(&s.kv(), &KvValue::Plain { json: text.clone(), mac: text });
    }
}

// ---------------------------------------------------------------------------------
// Account
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn wrap_round_trip(pwk: [u8; 32], root: [u8; 32], username in text(), nonce: [u8; 12]) {
        let wrap = PasswordKey::from_bytes(pwk).wrap_key();
        let wrapped = wrap.wrap(&RootSecret::from_bytes(root), &username, nonce);
        prop_assert_eq!(wrapped.len(), WRAPPED_ROOT_LEN);
        prop_assert_eq!(wrapped[0], WRAPPED_ROOT_VERSION);
        let opened = wrap.unwrap(&username, &wrapped).unwrap();
        prop_assert_eq!(opened.as_bytes(), &root);
    }

    #[test]
    fn wrap_tamper_fails(pwk: [u8; 32], other_pwk: [u8; 32], root: [u8; 32], username in text(), other_name in text(), nonce: [u8; 12], bit: Index) {
        let wrap = PasswordKey::from_bytes(pwk).wrap_key();
        let wrapped = wrap.wrap(&RootSecret::from_bytes(root), &username, nonce);
        let bad = flip(&wrapped, bit);
        let err = wrap.unwrap(&username, &bad).unwrap_err();
        if bad[0] != WRAPPED_ROOT_VERSION {
            prop_assert_eq!(err, AccountError::UnknownVersion(bad[0]));
        } else {
            prop_assert_eq!(err, AccountError::Unwrap);
        }
        if other_name != username {
            prop_assert_eq!(wrap.unwrap(&other_name, &wrapped).unwrap_err(), AccountError::Unwrap);
        }
        if other_pwk != pwk {
            let other = PasswordKey::from_bytes(other_pwk).wrap_key();
            prop_assert_eq!(other.unwrap(&username, &wrapped).unwrap_err(), AccountError::Unwrap);
        }
        prop_assert_eq!(wrap.unwrap(&username, &wrapped[..WRAPPED_ROOT_LEN - 1]).unwrap_err(), AccountError::Malformed);
    }

    #[test]
    fn login_sign_verify(pwk: [u8; 32], origin in text(), id in text(), username in text(), challenge in prop::collection::vec(any::<u8>(), 0..64), bit: Index) {
        let login = PasswordKey::from_bytes(pwk).login_key();
        let public = login.public_key();
        let signed = LoginChallenge { origin: &origin, challenge_id: &id, username: &username, challenge: &challenge };
        let sig = login.sign_challenge(&signed);
        prop_assert_eq!(verify_login(&public, &signed, &sig), Ok(()));
        let bad: [u8; 64] = flip(&sig, bit).try_into().unwrap();
        prop_assert_eq!(verify_login(&public, &signed, &bad), Err(AccountError::BadSignature));
        // Another origin or challenge id: refused (a relayed challenge).
        let relayed = format!("{origin}.relay");
        let elsewhere = LoginChallenge { origin: &relayed, ..signed };
        prop_assert_eq!(verify_login(&public, &elsewhere, &sig), Err(AccountError::BadSignature));
        let other_id = format!("{id}x");
        let other = LoginChallenge { challenge_id: &other_id, ..signed };
        prop_assert_eq!(verify_login(&public, &other, &sig), Err(AccountError::BadSignature));
    }

    #[test]
    fn kdf_params_check_matches_bounds(mem_kib: u32, iterations in 0u32..20, parallelism in 0u32..20) {
        let kdf = KdfParams { mem_kib, iterations, parallelism, ..KdfParams::default() };
        let inside = (KdfParams::MIN_MEM_KIB..=KdfParams::MAX_MEM_KIB).contains(&mem_kib)
            && (1..=16).contains(&iterations)
            && (1..=16).contains(&parallelism);
        prop_assert_eq!(kdf.check().is_ok(), inside);
    }
}

// ---------------------------------------------------------------------------------
// base64url
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn b64_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = b64::encode(&bytes);
        prop_assert!(text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        prop_assert_eq!(text.len(), (bytes.len() * 4).div_ceil(3));
        prop_assert_eq!(b64::decode(&text), Some(bytes.clone()));
        if bytes.len() == 16 {
            prop_assert_eq!(b64::decode_array::<16>(&text), Some(<[u8; 16]>::try_from(bytes.as_slice()).unwrap()));
        } else {
            prop_assert_eq!(b64::decode_array::<16>(&text), None);
        }
    }

    #[test]
    fn b64_refuses_padding_and_other_alphabets(bytes in prop::collection::vec(any::<u8>(), 1..200)) {
        let text = b64::encode(&bytes);
        prop_assert_eq!(b64::decode(&format!("{text}=")), None);
        prop_assert_eq!(b64::decode(&format!("{text}==")), None);
        let padded = format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4));
        if padded != text {
            prop_assert_eq!(b64::decode(&padded), None);
        }
        let standard = text.replace('-', "+").replace('_', "/");
        if standard != text {
            prop_assert_eq!(b64::decode(&standard), None);
        }
        prop_assert_eq!(b64::decode(&format!(" {text}")), None);
    }

    /// Decoding is canonical: whatever decodes, re-encodes to exactly the same text,
    /// so one byte string has one text form.
    #[test]
    fn b64_decode_is_canonical(text in "[A-Za-z0-9_=+/ -]{0,24}") {
        if let Some(bytes) = b64::decode(&text) {
            prop_assert_eq!(b64::encode(bytes), text);
        }
    }
}

// ---------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn names_accepted_iff_rules_hold(name in text()) {
        let rules = !name.is_empty() && name.len() <= validate::MAX_NAME_BYTES && !name.chars().any(|c| c.is_ascii_control());
        prop_assert_eq!(validate::id(&name).is_ok(), rules);
        prop_assert_eq!(validate::any_collection(&name).is_ok(), rules);
        prop_assert_eq!(validate::collection(&name).is_ok(), rules && !name.starts_with('$'));
        for result in [validate::id(&name), validate::collection(&name)] {
            if let Err(e) = result {
                prop_assert_eq!(e.code(), ErrorCode::InvalidInput);
            }
        }
    }

    #[test]
    fn serialized_values_are_valid(v in json_value()) {
        let json = serde_json::to_string(&v).unwrap();
        match validate::value_json(&json) {
            Ok(()) => prop_assert!(json.len() <= validate::MAX_VALUE_BYTES),
            Err(e) => prop_assert_eq!(e.code(), ErrorCode::TooLarge),
        }
    }
}

// ---------------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------------

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(ErrorCode::ALL.to_vec())
}

fn kdf() -> impl Strategy<Value = KdfParams> {
    (text(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(alg, mem_kib, iterations, parallelism)| KdfParams {
        alg,
        mem_kib,
        iterations,
        parallelism,
    })
}

fn kv_value() -> impl Strategy<Value = KvValue> {
    prop_oneof![
        text().prop_map(|envelope| KvValue::Sealed { envelope }),
        (json_ish(), text()).prop_map(|(json, mac)| KvValue::Plain { json, mac }),
    ]
}

fn change_event() -> impl Strategy<Value = ChangeEvent> {
    (any::<u64>(), text(), text(), prop::option::of(kv_value())).prop_map(|(seq, collection, id, value)| ChangeEvent {
        seq,
        collection,
        id,
        op: if value.is_some() { ChangeOp::Set } else { ChangeOp::Delete },
        value,
    })
}

fn error_body() -> impl Strategy<Value = ErrorBody> {
    (error_code(), text()).prop_map(|(code, message)| ErrorBody { code, message })
}

/// serde_json there and back, as text and as a `Value`.
fn round_trip<T>(x: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(x).unwrap();
    prop_assert_eq!(&serde_json::from_str::<T>(&text).unwrap(), x, "via {}", text);
    let value = serde_json::to_value(x).unwrap();
    prop_assert_eq!(&serde_json::from_value::<T>(value).unwrap(), x);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn proto_auth_round_trip(a in text(), b in text(), c in text(), d in text(), k in kdf(), n: u64, m: u64) {
        round_trip(&SaltRequest { username: a.clone() })?;
        round_trip(&SaltResponse { salt: b.clone(), kdf: k.clone() })?;
        round_trip(&SignUpRequest { username: a.clone(), salt: b.clone(), kdf: k.clone(), login_public_key: c.clone(), wrapped_root: d.clone(), user_public_key: Some(a.clone()) })?;
        round_trip(&ChallengeRequest { username: a.clone() })?;
        round_trip(&ChallengeResponse { challenge_id: a.clone(), challenge: b.clone(), expires_in_ms: n, server_public_key: c.clone() })?;
        round_trip(&LoginRequest { origin: c.clone(), challenge_id: a.clone(), signature: b.clone() })?;
        round_trip(&SessionResponse { token: a.clone(), user_id: b.clone(), username: c.clone(), wrapped_root: d.clone(), kv_seq: n, expires_at_ms: m, user_public_key: None })?;
        round_trip(&SessionInfo { user_id: a.clone(), username: b.clone(), kv_seq: n, expires_at_ms: m, user_public_key: Some(d.clone()) })?;
        round_trip(&ChangePasswordRequest { origin: d.clone(), challenge_id: a, signature: b, salt: c, kdf: k, login_public_key: d.clone(), wrapped_root: d })?;
    }

    #[test]
    fn proto_kv_round_trip(a in text(), b in text(), v in kv_value(), ids in prop::collection::vec(text(), 0..5), n: u64, seq in prop::option::of(any::<u64>()), existed: bool) {
        round_trip(&v)?;
        round_trip(&KvSetRequest { collection: a.clone(), id: b.clone(), value: v.clone() })?;
        round_trip(&KvKeyRequest { collection: a.clone(), id: b })?;
        round_trip(&KvListRequest { collection: a.clone(), page: PageQuery::default() })?;
        round_trip(&KvListRequest { collection: a.clone(), page: PageQuery { after: Some(a), limit: Some(7) } })?;
        round_trip(&KvWriteResponse { seq: n })?;
        round_trip(&KvGetResponse { value: Some(v) })?;
        round_trip(&KvDeleteResponse { existed, seq })?;
        round_trip(&KvListResponse { ids: ids.clone(), next: None })?;
        round_trip(&KvListResponse { ids, next: Some("n".into()) })?;
    }

    #[test]
    fn proto_frames_round_trip(token in text(), since in prop::option::of(any::<u64>()), e in change_event(), err in error_body(), n: u64) {
        round_trip(&ClientFrame::Auth { token, since })?;
        round_trip(&e)?;
        round_trip(&err)?;
        round_trip(&ServerFrame::Ready { seq: n })?;
        round_trip(&ServerFrame::Change(e))?;
        round_trip(&ServerFrame::Resync { seq: n })?;
        round_trip(&ServerFrame::Error(err))?;
    }

    /// Arbitrary JSON never panics any parser; what parses re-serializes and parses
    /// to the same thing.
    #[test]
    fn proto_parsers_total(v in json_value()) {
        let text = serde_json::to_string(&v).unwrap();
        if let Ok(frame) = serde_json::from_str::<ClientFrame>(&text) { round_trip(&frame)?; }
        if let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) { round_trip(&frame)?; }
        if let Ok(value) = serde_json::from_str::<KvValue>(&text) { round_trip(&value)?; }
        if let Ok(body) = serde_json::from_str::<SignUpRequest>(&text) { round_trip(&body)?; }
    }
}
