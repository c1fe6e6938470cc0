// Coffer in a real app: tests/app, a small Vite app that installs the built pkg/ as
// the package `coffer` (packed and copied, as from a registry) and is bundled by
// `vite build` with no configuration, served by `vite preview` on an origin of its
// own and driven in Chromium against the accelerator under test (COFFER_URL, which
// answers other origins through CORS). It proves that the package's wasm and the
// module worker the SDK starts itself resolve when a bundler has rewritten the
// package's URLs: sign up, kv set/get and the change feed, a 64 MiB file written
// and read back, and opened by manifest alone in another browser context. Hashes
// are compared, never the bytes shipped to node.
//
// The write must run on workers the bundler emitted as the app's assets; a script
// or wasm URL the bundler missed fails the last test, since `vite preview` answers
// it with index.html.
//
// Timeouts only stop a broken run from hanging; nothing asserts on time.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { buildApp, serveApp } from "../app/harness.mjs";
import { closeQuietly, cofferUrl, launch, newPage, uniqueName } from "./browser.mjs";

const ACCELERATOR = cofferUrl(); // fails here, before anything is built, when COFFER_URL is unset
const FILE_BYTES = 64 * 1024 * 1024;

describe("Coffer in a Vite app (tests/app), built and served", { timeout: 600_000 }, () => {
  let app;
  let browser;
  /** Every request the app's pages and their workers made: `{ url, status, type }`. */
  const responses = [];
  const failed = [];
  /** The app's pages, for their `problems` (page errors, console errors). */
  const pages = [];
  /** The workers the pages started: `{ page, url }`. */
  const workers = [];
  let owner; // the signed-up user's page
  let written; // what writeAndRead answered

  /** Opens the app in a fresh context (another "device") and waits for it to load the package. */
  async function openApp(label) {
    const { context, page } = await newPage(browser);
    pages.push(page);
    context.setDefaultTimeout(120_000);
    page.on("worker", (worker) => workers.push({ page: label, url: worker.url() }));
    page.on("console", (m) => m.type() === "warning" && page.problems.push(`console.warn: ${m.text()}`));
    context.on("response", (r) => responses.push({ url: r.url(), status: r.status(), type: r.headers()["content-type"] ?? "" }));
    context.on("requestfailed", (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));
    await page.goto(`${app.url}/?accelerator=${encodeURIComponent(ACCELERATOR)}`);
    const booted = await page.evaluate(() => window.app?.booted ?? { ok: false, message: "window.app is missing: main.js did not run" });
    if (!booted.ok) {
      const wasm = responses.filter((r) => r.url.endsWith(".wasm")).map((r) => `${r.url} → ${r.status} ${r.type}`);
      assert.fail(
        [`the app did not load coffer: ${booted.message}`, `.wasm fetched: ${wasm.join(", ") || "none"}`, ...failed, ...page.problems].join("\n"),
      );
    }
    return page;
  }

  /** Calls `window.app[name](arg)` in `page`; a failure carries the page's problems. */
  async function call(page, name, arg) {
    assert.ok(page, "the app did not load (see the first test)");
    try {
      return await page.evaluate(({ name, arg }) => window.app[name](arg), { name, arg });
    } catch (e) {
      throw new Error(`app.${name} failed: ${e.message}\n${page.problems.join("\n")}`);
    }
  }

  before(async () => {
    await buildApp();
    app = await serveApp();
    browser = await launch();
  }, { timeout: 300_000 });

  after(async () => {
    const list = workers.length ? workers.map((w) => `${w.page}: ${w.url}`).join("; ") : "none";
    console.log(`workers the app's pages started: ${list}`);
    await closeQuietly(browser);
    await app?.stop();
  });

  it("loads the package's wasm from the app's own origin, where the bundler put it", async () => {
    owner = await openApp("owner");
    const wasm = responses.filter((r) => new URL(r.url).pathname.endsWith(".wasm"));
    assert.ok(wasm.length > 0, `no .wasm was fetched; responses: ${responses.map((r) => r.url).join(", ")}`);
    for (const r of wasm) {
      assert.ok(r.url.startsWith(`${app.url}/`), `the wasm came from ${r.url}, not from the app (${app.url})`);
      assert.equal(r.status, 200, `${r.url} answered ${r.status}`);
      assert.match(r.type, /^application\/wasm/, `${r.url} is served as ${r.type}`);
    }
    // The accelerator also serves /pkg/; the app must not have reached for it.
    const offApi = responses.filter((r) => r.url.startsWith(`${ACCELERATOR}/`) && !r.url.startsWith(`${ACCELERATOR}/v1/`));
    assert.deepEqual(offApi.map((r) => r.url), [], "only the accelerator's API is fetched from it");
  });

  it("signs up a fresh user from the app's origin", async () => {
    assert.ok(owner, "the app did not load (see the first test)");
    const username = uniqueName("vite");
    const { username: signedIn } = await call(owner, "signUp", username);
    assert.equal(signedIn, username);
  });

  it("kv: set, get, and the change event on the feed", async () => {
    const value = { title: "Bundled by Vite", done: false, n: 42 };
    const { got, event, id } = await call(owner, "kvRoundTrip", value);
    assert.deepEqual(got, value, "get returns what set stored");
    assert.deepEqual(event, { collection: "notes", id, type: "set", data: value }, "the feed reports the set, decrypted");
  });

  it("writes a 64 MiB Blob and reads it back byte-identical", async () => {
    written = await call(owner, "writeAndRead", FILE_BYTES);
    assert.equal(written.size, FILE_BYTES, "the written file's stat has its size");
    assert.deepEqual(written.progress, [FILE_BYTES, FILE_BYTES], "onProgress reached the whole file");
    assert.equal(written.readLength, FILE_BYTES, "readFile returns every byte");
    assert.equal(written.read, written.written, "readFile returns the bytes written (SHA-256 differs)");
    assert.deepEqual(written.readMetadata, { name: "random.bin", type: "application/octet-stream" });
    console.log(`64 MiB through the bundled SDK (Playwright attached): write ${written.wroteMs} ms, read ${written.readMs} ms`);
    // The bundler rewrote the worker's URL too: the file moved through workers it
    // emitted as an asset of the app (not inline, which the SDK falls back to with a
    // warning when no worker can start).
    const started = workers.filter((w) => w.page === "owner").map((w) => w.url);
    assert.ok(started.length >= 1, "writeFile started no worker");
    assert.ok(started.every((url) => url.startsWith(`${app.url}/assets/`)), `workers outside the app's assets: ${started}`);
    const inline = owner.problems.filter((p) => p.includes("on the page instead"));
    assert.deepEqual(inline, [], "the SDK fell back to sealing on the page");
  });

  it("another browser context opens the file by its manifest alone", async () => {
    assert.ok(written?.manifest, "no file was written (see the previous test)");
    const reader = await openApp("reader");
    const shared = await call(reader, "openShared", written.manifest);
    assert.equal(shared.length, FILE_BYTES, "readByManifest returns every byte");
    assert.equal(shared.sha256, written.written, "readByManifest returns the bytes written (SHA-256 differs)");
    assert.deepEqual(shared.metadata, { name: "random.bin", type: "application/octet-stream" });
  });

  it("no page error or console error, and every file of the app answered as what it is", () => {
    // Only the app's own files: the SDK may cancel API requests it no longer needs.
    // `vite preview` answers a path it lacks with index.html and 200, so a script or
    // wasm URL the bundler missed shows as the wrong type, not as a 404.
    const ours = (url) => url.startsWith(`${app.url}/`);
    const TYPES = { ".js": /^(text|application)\/javascript\b/, ".mjs": /^(text|application)\/javascript\b/, ".wasm": /^application\/wasm\b/ };
    const wrongType = (r) => {
      const path = new URL(r.url).pathname;
      const want = Object.entries(TYPES).find(([ext]) => path.endsWith(ext))?.[1];
      return want && !want.test(r.type);
    };
    const problems = [
      ...failed.filter((f) => ours(f)).map((f) => `request failed: ${f}`),
      ...responses.filter((r) => ours(r.url) && r.status >= 400).map((r) => `${r.url} answered ${r.status}`),
      ...responses.filter((r) => ours(r.url) && wrongType(r)).map((r) => `${r.url} came as ${r.type || "no type"}`),
      ...pages.flatMap((p) => p.problems),
    ];
    assert.deepEqual(problems, []);
  });
});
