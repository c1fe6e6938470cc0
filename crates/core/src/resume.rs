//! Resumable uploads (SPEC.md D.2): what a writer keeps on the device so that an
//! upload cut off by a reload, a crash or a lost network can finish later, sending
//! only what the accelerator does not hold yet.
//!
//! - An [`UploadPlan`] says what is being written where: the space, the file's
//!   identity ([`FileIdentity`]: size, name, last-modified time and a fingerprint of
//!   its first chunk), its metadata and parameters, and when the plan expires (the
//!   accelerator's grace period for uncommitted shards, from the start).
//! - A [`ChunkDone`] record per data chunk stored, in file order: its index and ref.
//!
//! Both are kept as sealed device records ([`crate::device`]). A resumed write skips
//! a recorded chunk whose every shard the accelerator still holds and stores any
//! other chunk afresh, under a fresh key, exactly as a first write would: no key
//! ever seals a second plaintext.

use serde::{Deserialize, Serialize};

use crate::manifest::{ChunkRef, FileParams, ManifestError};
use crate::{Coded, ErrorCode, b64};

/// Version of the plan's JSON.
pub const PLAN_VERSION: u8 = 1;
/// The longest a plan is kept, whatever grace period an accelerator claims: 30 days.
pub const MAX_PLAN_LIFETIME_MS: u64 = 30 * 24 * 3600 * 1000;
/// Most bytes of JSON an app may keep with an upload (`resumable: { context }`).
pub const MAX_CONTEXT_BYTES: usize = 1024;
/// BLAKE3 `derive_key` context of a file's first-chunk fingerprint.
pub const FINGERPRINT_CONTEXT: &str = "coffer/v1 upload first-chunk fingerprint";

/// Why an upload cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// The file given is not the one the upload began with.
    #[error("this is not the file the upload began with: its {0} differs; start a new upload")]
    FileChanged(&'static str),
    /// A plan of a version this SDK does not know.
    #[error("this upload was begun by a newer SDK (plan version {0}); start a new upload")]
    UnknownVersion(u8),
    /// An upload's context longer than [`MAX_CONTEXT_BYTES`] as JSON.
    #[error("resumable.context is {len} bytes as JSON; the limit is {max}: keep an id, not the record")]
    ContextTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A plan or chunk record that opened but does not hold what it should.
    #[error("this upload's record on this device is malformed; start a new upload")]
    Malformed,
}

impl Coded for ResumeError {
    /// The stable code for this failure.
    fn code(&self) -> ErrorCode {
        match self {
            ResumeError::FileChanged(_) => ErrorCode::FileChanged,
            ResumeError::ContextTooLarge { .. } => ErrorCode::TooLarge,
            ResumeError::UnknownVersion(_) | ResumeError::Malformed => ErrorCode::Integrity,
        }
    }
}

/// What tells one file from another without reading all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileIdentity {
    /// Bytes.
    pub size: u64,
    /// A `File`'s name; `None` for bytes or a `Blob`.
    pub name: Option<String>,
    /// A `File`'s `lastModified`, ms since the Unix epoch.
    pub last_modified: Option<u64>,
    /// [`fingerprint`] of the first chunk, base64url.
    pub first_chunk: String,
}

impl FileIdentity {
    /// Refuses `given` unless it is the same file as `self`, naming what differs.
    pub fn check_same(&self, given: &FileIdentity) -> Result<(), ResumeError> {
        if self.size != given.size {
            return Err(ResumeError::FileChanged("size"));
        }
        if self.name != given.name {
            return Err(ResumeError::FileChanged("name"));
        }
        if self.last_modified != given.last_modified {
            return Err(ResumeError::FileChanged("last-modified time"));
        }
        if self.first_chunk != given.first_chunk {
            return Err(ResumeError::FileChanged("content (its first chunk)"));
        }
        Ok(())
    }
}

/// Refuses an upload's context that is not JSON text of at most [`MAX_CONTEXT_BYTES`].
pub fn check_context(json: &str) -> Result<(), ResumeError> {
    if json.len() > MAX_CONTEXT_BYTES {
        return Err(ResumeError::ContextTooLarge { len: json.len(), max: MAX_CONTEXT_BYTES });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(|_| ResumeError::Malformed)?;
    Ok(())
}

/// A keyed digest of a file's first chunk (the first `chunk_size` bytes, or all of a
/// smaller file), base64url. It is kept only inside a sealed plan.
pub fn fingerprint(first_chunk: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
    hasher.update(first_chunk);
    b64::encode(hasher.finalize().as_bytes())
}

/// A resumable upload's plan: everything but the chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadPlan {
    /// [`PLAN_VERSION`].
    pub v: u8,
    /// The space the file goes into.
    pub space_id: String,
    /// The file being written.
    pub file: FileIdentity,
    /// Its metadata, JSON text.
    pub metadata: String,
    /// What the app keeps with the upload to know it again after a reload (which
    /// record the file is for, say): JSON text of at most [`MAX_CONTEXT_BYTES`], or
    /// `None`.
    #[serde(default)]
    pub context: Option<String>,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Data shards per chunk.
    pub data_shards: u8,
    /// Parity shards per chunk.
    pub parity_shards: u8,
    /// When the upload began, ms since the Unix epoch (the device's clock).
    pub created_at_ms: u64,
    /// When the accelerator may collect its first shards: the plan is dropped then.
    pub expires_at_ms: u64,
}

impl UploadPlan {
    /// The plan as sealed: JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a plan serializes")
    }

    /// Reads an opened plan.
    pub fn from_bytes(bytes: &[u8]) -> Result<UploadPlan, ResumeError> {
        #[derive(Deserialize)]
        struct Version {
            v: u8,
        }
        let Version { v } = serde_json::from_slice(bytes).map_err(|_| ResumeError::Malformed)?;
        if v != PLAN_VERSION {
            return Err(ResumeError::UnknownVersion(v));
        }
        let plan: UploadPlan = serde_json::from_slice(bytes).map_err(|_| ResumeError::Malformed)?;
        plan.params().check().map_err(|_| ResumeError::Malformed)?;
        if plan.context.as_deref().is_some_and(|c| check_context(c).is_err()) {
            return Err(ResumeError::Malformed);
        }
        Ok(plan)
    }

    /// The file's parameters.
    pub fn params(&self) -> FileParams {
        FileParams { chunk_size: self.chunk_size, data_shards: self.data_shards, parity_shards: self.parity_shards }
    }

    /// The file's bytes that `done` holds (each chunk once, the last one short).
    pub fn done_bytes(&self, done: &[ChunkDone]) -> u64 {
        let chunk = u64::from(self.chunk_size);
        let indices: std::collections::BTreeSet<u64> = done.iter().map(|d| d.index).collect();
        indices.into_iter().map(|i| chunk.min(self.file.size.saturating_sub(i.saturating_mul(chunk)))).sum()
    }
}

/// A data chunk the upload stored: `u64_be(index) ‖ ChunkRef` (F.5's binary ref).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDone {
    /// Its index in the file.
    pub index: u64,
    /// Its key and shard addresses.
    pub chunk_ref: ChunkRef,
}

impl ChunkDone {
    /// The record as sealed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.index.to_be_bytes().to_vec();
        out.extend(self.chunk_ref.to_bytes());
        out
    }

    /// Reads an opened record of a file written with `params`.
    pub fn from_bytes(bytes: &[u8], params: FileParams) -> Result<ChunkDone, ResumeError> {
        let (index, chunk_ref) = bytes.split_at_checked(8).ok_or(ResumeError::Malformed)?;
        let index = u64::from_be_bytes(index.try_into().expect("split at 8"));
        let chunk_ref = ChunkRef::from_bytes(chunk_ref, params).map_err(|_: ManifestError| ResumeError::Malformed)?;
        Ok(ChunkDone { index, chunk_ref })
    }

    /// The id of the device record holding chunk `index` of upload `upload_id`.
    pub fn record_id(upload_id: &str, index: u64) -> String {
        format!("{upload_id}/{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkKey;
    use crate::shard::ShardAddress;

    fn identity() -> FileIdentity {
        FileIdentity {
            size: 10,
            name: Some("a.bin".into()),
            last_modified: Some(1_700_000_000_000),
            first_chunk: fingerprint(b"0123456789"),
        }
    }

    #[test]
    fn a_changed_file_is_named_by_what_changed() {
        let plan = identity();
        assert_eq!(plan.check_same(&identity()), Ok(()));
        let changed = |f: fn(&mut FileIdentity)| {
            let mut given = identity();
            f(&mut given);
            plan.check_same(&given).unwrap_err()
        };
        assert_eq!(changed(|g| g.size = 11), ResumeError::FileChanged("size"));
        assert_eq!(changed(|g| g.name = None), ResumeError::FileChanged("name"));
        assert_eq!(changed(|g| g.last_modified = Some(1)), ResumeError::FileChanged("last-modified time"));
        assert_eq!(
            changed(|g| g.first_chunk = fingerprint(b"0123456788")),
            ResumeError::FileChanged("content (its first chunk)")
        );
        assert_eq!(changed(|g| g.size = 11).code(), ErrorCode::FileChanged);
    }

    #[test]
    fn plans_and_chunk_records_read_back() {
        let plan = UploadPlan {
            v: PLAN_VERSION,
            space_id: "s".into(),
            file: identity(),
            metadata: "{}".into(),
            context: Some("{\"todo\":\"t1\"}".into()),
            chunk_size: 1024,
            data_shards: 2,
            parity_shards: 1,
            created_at_ms: 1,
            expires_at_ms: 2,
        };
        assert_eq!(UploadPlan::from_bytes(&plan.to_bytes()).unwrap(), plan);
        let big = UploadPlan { file: FileIdentity { size: 2500, ..identity() }, ..plan.clone() };
        let chunk =
            |index| ChunkDone { index, chunk_ref: ChunkRef { key: ChunkKey::from_bytes([0; 32]), shards: vec![] } };
        assert_eq!(
            big.done_bytes(&[chunk(0), chunk(2), chunk(2), chunk(9)]),
            1024 + 452,
            "twice and past the end count once and not"
        );
        let newer = String::from_utf8(plan.to_bytes()).unwrap().replace("\"v\":1", "\"v\":2");
        assert_eq!(UploadPlan::from_bytes(newer.as_bytes()), Err(ResumeError::UnknownVersion(2)));
        let bad = String::from_utf8(plan.to_bytes()).unwrap().replace("\"chunkSize\":1024", "\"chunkSize\":1");
        assert_eq!(UploadPlan::from_bytes(bad.as_bytes()), Err(ResumeError::Malformed));
        assert_eq!(UploadPlan::from_bytes(b"[]"), Err(ResumeError::Malformed));
        // A plan written before `context` existed reads as having none.
        let older =
            String::from_utf8(plan.to_bytes()).unwrap().replace(",\"context\":\"{\\\"todo\\\":\\\"t1\\\"}\"", "");
        assert_eq!(UploadPlan::from_bytes(older.as_bytes()).unwrap().context, None, "{older}");
        assert_eq!(check_context(&format!("\"{}\"", "x".repeat(MAX_CONTEXT_BYTES - 2))), Ok(()));
        assert!(matches!(
            check_context(&format!("\"{}\"", "x".repeat(MAX_CONTEXT_BYTES - 1))),
            Err(ResumeError::ContextTooLarge { .. })
        ));
        assert_eq!(check_context("{"), Err(ResumeError::Malformed));

        let done = ChunkDone {
            index: 7,
            chunk_ref: ChunkRef {
                key: ChunkKey::from_bytes([3; 32]),
                shards: (0..3u8).map(|i| ShardAddress::of(&[i])).collect(),
            },
        };
        assert_eq!(ChunkDone::from_bytes(&done.to_bytes(), plan.params()).unwrap(), done);
        let four = FileParams { data_shards: 3, ..plan.params() };
        assert_eq!(ChunkDone::from_bytes(&done.to_bytes(), four), Err(ResumeError::Malformed));
        assert_eq!(ChunkDone::from_bytes(&done.to_bytes()[..5], plan.params()), Err(ResumeError::Malformed));
    }
}
