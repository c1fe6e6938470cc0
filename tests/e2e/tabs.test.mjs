// Several tabs of one signed-in user (src/tabs.rs, src/feed.rs; SPEC.md D.4),
// through the real package in Chromium against the shared accelerator. The tabs
// are pages of one browser context (one origin's storage, BroadcastChannel and
// Web Locks); the writer is another context (another device).
//
// - three tabs listening open one websocket between them; when the tab holding it
//   closes in the middle of a stream of writes, another takes over, and each
//   remaining tab's listener gets every change exactly once, in order;
// - a tab whose listener joins late replays what it missed through the leader;
// - signing out in one tab signs out the others, which are told (`signout`);
// - an upload being written in one tab cannot be resumed or discarded in another.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { closeQuietly, cofferUrl, launch, newPage, uniqueName } from "./browser.mjs";
import { installPageHelpers } from "./page-helpers.mjs";
import { countingProxy, preparePage } from "./resume-page.mjs";

/** Opens another tab of `context` on the accelerator's origin, helpers installed. */
async function openTab(context) {
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`pageerror: ${e.message}`));
  page.sockets = 0;
  page.on("websocket", () => (page.sockets += 1));
  await page.goto(`${cofferUrl()}/pkg/package.json`);
  await page.evaluate(installPageHelpers);
  return page;
}

/** Restores the origin's remembered session in `page` as `window.client`. */
async function resume(page) {
  const username = await page.evaluate(async (url) => {
    window.client = await coffer.Client.resume({ url });
    return client?.username;
  }, cofferUrl());
  assert.ok(username, "the origin's remembered session was there");
}

/** Starts recording `page`'s change events in `window.events`. */
async function listen(page) {
  await page.evaluate(() => {
    window.events = [];
    window.off = client.kv.on("change", (e) => window.events.push({ seq: e.seq, id: e.id, n: e.data?.n }));
  });
}

const eventsOf = (page) => page.evaluate(() => window.events);

/** Waits until `page` has seen a change of `id`. */
const until = (page, id) =>
  page.waitForFunction((id) => window.events.some((e) => e.id === id), id, { timeout: 60_000 });

describe("several tabs of one user", { timeout: 300_000 }, () => {
  let browser;

  before(async () => {
    browser = await launch();
  });

  after(async () => {
    await closeQuietly(browser);
  });

  it("share one websocket; closing its tab mid-stream loses and doubles nothing", async () => {
    const username = uniqueName("tabs");
    const password = `pw-${username}`;
    const { context } = await newPage(browser);
    const tabs = [await openTab(context), await openTab(context), await openTab(context)];
    await tabs[0].evaluate(
      async ({ url, username, password }) => {
        window.client = await coffer.Client.signUp({ url, username, password, remember: "local" });
      },
      { url: cofferUrl(), username, password },
    );
    await resume(tabs[1]);
    await resume(tabs[2]);

    // The writer: the same account on another device.
    const { page: device } = await newPage(browser);
    await device.goto(`${cofferUrl()}/pkg/package.json`);
    await device.evaluate(installPageHelpers);
    await device.evaluate(
      async ({ url, username, password }) => {
        window.writer = await coffer.Client.signIn({ url, username, password, remember: "none" });
        window.write = (from, to) =>
          (async () => {
            for (let n = from; n < to; n++) await writer.kv.set("stream", `k${n}`, { n });
          })();
      },
      { url: cofferUrl(), username, password },
    );

    // The first tab to listen leads; the others join it.
    await listen(tabs[0]);
    await device.evaluate(() => write(0, 1));
    await until(tabs[0], "k0");
    await listen(tabs[1]);
    await listen(tabs[2]);
    await device.evaluate(() => write(1, 10));
    await until(tabs[1], "k9");
    await until(tabs[2], "k9");
    assert.deepEqual([tabs[1].sockets, tabs[2].sockets], [0, 0], "the other tabs opened no websocket");
    // The leader connected, then again to replay k0 for the tabs that joined (once
    // for both when their hellos come together).
    assert.ok(tabs[0].sockets >= 1 && tabs[0].sockets <= 3, `the leader connected ${tabs[0].sockets} times`);

    // Close the leader in the middle of a stream of writes.
    const writing = device.evaluate(() => write(10, 90));
    await tabs[1].waitForFunction(() => window.events.length >= 30, null, { timeout: 60_000 });
    await tabs[0].close();
    await writing;
    await until(tabs[1], "k89");
    await until(tabs[2], "k89");

    const expected = Array.from({ length: 90 }, (_, n) => `k${n}`);
    for (const [i, tab] of [tabs[1], tabs[2]].entries()) {
      const events = await eventsOf(tab);
      // k0 was written before this tab listened: the feed starts where the tab signed
      // in, so it arrives too (replayed through the leader).
      assert.deepEqual(events.map((e) => e.id), expected, `tab ${i + 2} got every change once, in order`);
      for (let k = 1; k < events.length; k++) assert.ok(events[k].seq > events[k - 1].seq, "in sequence order");
      for (const e of events) assert.equal(`k${e.n}`, e.id, "each event carries its own decrypted value");
    }
    assert.equal(tabs[1].sockets + tabs[2].sockets, 1, "one of the two remaining tabs took the websocket over");
    for (const tab of tabs.slice(1)) assert.deepEqual(tab.problems, []);
    await context.close();
    await device.context().close();
  });

  it("signing out in one tab signs the others out, and tells them", async () => {
    const { context } = await newPage(browser);
    const [a, b] = [await openTab(context), await openTab(context)];
    const username = uniqueName("signout");
    await a.evaluate(
      async ({ url, username }) => {
        window.client = await coffer.Client.signUp({ url, username, password: `pw-${username}`, remember: "local" });
      },
      { url: cofferUrl(), username },
    );
    await resume(b);
    await b.evaluate(() => {
      window.told = [];
      client.on("signout", (e) => told.push(e));
    });
    await a.evaluate(() => client.signOut());
    await b.waitForFunction(() => window.told.length > 0);
    const after = await b.evaluate(async () => ({
      told: window.told,
      username: client.username,
      get: await T.settle(client.kv.get("todos", "t1")),
      resumed: await coffer.Client.resume({ url: location.origin }),
    }));
    assert.deepEqual(after.told, [{ reason: "another-tab" }]);
    assert.equal(after.username, null, "the other tab's client is signed out");
    assert.equal(after.get.code, "Unauthorized");
    assert.equal(after.resumed, null, "nothing is remembered on the origin");
    const refused = await b.evaluate(() => T.settle(Promise.resolve().then(() => client.on("change", () => {}))));
    assert.equal(refused.code, "InvalidInput", "a client emits only signout");
    await context.close();
  });

  it("an upload being written in one tab is not resumed or discarded in another", async () => {
    const proxy = await countingProxy(cofferUrl());
    try {
      const { context, page: a } = await newPage(browser);
      await preparePage(a);
      const b = await context.newPage();
      await preparePage(b);
      const username = uniqueName("uploadlock");
      await a.evaluate(
        async ({ url, username }) => {
          window.client = await coffer.Client.signUp({ url, username, password: `pw-${username}`, remember: "local" });
          window.space = await client.space.create({ name: "locks" });
        },
        { url: proxy.url, username },
      );
      // The upload stalls after its first chunks, so it is still being written.
      proxy.holdAfter(2 * 1024 * 1024);
      await a.evaluate(() => {
        window.outcome = undefined;
        client.storage
          .writeFile({ spaceId: space.id, data: T.bytes(8 * 1024 * 1024, 7), chunkSize: 1024 * 1024, resumable: true })
          .then(
            () => (window.outcome = "written"),
            (e) => (window.outcome = e.code),
          );
      });
      await b.evaluate(async (url) => {
        window.client = await coffer.Client.resume({ url });
      }, proxy.url);
      await b.waitForFunction(async () => (await client.storage.pendingUploads()).length === 1, null, { polling: 100 });
      const tried = await b.evaluate(async () => {
        const [pending] = await client.storage.pendingUploads();
        return {
          resume: await T.settle(client.storage.resumeUpload(pending.id, T.bytes(8 * 1024 * 1024, 7))),
          discard: await T.settle(client.storage.discardUpload(pending.id)),
          still: (await client.storage.pendingUploads()).length,
        };
      });
      assert.equal(tried.resume.code, "Conflict", tried.resume.message);
      assert.match(tried.resume.message, /another tab/);
      assert.equal(tried.discard.code, "Conflict");
      assert.equal(tried.still, 1, "the plan is still there");
      assert.equal(await a.evaluate(() => window.outcome), undefined, "the first tab is still writing");
      proxy.release();
      await context.close();
    } finally {
      await proxy.stop();
    }
  });
});
