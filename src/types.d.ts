
/** Stable error codes: every rejected promise is a `CofferError` with one of these. */
export type ErrorCode =
  | "NotFound" | "Unauthorized" | "Forbidden" | "InvalidInput" | "TooLarge"
  | "QuotaExceeded" | "Integrity" | "Network" | "Conflict" | "RateLimited"
  | "Aborted" | "Internal";

/**
 * What every Coffer promise rejects with: a JS `Error` whose `name` is
 * `"CofferError"` and whose `code` says what went wrong.
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
}

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
}

/** Options naming only the accelerator. */
export interface UrlOptions {
  /** The accelerator, e.g. `"http://127.0.0.1:8080"`. */
  url: string;
}

/** Options of `client.changePassword`. */
export interface ChangePasswordOptions {
  currentPassword: string;
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
  /** Present when the value failed authentication (`code: "Integrity"`). */
  error?: CofferError;
}

/** The feed fell too far behind to replay what it missed: reload your view. */
export interface KvResyncEvent {
  /** The change-log position the feed continues from. */
  seq: number;
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
  /** Deletes a value; resolves to whether it existed. */
  delete(collection: string, id: string): Promise<boolean>;
  /** The ids in a collection, sorted (values are not listed: `get` each). */
  list(collection: string): Promise<string[]>;
  /**
   * Listens for changes to this user's data on every device (this one included).
   * Events arrive after the call that caused them returns, in order, none lost
   * across reconnects.
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
}
