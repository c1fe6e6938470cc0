// The file pipeline off the page's main thread (src/storage/pool.rs, browser.js and
// the package's coffer-worker.js), through the real package in Chromium against the
// shared accelerator:
//
// - writeFile and readFile run on module workers: the page itself seals nothing,
//   and neither uploads nor fetches a shard (only the commit and the record);
// - an abort stops every worker's work at once: each upload in flight is abandoned;
// - a worker that dies mid-write fails the call with `WorkerFailed`, commits
//   nothing, and the next write starts a fresh worker;
// - where no worker can start (its script missing), the same calls run inline.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { blankPageOnOrigin, closeQuietly, cofferUrl, launch, newPage } from "./browser.mjs";
import { startHostile } from "./hostile.mjs";
import { installPageHelpers } from "./page-helpers.mjs";

const MIB = 1024 * 1024;

/** Runs in the page before the package loads: records what the page itself fetches. */
function recordPageRequests() {
  window.pageRequests = [];
  const fetch = window.fetch;
  window.fetch = function (input, init) {
    const request = input instanceof Request ? input : new Request(input, init);
    window.pageRequests.push(`${request.method} ${new URL(request.url).pathname}`);
    return fetch.call(this, input, init);
  };
}

/** A page on the accelerator's origin whose `owner` is signed up at `url`, with a space. */
async function openPage(browser, before = () => {}, url = cofferUrl()) {
  const { page } = await newPage(browser);
  await blankPageOnOrigin(page);
  await page.evaluate(before);
  await page.evaluate(installPageHelpers);
  await page.evaluate(async (url) => {
    const username = `workers-${crypto.randomUUID().slice(0, 12)}`;
    window.owner = await coffer.Client.signUp({ url, username, password: `pw-${username}`, remember: "none" });
    window.spaceId = (await owner.space.create({ name: "worker files" })).id;
  }, url);
  return page;
}

/** Polls `check` until it holds, or fails after `bound` ms. */
async function until(check, what, bound = 20_000) {
  const deadline = Date.now() + bound;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: still not true after ${bound} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Polls the page until `window.progress` reaches `fraction` of the write. */
async function untilProgress(page, fraction) {
  await page.waitForFunction((f) => window.progress >= f || window.outcome, fraction, { polling: 20, timeout: 60_000 });
}

describe("the file pipeline on workers", { timeout: 300_000 }, () => {
  let browser;

  before(async () => {
    browser = await launch();
  });

  after(async () => {
    await closeQuietly(browser);
  });

  it("writes and reads on workers: the page seals nothing and moves no shard itself", async () => {
    const page = await openPage(browser, recordPageRequests);
    const out = await page.evaluate(async (size) => {
      const bytes = T.bytes(size, 7);
      window.pageRequests.length = 0;
      const refuse = (what) => () => Promise.reject(new Error(`${what} on the page`));
      const { encrypt, decrypt } = crypto.subtle;
      crypto.subtle.encrypt = refuse("sealed");
      crypto.subtle.decrypt = refuse("opened");
      try {
        const { stat } = await owner.storage.writeFile({ spaceId, data: new Blob([bytes]) });
        const read = await owner.storage.readFile(spaceId, stat.id);
        const stream = (await owner.storage.readFile(spaceId, stat.id, { as: "stream" })).data;
        const parts = [];
        for await (const part of stream) parts.push(part);
        const streamed = new Uint8Array(await new Blob(parts).arrayBuffer());
        return { same: T.compare(read.data, bytes), streamed: T.compare(streamed, bytes), requests: window.pageRequests };
      } finally {
        Object.assign(crypto.subtle, { encrypt, decrypt });
      }
    }, 24 * MIB + 5);
    assert.equal(out.same, "same");
    assert.equal(out.streamed, "same");
    const shardRequests = out.requests.filter((r) => r.includes("/v1/shards"));
    assert.deepEqual(shardRequests, [], "the page moved shards itself");
    assert.ok(out.requests.some((r) => /^POST \/v1\/spaces\/[^/]+\/files$/.test(r)), `the page commits: ${out.requests}`);
    const workers = page.workers().map((w) => w.url());
    assert.ok(workers.length >= 1 && workers.every((u) => u.endsWith("/pkg/coffer-worker.js")), `workers: ${workers}`);
    await page.context().close();
  });

  it("an abort stops every worker at once: each shard upload in flight is abandoned", async () => {
    // Behind a proxy that, once the write is under way, holds every shard upload
    // unanswered: an abort must make the workers hang up on each of them.
    const proxy = await startHostile(cofferUrl());
    try {
      const held = [];
      let holding = false;
      proxy.lie("PUT", /^\/v1\/shards\//, ({ res }) => {
        if (!holding) return "pass";
        const upload = { abandoned: false };
        res.on("close", () => (upload.abandoned = true));
        held.push(upload);
      });
      const page = await openPage(browser, () => {}, proxy.url);
      await page.evaluate((size) => {
        window.abort = new AbortController();
        window.progress = 0;
        const data = new Blob([T.bytes(size, 9)]);
        const write = owner.storage.writeFile({
          spaceId,
          data,
          signal: abort.signal,
          onProgress: (done, total) => (window.progress = done / total),
        });
        T.settle(write).then((outcome) => (window.outcome = outcome));
      }, 64 * MIB);
      await untilProgress(page, 0.2);
      holding = true;
      await until(() => held.length >= 4, "shard uploads held by the proxy");
      await page.evaluate(() => abort.abort());
      await page.waitForFunction(() => window.outcome);
      const outcome = await page.evaluate(() => window.outcome);
      assert.equal(outcome.code, "Aborted", JSON.stringify(outcome));
      // Bounded well below the pool's idle stop (15 s), which would also hang up.
      await until(() => held.every((u) => u.abandoned), "every held shard upload abandoned by the browser", 8_000);
      const listed = await page.evaluate(async () => (await owner.storage.listFiles({ spaceId })).length);
      assert.equal(listed, 0);
      await page.context().close();
    } finally {
      await proxy.stop();
    }
  });

  it("a worker that dies mid-write fails the call with WorkerFailed, commits nothing, and the next write works", async () => {
    const page = await openPage(browser);
    await page.evaluate((size) => {
      window.progress = 0;
      T.settle(
        owner.storage.writeFile({
          spaceId,
          data: new Blob([T.bytes(size, 11)]),
          onProgress: (done, total) => (window.progress = done / total),
        }),
      ).then((outcome) => (window.outcome = outcome));
    }, 96 * MIB);
    await untilProgress(page, 0.1);
    const workers = page.workers();
    assert.ok(workers.length >= 1, "the write runs on workers");
    // An uncaught error in each worker, as a crash inside the SDK's wasm would be.
    await Promise.all(
      workers.map((w) => w.evaluate(() => setTimeout(() => {
        throw new Error("a worker crash staged by the test");
      })).catch(() => {})),
    );
    await page.waitForFunction(() => window.outcome, null, { timeout: 60_000 });
    const outcome = await page.evaluate(() => window.outcome);
    assert.equal(outcome.code, "WorkerFailed", JSON.stringify(outcome));
    const after = await page.evaluate(async () => {
      const listed = (await owner.storage.listFiles({ spaceId })).length;
      const bytes = T.bytes(9 * 1024 * 1024, 12);
      const { stat } = await owner.storage.writeFile({ spaceId, data: bytes });
      const read = await owner.storage.readFile(spaceId, stat.id);
      return { listed, same: T.compare(read.data, bytes) };
    });
    assert.deepEqual(after, { listed: 0, same: "same" });
    await page.context().close();
  });

  it("runs inline where no worker can start (its script is missing)", async () => {
    const page = await openPage(browser, () => {
      const Real = window.Worker;
      window.Worker = class extends Real {
        constructor(url, options) {
          super(new URL("/pkg/no-such-worker.js", url), options);
        }
      };
    });
    const warnings = [];
    page.on("console", (m) => m.type() === "warning" && warnings.push(m.text()));
    const out = await page.evaluate(async (size) => {
      const bytes = T.bytes(size, 13);
      const { stat, manifest } = await owner.storage.writeFile({ spaceId, data: bytes });
      const read = await owner.storage.readFile(spaceId, stat.id);
      const shared = await (await coffer.Client.anonymous({ url: location.origin })).storage.readByManifest(manifest);
      return { same: T.compare(read.data, bytes), shared: T.compare(shared.data, bytes) };
    }, 9 * MIB + 1);
    assert.deepEqual(out, { same: "same", shared: "same" });
    assert.ok(warnings.some((w) => w.includes("on the page instead")), `warnings: ${warnings}`);
    await page.context().close();
  });
});
