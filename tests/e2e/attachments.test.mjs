// The demo's attachments, driven like a person would: attach a file to a to-do (a
// progress bar while it uploads), download it, copy its share link, and open that
// link in a fresh browser context that never signed in — name, size, download and
// inline preview; audio plays from range reads through the page's service worker,
// and seeking reads only the chunks it lands in. Removing the attachment turns the
// link off; a damaged link says so. Leaves screenshots in target/e2e/.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { closeQuietly, cofferUrl, launch, newPage, randomHex, uniqueName } from "./browser.mjs";

const BASE = cofferUrl();
const SHOTS = fileURLToPath(new URL("../../target/e2e/", import.meta.url));

const username = uniqueName("attach");
const password = `pw-${randomHex(8)}`;

/** The row of the to-do titled `title` (exact). */
const row = (page, title) =>
  page.getByTestId("todo").filter({ has: page.getByTestId("todo-title").getByText(title, { exact: true }) });

/** The attachment chip named `name` in the to-do titled `title`. */
const chip = (page, title, name) => row(page, title).getByTestId("attachment").filter({ has: page.getByText(name, { exact: true }) });

async function addTodo(page, title) {
  await page.getByLabel("New to-do").fill(title);
  await page.getByLabel("New to-do").press("Enter");
  await row(page, title).waitFor({ state: "visible" });
}

/** A WAV file of `bytes` of 16-bit mono samples at `rate` Hz: a slow sweep, so it is sound. */
function wav(bytes, rate) {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + bytes, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28); // bytes per second
  header.writeUInt16LE(2, 32); // bytes per frame
  header.writeUInt16LE(16, 34); // bits per sample
  header.write("data", 36);
  header.writeUInt32LE(bytes, 40);
  const samples = Buffer.alloc(bytes);
  for (let i = 0; i < bytes / 2; i++) samples.writeInt16LE(Math.round(8000 * Math.sin((i * i) / (rate * 4000))), 2 * i);
  return Buffer.concat([header, samples]);
}

/** Picks `file` ({ name, mimeType, buffer }) with the to-do's paper clip. */
async function attach(page, title, file) {
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), row(page, title).getByTestId("todo-attach").click()]);
  await chooser.setFiles(file);
}

/** Clicks `trigger` and returns the download's name and bytes. */
async function download(page, trigger) {
  const [event] = await Promise.all([page.waitForEvent("download"), trigger.click()]);
  const path = await event.path();
  assert.ok(path, `the download failed: ${await event.failure()}`);
  return { name: event.suggestedFilename(), bytes: await readFile(path) };
}

/** Opens a share link in a fresh context (no session, no storage) and waits for it to settle. */
async function openLink(browser, link, options = {}) {
  const fresh = await newPage(browser, options);
  fresh.requests = [];
  fresh.page.on("request", (r) => fresh.requests.push({ url: r.url(), body: r.postData() ?? "" }));
  await fresh.page.goto(link);
  await fresh.page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state));
  return fresh;
}

/** Fails with the page's own errors when it reported any. */
function assertNoPageErrors(page, allowed = []) {
  const unexpected = page.problems.filter((p) => !allowed.some((re) => re.test(p)));
  assert.deepEqual(unexpected, [], "errors in the page");
}

// The timeout only stops a broken run from hanging; nothing asserts on time
// (each Playwright wait has its own 20 s limit, set in browser.mjs).
describe("demo attachments: attach, download, share, open without signing in", { timeout: 300_000 }, () => {
  const recording = { name: "field-recording.wav", mimeType: "audio/wav", buffer: randomBytes(2_621_440 + 123) };
  const notes = { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("Bring the tripod.\nBatteries: 4 × AA.\n") };
  let browser;
  let a; // the signed-in device: { context, page }
  let link; // the recording's share link
  const links = {}; // name → share link, of the files attached to "Pack for the shoot"
  const opened = [];

  before(async () => {
    browser = await launch();
    a = await newPage(browser);
    await a.page.goto(`${BASE}/`);
    await a.page.waitForFunction(() => document.body.dataset.state === "signed-out");
    await a.page.getByLabel("Username").fill(username);
    await a.page.getByLabel("Password").fill(password);
    await a.page.getByTestId("sign-up").click();
    await a.page.waitForFunction(() => document.body.dataset.state === "ready");
  });

  after(async () => {
    for (const o of opened) await o.context.close().catch(() => {});
    await closeQuietly(browser);
  });

  it("attaches a file to a to-do, with a progress bar while it uploads", async () => {
    const { page } = a;
    await addTodo(page, "Send the field recording");
    // Every value the progress bar takes, as the page sets it: each change's old value,
    // and the value now (changes that land together are reported together, so the
    // value now is only the last of them).
    await page.evaluate(() => {
      window.progressSeen = [];
      new MutationObserver((records) => {
        for (const r of records) {
          if (r.target.dataset?.testid !== "upload-progress") continue;
          if (r.oldValue !== null) window.progressSeen.push(Number(r.oldValue));
          window.progressSeen.push(Number(r.target.getAttribute("value")));
        }
      }).observe(document.getElementById("todo-list"), { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ["value"] });
    });
    // Every shard upload waits in the browser; they are let through one at a time
    // until the bar shows a value part-way (chunks upload on workers, several at
    // once, so which uploads finish a chunk is not known in advance), then all.
    const held = [];
    let releasing = false;
    const hold = (r) => (releasing || r.request().method() !== "PUT" ? r.continue() : held.push(r));
    await page.route(`${BASE}/v1/shards/*`, hold);
    await attach(page, "Send the field recording", recording);
    const upload = row(page, "Send the field recording").getByTestId("upload");
    await upload.waitFor({ state: "visible" });
    assert.equal(await upload.getByTestId("upload-progress").isVisible(), true, "the progress bar shows");
    assert.match(await upload.textContent(), /field-recording\.wav/);
    const partWay = () => page.evaluate(() => window.progressSeen.some((v) => v > 0 && v < 1));
    // Bounded: 3 chunks of 6 shards, each upload released once it is held, and the
    // bar given 20 s in all.
    for (let waits = 0; !(await partWay()); waits++) {
      assert.ok(waits < 400, `the bar moves part-way as chunks finish: ${JSON.stringify(await page.evaluate(() => window.progressSeen))}`);
      if (held.length > 0) await held.shift().continue();
      await new Promise((r) => setTimeout(r, 50));
    }
    await mkdir(SHOTS, { recursive: true });
    await page.mouse.move(0, 0);
    await page.screenshot({ path: `${SHOTS}attachments-uploading.png`, fullPage: true, animations: "disabled" });
    releasing = true;
    for (const r of held.splice(0)) await r.continue();
    await page.unroute(`${BASE}/v1/shards/*`, hold);

    await chip(page, "Send the field recording", recording.name).waitFor({ state: "visible" });
    await upload.waitFor({ state: "detached" });
    const seen = await page.evaluate(() => window.progressSeen);
    assert.ok(seen.some((v) => v > 0 && v < 1), `the bar moved through the upload: ${JSON.stringify(seen)}`);
    assert.equal(seen.at(-1), 1, "and reached the end");
    const size = await chip(page, "Send the field recording", recording.name).getByTestId("attachment-size").textContent();
    assert.equal(size, "2.6 MB");
    assert.equal(await page.getByTestId("todo-error").isVisible(), false);
  });

  it("downloads the attachment with identical bytes", async () => {
    const got = await download(a.page, chip(a.page, "Send the field recording", recording.name).getByTestId("attachment-open"));
    assert.equal(got.name, recording.name);
    assert.ok(got.bytes.equals(recording.buffer), `downloaded ${got.bytes.length} bytes, expected the ${recording.buffer.length} attached`);
  });

  it("copy share link shows the link: the manifest in the fragment", async () => {
    const item = chip(a.page, "Send the field recording", recording.name);
    await item.getByTestId("attachment-share").click();
    await item.getByTestId("share-panel").waitFor({ state: "visible" });
    link = await item.getByTestId("share-link").inputValue();
    assert.match(link, new RegExp(`^${BASE.replace(/[.]/g, "\\.")}/open\\.html#coffer1:[A-Za-z0-9_-]+$`));
    // The note is written once the clipboard has answered (or refused), a moment later.
    await item.getByTestId("share-status").filter({ hasText: /anyone with it can open this file/i }).waitFor();
    await a.page.mouse.move(0, 0);
    await a.page.screenshot({ path: `${SHOTS}attachments.png`, fullPage: true, animations: "disabled" });
    await a.page.setViewportSize({ width: 390, height: 760 });
    await a.page.screenshot({ path: `${SHOTS}attachments-phone.png`, fullPage: true, animations: "disabled" });
    await a.page.setViewportSize({ width: 900, height: 800 });
  });

  it("opens the link in a fresh context, not signed in: name, size, identical bytes", async () => {
    const fresh = await openLink(browser, link);
    opened.push(fresh);
    const { page } = fresh;
    assert.equal(await page.evaluate(() => document.body.dataset.state), "ready", await page.getByTestId("open-error").textContent());
    assert.equal(await page.getByTestId("file-name").textContent(), recording.name);
    assert.equal(await page.getByTestId("file-details").textContent(), "2.6 MB · audio/wav");
    // Random bytes typed audio/wav: the player is tried, and says it cannot play them.
    await page.getByTestId("media-note").waitFor({ state: "visible" });
    assert.match(await page.getByTestId("media-note").textContent(), /could not decode it/);
    await page.screenshot({ path: `${SHOTS}open-file.png`, fullPage: true });
    const got = await download(page, page.getByTestId("download"));
    assert.equal(got.name, recording.name);
    assert.ok(got.bytes.equals(recording.buffer), "the shared file downloads byte-identical");
    // Nobody signed in here, and the manifest (the key) never left the browser.
    assert.deepEqual(await page.evaluate(() => [sessionStorage.length, localStorage.length]), [0, 0]);
    const secret = link.split("#coffer1:")[1];
    const leaks = fresh.requests.filter((r) => r.url.includes(secret) || r.body.includes(secret));
    assert.deepEqual(leaks, [], "no request carries the manifest");
    assertNoPageErrors(page);
  });

  it("previews images and text on the shared page", async () => {
    const { page } = a;
    await addTodo(page, "Pack for the shoot");
    const picture = { name: "shot-list.png", mimeType: "image/png", buffer: await page.screenshot({ type: "png" }) };
    await attach(page, "Pack for the shoot", picture);
    await chip(page, "Pack for the shoot", picture.name).waitFor();
    await attach(page, "Pack for the shoot", notes);
    await chip(page, "Pack for the shoot", notes.name).waitFor();
    assert.deepEqual(
      await row(page, "Pack for the shoot").getByTestId("attachment-name").allTextContents(),
      [picture.name, notes.name],
      "attachments in the order they were added",
    );

    for (const file of [picture, notes]) {
      const item = chip(page, "Pack for the shoot", file.name);
      await item.getByTestId("attachment-share").click();
      links[file.name] = await item.getByTestId("share-link").inputValue();
    }

    const image = await openLink(browser, links[picture.name], { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true });
    opened.push(image);
    const img = image.page.getByTestId("preview-image");
    await img.waitFor({ state: "visible" });
    await image.page.waitForFunction(() => document.querySelector("[data-testid=preview-image]").complete);
    assert.ok(await img.evaluate((el) => el.naturalWidth > 0), "the image decodes");
    assert.equal(await image.page.getByTestId("file-name").textContent(), picture.name);
    await image.page.screenshot({ path: `${SHOTS}open-image-phone.png`, fullPage: true });
    assertNoPageErrors(image.page);

    const text = await openLink(browser, links[notes.name]);
    opened.push(text);
    assert.equal(await text.page.getByTestId("preview-text").textContent(), notes.buffer.toString("utf8"));
    await text.page.screenshot({ path: `${SHOTS}open-text.png`, fullPage: true });
    assertNoPageErrors(text.page);
  });

  it("an audio attachment plays from range reads: seeking reads only the chunks it lands in", async () => {
    const { page } = a;
    // 16-bit mono PCM at 16 kHz, 8 MiB of samples: about 262 seconds, 9 chunks of 1 MiB.
    const interview = { name: "interview.wav", mimeType: "audio/wav", buffer: wav(8 * 1024 * 1024, 16_000) };
    await addTodo(page, "Transcribe the interview");
    await attach(page, "Transcribe the interview", interview);
    const item = chip(page, "Transcribe the interview", interview.name);
    await item.waitFor();
    await item.getByTestId("attachment-share").click();
    const fresh = await openLink(browser, await item.getByTestId("share-link").inputValue());
    opened.push(fresh);
    const audio = fresh.page.getByTestId("preview-audio");
    await audio.waitFor({ state: "visible" });
    const seen = await audio.evaluate(async (el) => {
      if (el.readyState < 1) await new Promise((resolve) => el.addEventListener("loadedmetadata", resolve, { once: true }));
      const duration = el.duration;
      const seeked = new Promise((resolve) => el.addEventListener("seeked", resolve, { once: true }));
      el.currentTime = duration * 0.9;
      await seeked;
      if (el.readyState < 2) await new Promise((resolve) => el.addEventListener("loadeddata", resolve, { once: true }));
      return { duration, at: el.currentTime, readyState: el.readyState, bytesRead: Number(el.dataset.bytesRead) };
    });
    const seconds = (interview.buffer.length - 44) / 32_000;
    assert.ok(Math.abs(seen.duration - seconds) < 0.1, `duration ${seen.duration}, expected ${seconds}`);
    assert.ok(Math.abs(seen.at - seconds * 0.9) < 1, `playing from ${seen.at}`);
    assert.ok(seen.readyState >= 2, `readyState ${seen.readyState}`);
    assert.ok(
      seen.bytesRead < interview.buffer.length / 2,
      `read ${seen.bytesRead} of ${interview.buffer.length} bytes to start and seek to 90 %`,
    );
    assert.equal(await fresh.page.evaluate(() => document.body.dataset.state), "ready");
    await fresh.page.screenshot({ path: `${SHOTS}open-audio.png`, fullPage: true });
    // The download still gives the whole file, read when asked for.
    const got = await download(fresh.page, fresh.page.getByTestId("download"));
    assert.ok(got.bytes.equals(interview.buffer), "the download is the whole file");
    assertNoPageErrors(fresh.page);
  });

  it("a reload keeps the attachments", async () => {
    await a.page.reload();
    await a.page.waitForFunction(() => document.body.dataset.state === "ready");
    await chip(a.page, "Send the field recording", recording.name).waitFor();
    assert.deepEqual(await row(a.page, "Pack for the shoot").getByTestId("attachment-name").allTextContents(), ["shot-list.png", "notes.txt"]);
  });

  it("removing the attachment turns its link off", async () => {
    const item = chip(a.page, "Send the field recording", recording.name);
    await item.getByTestId("attachment-remove").click();
    await item.waitFor({ state: "detached" });
    assert.equal(await a.page.getByTestId("todo-error").isVisible(), false);
    const fresh = await openLink(browser, link);
    opened.push(fresh);
    assert.equal(await fresh.page.getByTestId("open-error").textContent(), "This file was deleted or the link is wrong.");
    assert.equal(await fresh.page.getByTestId("download").isVisible(), false);
    await fresh.page.screenshot({ path: `${SHOTS}open-deleted.png`, fullPage: true });
  });

  it("deleting a to-do deletes its attachments' files", async () => {
    await row(a.page, "Pack for the shoot").getByTestId("todo-delete").click();
    await row(a.page, "Pack for the shoot").waitFor({ state: "detached" });
    for (const name of ["shot-list.png", "notes.txt"]) {
      const fresh = await openLink(browser, links[name]);
      opened.push(fresh);
      assert.equal(await fresh.page.getByTestId("open-error").textContent(), "This file was deleted or the link is wrong.", name);
    }
    assert.equal(await a.page.getByTestId("todo-error").isVisible(), false);
  });

  it("an upload can be cancelled: nothing is attached, no error", async () => {
    const { page } = a;
    await addTodo(page, "Maybe attach this");
    // Every shard upload waits in the browser, so the cancel lands mid-upload.
    const held = [];
    const hold = (r) => (r.request().method() === "PUT" ? held.push(r) : r.continue());
    await page.route(`${BASE}/v1/shards/*`, hold);
    await attach(page, "Maybe attach this", { name: "big.bin", mimeType: "application/octet-stream", buffer: randomBytes(3_000_000) });
    const upload = row(page, "Maybe attach this").getByTestId("upload");
    await upload.waitFor({ state: "visible" });
    await upload.getByTestId("upload-cancel").click();
    await upload.waitFor({ state: "detached" });
    await page.unroute(`${BASE}/v1/shards/*`, hold);
    await Promise.all(held.map((r) => r.continue().catch(() => {})));
    assert.equal(await row(page, "Maybe attach this").getByTestId("attachment").count(), 0);
    assert.equal(await row(page, "Maybe attach this").getByTestId("attachments").isVisible(), false);
    assert.equal(await page.getByTestId("todo-error").isVisible(), false);
  });

  it("an upload cut off by a reload is offered again, and the same file finishes it", async () => {
    const { page } = a;
    const dir = await mkdtemp(join(tmpdir(), "coffer-attach-"));
    const path = join(dir, "rough-cut.bin");
    const bytes = randomBytes(12 * 1024 * 1024 + 5);
    await writeFile(path, bytes);
    await addTodo(page, "Edit the rough cut");
    // The first 30 shard uploads (five 1 MiB chunks) go through; the rest wait, so
    // the reload lands mid-upload.
    let passed = 0;
    const hold = (r) => (r.request().method() !== "PUT" || ++passed <= 30 ? r.continue() : undefined);
    await page.route(`${BASE}/v1/shards/*`, hold);
    await attach(page, "Edit the rough cut", path);
    await page.waitForFunction(() => document.querySelector("[data-testid=upload-progress]")?.value >= 0.3);
    await page.unroute(`${BASE}/v1/shards/*`, hold);
    await page.reload();
    await page.waitForFunction(() => document.body.dataset.state === "ready");

    const item = row(page, "Edit the rough cut").getByTestId("interrupted-upload");
    await item.waitFor({ state: "visible" });
    assert.match(await item.textContent(), /rough-cut\.bin.*\d+% · interrupted/);
    await page.screenshot({ path: `${SHOTS}attachments-interrupted.png`, fullPage: true, animations: "disabled" });
    const [chooser] = await Promise.all([page.waitForEvent("filechooser"), item.getByTestId("upload-resume").click()]);
    await chooser.setFiles(path);
    await chip(page, "Edit the rough cut", "rough-cut.bin").waitFor();
    assert.equal(await row(page, "Edit the rough cut").getByTestId("interrupted-upload").count(), 0);
    const got = await download(page, chip(page, "Edit the rough cut", "rough-cut.bin").getByTestId("attachment-open"));
    assert.ok(got.bytes.equals(bytes), "the resumed attachment downloads byte-identical");
    const plans = await page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const request = indexedDB.open("coffer");
          request.onsuccess = () => {
            const count = request.result.transaction("uploads").objectStore("uploads").count();
            count.onsuccess = () => resolve(count.result);
          };
          request.onerror = () => reject(request.error);
        }),
    );
    assert.equal(plans, 0, "no upload plan is left on the device");
    await rm(dir, { recursive: true, force: true });
  });

  it("a damaged or empty link says so", async () => {
    const [head, body] = link.split("#coffer1:");
    const middle = Math.floor(body.length / 2);
    const flipped = body[middle] === "A" ? "B" : "A";
    const damaged = await openLink(browser, `${head}#coffer1:${body.slice(0, middle)}${flipped}${body.slice(middle + 1)}`);
    opened.push(damaged);
    assert.match(await damaged.page.getByTestId("open-error").textContent(), /incomplete or damaged/);
    const truncated = await openLink(browser, `${head}#coffer1:${body.slice(0, 40)}`);
    opened.push(truncated);
    assert.match(await truncated.page.getByTestId("open-error").textContent(), /incomplete or damaged/);
    const empty = await openLink(browser, head);
    opened.push(empty);
    assert.match(await empty.page.getByTestId("open-error").textContent(), /no file in it/);
  });

  it("the signed-in page reported no errors", () => {
    assertNoPageErrors(a.page);
  });
});
