//! Stable error codes, shared by the core, the accelerator (HTTP bodies) and the SDK
//! (the `code` property of every rejected promise's `Error`).

use serde::{Deserialize, Serialize};

/// What went wrong, as a stable string a program can branch on.
///
/// The string form (`NotFound`, `Unauthorized`, …) is part of the public API: it is
/// what `err.code` holds in JavaScript and what `{"code": …}` holds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The thing asked for does not exist (or is not visible to the caller).
    NotFound,
    /// No valid session: sign in again.
    Unauthorized,
    /// Signed in, but not allowed to do this.
    Forbidden,
    /// The input is malformed: wrong type, empty, reserved, not JSON.
    InvalidInput,
    /// The input is well formed but too large.
    TooLarge,
    /// The space's byte quota would be exceeded.
    QuotaExceeded,
    /// Data failed authentication: tampered, corrupted or opened with the wrong key.
    Integrity,
    /// The accelerator could not be reached, or answered with something unreadable.
    Network,
    /// The request conflicts with existing state (e.g. a username already taken).
    Conflict,
    /// Too many requests; try again later.
    RateLimited,
    /// The operation was cancelled by the caller (AbortSignal).
    Aborted,
    /// An unexpected failure on the accelerator; the request may be retried.
    Internal,
    /// One of the SDK's file workers stopped mid-call (it crashed or ran out of
    /// memory): the call failed and committed nothing; it may be retried.
    WorkerFailed,
    /// The file given to resume an upload is not the one the upload began with (its
    /// size, name, last-modified time or first chunk differ): start a new upload.
    FileChanged,
}

impl ErrorCode {
    /// Every code, in declaration order (a unit test keeps it complete).
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::NotFound,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::InvalidInput,
        ErrorCode::TooLarge,
        ErrorCode::QuotaExceeded,
        ErrorCode::Integrity,
        ErrorCode::Network,
        ErrorCode::Conflict,
        ErrorCode::RateLimited,
        ErrorCode::Aborted,
        ErrorCode::Internal,
        ErrorCode::WorkerFailed,
        ErrorCode::FileChanged,
    ];

    /// The stable string form, as used on the wire and in JavaScript.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NotFound",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::InvalidInput => "InvalidInput",
            ErrorCode::TooLarge => "TooLarge",
            ErrorCode::QuotaExceeded => "QuotaExceeded",
            ErrorCode::Integrity => "Integrity",
            ErrorCode::Network => "Network",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::RateLimited => "RateLimited",
            ErrorCode::Aborted => "Aborted",
            ErrorCode::Internal => "Internal",
            ErrorCode::WorkerFailed => "WorkerFailed",
            ErrorCode::FileChanged => "FileChanged",
        }
    }

    /// The HTTP status the accelerator answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::NotFound => 404,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::InvalidInput => 400,
            ErrorCode::TooLarge => 413,
            ErrorCode::QuotaExceeded => 507,
            ErrorCode::Integrity => 422,
            ErrorCode::Network => 502,
            ErrorCode::Conflict | ErrorCode::FileChanged => 409,
            ErrorCode::RateLimited => 429,
            ErrorCode::Aborted => 499,
            ErrorCode::Internal | ErrorCode::WorkerFailed => 500,
        }
    }
}

/// Every error family of the core: a message that says what to do (`Display`) and a
/// stable code. The SDK turns any of them into a JS error through one conversion.
pub trait Coded: std::fmt::Display {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode;
}

impl ErrorCode {
    /// The code whose [`as_str`](Self::as_str) is `text`.
    pub fn from_name(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str() == text)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_code_once_in_order() {
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            // Exhaustive: a new variant fails to compile here until ALL lists it.
            let position = match code {
                ErrorCode::NotFound => 0,
                ErrorCode::Unauthorized => 1,
                ErrorCode::Forbidden => 2,
                ErrorCode::InvalidInput => 3,
                ErrorCode::TooLarge => 4,
                ErrorCode::QuotaExceeded => 5,
                ErrorCode::Integrity => 6,
                ErrorCode::Network => 7,
                ErrorCode::Conflict => 8,
                ErrorCode::RateLimited => 9,
                ErrorCode::Aborted => 10,
                ErrorCode::Internal => 11,
                ErrorCode::WorkerFailed => 12,
                ErrorCode::FileChanged => 13,
            };
            assert_eq!(position, i, "{code}");
        }
    }

    #[test]
    fn names_read_back() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::from_name("internal"), None);
    }

    #[test]
    fn serde_form_is_the_stable_string() {
        for code in [ErrorCode::NotFound, ErrorCode::QuotaExceeded, ErrorCode::Aborted] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
