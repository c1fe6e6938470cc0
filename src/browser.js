// The SDK's JavaScript: the few things its Rust reaches through JS rather than
// web-sys. One module on purpose: wasm-bindgen ships each JS snippet as a module of
// its own, which the page must fetch before the wasm can start, so every snippet is
// one more request on an app's first load (and on the test harness's little server,
// which now and then leaves a seventh concurrent request unanswered). Sections, with
// the Rust that calls each:
//
// - JSON that refuses what it cannot hold exactly ........ json.rs
// - a ReadableStream pulled from Rust .................... storage/read.rs
// - AES-GCM through WebCrypto ............................ storage/cipher.rs
// - the `coffer` IndexedDB database ...................... device.rs
// - what the tabs of one user share (channel, Web Locks) .. tabs.rs
// - the page's pool of file workers ...................... storage/pool.rs

// ---- JSON ---------------------------------------------------------------------

/** `JSON.stringify`, throwing a TypeError naming the property JSON would change. */
export function strictStringify(value) {
  return JSON.stringify(value, function (key, v) {
    const where = key === "" ? "the value" : `property ${JSON.stringify(key)}`;
    const t = typeof v;
    if (t === "function" || t === "symbol" || t === "bigint") {
      throw new TypeError(`${where} is a ${t}, which JSON cannot hold`);
    }
    if (t === "number" && !Number.isFinite(v)) {
      throw new TypeError(`${where} is ${v}, which JSON cannot hold`);
    }
    if (v === undefined && (key === "" || Array.isArray(this))) {
      throw new TypeError(`${where} is undefined, which JSON cannot hold (use null)`);
    }
    return v;
  });
}

// ---- Streams ------------------------------------------------------------------

/** A ReadableStream whose every pull awaits `pull()` (`null`: the end). */
export function pullStream(pull, cancel) {
  return new ReadableStream({
    async pull(controller) {
      const chunk = await pull();
      if (chunk === null) controller.close(); else controller.enqueue(chunk);
    },
    cancel() { cancel(); },
  });
}

// ---- WebCrypto ----------------------------------------------------------------

/** Whether this context has `crypto.subtle` (secure contexts only). */
export function subtleAvailable() {
  return typeof globalThis.crypto === "object" && typeof globalThis.crypto.subtle === "object";
}

async function importKey(raw, usage) {
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, [usage]);
}

export async function subtleSeal(raw, iv, aad, plaintext) {
  const key = await importKey(raw, "encrypt");
  return new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad, tagLength: 128 }, key, plaintext));
}

export async function subtleOpen(raw, iv, aad, sealed) {
  const key = await importKey(raw, "decrypt");
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad, tagLength: 128 }, key, sealed));
}

// ---- IndexedDB ----------------------------------------------------------------
//
// The `coffer` database (SPEC.md "On the device"): a thin layer of promises. It
// stores what it is given; every value's secret part arrives sealed.
//
// Stores (version 1):
// - uploads        key "id"             { id, owner, expiresAt, sealed }, index "owner"
// - upload_chunks  key ["id", "index"]  { id, index, sealed }
// Added in version 2 (offline kv):
// - kv_cache       key "tag"            { tag, owner, collection, sealed }, indexes "owner", "collection"
// - kv_listed      key "tag"            { tag, owner, sealed }, index "owner"
// - kv_queue       key "n" (generated)  { n, owner, entry, sealed }, index "owner"

const DATABASE = "coffer";
const DATABASE_VERSION = 2;

let opened = null;

function upgrade(db) {
  if (!db.objectStoreNames.contains("uploads")) {
    db.createObjectStore("uploads", { keyPath: "id" }).createIndex("owner", "owner");
  }
  if (!db.objectStoreNames.contains("upload_chunks")) {
    db.createObjectStore("upload_chunks", { keyPath: ["id", "index"] });
  }
  if (!db.objectStoreNames.contains("kv_cache")) {
    const cache = db.createObjectStore("kv_cache", { keyPath: "tag" });
    cache.createIndex("owner", "owner");
    cache.createIndex("collection", "collection");
  }
  if (!db.objectStoreNames.contains("kv_listed")) {
    db.createObjectStore("kv_listed", { keyPath: "tag" }).createIndex("owner", "owner");
  }
  if (!db.objectStoreNames.contains("kv_queue")) {
    db.createObjectStore("kv_queue", { keyPath: "n", autoIncrement: true }).createIndex("owner", "owner");
  }
}

/** The open database, opened once per page (or worker). */
function openDatabase() {
  if (opened) return opened;
  opened = new Promise((resolve, reject) => {
    if (typeof indexedDB === "undefined") {
      reject(new Error("IndexedDB is not available in this context"));
      return;
    }
    const request = indexedDB.open(DATABASE, DATABASE_VERSION);
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
  const tx = (await openDatabase()).transaction(store, "readwrite");
  tx.objectStore(store).put(value);
  await committed(tx);
}

/** Writes every value of `values` into `store`, in one transaction. */
export async function idbPutAll(store, values) {
  const tx = (await openDatabase()).transaction(store, "readwrite");
  const objects = tx.objectStore(store);
  for (const value of values) objects.put(value);
  await committed(tx);
}

/** Deletes, in one transaction, every value of each of `stores` whose `index` is `key`. */
export async function idbDeleteByIndex(stores, index, key) {
  const tx = (await openDatabase()).transaction(stores, "readwrite");
  for (const store of stores) {
    const request = tx.objectStore(store).index(index).openKeyCursor(IDBKeyRange.only(key));
    request.onsuccess = () => {
      const cursor = request.result;
      if (!cursor) return;
      tx.objectStore(store).delete(cursor.primaryKey);
      cursor.continue();
    };
  }
  await committed(tx);
}

/** The value under `key` in `store`, or `undefined`. */
export async function idbGet(store, key) {
  return result((await openDatabase()).transaction(store).objectStore(store).get(key));
}

/** Every value in `store` whose `index` is `key`. */
export async function idbByIndex(store, index, key) {
  return result((await openDatabase()).transaction(store).objectStore(store).index(index).getAll(key));
}

/** Every value in `store` with a key from `lower` to `upper`, in key order. */
export async function idbRange(store, lower, upper) {
  return result((await openDatabase()).transaction(store).objectStore(store).getAll(IDBKeyRange.bound(lower, upper)));
}

/**
 * Deletes, in one transaction, each `[store, lower, upper]` of `ranges` (`upper`
 * absent: the one key `lower`).
 */
export async function idbDelete(ranges) {
  const tx = (await openDatabase()).transaction([...new Set(ranges.map(([store]) => store))], "readwrite");
  for (const [store, lower, upper] of ranges) {
    tx.objectStore(store).delete(upper === undefined ? lower : IDBKeyRange.bound(lower, upper));
  }
  await committed(tx);
}

// ---- Tabs ---------------------------------------------------------------------
//
// The tabs (and clients) of one signed-in user on this origin talk over a
// BroadcastChannel, and Web Locks make one of them the change feed's leader
// (SPEC.md D.4). Where the page has neither, each client works alone.

/** A BroadcastChannel carrying text, and the Web Locks its users take. */
export class Tabs {
  constructor(name, onMessage) {
    this.channel = typeof BroadcastChannel === "function" ? new BroadcastChannel(name) : null;
    if (this.channel) this.channel.onmessage = ({ data }) => typeof data === "string" && onMessage(data);
  }

  /** Whether other tabs can be reached and a leader elected. */
  shared() {
    return this.channel !== null && typeof globalThis.navigator?.locks?.request === "function";
  }

  post(text) {
    this.channel?.postMessage(text);
  }

  close() {
    this.channel?.close();
    this.channel = null;
  }
}

/**
 * Waits for the Web Lock `name` and holds it: calls `granted()` once it is held.
 * Returns a function that lets it go (or stops waiting for it).
 */
export function holdLock(name, granted) {
  const stop = new AbortController();
  let release;
  const held = new Promise((resolve) => (release = resolve));
  navigator.locks
    .request(name, { signal: stop.signal }, () => {
      granted();
      return held;
    })
    .catch(() => {}); // stopped while waiting
  return () => {
    stop.abort();
    release();
  };
}

/**
 * Waits for the Web Lock `name`: resolves to a function that lets it go. Where the
 * page has no Web Locks, at once. `signal` aborting stops the wait, or lets the lock
 * go if it was granted meanwhile (the waiter is gone: nobody else would).
 */
export function waitLock(name, signal) {
  if (typeof globalThis.navigator?.locks?.request !== "function") return Promise.resolve(() => {});
  return new Promise((resolve, reject) => {
    let release;
    const held = new Promise((done) => (release = done));
    signal.addEventListener("abort", () => release(), { once: true });
    navigator.locks
      .request(name, { signal }, () => {
        resolve(release);
        return held;
      })
      .catch((e) => signal.aborted || reject(e));
  });
}

/**
 * The Web Lock `name` if no one holds it: a function that lets it go, or `null` if
 * it is held elsewhere. Where the page has no Web Locks, always granted.
 */
export async function tryLock(name) {
  if (typeof globalThis.navigator?.locks?.request !== "function") return () => {};
  let release;
  const held = new Promise((resolve) => (release = resolve));
  const granted = await new Promise((answer) => {
    navigator.locks.request(name, { ifAvailable: true }, (lock) => {
      answer(lock !== null);
      return lock ? held : undefined;
    });
  });
  return granted ? release : null;
}

// ---- File workers -------------------------------------------------------------
//
// A few module workers running coffer-worker.js (shipped next to coffer.js), each
// with its own instance of the SDK's wasm, take chunks to seal and upload, or to
// fetch and open. pool.rs decides what to hand out; this part starts workers, routes
// their answers, and reports a worker that cannot start ("Unavailable": the SDK then
// works inline) or that stopped mid-call ("WorkerFailed").

/** How many workers this page should run: 0 where workers are unavailable. */
export function poolSize() {
  const inWorker = typeof WorkerGlobalScope === "function" && globalThis instanceof WorkerGlobalScope;
  if (inWorker || typeof Worker !== "function") return 0;
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4));
}

/** `promise`, or a rejection with code "Aborted" as soon as `signal` fires. */
export function abortable(promise, signal) {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const aborted = () => reject(Object.assign(new Error("the operation was aborted by its AbortSignal"), { code: "Aborted" }));
    if (signal.aborted) return aborted();
    signal.addEventListener("abort", aborted, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", aborted));
  });
}

/** A worker that does not say it is ready within this long is taken as unavailable. */
const START_MS = 20_000;
/** A worker idle this long is stopped, giving its memory back. */
const IDLE_MS = 15_000;

const failure = (code, message) => Object.assign(new Error(message), { code });

class Slot {
  constructor(pool, module) {
    this.pool = pool;
    this.jobs = new Map(); // id → { resolve, reject }
    this.waiting = []; // [message, transfer] posted once ready
    this.ready = false;
    this.idle = null;
    this.stats = { memory: 0, copied: 0 };
    this.worker = new Worker(new URL("../../../coffer-worker.js", import.meta.url), { type: "module" });
    this.worker.onmessage = ({ data }) => this.answer(data);
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.fail(event.message || "the worker failed to load or threw");
    };
    this.worker.onmessageerror = () => this.fail("a message from the worker could not be read");
    this.startTimer = setTimeout(() => this.fail(`the worker did not start within ${START_MS} ms`), START_MS);
    this.worker.postMessage({ module });
  }

  answer(data) {
    if (data.ready) {
      clearTimeout(this.startTimer);
      this.ready = true;
      for (const [message, transfer] of this.waiting.splice(0)) this.worker.postMessage(message, transfer);
      return;
    }
    if (data.failed !== undefined) return this.fail(data.failed);
    if (data.stats) this.pool.noted(this, data.stats);
    const job = this.jobs.get(data.id);
    if (!job) return; // cancelled
    this.jobs.delete(data.id);
    this.pool.done(data.id);
    if (data.error) job.reject(failure(data.error.code, data.error.message));
    else job.resolve(data.ok);
    this.armIdle();
  }

  post(id, message, transfer) {
    clearTimeout(this.idle);
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      if (this.ready) this.worker.postMessage(message, transfer);
      else this.waiting.push([message, transfer]);
    });
  }

  cancel(id) {
    if (this.jobs.delete(id)) {
      this.waiting = this.waiting.filter(([message]) => message.id !== id);
      if (this.ready) this.worker.postMessage({ cancel: id });
      this.armIdle();
    }
  }

  armIdle() {
    clearTimeout(this.idle);
    if (this.jobs.size === 0) this.idle = setTimeout(() => this.stop(), IDLE_MS);
  }

  /** The worker is gone: every job it held fails, and the pool forgets it. */
  fail(reason) {
    const started = this.ready;
    this.stop();
    const error = started
      ? failure("WorkerFailed", `a Coffer file worker stopped mid-call (${reason}); nothing was committed, try again`)
      : failure("Unavailable", `Coffer's file worker could not start (${reason})`);
    if (!started) this.pool.unavailable(error);
    for (const job of this.jobs.values()) job.reject(error);
    this.jobs.clear();
  }

  stop() {
    clearTimeout(this.startTimer);
    clearTimeout(this.idle);
    this.worker.terminate();
    this.pool.forget(this);
  }
}

export class Pool {
  constructor(size, module) {
    this.size = size;
    this.module = module;
    this.slots = [];
    this.where = new Map(); // job id → slot
    this.broken = null;
    this.totals = { started: 0, retiredCopied: 0, peakMemory: 0 };
  }

  /** Sends `message` (with `transfer`) to the least busy worker; resolves to its answer. */
  run(id, message, transfer) {
    if (this.broken) return Promise.reject(this.broken);
    let slot = this.slots.find((s) => s.jobs.size === 0);
    if (!slot && this.slots.length < this.size) {
      try {
        slot = new Slot(this, this.module);
      } catch (error) {
        this.unavailable(failure("Unavailable", `Coffer's file worker could not start (${error?.message ?? error})`));
        return Promise.reject(this.broken);
      }
      this.slots.push(slot);
      this.totals.started += 1;
    }
    slot ??= this.slots.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
    this.where.set(id, slot);
    return slot.post(id, { ...message, id }, transfer);
  }

  /** Stops job `id` (its answer, if any, is dropped). */
  cancel(id) {
    this.where.get(id)?.cancel(id);
    this.where.delete(id);
  }

  /** For the benchmark: workers running and started, their wasm memory now and at its
   * peak (summed over the workers), and the bytes they copied (src/copies.rs). */
  stats() {
    const live = this.slots.reduce((sum, s) => ({ memory: sum.memory + s.stats.memory, copied: sum.copied + s.stats.copied }), { memory: 0, copied: 0 });
    return {
      workers: this.slots.length,
      started: this.totals.started,
      wasmBytes: live.memory,
      peakWasmBytes: this.totals.peakMemory,
      copiedBytes: live.copied + this.totals.retiredCopied,
    };
  }

  noted(slot, stats) {
    slot.stats = stats;
    const memory = this.slots.reduce((sum, s) => sum + s.stats.memory, 0);
    this.totals.peakMemory = Math.max(this.totals.peakMemory, memory);
  }

  done(id) {
    this.where.delete(id);
  }

  forget(slot) {
    if (this.slots.includes(slot)) this.totals.retiredCopied += slot.stats.copied;
    this.slots = this.slots.filter((s) => s !== slot);
    for (const [id, s] of this.where) if (s === slot) this.where.delete(id);
  }

  unavailable(error) {
    this.broken ??= error;
  }
}
