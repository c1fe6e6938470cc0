//! kv value envelopes (SPEC.md, "kv").
//!
//! A value is stored either **sealed** (AES-256-GCM under the kv seal key, random
//! nonce) or **plain** (the JSON text in the clear, with an HMAC-SHA256 tag under the
//! kv MAC key). Both bind the user id, collection and id, so the accelerator can
//! neither read a sealed value nor move either kind to another key or user, nor
//! forge a plain one.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::account::RootSecret;
use crate::b64;
use crate::primitives::{NONCE_LEN, TAG_LEN, hkdf32, open, push_lp, seal};
use crate::proto::KvValue;
use crate::{Coded, ErrorCode};

/// HKDF label of the kv seal key (DESIGN §3: kv key = HKDF(root, "coffer/v1/kv")).
pub const LABEL_KV_SEAL: &[u8] = b"coffer/v1/kv";
/// HKDF label of the kv MAC key.
pub const LABEL_KV_MAC: &[u8] = b"coffer/v1/kv-mac";
/// Domain prefix of a sealed value's AAD.
pub const LABEL_KV_AAD: &[u8] = b"coffer/v1/kv-aad";
/// Domain prefix of a plain value's MAC input.
pub const LABEL_KV_PLAIN: &[u8] = b"coffer/v1/kv-plain";
/// First byte of a sealed kv envelope.
pub const SEALED_VERSION: u8 = 1;
/// Bytes of a plain value's MAC.
pub const MAC_LEN: usize = 32;

/// Why a stored value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The envelope starts with a version this SDK does not know.
    #[error("stored value has unknown format version {0}; update the SDK")]
    UnknownVersion(u8),
    /// Too short, not base64url, or otherwise not an envelope.
    #[error("stored value is malformed")]
    Malformed,
    /// The sealed value did not authenticate: wrong key, tampered, or moved from
    /// another user, collection or id. Deliberately says no more than that.
    #[error("stored value failed authentication (tampered, moved, or sealed under another key)")]
    Decrypt,
    /// A plain value whose MAC does not match: forged or moved.
    #[error("plaintext value failed its integrity check (forged or moved)")]
    BadMac,
    /// A value that authenticated but is not UTF-8 JSON text.
    #[error("stored value is not JSON text")]
    NotJson,
}

impl Coded for KvError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        ErrorCode::Integrity
    }
}

/// Where a value lives; bound into its envelope.
#[derive(Debug, Clone, Copy)]
pub struct KvScope<'a> {
    /// The account's id.
    pub user_id: &'a str,
    /// Collection name.
    pub collection: &'a str,
    /// Id within the collection.
    pub id: &'a str,
}

impl KvScope<'_> {
    fn framed(&self, label: &[u8]) -> Vec<u8> {
        let mut out = label.to_vec();
        push_lp(&mut out, self.user_id.as_bytes());
        push_lp(&mut out, self.collection.as_bytes());
        push_lp(&mut out, self.id.as_bytes());
        out
    }
}

/// The two kv keys of an account.
pub struct KvKeys {
    seal: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

impl KvKeys {
    /// Derives both keys from the root secret.
    pub fn derive(root: &RootSecret) -> Self {
        KvKeys { seal: hkdf32(root.as_bytes(), LABEL_KV_SEAL), mac: hkdf32(root.as_bytes(), LABEL_KV_MAC) }
    }

    /// Seals JSON text: version ‖ nonce ‖ AES-256-GCM(json), AAD = scope.
    /// `nonce` must be fresh random bytes for every call.
    pub fn seal(&self, scope: &KvScope<'_>, json: &str, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + NONCE_LEN + json.len() + TAG_LEN);
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend(seal(&self.seal, &nonce, &scope.framed(LABEL_KV_AAD), json.as_bytes()));
        out
    }

    /// Opens a sealed envelope back into JSON text.
    pub fn open(&self, scope: &KvScope<'_>, envelope: &[u8]) -> Result<String, KvError> {
        let (&version, rest) = envelope.split_first().ok_or(KvError::Malformed)?;
        if version != SEALED_VERSION {
            return Err(KvError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(KvError::Malformed);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let plain = open(&self.seal, &nonce, &scope.framed(LABEL_KV_AAD), sealed).ok_or(KvError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| KvError::NotJson)
    }

    fn mac_state(&self, scope: &KvScope<'_>, json: &str) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(self.mac.as_ref()).expect("HMAC takes keys of any length");
        mac.update(&scope.framed(LABEL_KV_PLAIN));
        mac.update(json.as_bytes());
        mac
    }

    /// The MAC of a plain value.
    pub fn mac_plain(&self, scope: &KvScope<'_>, json: &str) -> [u8; MAC_LEN] {
        self.mac_state(scope, json).finalize().into_bytes().into()
    }

    /// Checks a plain value's MAC in constant time.
    pub fn verify_plain(&self, scope: &KvScope<'_>, json: &str, mac: &[u8]) -> Result<(), KvError> {
        self.mac_state(scope, json).verify_slice(mac).map_err(|_| KvError::BadMac)
    }

    /// Turns JSON text into what is sent and stored: sealed unless `encrypt` is false.
    pub fn encode(&self, scope: &KvScope<'_>, json: &str, encrypt: bool, nonce: [u8; NONCE_LEN]) -> KvValue {
        if encrypt {
            KvValue::Sealed { envelope: b64::encode(self.seal(scope, json, nonce)) }
        } else {
            KvValue::Plain { json: json.to_owned(), mac: b64::encode(self.mac_plain(scope, json)) }
        }
    }

    /// Reads a stored value back into JSON text, whichever way it was written.
    pub fn decode(&self, scope: &KvScope<'_>, value: &KvValue) -> Result<String, KvError> {
        match value {
            KvValue::Sealed { envelope } => {
                let bytes = b64::decode(envelope).ok_or(KvError::Malformed)?;
                self.open(scope, &bytes)
            }
            KvValue::Plain { json, mac } => {
                let mac = b64::decode(mac).ok_or(KvError::Malformed)?;
                self.verify_plain(scope, json, &mac)?;
                Ok(json.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> KvKeys {
        KvKeys::derive(&RootSecret::from_bytes([byte; 32]))
    }

    const S: KvScope<'static> = KvScope { user_id: "u1", collection: "todos", id: "t1" };

    #[test]
    fn sealed_round_trip_and_tamper() {
        let k = keys(1);
        let env = k.seal(&S, r#"{"a":1}"#, [5; 12]);
        assert_eq!(k.open(&S, &env).unwrap(), r#"{"a":1}"#);
        let moved = KvScope { id: "t2", ..S };
        assert_eq!(k.open(&moved, &env), Err(KvError::Decrypt));
        let other_user = KvScope { user_id: "u2", ..S };
        assert_eq!(k.open(&other_user, &env), Err(KvError::Decrypt));
        assert_eq!(keys(2).open(&S, &env), Err(KvError::Decrypt));
        let mut flipped = env.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(&S, &flipped), Err(KvError::Decrypt));
        assert_eq!(k.open(&S, &env[..10]), Err(KvError::Malformed));
    }

    #[test]
    fn plain_round_trip_and_forgery() {
        let k = keys(1);
        let v = k.encode(&S, "[1,2]", false, [0; 12]);
        assert_eq!(k.decode(&S, &v).unwrap(), "[1,2]");
        let KvValue::Plain { mac, .. } = v else { panic!("plain") };
        let forged = KvValue::Plain { json: "[1,3]".into(), mac };
        assert_eq!(k.decode(&S, &forged), Err(KvError::BadMac));
    }
}
