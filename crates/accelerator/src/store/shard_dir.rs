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
use std::sync::atomic::{AtomicU64, Ordering};

use coffer_core::shard::ShardAddress;

use super::shards::{ShardReader, ShardStore};

/// The store's folder inside the data directory.
pub const DIR_NAME: &str = "shards";
/// The folder of shards being written, inside the store's folder.
const TMP_NAME: &str = "tmp";

/// [`ShardStore`] in a directory.
pub struct ShardDir {
    /// `DATA_DIR/shards`.
    root: PathBuf,
    /// `DATA_DIR/shards/tmp`.
    tmp: PathBuf,
    /// Makes every temporary file name unique within this process.
    next_tmp: AtomicU64,
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
        Ok(ShardDir { root, tmp, next_tmp: AtomicU64::new(0) })
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

impl ShardStore for ShardDir {
    fn put(&self, address: &ShardAddress, bytes: &[u8]) -> io::Result<()> {
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

    fn get(&self, address: &ShardAddress) -> io::Result<Option<Vec<u8>>> {
        absent_is_none(fs::read(self.path(address)))
    }

    fn open(&self, address: &ShardAddress) -> io::Result<Option<ShardReader>> {
        let Some(file) = absent_is_none(File::open(self.path(address)))? else { return Ok(None) };
        let len = file.metadata()?.len();
        Ok(Some(ShardReader { len, bytes: Box::new(file) }))
    }

    fn size(&self, address: &ShardAddress) -> io::Result<Option<u64>> {
        Ok(absent_is_none(fs::metadata(self.path(address)))?.filter(|m| m.is_file()).map(|m| m.len()))
    }

    fn delete(&self, address: &ShardAddress) -> io::Result<bool> {
        // No directory fsync: a delete that a crash undoes leaves a shard without a
        // record, which the collector's start-up sweep removes again.
        Ok(absent_is_none(fs::remove_file(self.path(address)))?.is_some())
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<ShardAddress>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_size_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardDir::open(dir.path()).unwrap();
        let bytes = b"sealed shard bytes".to_vec();
        let a = ShardAddress::of(&bytes);
        assert_eq!(store.get(&a).unwrap(), None);
        assert!(!store.has(&a).unwrap());
        store.put(&a, &bytes).unwrap();
        store.put(&a, &bytes).unwrap();
        assert_eq!(store.get(&a).unwrap(), Some(bytes.clone()));
        let mut reader = store.open(&a).unwrap().unwrap();
        let mut read = Vec::new();
        std::io::Read::read_to_end(&mut reader.bytes, &mut read).unwrap();
        assert_eq!((reader.len, read), (bytes.len() as u64, bytes.clone()));
        assert!(store.open(&ShardAddress::of(b"other")).unwrap().is_none());
        assert_eq!(store.size(&a).unwrap(), Some(bytes.len() as u64));
        assert!(store.path(&a).starts_with(dir.path().join("shards").join(a.fan_out())));
        assert_eq!(store.list(&a.fan_out()).unwrap(), [a]);
        assert_eq!(store.list(&a.to_hex()[..1]).unwrap(), [a]);
        assert!(store.list("zz").unwrap().is_empty());
        assert!(store.delete(&a).unwrap());
        assert!(!store.delete(&a).unwrap());
        assert_eq!(store.get(&a).unwrap(), None);
        assert_eq!(fs::read_dir(dir.path().join("shards/tmp")).unwrap().count(), 0, "no temporary left");
    }

    #[test]
    fn a_put_replaces_a_damaged_shard() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardDir::open(dir.path()).unwrap();
        let a = ShardAddress::of(b"right");
        store.put(&a, b"right").unwrap();
        fs::write(store.path(&a), b"rot").unwrap();
        store.put(&a, b"right").unwrap();
        assert_eq!(store.get(&a).unwrap().as_deref(), Some(&b"right"[..]));
    }

    #[test]
    fn opening_removes_half_written_shards_and_ignores_strays() {
        let dir = tempfile::tempdir().unwrap();
        let store = ShardDir::open(dir.path()).unwrap();
        let a = ShardAddress::of(b"kept");
        store.put(&a, b"kept").unwrap();
        fs::write(dir.path().join("shards/tmp/half"), b"ha").unwrap();
        fs::write(dir.path().join("shards").join(a.fan_out()).join("not-a-shard"), b"x").unwrap();
        drop(store);
        let store = ShardDir::open(dir.path()).unwrap();
        assert_eq!(fs::read_dir(dir.path().join("shards/tmp")).unwrap().count(), 0);
        assert_eq!(store.list("").unwrap(), [a]);
    }
}
