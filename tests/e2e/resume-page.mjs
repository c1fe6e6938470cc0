// What the resumable-upload test and benchmark share (tests/e2e/resume.test.mjs,
// bench/resume.mjs): the page's helpers, signing up and restoring the tab's session,
// a resumable write started in the page, and the measure itself — a file uploaded
// whole, then again resumably, cut off by a reload at a given share and resumed,
// counting the shard bytes each sends through a proxy.

import assert from "node:assert/strict";

import { blankPageOnOrigin, newPage } from "./browser.mjs";
import { startHostile } from "./hostile.mjs";
import { installPageHelpers } from "./page-helpers.mjs";

/** Runs in the page: helpers of the resume tests, beside `T`. */
export function installResumeHelpers() {
  Object.assign(T, {
    /** A file input to hand Playwright's files to. */
    input() {
      let input = document.querySelector("#file");
      if (!input) {
        input = document.createElement("input");
        input.type = "file";
        input.id = "file";
        document.body.append(input);
      }
      return input;
    },
    file: () => document.querySelector("#file").files[0],
    async sha256(blob) {
      const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
      return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    },
    /** Every row of every store of the SDK's IndexedDB database, as it is kept. */
    async deviceRows() {
      const db = await new Promise((resolve, reject) => {
        const request = indexedDB.open("coffer");
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      const out = {};
      for (const name of db.objectStoreNames) {
        out[name] = await new Promise((resolve, reject) => {
          const request = db.transaction(name).objectStore(name).getAll();
          request.onsuccess = () => resolve(request.result);
          request.onerror = () => reject(request.error);
        });
      }
      db.close();
      return out;
    },
  });
}

/** Opens a page on the accelerator's origin with the helpers installed. */
export async function preparePage(page) {
  await blankPageOnOrigin(page);
  await page.evaluate(installPageHelpers);
  await page.evaluate(installResumeHelpers);
}

/**
 * Signs `who` up on the page, through `url`; the client is `window.client`. The
 * session is remembered for the tab (`remember: "session"`), as an app that
 * survives reloads keeps it.
 */
export async function signUp(page, url, who, { remember = "session" } = {}) {
  await page.evaluate(
    async ({ url, who, remember }) => {
      window.client = await coffer.Client.signUp({ url, username: who.username, password: who.password, remember });
    },
    { url, who, remember },
  );
}

/** After a reload: the tab's remembered session, as `window.client`. */
export async function restore(page, url) {
  const username = await page.evaluate(async (url) => {
    window.client = await coffer.Client.resume({ url });
    return client?.username;
  }, url);
  assert.ok(username, "the tab's session was remembered");
}

/** Starts a resumable write on the page; its outcome lands in `window.outcome`. */
export async function startWrite(page, options) {
  await page.evaluate(async ({ spaceId, source, size, seed, chunkSize, metadata, abortable, context }) => {
    window.progress = 0;
    window.outcome = undefined;
    window.abort = new AbortController();
    const data = source === "input" ? T.file() : T.bytes(size, seed);
    const write = client.storage.writeFile({
      spaceId,
      data,
      metadata,
      chunkSize,
      resumable: context === undefined ? true : { context },
      signal: abortable ? abort.signal : undefined,
      onProgress: (done, total) => (window.progress = done / total),
    });
    write.then(
      (value) => (window.outcome = { ok: true, value }),
      (e) => (window.outcome = { ok: false, code: e.code, message: e.message, uploadId: e.uploadId }),
    );
  }, options);
}

export async function untilProgress(page, fraction) {
  await page.waitForFunction((f) => window.progress >= f || window.outcome, fraction, { polling: 10, timeout: 120_000 });
  const outcome = await page.evaluate(() => window.outcome);
  assert.equal(outcome, undefined, `the write ended before ${fraction} of it: ${JSON.stringify(outcome)}`);
}

/**
 * Starts a proxy to `upstream` that counts the shard bytes uploaded through it;
 * while `offline` is set it hangs up on them, and past `holdAfter(bytes)` it holds
 * them unanswered (an upload that cannot finish before the page is reloaded) until
 * `release()`; `throttle(bytesPerSecond)` passes them no faster than that. Resolves to
 * `{ url, sent(), reset(), setOffline(on), holdAfter(bytes), throttle(rate), release(),
 * stop() }`.
 */
export async function countingProxy(upstream) {
  const proxy = await startHostile(upstream);
  let sent = 0;
  let offline = false;
  let limit = Infinity;
  let held = [];
  let rate = Infinity;
  let free = 0;
  proxy.lie("PUT", /^\/v1\/shards\//, async ({ body, res }) => {
    if (offline) return void res.destroy();
    if (sent + body.length > limit) return void held.push(res);
    sent += body.length;
    if (rate !== Infinity) {
      // One link of `rate` bytes a second, shared by every upload in arrival order.
      free = Math.max(Date.now(), free) + (1000 * body.length) / rate;
      await new Promise((resolve) => setTimeout(resolve, free - Date.now()));
    }
    return "pass";
  });
  const release = () => {
    limit = Infinity;
    rate = Infinity;
    for (const res of held) res.destroy();
    held = [];
  };
  return {
    url: proxy.url,
    sent: () => sent,
    reset: () => (sent = 0),
    setOffline: (on) => (offline = on),
    holdAfter: (bytes) => (limit = bytes),
    throttle: (bytesPerSecond) => (rate = bytesPerSecond),
    release,
    stop: () => {
      release();
      return proxy.stop();
    },
  };
}

/**
 * In a fresh context of `browser`: signs `who` up through `proxy`, uploads the file
 * at `path` whole, then resumably, reloads the page once `killAt` of it is reported
 * done, restores the session, lists the pending upload and resumes it, then reads
 * the file back. Resolves to `{ whole, resumed, pending, result }`: the shard bytes
 * each upload sent, the upload as `pendingUploads()` listed it after the reload, and
 * what the page saw after the resume (`same`: the read-back's SHA-256 is the file's;
 * `pendingAfter`, `rows`: what is left on the device).
 */
export async function uploadCutAndResumed({ browser, proxy, who, path, chunkSize, killAt }) {
  const { context, page } = await newPage(browser);
  try {
    await preparePage(page);
    await signUp(page, proxy.url, who);
    const spaceId = await page.evaluate(async () => (await client.space.create({ name: "resume" })).id);
    await page.evaluate(() => T.input());
    await page.setInputFiles("#file", path);

    proxy.reset();
    await page.evaluate(
      async ({ spaceId, chunkSize }) => client.storage.writeFile({ spaceId, data: T.file(), chunkSize }),
      { spaceId, chunkSize },
    );
    const whole = proxy.sent();

    // Uploads past a little more than the cut wait unanswered, so the write is
    // still under way when the page reloads, however fast this machine is.
    proxy.reset();
    proxy.holdAfter(whole * Math.min(1, killAt + 0.15));
    await startWrite(page, { spaceId, source: "input", chunkSize });
    await untilProgress(page, killAt);
    await page.reload();
    proxy.release();
    await preparePage(page);
    await restore(page, proxy.url);
    await page.evaluate(() => T.input());
    await page.setInputFiles("#file", path);
    const pending = await page.evaluate(() => client.storage.pendingUploads());
    assert.equal(pending.length, 1, `pending after the reload: ${JSON.stringify(pending)}`);

    proxy.reset();
    const result = await page.evaluate(async (id) => {
      const progress = [];
      const { stat, manifest } = await client.storage.resumeUpload(id, T.file(), {
        onProgress: (done, total) => progress.push(done / total),
      });
      const { data } = await client.storage.readFile(stat.spaceId, stat.id, { as: "blob" });
      return {
        stat,
        manifest,
        lastProgress: progress.at(-1),
        same: (await T.sha256(data)) === (await T.sha256(T.file())),
        pendingAfter: await client.storage.pendingUploads(),
        rows: await T.deviceRows(),
      };
    }, pending[0].id);
    return { whole, resumed: proxy.sent(), pending: pending[0], spaceId, result };
  } finally {
    await context.close();
  }
}
