//! Shard bytes in an object store: a local directory or any S3-compatible bucket,
//! through one type ([`ObjectShards`]) built on the `object_store` crate.
//!
//! # Keys
//!
//! Each shard is the object `{ff}/{address}`: the address in lowercase hex, in the
//! folder of its first byte ([`ShardAddress::fan_out`], 256 folders) — in a
//! directory, exactly the file layout earlier embedded accelerators wrote under
//! `DATA_DIR/shards`, which is read unchanged. In a bucket the same keys sit under the URL's prefix
//! (`s3://bucket/coffer` → `coffer/3f/3f9a…e1`), and listing one fan-out folder is one
//! paginated prefix listing.
//!
//! # Create-only writes
//!
//! An address names one byte string, so a put never replaces anything: it is a
//! create-only write (`PutMode::Create`; S3's `If-None-Match: *`), and finding the
//! address taken is success. Two writers of one shard never interleave bytes, and no
//! replacement can swap a stored shard for other bytes.
//!
//! # Durability in a directory
//!
//! `object_store`'s `LocalFileSystem` (0.12.5, `local.rs`, read for this) writes a
//! staging file `{key}#{n}` next to the key, then `hard_link`s it to the key
//! (create-only) or renames it (overwrite). It never calls `fsync` — not on the file,
//! not on the folder — and creates files with the process umask (0644 usually). A
//! power cut after a put was acknowledged can then lose the shard, and worse, can
//! leave the key linked to an empty or truncated file: a create-only put of the same
//! shard later finds the key taken and succeeds without repairing it. Syncing after
//! its put returns does not close that window, because the link is already visible
//! before the data is on disk.
//!
//! So in a directory, [`ObjectShards`]'s put has a write path of its own,
//! create-only: the bytes go to a fresh 0600 file in `tmp/`, which
//! is fsynced, hard-linked to the key (the link fails if the key is taken: that is
//! the create-only check), unlinked from `tmp/`, and the fan-out folder is fsynced so
//! the link survives a power cut. Anything visible under a key was complete on disk
//! before it became visible. Every other operation — get, open, size, list, delete —
//! goes through `LocalFileSystem`, the same calls a bucket gets.

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use coffer_core::shard::ShardAddress;
use futures_util::stream::{self, BoxStream, StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, GetResultPayload, ObjectStore, PutMode, PutPayload};

use super::shards::{PIECE, ShardReader, ShardStore};

/// The store's folder inside an embedded accelerator's data directory.
pub const DIR_NAME: &str = "shards";
/// The folder of shards being written, inside a store's directory.
const TMP_NAME: &str = "tmp";

/// Shard bytes in a directory or an S3-compatible bucket; see the module docs.
pub struct ObjectShards {
    /// Where every read, list and delete goes (and, in a bucket, every put).
    store: Arc<dyn ObjectStore>,
    /// The directory's own durable write path; `None` for a bucket.
    dir: Option<Arc<DurableDir>>,
}

/// The directory store's put: see "Durability in a directory" in the module docs.
struct DurableDir {
    /// The store's directory (`DATA_DIR/shards` for the embedded default).
    root: PathBuf,
    /// `root/tmp`: shards being written.
    tmp: PathBuf,
    /// Makes every temporary file name unique within this process.
    next_tmp: AtomicU64,
}

impl std::fmt::Debug for ObjectShards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectShards").field("store", &self.store.to_string()).finish()
    }
}

/// An `InvalidInput` error with a message that says what to fix.
fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl ObjectShards {
    /// Opens the store a URL names:
    ///
    /// - a plain path or `file:///abs/path`: a directory (created 0700 if missing),
    ///   which is `DATA_DIR/shards` for an embedded accelerator's existing shards;
    /// - `s3://bucket` or `s3://bucket/prefix`: an S3-compatible bucket, configured
    ///   by the standard variables `AWS_ENDPOINT_URL`, `AWS_REGION`,
    ///   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP` (any
    ///   `AWS_*` key `object_store` knows). The bucket must exist and honour
    ///   `If-None-Match: *` on PUT (AWS S3 since 2024, R2, MinIO, moto).
    pub fn from_url(url: &str) -> io::Result<Self> {
        Self::from_url_with(url, std::iter::empty::<(&str, &str)>())
    }

    /// [`ObjectShards::from_url`], with `options` applied over the environment:
    /// `object_store`'s S3 keys (`aws_endpoint_url`, `aws_allow_http`, …) for a
    /// bucket; a directory takes none.
    pub fn from_url_with<K: AsRef<str>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> io::Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(format!("{url}: no bucket; write s3://bucket or s3://bucket/prefix")));
            }
            let mut builder = AmazonS3Builder::from_env()
                // A shard is opaque bytes: say so, rather than leave its type to the store.
                .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::DefaultContentType), "application/octet-stream")
                .with_bucket_name(bucket);
            for (key, value) in options {
                let key = key.as_ref();
                let key = key.parse().map_err(|_| invalid(format!("{key}: not an S3 option object_store knows")))?;
                builder = builder.with_config(key, value);
            }
            let bucket = builder.build().map_err(|e| invalid(format!("{url}: {e}")))?;
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn ObjectStore> =
                if prefix.is_empty() { Arc::new(bucket) } else { Arc::new(PrefixStore::new(bucket, prefix)) };
            return Ok(ObjectShards { store, dir: None });
        }
        if options.into_iter().next().is_some() {
            return Err(invalid(format!("{url}: a directory takes no options")));
        }
        let path = match url.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => return Err(invalid(format!("{url}: write file:///absolute/path"))),
            None if url.contains("://") => {
                return Err(invalid(format!("{url}: not a store this accelerator knows; use a path or s3://")));
            }
            None => url,
        };
        Self::open_dir(FsPath::new(path))
    }

    /// Opens (or creates, 0700) the store in directory `root`, removing any
    /// half-written shards a crash left in `root/tmp`.
    pub fn open_dir(root: &FsPath) -> io::Result<Self> {
        let tmp = root.join(TMP_NAME);
        super::private_dir(root)?;
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let path = entry?.path();
            if path.is_file() {
                fs::remove_file(&path)?;
            }
        }
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        sync_dir(root)?;
        let store = LocalFileSystem::new_with_prefix(root)?;
        let dir = DurableDir { root: root.to_owned(), tmp, next_tmp: AtomicU64::new(0) };
        Ok(ObjectShards { store: Arc::new(store), dir: Some(Arc::new(dir)) })
    }

    /// The embedded default: the store in `DATA_DIR/shards`.
    pub fn embedded(data_dir: &FsPath) -> io::Result<Self> {
        Self::open_dir(&data_dir.join(DIR_NAME))
    }
}

#[async_trait]
impl ShardStore for ObjectShards {
    async fn put(&self, address: &ShardAddress, bytes: Bytes) -> io::Result<()> {
        if let Some(dir) = &self.dir {
            let (dir, address) = (Arc::clone(dir), *address);
            return tokio::task::spawn_blocking(move || dir.put(&address, &bytes)).await.map_err(io::Error::other)?;
        }
        match self.store.put_opts(&key(address), PutPayload::from(bytes), PutMode::Create.into()).await {
            Ok(_) => Ok(()),
            // Another put of the same address won (412, or 409 on some stores).
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The shard's bytes, or `None` if it is not stored.
    async fn get(&self, address: &ShardAddress) -> io::Result<Option<Bytes>> {
        match self.store.get(&key(address)).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The stored shard opened for reading piece by piece — a file [`PIECE`] bytes
    /// at a time, a bucket's HTTP body as it arrives — so serving it holds one piece
    /// in memory rather than the whole shard; `None` if it is not stored.
    async fn open(&self, address: &ShardAddress) -> io::Result<Option<ShardReader>> {
        let got = match self.store.get(&key(address)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let len = got.meta.size;
        let bytes = match got.payload {
            // object_store would stream a file 8 KiB at a time, each on the blocking pool.
            GetResultPayload::File(file, _) => file_pieces(file),
            GetResultPayload::Stream(body) => body.map_err(io::Error::from).boxed(),
        };
        Ok(Some(ShardReader { len, bytes }))
    }

    /// The stored shard's length in bytes, or `None` if it is not stored.
    async fn size(&self, address: &ShardAddress) -> io::Result<Option<u64>> {
        match self.store.head(&key(address)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a shard. Returns whether it was stored: exact in a directory; a
    /// bucket's DELETE succeeds either way (S3 answers 204 for a missing key), so
    /// there it is `true` unless the store said 404. Asking first would cost a
    /// request per freed shard, and nothing acts on the answer.
    async fn delete(&self, address: &ShardAddress) -> io::Result<bool> {
        // No folder fsync in a directory: a delete a crash undoes
        // leaves a shard without a record, which the collector's start-up sweep removes.
        match self.store.delete(&key(address)).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every stored address whose hex form starts with `prefix` (two hex digits
    /// select one 256th of the store), sorted. It lists only the fan-out folders
    /// the prefix can fall in, one at a time, so the collector's walk prefix by
    /// prefix holds at most a folder's addresses.
    async fn list(&self, prefix: &str) -> io::Result<Vec<ShardAddress>> {
        if !prefix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Ok(Vec::new());
        }
        let folders: Vec<String> = if prefix.len() >= 2 {
            vec![prefix[..2].to_owned()]
        } else {
            (0..=255u8).map(|b| format!("{b:02x}")).filter(|f| f.starts_with(prefix)).collect()
        };
        let mut found = Vec::new();
        for folder in folders {
            let folder = Path::from(folder);
            let mut listing = self.store.list(Some(&folder));
            while let Some(meta) = listing.try_next().await? {
                // Only `{ff}/{address}`: nothing deeper, no strays.
                let mut parts = meta.location.prefix_match(&folder).into_iter().flatten();
                let (Some(name), None) = (parts.next(), parts.next()) else { continue };
                let Ok(address) = ShardAddress::parse_hex(name.as_ref()) else { continue };
                if address.to_hex().starts_with(prefix) {
                    found.push(address);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// The object key of a shard: `{ff}/{address}`.
fn key(address: &ShardAddress) -> Path {
    Path::from_iter([address.fan_out(), address.to_hex()])
}

/// A file's bytes from where it is, [`PIECE`] bytes at a time, each read on the
/// blocking pool.
fn file_pieces(file: File) -> BoxStream<'static, io::Result<Bytes>> {
    stream::try_unfold(file, |mut file| async move {
        let (file, piece) = tokio::task::spawn_blocking(move || {
            let mut piece = Vec::with_capacity(PIECE);
            (&mut file).take(PIECE as u64).read_to_end(&mut piece)?;
            Ok::<_, io::Error>((file, piece))
        })
        .await
        .map_err(io::Error::other)??;
        Ok((!piece.is_empty()).then(|| (Bytes::from(piece), file)))
    })
    .boxed()
}

/// Makes a directory's entries (a link, a new file) durable.
fn sync_dir(dir: &FsPath) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DurableDir {
    /// Writes a shard create-only and durably; blocks.
    fn put(&self, address: &ShardAddress, bytes: &[u8]) -> io::Result<()> {
        let folder = self.root.join(address.fan_out());
        if !folder.is_dir() {
            super::private_dir(&folder)?;
            sync_dir(&self.root)?;
        }
        let path = folder.join(address.to_hex());
        // Stored already (complete: only a synced file is ever linked to a key): the
        // folder sync below still makes sure its link is durable before we answer.
        if !path.is_file() {
            let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
            let tmp = self.tmp.join(format!("{}.{}.{n}", address.to_hex(), std::process::id()));
            let written = (|| {
                let mut file = super::private_file_options().truncate(true).open(&tmp)?;
                file.write_all(bytes)?;
                file.sync_all()?;
                match fs::hard_link(&tmp, &path) {
                    // A put of the same shard beside this one linked it first.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                    linked => linked,
                }
            })();
            // The tmp name goes either way (a crash before this leaves it to open_dir).
            let _ = fs::remove_file(&tmp);
            written?;
        }
        sync_dir(&folder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Earlier accelerators kept each shard in the file `shards/{ff}/{address}`;
    /// the store reads such a directory unchanged, and writes the same layout.
    #[tokio::test]
    async fn reads_and_writes_the_embedded_layout() {
        let data = tempfile::tempdir().unwrap();
        let path = |a: &ShardAddress| data.path().join(DIR_NAME).join(a.fan_out()).join(a.to_hex());
        let shards: Vec<Vec<u8>> =
            (0..40u32).map(|i| format!("shard {i}").repeat(i as usize + 1).into_bytes()).collect();
        for bytes in &shards {
            let a = ShardAddress::of(bytes);
            fs::create_dir_all(path(&a).parent().unwrap()).unwrap();
            fs::write(path(&a), bytes).unwrap();
        }
        let store = ObjectShards::embedded(data.path()).unwrap();
        let mut all = Vec::new();
        for bytes in &shards {
            let a = ShardAddress::of(bytes);
            assert_eq!(store.get(&a).await.unwrap().as_deref(), Some(&bytes[..]));
            assert_eq!(store.size(&a).await.unwrap(), Some(bytes.len() as u64));
            all.push(a);
        }
        all.sort();
        assert_eq!(store.list("").await.unwrap(), all);
        let bytes = b"written by the store".to_vec();
        let a = ShardAddress::of(&bytes);
        store.put(&a, Bytes::from(bytes.clone())).await.unwrap();
        assert_eq!(fs::read(path(&a)).unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_directory_is_private_and_leaves_no_temporaries() {
        use std::os::unix::fs::PermissionsExt as _;
        let data = tempfile::tempdir().unwrap();
        let root = data.path().join("shards");
        let store = ObjectShards::from_url(&format!("file://{}", root.display())).unwrap();
        let a = ShardAddress::of(b"private");
        store.put(&a, Bytes::from_static(b"private")).await.unwrap();
        let mode = |p: &FsPath| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join(a.fan_out())), 0o700);
        assert_eq!(mode(&root.join(a.fan_out()).join(a.to_hex())), 0o600);
        assert_eq!(fs::read_dir(root.join(TMP_NAME)).unwrap().count(), 0);
        // A crash's leftovers go at the next open.
        fs::write(root.join(TMP_NAME).join("half"), b"ha").unwrap();
        drop(store);
        let store = ObjectShards::open_dir(&root).unwrap();
        assert_eq!(fs::read_dir(root.join(TMP_NAME)).unwrap().count(), 0);
        assert_eq!(store.list("").await.unwrap(), [a]);
    }

    /// `#[async_trait]` boxes each method's future as `Send`: they must be.
    #[test]
    fn its_futures_are_send() {
        fn send<T: Send>(_: T) {}
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectShards::open_dir(dir.path()).unwrap();
        let a = ShardAddress::of(b"");
        send(store.put(&a, Bytes::new()));
        send(store.get(&a));
        send(store.open(&a));
        send(store.size(&a));
        send(store.delete(&a));
        send(store.list("00"));
    }

    #[test]
    fn refuses_urls_it_does_not_know() {
        for url in ["gs://bucket", "s3://", "file://relative", "http://host/bucket"] {
            let err = ObjectShards::from_url(url).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{url}");
        }
    }
}
