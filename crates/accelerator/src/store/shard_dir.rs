//! The embedded shard store: one file per shard under `DATA_DIR/shards`.
//!
//! ```text
//! shards/
//!   tmp/                 shards being written (emptied at start)
//!   3f/3f9a…e1           a shard, named by its address, in the folder of its first
//!   a0/a07c…4b           two hex digits (ShardAddress::fan_out: 256 folders)
//! ```
//!
//! A shard is written to a fresh file in `tmp/` — the same filesystem, so the rename
//! is atomic — fsynced, renamed over its address, and then its folder is fsynced so
//! the rename itself survives a power cut. A crash at any point leaves either the old
//! file or the complete new one under the address, and at worst a stray file in
//! `tmp/`, which the next start removes.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use coffer_core::shard::ShardAddress;
use futures_util::{StreamExt as _, stream};
use tokio::io::AsyncReadExt as _;

use super::shards::{PIECE, ShardReader, ShardStore};

/// The store's folder inside the data directory.
pub const DIR_NAME: &str = "shards";
/// The folder of shards being written, inside the store's folder.
const TMP_NAME: &str = "tmp";

/// [`ShardStore`] in a directory. Cheap to clone: clones are the same store.
#[derive(Clone)]
pub struct ShardDir {
    /// `DATA_DIR/shards`.
    root: PathBuf,
    /// `DATA_DIR/shards/tmp`.
    tmp: PathBuf,
    /// Makes every temporary file name unique within this process.
    next_tmp: Arc<AtomicU64>,
}

impl ShardDir {
    /// Opens (or creates) the store in `data_dir`, removing any half-written shards
    /// a crash left in `tmp/`.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join(DIR_NAME);
        let tmp = root.join(TMP_NAME);
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let path = entry?.path();
            if path.is_file() {
                fs::remove_file(&path)?;
            }
        }
        sync_dir(data_dir)?;
        sync_dir(&root)?;
        Ok(ShardDir { root, tmp, next_tmp: Arc::new(AtomicU64::new(0)) })
    }

    /// Where the shard with this address lives.
    pub fn path(&self, address: &ShardAddress) -> PathBuf {
        self.root.join(address.fan_out()).join(address.to_hex())
    }
}

/// Makes a directory's entries (a rename, a new file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `Ok(None)` for a file that is not there.
fn absent_is_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs a blocking file operation on tokio's blocking pool.
async fn blocking<T: Send + 'static>(call: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(call).await.map_err(io::Error::other)?
}

/// The file operations, blocking; [`ShardStore`] runs them on the blocking pool.
impl ShardDir {
    fn put_now(&self, address: &ShardAddress, bytes: &[u8]) -> io::Result<()> {
        let folder = self.root.join(address.fan_out());
        if !folder.is_dir() {
            fs::create_dir_all(&folder)?;
            sync_dir(&self.root)?;
        }
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}.{}.{n}", address.to_hex(), std::process::id()));
        let written = (|| {
            let mut file = super::private_file_options().truncate(true).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, folder.join(address.to_hex()))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&folder)
    }

    fn open_now(&self, address: &ShardAddress) -> io::Result<Option<(File, u64)>> {
        let Some(file) = absent_is_none(File::open(self.path(address)))? else { return Ok(None) };
        let len = file.metadata()?.len();
        Ok(Some((file, len)))
    }

    fn size_now(&self, address: &ShardAddress) -> io::Result<Option<u64>> {
        Ok(absent_is_none(fs::metadata(self.path(address)))?.filter(|m| m.is_file()).map(|m| m.len()))
    }

    fn delete_now(&self, address: &ShardAddress) -> io::Result<bool> {
        // No directory fsync: a delete that a crash undoes leaves a shard without a
        // record, which the collector's start-up sweep removes again.
        Ok(absent_is_none(fs::remove_file(self.path(address)))?.is_some())
    }

    fn list_now(&self, prefix: &str) -> io::Result<Vec<ShardAddress>> {
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
            let Some(entries) = absent_is_none(fs::read_dir(self.root.join(folder)))? else {
                continue;
            };
            for entry in entries {
                let name = entry?.file_name();
                let Some(address) = name.to_str().and_then(|n| ShardAddress::parse_hex(n).ok()) else {
                    continue;
                };
                if address.to_hex().starts_with(prefix) {
                    found.push(address);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

#[async_trait]
impl ShardStore for ShardDir {
    async fn put(&self, address: &ShardAddress, bytes: Bytes) -> io::Result<()> {
        let (dir, address) = (self.clone(), *address);
        blocking(move || dir.put_now(&address, &bytes)).await
    }

    async fn get(&self, address: &ShardAddress) -> io::Result<Option<Bytes>> {
        let path = self.path(address);
        blocking(move || Ok(absent_is_none(fs::read(path))?.map(Bytes::from))).await
    }

    async fn open(&self, address: &ShardAddress) -> io::Result<Option<ShardReader>> {
        let (dir, address) = (self.clone(), *address);
        let Some((file, len)) = blocking(move || dir.open_now(&address)).await? else { return Ok(None) };
        let pieces = stream::try_unfold(tokio::fs::File::from_std(file), |mut file| async move {
            let mut piece = vec![0; PIECE];
            let n = file.read(&mut piece).await?;
            piece.truncate(n);
            Ok((n > 0).then(|| (Bytes::from(piece), file)))
        });
        Ok(Some(ShardReader { len, bytes: pieces.boxed() }))
    }

    async fn size(&self, address: &ShardAddress) -> io::Result<Option<u64>> {
        let (dir, address) = (self.clone(), *address);
        blocking(move || dir.size_now(&address)).await
    }

    async fn delete(&self, address: &ShardAddress) -> io::Result<bool> {
        let (dir, address) = (self.clone(), *address);
        blocking(move || dir.delete_now(&address)).await
    }

    async fn list(&self, prefix: &str) -> io::Result<Vec<ShardAddress>> {
        let (dir, prefix) = (self.clone(), prefix.to_owned());
        blocking(move || dir.list_now(&prefix)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_size_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardDir::open(dir.path()).unwrap();
        let bytes = b"sealed shard bytes".to_vec();
        let a = ShardAddress::of(&bytes);
        assert_eq!(store.get(&a).await.unwrap(), None);
        assert!(!store.has(&a).await.unwrap());
        store.put(&a, Bytes::from(bytes.clone())).await.unwrap();
        store.put(&a, Bytes::from(bytes.clone())).await.unwrap();
        assert_eq!(store.get(&a).await.unwrap(), Some(Bytes::from(bytes.clone())));
        let reader = store.open(&a).await.unwrap().unwrap();
        let read: Vec<u8> = reader.bytes.map(|piece| piece.unwrap().to_vec()).concat().await;
        assert_eq!((reader.len, read), (bytes.len() as u64, bytes.clone()));
        assert!(store.open(&ShardAddress::of(b"other")).await.unwrap().is_none());
        assert_eq!(store.size(&a).await.unwrap(), Some(bytes.len() as u64));
        assert!(store.path(&a).starts_with(dir.path().join("shards").join(a.fan_out())));
        assert_eq!(store.list(&a.fan_out()).await.unwrap(), [a]);
        assert_eq!(store.list(&a.to_hex()[..1]).await.unwrap(), [a]);
        assert!(store.list("zz").await.unwrap().is_empty());
        assert!(store.delete(&a).await.unwrap());
        assert!(!store.delete(&a).await.unwrap());
        assert_eq!(store.get(&a).await.unwrap(), None);
        assert_eq!(fs::read_dir(dir.path().join("shards/tmp")).unwrap().count(), 0, "no temporary left");
    }

    #[tokio::test]
    async fn a_put_replaces_a_damaged_shard() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardDir::open(dir.path()).unwrap();
        let a = ShardAddress::of(b"right");
        store.put(&a, Bytes::from_static(b"right")).await.unwrap();
        fs::write(store.path(&a), b"rot").unwrap();
        store.put(&a, Bytes::from_static(b"right")).await.unwrap();
        assert_eq!(store.get(&a).await.unwrap().as_deref(), Some(&b"right"[..]));
    }

    #[tokio::test]
    async fn opening_removes_half_written_shards_and_ignores_strays() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardDir::open(dir.path()).unwrap();
        let a = ShardAddress::of(b"kept");
        store.put(&a, Bytes::from_static(b"kept")).await.unwrap();
        fs::write(dir.path().join("shards/tmp/half"), b"ha").unwrap();
        fs::write(dir.path().join("shards").join(a.fan_out()).join("not-a-shard"), b"x").unwrap();
        drop(store);
        let store = ShardDir::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("shards/tmp")).unwrap().count(), 0);
        assert_eq!(store.list("").await.unwrap(), [a]);
    }
}
