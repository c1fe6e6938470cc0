// No plaintext at rest: a value written through the SDK (sealed by default) never
// appears in any file of the accelerator's data directory — database, WAL and
// shared-memory files included, read as raw bytes. A second value written with
// `{ encrypt: false }` must be found by the same search, which proves the search
// sees what the accelerator stores. Collection and id names are visible to the
// accelerator by design, so only values (and the password) are searched for.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { filesContaining, filesUnder } from "./disk.mjs";
import { blankPageOnOrigin, closeQuietly, cofferUrl, dataDir, launch, newPage, randomHex, uniqueName } from "./browser.mjs";

// Fail here, before a browser starts, when the environment is incomplete.
cofferUrl();
dataDir();

// The timeout only stops a broken run from hanging; nothing asserts on time.
describe("no plaintext at rest in the accelerator's data dir", { timeout: 120_000 }, () => {
  const username = uniqueName("atrest");
  const password = `secret-password-${randomHex(12)}`;
  const sealedMarker = `marker-${randomHex(16)}`;
  const plainMarker = `marker-${randomHex(16)}`;
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    ({ page } = await newPage(browser));
    await blankPageOnOrigin(page);
    await page.evaluate(
      async ({ username, password }) => {
        const { default: init, Client } = await import("/pkg/coffer.js");
        await init();
        window.client = await Client.signUp({ url: location.origin, username, password, remember: "none" });
      },
      { username, password },
    );
  });

  after(async () => {
    await closeQuietly(browser);
  });

  it("the data dir holds files to search", async () => {
    const files = await filesUnder(dataDir());
    assert.ok(files.length > 0, `no files under ${dataDir()}`);
  });

  it("a sealed value's text is nowhere on disk", async () => {
    const readBack = await page.evaluate(async (marker) => {
      await window.client.kv.set("notes", "n1", { text: marker });
      return window.client.kv.get("notes", "n1");
    }, sealedMarker);
    assert.deepEqual(readBack, { text: sealedMarker }, "the SDK stored and read back the value");
    assert.deepEqual(await filesContaining(dataDir(), sealedMarker), []);
  });

  it("a plaintext value (encrypt: false) is found by the same search", async () => {
    await page.evaluate(async (marker) => {
      await window.client.kv.set("notes", "n2", { text: marker }, { encrypt: false });
    }, plainMarker);
    const hits = await filesContaining(dataDir(), plainMarker);
    assert.ok(hits.length > 0, "the search must find a value stored in the clear; it found none");
    // Written after the sealed one, so it is on disk too by now: still absent.
    assert.deepEqual(await filesContaining(dataDir(), sealedMarker), []);
  });

  it("the password is nowhere on disk", async () => {
    assert.deepEqual(await filesContaining(dataDir(), password), []);
  });
});
