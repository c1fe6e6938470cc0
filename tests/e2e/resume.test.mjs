// Resumable uploads (`writeFile({ resumable: true })`, `pendingUploads`,
// `resumeUpload`, `discardUpload`), through the real package in Chromium. The
// shared accelerator sits behind a proxy that counts the shard bytes uploaded and
// can cut uploads off; the expiry test runs an accelerator of its own with a
// three-second grace period.
//
// - a page reloaded halfway through an upload resumes it after signing in again:
//   it sends at most 55 % of what the whole upload sends, and the file reads back
//   byte-identical; the plan is gone once committed;
// - a network lost mid-upload fails the write with `uploadId`, and resuming with
//   the same bytes finishes it;
// - another file (size, name, time or first chunk) is refused with `FileChanged`
//   and the plan is kept; an aborted upload leaves no plan; another account on the
//   same device sees none of this one's;
// - IndexedDB holds none of the file's name or metadata in plaintext;
// - a plan expires with the accelerator's grace period.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { startAccelerator } from "./accelerator.mjs";
import { closeQuietly, cofferUrl, launch, newPage, randomHex, uniqueName } from "./browser.mjs";
import { installPageHelpers } from "./page-helpers.mjs";
import {
  countingProxy,
  installResumeHelpers,
  preparePage,
  restore,
  signUp,
  startWrite,
  untilProgress,
  uploadCutAndResumed,
} from "./resume-page.mjs";

const MIB = 1024 * 1024;
/**
 * Shard uploads pass at this rate in the tests that cut a small upload off: slow
 * enough that it is still under way when the test reloads or aborts.
 */
const SLOW = 4_000_000;

describe("resumable uploads", { timeout: 600_000 }, () => {
  let browser;
  let proxy;
  let dir;

  before(async () => {
    proxy = await countingProxy(cofferUrl());
    browser = await launch();
    dir = mkdtempSync(join(tmpdir(), "coffer-resume-"));
  });

  after(async () => {
    await closeQuietly(browser);
    await proxy?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("a page reloaded halfway resumes: at most 55 % sent again, byte-identical, the plan gone", async () => {
    // 48 chunks of 1 MiB, with a name and a time of its own.
    const size = 48 * MIB;
    const path = join(dir, "holiday-video.bin");
    writeFileSync(path, randomBytes(size));
    const time = new Date("2026-01-02T03:04:05Z");
    utimesSync(path, time, time);
    const who = { username: uniqueName("resume"), password: `pw-${randomHex(8)}` };
    const { whole, resumed, pending, spaceId, result } = await uploadCutAndResumed({
      browser,
      proxy,
      who,
      path,
      chunkSize: MIB,
      killAt: 0.5,
    });
    assert.equal(pending.spaceId, spaceId);
    assert.equal(pending.name, "holiday-video.bin");
    assert.equal(pending.size, size);
    assert.equal(pending.lastModified, time.getTime());
    assert.equal(pending.metadata.name, "holiday-video.bin");
    assert.ok(pending.doneBytes >= size / 2, `done before the reload: ${pending.doneBytes}`);
    assert.ok(pending.expiresAt > Date.now());

    const fraction = resumed / whole;
    console.log(`# resumed after a reload at half: sent ${resumed} of ${whole} shard bytes (${(100 * fraction).toFixed(1)} %)`);
    assert.ok(fraction <= 0.55, `the resume sent ${(100 * fraction).toFixed(1)} % of a whole upload`);
    assert.ok(resumed > 0, "the resume sent the rest");
    assert.equal(result.same, true, "the file reads back byte-identical");
    assert.equal(result.stat.size, size);
    assert.equal(result.lastProgress, 1);
    assert.deepEqual(result.pendingAfter, []);
    assert.deepEqual(result.rows.uploads, [], "the plan is deleted on commit");
    assert.deepEqual(result.rows.upload_chunks, [], "and its chunks");
  });

  it("a network lost mid-upload: the error carries uploadId, and the same bytes resume it", async () => {
    const { page } = await newPage(browser);
    await preparePage(page);
    await signUp(page, proxy.url, { username: uniqueName("offline"), password: "pw" });
    const spaceId = await page.evaluate(async () => (await client.space.create({ name: "lost" })).id);
    proxy.reset();
    proxy.throttle(SLOW);
    await startWrite(page, { spaceId, source: "bytes", size: 16 * MIB, seed: 5, chunkSize: MIB });
    await untilProgress(page, 0.3);
    proxy.setOffline(true);
    proxy.release();
    let outcome;
    try {
      outcome = await page.waitForFunction(() => window.outcome, null, { polling: 50, timeout: 120_000 });
      outcome = await outcome.jsonValue();
    } finally {
      proxy.setOffline(false);
    }
    assert.equal(outcome.ok, false);
    assert.equal(outcome.code, "Network", outcome.message);
    assert.match(outcome.uploadId, /^[A-Za-z0-9_-]{22}$/);
    const out = await page.evaluate(async (id) => {
      const bytes = T.bytes(16 * 1024 * 1024, 5);
      const { stat } = await client.storage.resumeUpload(id, bytes);
      const { data } = await client.storage.readFile(stat.spaceId, stat.id);
      return { compared: T.compare(data, bytes), pending: await client.storage.pendingUploads() };
    }, outcome.uploadId);
    assert.equal(out.compared, "same");
    assert.deepEqual(out.pending, []);
    await page.context().close();
  });

  it("another file is refused with FileChanged and the plan kept; an abort leaves no plan; another account sees none", async () => {
    const { page } = await newPage(browser);
    await preparePage(page);
    const who = { username: uniqueName("changed"), password: "pw" };
    await signUp(page, proxy.url, who);
    const spaceId = await page.evaluate(async () => (await client.space.create({ name: "changed" })).id);
    const size = 8 * MIB;
    proxy.reset();
    proxy.throttle(SLOW);
    await startWrite(page, { spaceId, source: "bytes", size, seed: 21, chunkSize: MIB, context: { todo: "t-21" } });
    await untilProgress(page, 0.25);
    await page.reload();
    proxy.release();
    await preparePage(page);
    await restore(page, proxy.url);
    const out = await page.evaluate(async (size) => {
      const [upload] = await client.storage.pendingUploads();
      const context = upload.context;
      const tooMuch = await T.settle(
        client.storage.writeFile({ spaceId: upload.spaceId, data: T.bytes(10, 1), resumable: { context: "x".repeat(2000) } }),
      );
      const resume = (data) => T.settle(client.storage.resumeUpload(upload.id, data));
      const bytes = T.bytes(size, 21);
      const firstChunk = bytes.slice();
      firstChunk[1000] ^= 1;
      const lastChunk = bytes.slice();
      lastChunk[size - 1] ^= 1;
      const named = new File([bytes], "other.bin", { lastModified: 1 });
      const outcomes = {
        size: await resume(bytes.subarray(1)),
        firstChunk: await resume(firstChunk),
        named: await resume(named),
      };
      // Only the first chunk is fingerprinted: a change further on is not seen
      // (the chunks already stored are not read again; the rest are what is given).
      const missing = await T.settle(client.storage.resumeUpload("AAAAAAAAAAAAAAAAAAAAAA", bytes));
      const right = await resume(bytes);
      const { data } = await client.storage.readFile(right.value.stat.spaceId, right.value.stat.id);
      return { outcomes, missing, right: right.ok, compared: T.compare(data, bytes), id: upload.id, context, tooMuch };
    }, size);
    assert.deepEqual(out.context, { todo: "t-21" }, "the app's context comes back with the plan");
    assert.equal(out.tooMuch.code, "TooLarge", out.tooMuch.message);
    for (const [what, outcome] of Object.entries(out.outcomes)) {
      assert.equal(outcome.ok, false, what);
      assert.equal(outcome.code, "FileChanged", `${what}: ${outcome.message}`);
    }
    assert.match(out.outcomes.size.message, /size differs/);
    assert.match(out.outcomes.firstChunk.message, /first chunk/);
    assert.match(out.outcomes.named.message, /name differs/);
    assert.equal(out.missing.code, "NotFound");
    assert.equal(out.right, true, "the plan was kept through the refusals");
    assert.equal(out.compared, "same");

    // An abort deletes the plan.
    proxy.reset();
    proxy.throttle(SLOW);
    await startWrite(page, { spaceId, source: "bytes", size, seed: 22, chunkSize: MIB, abortable: true });
    await untilProgress(page, 0.25);
    const aborted = await page.evaluate(async () => {
      abort.abort();
      while (!window.outcome) await new Promise((r) => setTimeout(r, 10));
      return { outcome: window.outcome, pending: await client.storage.pendingUploads(), rows: await T.deviceRows() };
    });
    proxy.release();
    assert.equal(aborted.outcome.code, "Aborted");
    assert.deepEqual(aborted.pending, []);
    assert.deepEqual(aborted.rows.uploads, []);
    assert.deepEqual(aborted.rows.upload_chunks, []);

    // A plan left behind is this account's alone.
    proxy.reset();
    proxy.throttle(SLOW);
    await startWrite(page, { spaceId, source: "bytes", size, seed: 23, chunkSize: MIB });
    await untilProgress(page, 0.25);
    await page.reload();
    proxy.release();
    await preparePage(page);
    await signUp(page, proxy.url, { username: uniqueName("neighbour"), password: "pw" }, { remember: "none" });
    const neighbour = await page.evaluate(async () => {
      const rows = await T.deviceRows();
      return {
        rows: rows.uploads.length,
        pending: await client.storage.pendingUploads(),
        resumed: await T.settle(client.storage.resumeUpload(rows.uploads[0].id, T.bytes(8 * 1024 * 1024, 23))),
        discarded: await client.storage.discardUpload(rows.uploads[0].id),
      };
    });
    assert.equal(neighbour.rows, 1, "the first account's plan is on the device");
    assert.deepEqual(neighbour.pending, []);
    assert.equal(neighbour.resumed.code, "NotFound");
    assert.match(neighbour.resumed.message, /another account/);
    assert.equal(neighbour.discarded, false);
    // The first account again, signed in straight at the accelerator (a sign-in is
    // bound to the origin it is made for, which the proxy is not).
    await page.evaluate(async (who) => {
      window.client = await coffer.Client.signIn({ url: location.origin, ...who, remember: "none" });
    }, who);
    const own = await page.evaluate(async () => {
      const [upload] = await client.storage.pendingUploads();
      return { discarded: await client.storage.discardUpload(upload.id), pending: await client.storage.pendingUploads() };
    });
    assert.deepEqual(own, { discarded: true, pending: [] });
    await page.context().close();
  });

  it("IndexedDB holds no plaintext of the file's name or metadata", async () => {
    const { page } = await newPage(browser);
    await preparePage(page);
    await signUp(page, proxy.url, { username: uniqueName("at-rest"), password: "pw" });
    const marker = `marker-${randomHex(8)}`;
    const path = join(dir, `${marker}.bin`);
    writeFileSync(path, randomBytes(8 * MIB));
    await page.evaluate(() => T.input());
    await page.setInputFiles("#file", path);
    const spaceId = await page.evaluate(async () => (await client.space.create({ name: "at rest" })).id);
    proxy.reset();
    proxy.throttle(SLOW);
    await startWrite(page, {
      spaceId,
      source: "input",
      chunkSize: MIB,
      metadata: { name: `${marker}.bin`, note: `${marker}-note` },
    });
    await untilProgress(page, 0.25);
    const rows = await page.evaluate(async () => {
      const rows = await T.deviceRows();
      // Bytes as Latin-1 text, so a search finds any UTF-8 run of the marker.
      const text = (value) =>
        value instanceof Uint8Array ? String.fromCharCode(...value) : typeof value === "object" ? Object.values(value).map(text).join("|") : String(value);
      return { count: rows.uploads.length + rows.upload_chunks.length, text: Object.values(rows).flat().map(text).join("\n") };
    });
    assert.ok(rows.count >= 2, `rows kept: ${rows.count} ${rows.text.slice(0, 300)} ${JSON.stringify(await page.evaluate(() => window.outcome))}`);
    assert.ok(!rows.text.includes(marker), "the marker is on the device in plaintext");
    assert.ok(!rows.text.includes(spaceId), "the space id is on the device in plaintext");
    proxy.release();
    await page.context().close();
  });

  it("a plan expires with the accelerator's grace period", async () => {
    const own = await startAccelerator(["--shard-grace-secs", "3", "--gc-interval-secs", "1"]);
    const ownProxy = await countingProxy(own.url);
    try {
      const { page } = await newPage(browser);
      await page.goto(`${own.url}/pkg/package.json`);
      await page.evaluate(installPageHelpers);
      await page.evaluate(installResumeHelpers);
      const who = { username: uniqueName("expiry"), password: "pw" };
      await signUp(page, ownProxy.url, who);
      const spaceId = await page.evaluate(async () => (await client.space.create({ name: "expiry" })).id);
      ownProxy.throttle(SLOW);
      await startWrite(page, { spaceId, source: "bytes", size: 8 * MIB, seed: 31, chunkSize: MIB });
      await untilProgress(page, 0.25);
      const [plan] = await page.evaluate(() => client.storage.pendingUploads());
      assert.equal(plan.expiresAt - plan.createdAt, 3000, "the plan lives as long as the grace period");
      await page.reload();
      ownProxy.release();
      await page.evaluate(installPageHelpers);
      await page.evaluate(installResumeHelpers);
      await restore(page, ownProxy.url);
      await page.waitForFunction((at) => Date.now() > at, plan.expiresAt, { polling: 100, timeout: 30_000 });
      const out = await page.evaluate(async (id) => ({
        pending: await client.storage.pendingUploads(),
        rows: await T.deviceRows(),
        resumed: await T.settle(client.storage.resumeUpload(id, T.bytes(8 * 1024 * 1024, 31))),
      }), plan.id);
      assert.deepEqual(out.pending, []);
      assert.deepEqual(out.rows.uploads, [], "the expired plan is deleted");
      assert.deepEqual(out.rows.upload_chunks, []);
      assert.equal(out.resumed.code, "NotFound");
      await page.context().close();
    } finally {
      await ownProxy.stop();
      await own.stop();
    }
  });
});
