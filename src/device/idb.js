// The SDK's IndexedDB database, `coffer` (SPEC.md "On the device"): a thin layer of
// promises under src/device.rs. It stores what it is given; every value's secret
// part arrives sealed.
//
// Stores (version 1):
// - uploads        key "id"             { id, owner, expiresAt, sealed }, index "owner"
// - upload_chunks  key ["id", "index"]  { id, index, sealed }

const NAME = "coffer";
const VERSION = 1;

let opened = null;

function upgrade(db) {
  if (!db.objectStoreNames.contains("uploads")) {
    db.createObjectStore("uploads", { keyPath: "id" }).createIndex("owner", "owner");
  }
  if (!db.objectStoreNames.contains("upload_chunks")) {
    db.createObjectStore("upload_chunks", { keyPath: ["id", "index"] });
  }
}

/** The open database, opened once per page (or worker). */
function open() {
  if (opened) return opened;
  opened = new Promise((resolve, reject) => {
    if (typeof indexedDB === "undefined") {
      reject(new Error("IndexedDB is not available in this context"));
      return;
    }
    const request = indexedDB.open(NAME, VERSION);
    request.onupgradeneeded = () => upgrade(request.result);
    request.onsuccess = () => {
      const db = request.result;
      // Another tab (a newer SDK) wants to upgrade: let it, and open afresh next time.
      db.onversionchange = () => {
        db.close();
        opened = null;
      };
      resolve(db);
    };
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(new Error("IndexedDB is held open by an older tab of this app; close it"));
  });
  opened.catch(() => (opened = null));
  return opened;
}

function result(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("the IndexedDB transaction was aborted"));
  });
}

/** Writes `value` into `store` (replacing the one under its key). */
export async function idbPut(store, value) {
  const tx = (await open()).transaction(store, "readwrite");
  tx.objectStore(store).put(value);
  await committed(tx);
}

/** The value under `key` in `store`, or `undefined`. */
export async function idbGet(store, key) {
  return result((await open()).transaction(store).objectStore(store).get(key));
}

/** Every value in `store` whose `index` is `key`. */
export async function idbByIndex(store, index, key) {
  return result((await open()).transaction(store).objectStore(store).index(index).getAll(key));
}

/** Every value in `store` with a key from `lower` to `upper`, in key order. */
export async function idbRange(store, lower, upper) {
  return result((await open()).transaction(store).objectStore(store).getAll(IDBKeyRange.bound(lower, upper)));
}

/**
 * Deletes, in one transaction, each `[store, lower, upper]` of `ranges` (`upper`
 * absent: the one key `lower`).
 */
export async function idbDelete(ranges) {
  const tx = (await open()).transaction([...new Set(ranges.map(([store]) => store))], "readwrite");
  for (const [store, lower, upper] of ranges) {
    tx.objectStore(store).delete(upper === undefined ? lower : IDBKeyRange.bound(lower, upper));
  }
  await committed(tx);
}
