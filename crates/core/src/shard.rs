//! Shard addresses (SPEC.md, "Shard address").
//!
//! A shard is stored and fetched under the BLAKE3 hash of its bytes, so the store is
//! content-addressed: the accelerator checks a `PUT` body against its address, and a
//! reader checks every shard it gets back before it lets the erasure decoder see it
//! (erasure coding does not detect corruption; the hash does).
//!
//! The text form is 64 lowercase hex digits: safe in a URL path and as a file name,
//! and its first two digits ([`ShardAddress::fan_out`]) name a fan-out folder.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Coded, ErrorCode};

/// Bytes in a shard address (a BLAKE3-256 output).
pub const ADDRESS_LEN: usize = 32;
/// Characters in the text form of a shard address.
pub const ADDRESS_HEX_LEN: usize = 2 * ADDRESS_LEN;

/// A text form that is not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// Wrong length, uppercase, or a character outside `0-9a-f`.
    #[error("a shard address is 64 lowercase hex digits")]
    BadAddress,
}

impl Coded for ShardError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidInput
    }
}

/// The address of a shard: BLAKE3 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardAddress([u8; ADDRESS_LEN]);

impl ShardAddress {
    /// The address of `shard`.
    pub fn of(shard: &[u8]) -> Self {
        ShardAddress(*blake3::hash(shard).as_bytes())
    }

    /// Whether `shard` is the shard stored under this address.
    pub fn matches(&self, shard: &[u8]) -> bool {
        // BLAKE3's `Hash` compares in constant time; nothing here is secret, but it
        // costs nothing.
        blake3::hash(shard) == blake3::Hash::from_bytes(self.0)
    }

    /// Wraps 32 raw bytes (as found in a manifest or a chunk table).
    pub fn from_bytes(bytes: [u8; ADDRESS_LEN]) -> Self {
        ShardAddress(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; ADDRESS_LEN] {
        &self.0
    }

    /// The text form: 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(ADDRESS_HEX_LEN);
        for byte in self.0 {
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0x0f)] as char);
        }
        out
    }

    /// Parses the text form; only the canonical lowercase form is accepted, so one
    /// shard has exactly one URL and one file name.
    pub fn parse_hex(text: &str) -> Result<Self, ShardError> {
        let text = text.as_bytes();
        if text.len() != ADDRESS_HEX_LEN {
            return Err(ShardError::BadAddress);
        }
        let mut out = [0u8; ADDRESS_LEN];
        for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Ok(ShardAddress(out))
    }

    /// The fan-out folder of this shard in an on-disk store: its first two hex digits
    /// (256 folders).
    pub fn fan_out(&self) -> String {
        self.to_hex()[..2].to_owned()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Result<u8, ShardError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(ShardError::BadAddress),
    }
}

impl fmt::Display for ShardAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ShardAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShardAddress({})", self.to_hex())
    }
}

impl FromStr for ShardAddress {
    type Err = ShardError;
    fn from_str(text: &str) -> Result<Self, ShardError> {
        ShardAddress::parse_hex(text)
    }
}

/// Serialized as its text form (for JSON bodies).
impl Serialize for ShardAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ShardAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ShardAddress::parse_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake3_of_empty_input() {
        // The BLAKE3 specification's hash of the empty input.
        let expected = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
        assert_eq!(ShardAddress::of(b"").to_hex(), expected);
        assert!(ShardAddress::parse_hex(expected).unwrap().matches(b""));
        assert!(!ShardAddress::parse_hex(expected).unwrap().matches(b"x"));
    }

    #[test]
    fn text_form_is_canonical() {
        let a = ShardAddress::of(b"shard");
        assert_eq!(a.to_string().parse::<ShardAddress>().unwrap(), a);
        assert_eq!(a.fan_out(), a.to_hex()[..2]);
        assert_eq!(ShardAddress::parse_hex(&a.to_hex().to_uppercase()), Err(ShardError::BadAddress));
        assert_eq!(ShardAddress::parse_hex(&a.to_hex()[1..]), Err(ShardError::BadAddress));
        assert_eq!(ShardAddress::parse_hex(&format!("{}0", a.to_hex())), Err(ShardError::BadAddress));
        assert_eq!(ShardAddress::parse_hex(&"g".repeat(64)), Err(ShardError::BadAddress));
        assert_eq!(ShardAddress::parse_hex("é"), Err(ShardError::BadAddress));
    }

    #[test]
    fn serde_is_the_text_form() {
        let a = ShardAddress::of(b"x");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{a}\""));
        assert_eq!(serde_json::from_str::<ShardAddress>(&json).unwrap(), a);
        assert!(serde_json::from_str::<ShardAddress>("\"00\"").is_err());
    }
}
