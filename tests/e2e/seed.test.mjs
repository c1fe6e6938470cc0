// The kv examples of the storage guide (/work/shared/SEED-storage.txt, normative
// for the API) run as written, in a real page against the real accelerator, with
// the package the accelerator serves at /pkg/coffer.js. Lines copied from the guide
// are marked `// seed:`; everything else is set-up or recording for the asserts.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { blankPageOnOrigin, closeQuietly, cofferUrl, launch, newPage, randomHex, uniqueName } from "./browser.mjs";

cofferUrl(); // fails here, before a browser starts, when COFFER_URL is unset

// Timeouts only stop a broken run from hanging; nothing asserts on time.
describe("SEED-storage.txt kv examples, as written", { timeout: 120_000 }, () => {
  let browser;
  let page;
  let results;

  before(async () => {
    browser = await launch();
    ({ page } = await newPage(browser));
    await blankPageOnOrigin(page);
    results = await page.evaluate(runSeedExamples, { username: uniqueName("seed"), password: `pw-${randomHex(8)}` });
  }, { timeout: 90_000 });

  after(async () => {
    await closeQuietly(browser);
  });

  it("set then get returns the value, decrypted locally", () => {
    assert.deepEqual(results.todo, { title: "Ship docs", done: false });
  });

  it("delete answers whether it existed", () => {
    assert.equal(results.existed, true);
    assert.equal(results.existedAgain, false);
  });

  it("get of a missing key is null", () => {
    assert.equal(results.missing, null);
  });

  it("list returns ids only", () => {
    assert.deepEqual(results.ids, ["t2", "t3"]);
    assert.deepEqual(results.idsAfterDelete, []);
  });

  it("encrypt: false stores plaintext that get passes through", () => {
    assert.deepEqual(results.publicProfile, { handle: "@ada" });
  });

  it("on('change') reports set and delete with decrypted data; off() stops it", () => {
    const { change } = results;
    // The guide's listener ran once per "todos" event up to the probe write…
    assert.ok(change.todoEventsBeforeOff >= 1, "the probe write was seen");
    assert.equal(change.refreshCallsBeforeOff, change.todoEventsBeforeOff);
    // …and not at all after off(), although the feed delivered a later event.
    assert.equal(change.refreshCallsAfterOff, change.refreshCallsBeforeOff);
    assert.equal(change.lateEventSeen, true);
    assert.deepEqual(change.setEvent, {
      collection: "todos",
      id: "t4",
      type: "set",
      data: { title: "Feed probe", done: false },
    });
    assert.deepEqual(change.deleteEvent, { collection: "todos", id: "t1", type: "delete", data: null });
  });

  it("no server-side query: list, get each, filter after decryption", () => {
    assert.deepEqual(results.open, [{ title: "Write the guide", done: false }]);
    assert.equal(results.todosCount, 2);
  });
});

/**
 * Runs in the page: imports the package, signs up a fresh user and runs the
 * guide's kv lines. Returns plain JSON for node to assert on.
 *
 * The guide's TypeScript generic (`get<{ title: string; done: boolean }>`) is
 * stripped: this is JavaScript, and the type argument changes nothing at runtime.
 */
async function runSeedExamples({ username, password }) {
  const { default: init, Client } = await import("/pkg/coffer.js");
  await init();
  const client = await Client.signUp({ url: location.origin, username, password, remember: "none" });
  const out = {};

  /** Resolves when `predicate` holds for an event seen by the probe listener. */
  const seen = [];
  const waiters = [];
  const waitForEvent = (predicate) =>
    new Promise((resolve, reject) => {
      const hit = seen.find(predicate);
      if (hit) return resolve(hit);
      waiters.push({ predicate, resolve });
      // A guard against hanging, not a timing assertion.
      setTimeout(() => reject(new Error(`no change event matching ${predicate} arrived`)), 30_000);
    });
  const plain = (e) => ({ collection: e.collection, id: e.id, type: e.type, data: e.data });

  {
    await client.kv.set("todos", "t1", { title: "Ship docs", done: false }); // seed:
    const todo = await client.kv.get("todos", "t1"); // seed: (generic stripped)
    // → { title: "Ship docs", done: false } (decrypted locally)
    const existed = await client.kv.delete("todos", "t1"); // → true  // seed:
    out.todo = todo;
    out.existed = existed;
    out.existedAgain = await client.kv.delete("todos", "t1");
    out.missing = await client.kv.get("todos", "t1");
    out.idsAfterDelete = await client.kv.list("todos");
  }

  await client.kv.set("todos", "t2", { title: "Review the SDK", done: true });
  await client.kv.set("todos", "t3", { title: "Write the guide", done: false });
  {
    const ids = await client.kv.list("todos"); // → ["t1", "t2", …] (ids only)  // seed:
    out.ids = ids;
  }

  await client.kv.set("public-profile", "ada", { handle: "@ada" }, { encrypt: false }); // seed:
  out.publicProfile = await client.kv.get("public-profile", "ada");

  {
    let refreshCalls = 0;
    const refreshTodos = () => {
      refreshCalls += 1;
    };
    // seed: (the guide's listener, verbatim)
    const off = client.kv.on("change", (e) => {
    // e.collection, e.id, e.type ("set" | "delete"), e.data (decrypted | null)
    if (e.collection === "todos") refreshTodos();
    });
    // A probe registered after it: listeners run in order, so when the probe sees
    // an event the guide's listener has already had it.
    const stopProbe = client.kv.on("change", (e) => {
      seen.push(e);
      for (const w of waiters.splice(0)) {
        if (w.predicate(e)) w.resolve(e);
        else waiters.push(w);
      }
    });

    await client.kv.set("todos", "t4", { title: "Feed probe", done: false });
    const setEvent = await waitForEvent((e) => e.collection === "todos" && e.id === "t4");
    const deleteEvent = await waitForEvent((e) => e.collection === "todos" && e.type === "delete");
    const refreshCallsBeforeOff = refreshCalls;
    const todoEventsBeforeOff = seen.filter((e) => e.collection === "todos").length;

    // later
    off(); // seed:

    await client.kv.set("todos", "t5", { title: "After off", done: false });
    const late = await waitForEvent((e) => e.collection === "todos" && e.id === "t5");
    out.change = {
      setEvent: plain(setEvent),
      deleteEvent: plain(deleteEvent),
      refreshCallsBeforeOff,
      todoEventsBeforeOff,
      refreshCallsAfterOff: refreshCalls,
      lateEventSeen: late.id === "t5",
    };
    stopProbe();
    await client.kv.delete("todos", "t4");
    await client.kv.delete("todos", "t5");
  }

  {
    const ids = await client.kv.list("todos"); // seed:
    const todos = await Promise.all(ids.map((id) => client.kv.get("todos", id))); // seed:
    const open = todos.filter((t) => t && !t.done); // seed:
    out.open = open;
    out.todosCount = todos.length;
  }

  await client.signOut();
  return out;
}
