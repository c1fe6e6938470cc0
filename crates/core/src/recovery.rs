//! Recovery codes (SPEC.md §3.8): a printable code that stands in for the password
//! when it is forgotten.
//!
//! A code is 160 random bits and a 20-bit checksum, written as 36 Crockford base32
//! characters in nine groups of four. It derives a key that plays the password key's
//! part (§3.3–3.4): an Ed25519 recovery key, whose public half the accelerator keeps,
//! and a wrap key, under which the root secret is wrapped a second time. With the
//! code alone a device signs a challenge, unwraps the root secret and sets a new
//! password; the accelerator never sees the code or anything it could open.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::account::PasswordKey;
use crate::primitives::hkdf32;
use crate::{Coded, ErrorCode};

/// Random bytes in a recovery code.
pub const RECOVERY_SECRET_LEN: usize = 20;
/// Characters in a recovery code, without separators.
pub const RECOVERY_CODE_CHARS: usize = 36;
/// HKDF label of the key a recovery code stands for.
pub const LABEL_RECOVERY_KEY: &[u8] = b"coffer/v1/recovery-key";
/// Domain prefix of a recovery code's checksum.
pub const LABEL_RECOVERY_CHECK: &[u8] = b"coffer/v1/recovery-check";
/// Crockford's base32 alphabet: digits and letters without I, L, O and U.
pub const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why a recovery code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// Not 36 characters of Crockford base32 (separators and case aside).
    #[error(
        "a recovery code is 36 letters and digits in nine groups of four (like ABCD-EFGH-…); check that it was copied whole"
    )]
    Malformed,
    /// The checksum does not match: a character was mistyped.
    #[error("the recovery code has a typo (its checksum does not match); check each group")]
    Typo,
}

impl Coded for RecoveryError {
    /// The stable code: `InvalidInput` (the code as typed is wrong).
    fn code(&self) -> ErrorCode {
        ErrorCode::InvalidInput
    }
}

/// A recovery code's secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(Zeroizing<[u8; RECOVERY_SECRET_LEN]>);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode(…)")
    }
}

/// The 20-bit checksum: the first 20 bits of SHA-256(`LABEL_RECOVERY_CHECK` ‖ secret).
fn checksum(secret: &[u8; RECOVERY_SECRET_LEN]) -> u32 {
    let digest = Sha256::new().chain_update(LABEL_RECOVERY_CHECK).chain_update(secret).finalize();
    (u32::from(digest[0]) << 12) | (u32::from(digest[1]) << 4) | (u32::from(digest[2]) >> 4)
}

impl RecoveryCode {
    /// Takes 20 fresh random bytes.
    pub fn from_bytes(bytes: [u8; RECOVERY_SECRET_LEN]) -> Self {
        RecoveryCode(Zeroizing::new(bytes))
    }

    /// The code as printed: `XXXX-XXXX-…`, nine groups of four.
    pub fn encode(&self) -> Zeroizing<String> {
        // 160 bits of secret then 20 of checksum: 180 bits, 36 five-bit characters.
        let mut bits = Zeroizing::new(self.0.to_vec());
        let check = checksum(&self.0);
        bits.extend_from_slice(&[(check >> 12) as u8, (check >> 4) as u8, ((check & 0xf) << 4) as u8]);
        let mut out = Zeroizing::new(String::with_capacity(RECOVERY_CODE_CHARS + 8));
        for i in 0..RECOVERY_CODE_CHARS {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            let (byte, shift) = (i * 5 / 8, i * 5 % 8);
            let pair = (u16::from(bits[byte]) << 8) | u16::from(*bits.get(byte + 1).unwrap_or(&0));
            out.push(char::from(CROCKFORD[usize::from((pair >> (11 - shift)) & 0x1f)]));
        }
        out
    }

    /// Reads a code as a person may type it: any case, with or without the hyphens
    /// and spaces, `O` for zero and `I` or `L` for one (Crockford's reading).
    pub fn parse(text: &str) -> Result<RecoveryCode, RecoveryError> {
        let mut values = Zeroizing::new(Vec::with_capacity(RECOVERY_CODE_CHARS));
        for c in text.chars().filter(|c| !matches!(c, '-' | ' ' | '\t' | '\n' | '\r')) {
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            let value = CROCKFORD.iter().position(|&a| char::from(a) == c).ok_or(RecoveryError::Malformed)?;
            values.push(value as u8);
        }
        if values.len() != RECOVERY_CODE_CHARS {
            return Err(RecoveryError::Malformed);
        }
        let mut bits = Zeroizing::new([0u8; 23]);
        for (i, &v) in values.iter().enumerate() {
            for b in 0..5 {
                if v & (0x10 >> b) != 0 {
                    let at = i * 5 + b;
                    bits[at / 8] |= 0x80 >> (at % 8);
                }
            }
        }
        let secret: [u8; RECOVERY_SECRET_LEN] = bits[..RECOVERY_SECRET_LEN].try_into().expect("20 of 23 bytes");
        let check = (u32::from(bits[20]) << 12) | (u32::from(bits[21]) << 4) | (u32::from(bits[22]) >> 4);
        if check != checksum(&secret) {
            return Err(RecoveryError::Typo);
        }
        Ok(RecoveryCode::from_bytes(secret))
    }

    /// The key the code stands for, in the password key's place (§3.3–3.4): its
    /// `login_key()` signs recovery challenges, its `wrap_key()` wraps the root.
    pub fn key(&self) -> PasswordKey {
        PasswordKey::from_bytes(*hkdf32(self.0.as_ref(), LABEL_RECOVERY_KEY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_reads_back_as_typed_by_a_person() {
        let code = RecoveryCode::from_bytes([0x5a; 20]);
        let text = code.encode();
        assert_eq!(text.len(), RECOVERY_CODE_CHARS + 8);
        assert_eq!(text.split('-').count(), 9);
        assert_eq!(RecoveryCode::parse(&text).unwrap(), code);
        let sloppy = format!("  {} ", text.to_lowercase().replace('-', " "));
        assert_eq!(RecoveryCode::parse(&sloppy).unwrap(), code);
        let zeros = RecoveryCode::from_bytes([0; 20]);
        let as_letters = zeros.encode().replace('0', "O");
        assert_eq!(RecoveryCode::parse(&as_letters).unwrap(), zeros);
        for bytes in [[0xff; 20], [1; 20], *b"0123456789abcdefghij"] {
            let code = RecoveryCode::from_bytes(bytes);
            assert_eq!(RecoveryCode::parse(&code.encode()).unwrap(), code);
        }
    }

    #[test]
    fn typos_and_garbage_are_refused() {
        let text = RecoveryCode::from_bytes([0x5a; 20]).encode();
        for at in [0, 7, 20, text.len() - 1] {
            if text.as_bytes()[at] == b'-' {
                continue;
            }
            let mut typo = text.as_bytes().to_vec();
            typo[at] = if typo[at] == b'7' { b'8' } else { b'7' };
            assert_eq!(RecoveryCode::parse(std::str::from_utf8(&typo).unwrap()), Err(RecoveryError::Typo), "at {at}");
        }
        assert_eq!(RecoveryCode::parse(&text[..text.len() - 1]), Err(RecoveryError::Malformed));
        assert_eq!(RecoveryCode::parse(&format!("{}A", *text)), Err(RecoveryError::Malformed));
        assert_eq!(RecoveryCode::parse(&text.replace('-', "U")), Err(RecoveryError::Malformed));
        assert_eq!(RecoveryCode::parse(""), Err(RecoveryError::Malformed));
        assert_eq!(RecoveryError::Typo.code(), ErrorCode::InvalidInput);
    }

    #[test]
    fn each_code_has_its_own_keys() {
        let (a, b) = (RecoveryCode::from_bytes([1; 20]), RecoveryCode::from_bytes([2; 20]));
        assert_ne!(a.key().login_key().public_key(), b.key().login_key().public_key());
        assert_eq!(a.key().login_key().public_key(), a.key().login_key().public_key());
    }
}
