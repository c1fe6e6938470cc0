
/** Stable error codes: every rejected promise is a `CofferError` with one of these. */
export type ErrorCode =
  | "NotFound" | "Unauthorized" | "Forbidden" | "InvalidInput" | "TooLarge"
  | "QuotaExceeded" | "Integrity" | "Network" | "Conflict" | "RateLimited"
  | "Aborted" | "Internal" | "WorkerFailed" | "FileChanged";

/**
 * What every Coffer promise rejects with: a JS `Error` whose `name` is
 * `"CofferError"` and whose `code` says what went wrong.
 *
 * The SDK trusts no size or record from the accelerator: an answer larger than any
 * valid answer to its request fails with `TooLarge` as soon as the cap is passed
 * (nothing past it is read); shard data that does not match the manifest's framing,
 * or a record other than the one asked for, fails with `Integrity`.
 *
 * @example
 * ```ts
 * try { await client.kv.set("$files", "x", 1); }
 * catch (e) { if ((e as CofferError).code === "InvalidInput") … }
 * ```
 */
export interface CofferError extends Error {
  name: "CofferError";
  code: ErrorCode;
  /**
   * With `RateLimited`: how long the accelerator asked to wait before trying again
   * (its `Retry-After`), in milliseconds. The SDK's own retries (shard uploads and
   * reads) already wait this long; an app that signs in again should too.
   */
  retryAfterMs?: number;
  /**
   * From a `writeFile({ resumable })` that failed (other than `Aborted`): the id to
   * finish it with, `storage.resumeUpload(uploadId, file)`.
   */
  uploadId?: string;
  /**
   * From `writeFile`/`resumeUpload` when the file was committed but recording it in
   * the account's shared-files list failed: what the call would have resolved to.
   */
  result?: { stat: FileStat; manifest: string };
}

/** An entry a list left out, and why (see `Listing`). */
export interface SkippedEntry {
  /** The entry's id (space id, user id or file id) when it has a readable one. */
  id: string | null;
  /**
   * `Integrity`: the entry is malformed or failed authentication (tampered, or sealed
   * under another key). `InvalidInput`: it authenticated but holds something this SDK
   * cannot read (e.g. a file's metadata that is not JSON).
   */
  code: ErrorCode;
  message: string;
}

/**
 * What `space.list`, `space.members` and `storage.listFiles` resolve to: an ordinary
 * array of every entry that could be read — one bad entry never hides the good ones —
 * with a non-enumerable `skipped` property (always present, usually empty) naming the
 * entries left out. The call itself still rejects when the list cannot be fetched at
 * all (`Network`, `Unauthorized`, …) or the answer is over the SDK's cap (`TooLarge`).
 *
 * @example
 * ```ts
 * const spaces = await client.space.list();
 * if (spaces.skipped.length) console.warn("unreadable spaces:", spaces.skipped);
 * ```
 */
export type Listing<T> = T[] & { readonly skipped: SkippedEntry[] };

/** Where a session is kept between page loads. */
export type Remember = "none" | "session" | "local";

/** Options of `Client.signUp` and `Client.signIn`. */
export interface CredentialsOptions {
  /** The accelerator, e.g. `"http://127.0.0.1:8080"`. */
  url: string;
  /** 1–128 characters of `A–Z a–z 0–9 . _ @ + -`, compared exactly. */
  username: string;
  /** Never sent anywhere: stretched with Argon2id on this device. */
  password: string;
  /**
   * Keep the session for `Client.resume`: `"session"` (default) survives reloads of
   * this tab (sessionStorage), `"local"` survives browser restarts (localStorage),
   * `"none"` keeps nothing. What is kept (session token and the account's root
   * secret) lets anyone with access to this origin's storage read the user's data
   * until `signOut`.
   */
  remember?: Remember;
  /**
   * Offline kv (default `false`): while the accelerator cannot be reached, `kv.set`
   * and `kv.delete` are queued on this device and `kv.get` / `kv.list` answer from
   * what this device last read, listed or wrote, all kept sealed in IndexedDB. The
   * queue is sent, in order, when the accelerator answers again — even after a reload
   * (`Client.resume` works offline for a session remembered with this on). See
   * `kv.pending()` and `kv.on("status")`.
   */
  offline?: boolean;
}

/** Options naming only the accelerator. */
export interface UrlOptions {
  /** The accelerator, e.g. `"http://127.0.0.1:8080"`. */
  url: string;
}

/** Options of `Client.resume`. */
export interface ResumeOptions extends UrlOptions {
  /** Offline kv on or off for this client; by default as the session was signed in. */
  offline?: boolean;
}

/** Options of `client.changePassword`. */
export interface ChangePasswordOptions {
  currentPassword: string;
  newPassword: string;
}

/** Options of `Client.recover`: `signIn`'s, with a recovery code for the password. */
export interface RecoverOptions extends Omit<CredentialsOptions, "password"> {
  /**
   * The code `client.createRecoveryCode()` gave: 36 letters and digits, in groups of
   * four. Case, spaces and hyphens do not matter; a mistyped character is caught
   * (`InvalidInput`) before anything is sent.
   */
  recoveryCode: string;
  /** The account's new password. */
  newPassword: string;
}

/** Options of `client.kv.set`. */
export interface KvSetOptions {
  /**
   * `true` (default): sealed with AES-256-GCM on this device. `false`: stored as
   * plaintext JSON that the accelerator can read, still with a MAC so it cannot be
   * forged or moved.
   */
  encrypt?: boolean;
}

/** A change to the signed-in user's kv data, from any of their devices. */
export interface KvChangeEvent<T = unknown> {
  collection: string;
  id: string;
  type: "set" | "delete";
  /** The new value, decrypted; `null` for a delete (or if it failed to authenticate). */
  data: T | null;
  /** Position in the user's change log. */
  seq: number;
  /**
   * Present when the value failed authentication (`code: "Integrity"`), or — offline
   * kv, with `seq` 0 — when the accelerator refused a write this device had queued
   * (e.g. `QuotaExceeded`): that write is dropped.
   */
  error?: CofferError;
  /**
   * Offline kv: present (`true`) when this change, made elsewhere, overwrote a write
   * this device queued while offline and sent when it came back online.
   */
  overwritten?: true;
}

/** Offline kv's state: whether the accelerator answers, and how many writes wait for it. */
export interface KvStatusEvent {
  status: "online" | "offline";
  /** Writes queued on this device (every tab of the account), not yet sent. */
  pending: number;
}

/** The feed fell too far behind to replay what it missed: reload your view. */
export interface KvResyncEvent {
  /** The change-log position the feed continues from. */
  seq: number;
}

/**
 * The account signed out in another tab (or another client) of this origin, so
 * this client is signed out too: its calls now reject with `Unauthorized`.
 */
export interface ClientSignOutEvent {
  reason: "another-tab";
}

/** Stops a listener. Calling it again does nothing. */
export type Unsubscribe = () => void;

/**
 * The per-user key/value store for small JSON values (`client.kv`). Values are
 * sealed on this device before they leave it; collection and id names are visible
 * to the accelerator.
 */
export interface Kv {
  /**
   * Stores a JSON value (at most 256 KiB serialized). Rejects with `InvalidInput`
   * for values JSON cannot hold exactly (functions, BigInt, NaN, cycles), empty or
   * over-long names and collections starting with `$`; `TooLarge` over 256 KiB.
   *
   * @example
   * ```ts
   * await client.kv.set("todos", "t1", { title: "Ship docs", done: false });
   * await client.kv.set("public-profile", "ada", { handle: "@ada" }, { encrypt: false });
   * ```
   */
  set(collection: string, id: string, value: unknown, options?: KvSetOptions): Promise<void>;
  /**
   * Reads and decrypts a value; `null` when there is none. Rejects with
   * `Integrity` if the stored value was tampered with.
   *
   * @example
   * ```ts
   * const todo = await client.kv.get<{ title: string; done: boolean }>("todos", "t1");
   * ```
   */
  get<T = unknown>(collection: string, id: string): Promise<T | null>;
  /**
   * Deletes a value; resolves to whether it existed (offline: as far as this device
   * knows).
   */
  delete(collection: string, id: string): Promise<boolean>;
  /** The ids in a collection, sorted (values are not listed: `get` each). */
  list(collection: string): Promise<string[]>;
  /**
   * Offline kv: how many writes are queued on this device, waiting for the
   * accelerator. Always 0 for a client without `offline: true`.
   */
  pending(): Promise<number>;
  /**
   * Listens for changes to this user's data on every device (this one included).
   * Events arrive after the call that caused them returns, in order, none lost
   * across reconnects. The feed starts where this client signed in, so the first
   * listener also receives changes made since then. A listener keeps its client
   * alive until it is removed (or the client signs out).
   *
   * @example
   * ```ts
   * const off = client.kv.on("change", (e) => { if (e.collection === "todos") refresh(); });
   * off();
   * ```
   */
  on<T = unknown>(event: "change", listener: (event: KvChangeEvent<T>) => void): Unsubscribe;
  /** The feed missed more than the accelerator keeps: reload everything you show. */
  on(event: "resync", listener: (event: KvResyncEvent) => void): Unsubscribe;
  /**
   * Offline kv (`offline: true`; otherwise `InvalidInput`): told the current status
   * at once, then whenever the accelerator stops or starts answering or the number
   * of queued writes changes.
   *
   * @example
   * ```ts
   * client.kv.on("status", ({ status, pending }) => { badge.textContent = status === "offline" ? `Offline · ${pending} queued` : ""; });
   * ```
   */
  on(event: "status", listener: (event: KvStatusEvent) => void): Unsubscribe;
}

/** A member's rights in a space. */
export type Role = "owner" | "writer" | "reader";

/** A space as its members see it. */
export interface SpaceInfo {
  id: string;
  /** Sealed on the accelerator; `null` if this account holds no key for it. */
  name: string | null;
  role: Role;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
}

/** Options of `client.space.invite`. */
export interface InviteOptions {
  /** What joiners may do: `"reader"` (default) or `"writer"`. */
  role?: "reader" | "writer";
  /** Lifetime in milliseconds (default 7 days). */
  expiresIn?: number;
  /** How many people may join with it (default 1). */
  maxUses?: number;
}

/** A member of a space. */
export interface SpaceMember {
  userId: string;
  username: string;
  role: Role;
  joinedAt: number;
}

/** A space's metered bytes: shards (data and parity) of its committed files. */
export interface SpaceUsage {
  usedBytes: number;
  quotaBytes: number;
}

/**
 * Shared spaces (`client.space`). A space's key is known to its members only: it
 * travels inside invite tokens, never to the accelerator.
 */
export interface Spaces {
  /**
   * Creates a space this account owns.
   * @example
   * ```ts
   * const space = await client.space.create({ name: "Holiday photos" });
   * ```
   */
  create(options: { name: string }): Promise<SpaceInfo>;
  /**
   * The spaces this account is a member of, oldest first. A space whose entry is
   * malformed or whose sealed name does not open under the key held for it is left
   * out and named in `skipped`.
   */
  list(): Promise<Listing<SpaceInfo>>;
  /**
   * An invite token (owners only). It carries the space key: give it only to the
   * person you invite.
   * @example
   * ```ts
   * const token = await client.space.invite(space.id, { role: "writer", maxUses: 1 });
   * await friend.space.join(token);
   * ```
   */
  invite(spaceId: string, options?: InviteOptions): Promise<string>;
  /**
   * Joins with an invite token; `Forbidden` if it expired or was used up. The
   * token's key is saved only once proven: it must open the space's sealed name
   * (`Integrity` otherwise — the token was altered; nothing is saved, ask for a new
   * invite). If this account already holds a different key for the space, the join
   * is refused with `Conflict` before the accelerator is asked, and the held key is
   * kept: a tampered token cannot lock a member out.
   */
  join(token: string): Promise<SpaceInfo>;
  /** The members of a space (members only); a malformed entry is named in `skipped`. */
  members(spaceId: string): Promise<Listing<SpaceMember>>;
  /**
   * Leaves a space; the last owner cannot leave while others remain (`Conflict`).
   * The space's invites stop working, and the next call of a remaining member on
   * the space gives it a new key (see `removeMember`).
   */
  leave(spaceId: string): Promise<void>;
  /**
   * Removes a member (owners only) and rotates the space's key: a new key, sealed to
   * the public key of each remaining member in the space's roster (a MAC under the
   * space key proves each entry; the removed member is refused if still listed),
   * with the old keys linked under it. Files written afterwards are sealed under the new key, which the
   * removed member never holds, even if it kept every key it had; the remaining
   * members' SDKs pick the new key up on their next call. Invites made before stop
   * working. What the removed member already read or saved cannot be taken back.
   *
   * Rejects with `Integrity` if the accelerator's roster does not check (a member's
   * public key altered, or the removed member still listed): nothing is sealed. If the member was removed but the
   * key could not be rotated (offline, altered roster), the rejection says so; the
   * space takes no new file or invite until a member's next call rotates it.
   */
  removeMember(spaceId: string, userId: string): Promise<void>;
  /** Used and quota bytes of a space. */
  usage(spaceId: string): Promise<SpaceUsage>;
}

/** What a file is known by. */
export interface FileStat<M = Record<string, unknown>> {
  /** The file's id in its space (`null` when read by manifest alone). */
  id: string | null;
  spaceId: string | null;
  /** Plaintext bytes. */
  size: number;
  /** The metadata given to `writeFile` (at most 256 bytes of JSON), sealed at rest. */
  metadata: M;
  createdAt?: number;
  createdBy?: string;
  /** Bytes of shards (data and parity) metered against the space. */
  storedBytes?: number;
  /** The read capability (in listings). */
  manifest?: string;
}

/** Options of `client.storage.writeFile`. */
export interface WriteFileOptions<M = Record<string, unknown>> {
  /** The space to write into (from `client.space`); writers and owners only. */
  spaceId: string;
  /** Read slice by slice: a `Blob`/`File` is never held in memory whole. */
  data: Uint8Array | Blob | File;
  /** JSON, at most 256 bytes; defaults to `{ name, type }` of a `File`. */
  metadata?: M;
  /** Called as bytes are sealed and uploaded. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Aborts the write (`Aborted`); nothing becomes visible. */
  signal?: AbortSignal;
  /** Plaintext bytes per chunk, 1 KiB – 16 MiB (default 4 MiB). */
  chunkSize?: number;
  /** Reed–Solomon data shards per chunk, 1–8 (default 4). */
  dataShards?: number;
  /** Parity shards per chunk, 1–4 (default 2): that many may be lost. */
  parityShards?: number;
  /**
   * Keep a plan of this upload on the device (IndexedDB, sealed under the account's
   * keys; default `false`), so that after a reload, a crash or a lost network
   * `resumeUpload(id, file)` finishes it, sending only what the accelerator does not
   * hold yet. A failed write's error then carries `uploadId`; the plan is deleted on
   * commit and on abort, and expires with the accelerator's grace period. With
   * `{ context }`, any JSON of at most 1 KiB (which record the file is for, say) is
   * kept with the plan, sealed too, and given back by `pendingUploads()`.
   */
  resumable?: boolean | { context?: unknown };
}

/** A resumable upload begun on this device and not finished (`pendingUploads()`). */
export interface PendingUpload<M = Record<string, unknown>> {
  /** What `resumeUpload` and `discardUpload` take. */
  id: string;
  spaceId: string;
  /** The `File`'s name; `null` for bytes or a `Blob`. */
  name: string | null;
  size: number;
  /** The `File`'s `lastModified`; `null` for bytes or a `Blob`. */
  lastModified: number | null;
  /** The metadata the file will be committed with. */
  metadata: M;
  /** What the app kept with the upload (`resumable: { context }`), or `null`. */
  context: unknown;
  /** Bytes already stored: a resume sends at most `size - doneBytes`. */
  doneBytes: number;
  /** When the upload began, ms since the Unix epoch. */
  createdAt: number;
  /** When the plan is dropped (the accelerator collects unfinished uploads then). */
  expiresAt: number;
}

/** Options of `resumeUpload`. */
export interface ResumeUploadOptions {
  /** Counts every byte of the file, those stored before included. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /** Aborts the upload (`Aborted`) and drops its plan. */
  signal?: AbortSignal;
}

/** Options of the read calls. */
export interface ReadOptions {
  /** `"bytes"` (default) → `Uint8Array`; `"blob"` → `Blob`; `"stream"` → `ReadableStream<Uint8Array>`. */
  as?: "bytes" | "blob" | "stream";
  /**
   * First byte to read (default 0). Only the chunks that hold the range are fetched
   * and opened. An offset past the end rejects with `InvalidInput`; one at the end
   * reads nothing.
   */
  offset?: number;
  /** Bytes to read from `offset` (default: to the end); a range past the end stops at the end. */
  length?: number;
  /** Counts the bytes of the range read, out of the range's length. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  signal?: AbortSignal;
}

/** What a read resolves to. */
export interface ReadResult<D = Uint8Array, M = Record<string, unknown>> {
  data: D;
  stat: FileStat<M>;
}

/**
 * File storage (`client.storage`): each chunk sealed under its own key,
 * Reed–Solomon erasure-coded into content-addressed shards. The manifest is the
 * capability to read.
 */
export interface Storage {
  /**
   * Writes a file into a space. Rejects with `Forbidden` (not a writer of the space),
   * `QuotaExceeded`, `TooLarge` (metadata over 256 bytes), `Aborted`, `Network`; in
   * each case nothing becomes visible. If the file was committed but recording it in
   * this account's shared-files list (`listFiles()`) failed even after retries, the
   * `CofferError` carries `result: { stat, manifest }`.
   * @example
   * ```ts
   * const { stat, manifest } = await client.storage.writeFile({
   *   spaceId, data: file, metadata: { name: file.name, type: file.type },
   *   onProgress: (done, total) => bar.value = done / total,
   * });
   * ```
   */
  writeFile<M = Record<string, unknown>>(options: WriteFileOptions<M>): Promise<{ stat: FileStat<M>; manifest: string }>;
  /**
   * Finishes a resumable upload this account began on this device
   * (`writeFile({ resumable: true })`), given the same file again. Asks the
   * accelerator which of the stored shards it still holds and sends only the rest;
   * resolves like `writeFile`. Rejects with `FileChanged` if the file's size, name,
   * last-modified time or first chunk differ (its plan is kept), `NotFound` if no
   * such upload is pending here (finished, aborted, discarded or expired),
   * `Conflict` while another tab of this origin is writing or resuming it.
   * @example
   * ```ts
   * for (const upload of await client.storage.pendingUploads()) {
   *   const file = await askUserFor(upload.name);      // e.g. an <input type=file>
   *   await client.storage.resumeUpload(upload.id, file, { onProgress });
   * }
   * ```
   */
  resumeUpload<M = Record<string, unknown>>(
    id: string,
    data: Uint8Array | Blob | File,
    options?: ResumeUploadOptions,
  ): Promise<{ stat: FileStat<M>; manifest: string }>;
  /** The resumable uploads this account began on this device and has not finished, oldest first. */
  pendingUploads(): Promise<PendingUpload[]>;
  /**
   * Drops a pending upload's plan; resolves to whether there was one. `Conflict`
   * while another tab of this origin is writing or resuming it.
   */
  discardUpload(id: string): Promise<boolean>;
  /**
   * Reads a file of a space you belong to (`Forbidden` otherwise), or the part of
   * it `{ offset, length }` names; `stat` is always the whole file's. The record the
   * accelerator answers with must be the one asked for — same space id and file id,
   * and sealed for them — or the read fails with `Integrity`.
   * @example
   * ```ts
   * // bytes 1 MiB – 2 MiB of a video, to seek in it
   * const { data } = await client.storage.readFile(spaceId, id, { offset: 1 << 20, length: 1 << 20 });
   * ```
   */
  readFile(spaceId: string, id: string, options?: ReadOptions & { as?: "bytes" }): Promise<ReadResult<Uint8Array>>;
  readFile(spaceId: string, id: string, options: ReadOptions & { as: "blob" }): Promise<ReadResult<Blob>>;
  readFile(spaceId: string, id: string, options: ReadOptions & { as: "stream" }): Promise<ReadResult<ReadableStream<Uint8Array>>>;
  /**
   * Reads a file from its manifest alone: no membership, no sign-in needed
   * (works from `Client.anonymous`). `NotFound` once the file was deleted.
   */
  readByManifest(manifest: string, options?: ReadOptions & { as?: "bytes" }): Promise<ReadResult<Uint8Array>>;
  readByManifest(manifest: string, options: ReadOptions & { as: "blob" }): Promise<ReadResult<Blob>>;
  readByManifest(manifest: string, options: ReadOptions & { as: "stream" }): Promise<ReadResult<ReadableStream<Uint8Array>>>;
  /**
   * With no argument: the files this account wrote. With `{ spaceId }`: every file in
   * that space. A record that is malformed or fails authentication is left out and
   * named in `skipped`.
   */
  listFiles(options?: { spaceId?: string }): Promise<Listing<FileStat>>;
  /** Deletes a file (writers and owners); its shards are freed and its manifest stops opening it. */
  deleteFile(spaceId: string, id: string): Promise<boolean>;
}

/** What `inspectManifest` tells about a manifest (no file bytes are read). */
export interface ManifestInfo {
  size: number;
  chunkSize: number;
  dataShards: number;
  parityShards: number;
  chunkCount: number;
  /** Levels of chunk table between the manifest and the data chunks. */
  depth: number;
  /** What the manifest lists directly: data chunks (depth 0) or top-level table nodes. */
  refs: { kind: "data" | "table"; level: number; index: number; shards: string[] }[];
}
