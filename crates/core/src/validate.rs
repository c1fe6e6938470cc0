//! What a username, a collection, an id and a kv value may be. The SDK checks these
//! before anything leaves the browser; the accelerator checks them again.

use crate::{Coded, ErrorCode};

/// Longest collection name or id, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest kv collection or id the accelerator stores, in bytes: a sealed name of a
/// [`MAX_NAME_BYTES`] name (SPEC.md §4.4), which is longer than any legacy plaintext one.
pub const MAX_STORED_NAME_BYTES: usize = crate::names::MAX_SEALED_NAME_CHARS;
/// Longest kv value, as serialized JSON, in UTF-8 bytes.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
/// Longest username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 128;
/// Collections whose names start with this are the SDK's own (`$files`, `$spaces`).
pub const RESERVED_PREFIX: char = '$';

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The name is the empty string.
    #[error("{what} must not be empty")]
    Empty {
        /// "collection", "id" or "username".
        what: &'static str,
    },
    /// The name is longer than its limit.
    #[error("{what} is {len} bytes long; the limit is {max} bytes")]
    TooLong {
        /// "collection", "id" or "username".
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A user collection starting with `$`.
    #[error("collection names starting with '$' are reserved for the SDK; pick another name")]
    Reserved,
    /// A control character (U+0000–U+001F, U+007F) in a name.
    #[error("{what} must not contain control characters")]
    ControlCharacter {
        /// "collection" or "id".
        what: &'static str,
    },
    /// A username outside `[A-Za-z0-9._@+-]`.
    #[error("usernames may contain only letters, digits and . _ @ + -")]
    UsernameCharacter,
    /// The value is larger than [`MAX_VALUE_BYTES`] once serialized.
    #[error("the value is {len} bytes as JSON; the limit is {max} bytes — store large data with client.storage")]
    ValueTooLarge {
        /// Serialized size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is not JSON.
    #[error("the value is not JSON: {0}")]
    NotJson(String),
}

impl Coded for ValidationError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        match self {
            ValidationError::ValueTooLarge { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::InvalidInput,
        }
    }
}

fn name(what: &'static str, text: &str) -> Result<(), ValidationError> {
    bounded_name(what, text, MAX_NAME_BYTES)
}

fn bounded_name(what: &'static str, text: &str, max: usize) -> Result<(), ValidationError> {
    if text.is_empty() {
        return Err(ValidationError::Empty { what });
    }
    if text.len() > max {
        return Err(ValidationError::TooLong { what, len: text.len(), max });
    }
    if text.chars().any(|c| c.is_ascii_control()) {
        return Err(ValidationError::ControlCharacter { what });
    }
    Ok(())
}

/// A collection an app may use: a name that does not start with `$`.
pub fn collection(text: &str) -> Result<(), ValidationError> {
    name("collection", text)?;
    if text.starts_with(RESERVED_PREFIX) {
        return Err(ValidationError::Reserved);
    }
    Ok(())
}

/// Any collection, the SDK's reserved `$` ones included (what the accelerator accepts).
pub fn any_collection(text: &str) -> Result<(), ValidationError> {
    name("collection", text)
}

/// An id within a collection.
pub fn id(text: &str) -> Result<(), ValidationError> {
    name("id", text)
}

/// A kv collection or id as the accelerator receives and stores it (`what` says
/// which): a sealed name (SPEC.md §4.4), or a legacy plaintext one being renamed.
pub fn stored_name(what: &'static str, text: &str) -> Result<(), ValidationError> {
    bounded_name(what, text, MAX_STORED_NAME_BYTES)
}

/// A username: 1–128 bytes of `[A-Za-z0-9._@+-]`, compared exactly.
pub fn username(text: &str) -> Result<(), ValidationError> {
    const WHAT: &str = "username";
    if text.is_empty() {
        return Err(ValidationError::Empty { what: WHAT });
    }
    if text.len() > MAX_USERNAME_BYTES {
        return Err(ValidationError::TooLong { what: WHAT, len: text.len(), max: MAX_USERNAME_BYTES });
    }
    if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b)) {
        return Err(ValidationError::UsernameCharacter);
    }
    Ok(())
}

/// A kv value: JSON text of at most [`MAX_VALUE_BYTES`] bytes.
pub fn value_json(text: &str) -> Result<(), ValidationError> {
    if text.len() > MAX_VALUE_BYTES {
        return Err(ValidationError::ValueTooLarge { len: text.len(), max: MAX_VALUE_BYTES });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| ValidationError::NotJson(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(collection(""), Err(ValidationError::Empty { what: "collection" }));
        assert_eq!(collection("$files"), Err(ValidationError::Reserved));
        assert!(any_collection("$files").is_ok());
        assert!(id(&"x".repeat(MAX_NAME_BYTES)).is_ok());
        assert!(matches!(id(&"x".repeat(MAX_NAME_BYTES + 1)), Err(ValidationError::TooLong { .. })));
        assert!(matches!(id("a\nb"), Err(ValidationError::ControlCharacter { .. })));
        assert!(id("../é/..").is_ok());
    }

    #[test]
    fn usernames() {
        assert!(username("ada.lovelace+test@example.org").is_ok());
        assert_eq!(username("ada lovelace"), Err(ValidationError::UsernameCharacter));
        assert!(matches!(username(""), Err(ValidationError::Empty { .. })));
    }

    #[test]
    fn values() {
        assert!(value_json(r#"{"title":"Ship docs","done":false}"#).is_ok());
        assert!(matches!(value_json("{"), Err(ValidationError::NotJson(_))));
        let big = format!("\"{}\"", "x".repeat(MAX_VALUE_BYTES));
        let err = value_json(&big).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TooLarge);
    }
}
