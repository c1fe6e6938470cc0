//! Shared by the integration tests: hex, the vector file format, and `spec` — a
//! second, independent implementation of SPEC.md written against the primitives
//! directly (its labels are literals, not the crate's constants), so a vector checks
//! the code against the document rather than the code against itself.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Lowercase hex.
pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex (either case); panics on anything else — vectors are trusted input.
pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd-length hex: {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap_or_else(|_| panic!("bad hex: {text:?}")))
        .collect()
}

/// Hex into a fixed-size array.
pub fn unhex_array<const N: usize>(text: &str) -> [u8; N] {
    unhex(text).try_into().unwrap_or_else(|v: Vec<u8>| panic!("want {N} bytes, got {}", v.len()))
}

/// The folder of committed vectors.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("vectors")
}

/// One vector file: `key: value` lines in order. `#` starts a comment line; blank
/// lines are ignored. A value runs from after `": "` to the end of the line, verbatim.
#[derive(Debug, Clone, Default)]
pub struct Vector {
    /// File name without `.txt`.
    pub name: String,
    /// Fields in file order.
    pub fields: Vec<(String, String)>,
}

impl Vector {
    pub fn parse(name: &str, text: &str) -> Vector {
        let mut v = Vector { name: name.to_owned(), fields: Vec::new() };
        for (n, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) =
                line.split_once(':').unwrap_or_else(|| panic!("{name}:{}: not `key: value`: {line:?}", n + 1));
            let value = value.strip_prefix(' ').unwrap_or(value);
            assert!(v.opt(key).is_none(), "{name}:{}: duplicate key {key}", n + 1);
            v.fields.push((key.to_owned(), value.to_owned()));
        }
        v
    }

    /// Renders the file: a comment header, then the fields.
    pub fn render(&self, comment: &str) -> String {
        let mut out = String::new();
        for line in comment.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        for (key, value) in &self.fields {
            assert!(
                !value.contains(['\n', '\r']) && value.trim_end() == value,
                "{}: field {key} cannot be written verbatim",
                self.name
            );
            out.push_str(key);
            out.push_str(": ");
            out.push_str(value);
            out.push('\n');
        }
        out
    }

    pub fn push(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        assert!(self.opt(key).is_none(), "duplicate key {key}");
        self.fields.push((key.to_owned(), value.into()));
        self
    }

    pub fn push_hex(&mut self, key: &str, bytes: impl AsRef<[u8]>) -> &mut Self {
        self.push(key, hex(bytes))
    }

    pub fn opt(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn get(&self, key: &str) -> &str {
        self.opt(key).unwrap_or_else(|| panic!("{}: missing field {key}", self.name))
    }

    pub fn bytes(&self, key: &str) -> Vec<u8> {
        unhex(self.get(key))
    }

    pub fn array<const N: usize>(&self, key: &str) -> [u8; N] {
        unhex_array(self.get(key))
    }

    pub fn u32(&self, key: &str) -> u32 {
        self.get(key).parse().unwrap_or_else(|_| panic!("{}: {key} is not a u32", self.name))
    }
}

/// SPEC.md, re-implemented from the document with the primitives only.
pub mod spec {
    use aes_gcm::aead::{Aead, Payload};
    use aes_gcm::{Aes256Gcm, Nonce};
    use ed25519_dalek::{Signer as _, SigningKey};
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::Sha256;

    pub const LOGIN_KEY: &[u8] = b"coffer/v1/login-key";
    pub const WRAP_KEY: &[u8] = b"coffer/v1/wrap-key";
    pub const LOGIN_SIGNATURE: &[u8] = b"coffer/v2/login-signature";
    pub const WRAPPED_ROOT: &[u8] = b"coffer/v1/wrapped-root";
    pub const KV_SEAL: &[u8] = b"coffer/v1/kv";
    pub const KV_MAC: &[u8] = b"coffer/v1/kv-mac";
    pub const KV_AAD: &[u8] = b"coffer/v1/kv-aad";
    pub const KV_PLAIN: &[u8] = b"coffer/v1/kv-plain";

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// RFC 5869 written out: extract with `salt` (empty = 32 zero bytes), expand to `len`.
    pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
        let zeros = [0u8; 32];
        let prk = hmac_sha256(if salt.is_empty() { &zeros } else { salt }, &[ikm]);
        let mut okm = Vec::new();
        let mut t: Vec<u8> = Vec::new();
        let mut counter = 1u8;
        while okm.len() < len {
            t = hmac_sha256(&prk, &[&t, info, &[counter]]).to_vec();
            okm.extend_from_slice(&t);
            counter += 1;
        }
        okm.truncate(len);
        okm
    }

    /// The spec's key derivation: HKDF-SHA256, empty salt, 32 bytes.
    pub fn derive(ikm: &[u8], label: &[u8]) -> [u8; 32] {
        hkdf_sha256(&[], ikm, label, 32).try_into().unwrap()
    }

    /// `lp(x)` = 4-byte big-endian length ‖ x.
    pub fn lp(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    pub fn argon2id(password: &[u8], salt: &[u8], mem_kib: u32, iterations: u32, parallelism: u32) -> [u8; 32] {
        let params = argon2::Params::new(mem_kib, iterations, parallelism, Some(32)).unwrap();
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon.hash_password_into(password, salt, &mut out).unwrap();
        out
    }

    pub fn login_message(origin: &str, challenge_id: &str, username: &str, challenge: &[u8]) -> Vec<u8> {
        cat(&[
            LOGIN_SIGNATURE,
            &lp(origin.as_bytes()),
            &lp(challenge_id.as_bytes()),
            &lp(username.as_bytes()),
            challenge,
        ])
    }

    pub fn wrapped_root_aad(username: &str) -> Vec<u8> {
        cat(&[WRAPPED_ROOT, &lp(username.as_bytes())])
    }

    pub fn kv_aad(user_id: &str, collection: &str, id: &str) -> Vec<u8> {
        cat(&[KV_AAD, &lp(user_id.as_bytes()), &lp(collection.as_bytes()), &lp(id.as_bytes())])
    }

    pub fn kv_plain_input(user_id: &str, collection: &str, id: &str, json: &str) -> Vec<u8> {
        cat(&[KV_PLAIN, &lp(user_id.as_bytes()), &lp(collection.as_bytes()), &lp(id.as_bytes()), json.as_bytes()])
    }

    pub fn ed25519_public(seed: &[u8; 32]) -> [u8; 32] {
        SigningKey::from_bytes(seed).verifying_key().to_bytes()
    }

    pub fn ed25519_sign(seed: &[u8; 32], msg: &[u8]) -> [u8; 64] {
        SigningKey::from_bytes(seed).sign(msg).to_bytes()
    }

    pub fn aes_gcm_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        Aes256Gcm::new(key.into()).encrypt(&Nonce::from(*nonce), Payload { msg: plaintext, aad }).unwrap()
    }

    /// `version ‖ nonce ‖ AES-256-GCM(key, nonce, aad, plaintext)`.
    pub fn envelope(version: u8, key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        cat(&[&[version], nonce, &aes_gcm_seal(key, nonce, aad, plaintext)])
    }
}

/// Writes vector files; asserts that each vector already says what the core does.
pub struct Gen {
    /// `(file name, text)`, in the order emitted.
    pub files: Vec<(String, String)>,
    /// The test file's checker, run on every vector as it is made.
    check: fn(&Vector),
    /// The banner saying how the file was generated.
    generated: &'static str,
}

impl Gen {
    /// A generator checking with `check` and stamping `generated` into each header.
    pub fn new(check: fn(&Vector), generated: &'static str) -> Self {
        Gen { files: Vec::new(), check, generated }
    }

    /// Renders, checks and keeps one vector.
    pub fn emit(&mut self, name: &str, comment: &str, fields: Vector) {
        let v = Vector { name: name.to_owned(), ..fields };
        let text = v.render(&format!("{comment}\n{}", self.generated));
        (self.check)(&Vector::parse(name, &text));
        self.files.push((format!("{name}.txt"), text));
    }
}

/// A vector's first fields: its kind, what it expects and, for a failure, its code.
pub fn head(kind: &str, expect: &str, code: &str) -> Vector {
    let mut v = Vector::default();
    v.push("kind", kind).push("expect", expect);
    if expect != "ok" {
        v.push("code", code);
    }
    v
}
