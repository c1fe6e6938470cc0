// No plaintext at rest: a value written through the SDK (sealed by default) never
// appears in anything the accelerator keeps, read as raw bytes — every file of its
// data directory (database, WAL and shared-memory files included), or every row of
// its PostgreSQL tables and every object of its S3 bucket (./stored.mjs). A second value written with
// `{ encrypt: false }` must be found by the same search, which proves the search
// sees what the accelerator stores. Collection and id names reach it only sealed
// (SPEC.md §4.4): names used for set, list, delete and the change feed are searched
// for too, in the same rows as the plaintext value the search does find.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { containing, count } from "./stored.mjs";
import { blankPageOnOrigin, closeQuietly, cofferUrl, launch, newPage, randomHex, sharedStore, uniqueName } from "./browser.mjs";

// Fail here, before a browser starts, when the environment is incomplete.
cofferUrl();
const stored = sharedStore();

// The timeout only stops a broken run from hanging; nothing asserts on time.
describe("no plaintext at rest in what the accelerator keeps", { timeout: 120_000 }, () => {
  const username = uniqueName("atrest");
  const password = `secret-password-${randomHex(12)}`;
  const sealedMarker = `marker-${randomHex(16)}`;
  const plainMarker = `marker-${randomHex(16)}`;
  const collectionMarker = `collection-${randomHex(16)}`;
  const idMarkers = [`id-${randomHex(16)}`, `id-${randomHex(16)}`, `id-${randomHex(16)}`];
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

  it("there is something to search", async () => {
    assert.ok((await count(stored)) > 0, `nothing in ${stored.describe()}`);
  });

  it("a sealed value's text is nowhere at rest", async () => {
    const readBack = await page.evaluate(async (marker) => {
      await window.client.kv.set("notes", "n1", { text: marker });
      return window.client.kv.get("notes", "n1");
    }, sealedMarker);
    assert.deepEqual(readBack, { text: sealedMarker }, "the SDK stored and read back the value");
    assert.deepEqual(await containing(stored, sealedMarker), []);
  });

  it("a plaintext value (encrypt: false) is found by the same search", async () => {
    await page.evaluate(async (marker) => {
      await window.client.kv.set("notes", "n2", { text: marker }, { encrypt: false });
    }, plainMarker);
    const hits = await containing(stored, plainMarker);
    assert.ok(hits.length > 0, "the search must find a value stored in the clear; it found none");
    // Written after the sealed one, so it is on disk too by now: still absent.
    assert.deepEqual(await containing(stored, sealedMarker), []);
  });

  it("collection and id names are nowhere at rest, and read back in plain text", async () => {
    const out = await page.evaluate(
      async ({ collection, ids, plain }) => {
        const events = [];
        const off = window.client.kv.on("change", (e) => events.push({ collection: e.collection, id: e.id, type: e.type }));
        const seen = async (n) => {
          const deadline = Date.now() + 20_000;
          while (events.filter((e) => e.collection === collection).length < n && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 50));
          }
        };
        // The first event says the feed is live; the rest arrive as they happen.
        await window.client.kv.set(collection, ids[0], { n: 0 });
        await seen(1);
        await window.client.kv.set(collection, ids[1], { text: plain }, { encrypt: false });
        await window.client.kv.set(collection, ids[2], { n: 2 });
        await window.client.kv.delete(collection, ids[2]);
        await seen(4);
        off();
        return {
          list: await window.client.kv.list(collection),
          first: await window.client.kv.get(collection, ids[0]),
          events: events.filter((e) => e.collection === collection),
        };
      },
      { collection: collectionMarker, ids: idMarkers, plain: plainMarker },
    );
    assert.deepEqual(out.list, [idMarkers[0], idMarkers[1]].sort(), "list opens the sealed ids");
    assert.deepEqual(out.first, { n: 0 });
    assert.deepEqual(
      out.events,
      [
        { collection: collectionMarker, id: idMarkers[0], type: "set" },
        { collection: collectionMarker, id: idMarkers[1], type: "set" },
        { collection: collectionMarker, id: idMarkers[2], type: "set" },
        { collection: collectionMarker, id: idMarkers[2], type: "delete" },
      ],
      "the change feed names keys in plain text to the app",
    );
    assert.ok((await containing(stored, plainMarker)).length > 0, "the search finds the plaintext value in these rows");
    assert.deepEqual(await containing(stored, collectionMarker), [], "the collection's name is nowhere at rest");
    for (const id of idMarkers) assert.deepEqual(await containing(stored, id), [], `the id ${id} is nowhere at rest`);
  });

  it("the password is nowhere at rest", async () => {
    assert.deepEqual(await containing(stored, password), []);
  });
});
