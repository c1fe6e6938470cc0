// A small app that uses Coffer the way an app does: installed from npm as "coffer"
// (package.json), bundled by `vite build` with no configuration. The accelerator
// comes in the query string (`?accelerator=http://127.0.0.1:8080`).
//
// tests/e2e/app.test.mjs builds it, serves dist/ and drives it through `window.app`:
// each call is one thing an app does and answers with what the test checks — hashes
// and sizes, never the file's bytes. The page lists every step in #log.

import init, { Client } from "coffer";

const statusLine = document.getElementById("status");
const log = document.getElementById("log");
const accelerator = new URLSearchParams(location.search).get("accelerator");

/** The signed-in client, once `signUp` ran. */
let client = null;

function show(line) {
  const item = document.createElement("li");
  item.textContent = line;
  log.append(item);
}

/** Runs one step; a rejection names the step and the SDK's error code. */
async function step(name, run) {
  try {
    const result = await run();
    show(`${name}: done`);
    return result;
  } catch (e) {
    const message = `${name} failed: ${e?.code ?? e?.name ?? "Error"}: ${e?.message ?? e}`;
    show(message);
    throw new Error(message, { cause: e });
  }
}

function signedIn() {
  if (!client) throw new Error("sign up first");
  return client;
}

async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `size` random bytes (getRandomValues fills at most 64 KiB a call). */
function randomBytes(size) {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65_536) crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65_536, size)));
  return bytes;
}

/** Resolves with the first event `listen` hands to `accept`, or rejects after `ms`. */
function firstEvent(listen, accept, ms, what) {
  let off = () => {};
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    off = listen((event) => {
      if (!accept(event)) return;
      clearTimeout(timer);
      resolve(event);
    });
  }).finally(() => off());
}

window.app = {
  /** Settles when the package (and its wasm) is loaded: `{ ok }` or `{ ok: false, message }`. */
  booted: (async () => {
    try {
      if (!accelerator) throw new Error("open this page with ?accelerator=<the accelerator's URL>");
      await init();
      statusLine.textContent = `Ready; accelerator ${accelerator}`;
      return { ok: true };
    } catch (e) {
      const message = `loading coffer failed: ${e?.message ?? e}`;
      statusLine.textContent = message;
      return { ok: false, message };
    }
  })(),

  /** Signs up a fresh user (nothing remembered in this browser). */
  signUp: (username) =>
    step("sign up", async () => {
      client = await Client.signUp({ url: accelerator, username, password: `pw-${username}`, remember: "none" });
      return { username: client.username };
    }),

  /** Sets a value, reads it back, and waits for its change event on the feed. */
  kvRoundTrip: (value) =>
    step("kv set/get/feed", async () => {
      const kv = signedIn().kv;
      const id = `note-${crypto.randomUUID()}`;
      const change = firstEvent(
        (listener) => kv.on("change", listener),
        (e) => e.collection === "notes" && e.id === id,
        15_000,
        `change event for notes/${id}`,
      );
      await kv.set("notes", id, value);
      const got = await kv.get("notes", id);
      const event = await change;
      return { got, event: { collection: event.collection, id: event.id, type: event.type, data: event.data }, id };
    }),

  /**
   * Writes `size` random bytes (as a Blob, the way a picked file arrives) into a new
   * space, reads the file back by id and answers with both SHA-256s and the manifest.
   */
  writeAndRead: (size) =>
    step(`writeFile/readFile ${size} bytes`, async () => {
      const me = signedIn();
      const bytes = randomBytes(size);
      const written = await sha256Hex(bytes);
      const blob = new Blob([bytes], { type: "application/octet-stream" });
      const space = await me.space.create({ name: "Vite app files" });
      let progress = [0, 0];
      const started = performance.now();
      const { stat, manifest } = await me.storage.writeFile({
        spaceId: space.id,
        data: blob,
        metadata: { name: "random.bin", type: blob.type },
        onProgress: (done, total) => (progress = [done, total]),
      });
      const wroteMs = performance.now() - started;
      const readStarted = performance.now();
      const { data, stat: readStat } = await me.storage.readFile(space.id, stat.id);
      const readMs = performance.now() - readStarted;
      return {
        spaceId: space.id,
        fileId: stat.id,
        size: stat.size,
        manifest,
        progress,
        written,
        read: await sha256Hex(data),
        readLength: data.length,
        readMetadata: readStat.metadata,
        wroteMs: Math.round(wroteMs),
        readMs: Math.round(readMs),
      };
    }),

  /** Opens a shared file by its manifest alone, with no account. */
  openShared: (manifest) =>
    step("open by manifest", async () => {
      const reader = await Client.anonymous({ url: accelerator });
      const { data, stat } = await reader.storage.readByManifest(manifest);
      return { sha256: await sha256Hex(data), length: data.length, metadata: stat.metadata };
    }),
};
