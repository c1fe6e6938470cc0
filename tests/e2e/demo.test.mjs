// The demo to-do page, driven like a person would: one user on two devices (two
// browser contexts, each with its own storage), live sync between them, errors
// shown, a reload that keeps the session. Leaves a screenshot in target/e2e/.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { closeQuietly, cofferUrl, launch, newPage, randomHex, uniqueName } from "./browser.mjs";

const BASE = cofferUrl();
const SHOTS = fileURLToPath(new URL("../../target/e2e/", import.meta.url));

const username = uniqueName("demo");
const password = `pw-${randomHex(8)}`;

/** The row of the to-do titled `title` (exact). */
const row = (page, title) =>
  page.getByTestId("todo").filter({ has: page.getByTestId("todo-title").getByText(title, { exact: true }) });

/** Opens the demo page and waits until it has decided whether someone is signed in. */
async function open(page) {
  await page.goto(`${BASE}/`);
  await page.waitForFunction(() => ["signed-out", "ready"].includes(document.body.dataset.state));
}

/** Fills the one form and presses `button` ("sign-in" or "sign-up"). */
async function submitCredentials(page, name, pass, button) {
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password").fill(pass);
  await page.getByTestId(button).click();
}

/** Waits for the signed-in list view of `name`, loaded. */
async function expectSignedIn(page, name) {
  await page.getByTestId("todo-view").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.body.dataset.state === "ready");
  assert.equal(await page.getByTestId("whoami").textContent(), name);
  assert.equal(await page.getByTestId("auth-view").isVisible(), false);
}

async function addTodo(page, title) {
  await page.getByLabel("New to-do").fill(title);
  await page.getByLabel("New to-do").press("Enter");
  await row(page, title).waitFor({ state: "visible" });
}

async function openCount(page) {
  return page.getByTestId("open-count").getAttribute("data-open");
}

/** Fails with the page's own errors when it reported any. */
function assertNoPageErrors(page, allowed = []) {
  const unexpected = page.problems.filter((p) => !allowed.some((re) => re.test(p)));
  assert.deepEqual(unexpected, [], "errors in the page");
}

// The timeout only stops a broken run from hanging; nothing asserts on time
// (each Playwright wait has its own 20 s limit, set in browser.mjs).
describe("demo to-do page: one user, two devices", { timeout: 300_000 }, () => {
  let browser;
  let a; // device A: { context, page }
  let b; // device B, at phone width

  before(async () => {
    browser = await launch();
    a = await newPage(browser);
    b = await newPage(browser, { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true });
  });

  after(async () => {
    await closeQuietly(browser);
  });

  it("signs up on A, with a busy state while the keys are derived", async () => {
    await open(a.page);
    assert.equal(await a.page.getByTestId("auth-view").isVisible(), true);
    // Record the busy state as it happens (it lasts about as long as Argon2id).
    await a.page.evaluate(() => {
      const form = document.getElementById("auth-form");
      window.busySeen = { form: false, disabled: false };
      new MutationObserver(() => {
        if (form.getAttribute("aria-busy") === "true") window.busySeen.form = true;
        if (form.querySelector("[data-testid=sign-up]").disabled) window.busySeen.disabled = true;
      }).observe(form, { attributes: true, subtree: true });
    });
    await submitCredentials(a.page, username, password, "sign-up");
    await expectSignedIn(a.page, username);
    assert.deepEqual(await a.page.evaluate(() => window.busySeen), { form: true, disabled: true });
    assert.equal(await a.page.getByTestId("auth-form").getAttribute("aria-busy"), "false");
    assert.equal(await a.page.getByTestId("empty").isVisible(), true);
  });

  it("signs in on B with the same account", async () => {
    await open(b.page);
    await submitCredentials(b.page, username, password, "sign-in");
    await expectSignedIn(b.page, username);
  });

  it("a to-do added on A appears on B without a reload", async () => {
    await addTodo(a.page, "Buy oat milk");
    await addTodo(a.page, "Water the plants");
    assert.equal(await a.page.getByLabel("New to-do").inputValue(), "");
    await row(b.page, "Buy oat milk").waitFor({ state: "visible" });
    await row(b.page, "Water the plants").waitFor({ state: "visible" });
    // Oldest first, on both devices.
    for (const page of [a.page, b.page]) {
      assert.deepEqual(await page.getByTestId("todo-title").allTextContents(), ["Buy oat milk", "Water the plants"]);
      assert.equal(await openCount(page), "2");
    }
    assert.equal(await b.page.getByTestId("empty").isVisible(), false);
  });

  it("a to-do marked done on B shows as done on A", async () => {
    await row(b.page, "Buy oat milk").getByTestId("todo-toggle").check();
    await a.page.locator('[data-testid=todo][data-done=true]', { hasText: "Buy oat milk" }).waitFor();
    assert.equal(await row(a.page, "Buy oat milk").getByTestId("todo-toggle").isChecked(), true);
    assert.equal(await row(a.page, "Water the plants").getByTestId("todo-toggle").isChecked(), false);
    await a.page.waitForFunction(() => document.querySelector("[data-testid=open-count]").dataset.open === "1");
    assert.match(await a.page.getByTestId("open-count").textContent(), /1 open · 1 done/);
  });

  it("edits inline: Enter saves (seen on B), Escape cancels", async () => {
    await row(a.page, "Water the plants").getByTestId("todo-title").dblclick();
    const input = a.page.getByTestId("todo-edit-input");
    await input.fill("Water the fern");
    await input.press("Enter");
    await row(a.page, "Water the fern").waitFor();
    await row(b.page, "Water the fern").waitFor();
    assert.equal(await row(b.page, "Water the plants").count(), 0);

    await row(a.page, "Water the fern").getByTestId("todo-edit").click();
    await input.fill("Never saved");
    await input.press("Escape");
    await input.waitFor({ state: "detached" });
    assert.equal(await row(a.page, "Water the fern").count(), 1);
    assert.equal(await row(a.page, "Never saved").count(), 0);
  });

  it("a to-do deleted on A disappears from B", async () => {
    await addTodo(a.page, "Temporary");
    await row(b.page, "Temporary").waitFor();
    await row(a.page, "Temporary").getByTestId("todo-delete").click();
    await row(a.page, "Temporary").waitFor({ state: "detached" });
    await row(b.page, "Temporary").waitFor({ state: "detached" });
    assert.deepEqual(await b.page.getByTestId("todo-title").allTextContents(), ["Buy oat milk", "Water the fern"]);
  });

  it("shows the error for a wrong password and for a taken username", async () => {
    const c = await newPage(browser);
    try {
      await open(c.page);
      await submitCredentials(c.page, username, `${password}-wrong`, "sign-in");
      const error = c.page.getByTestId("auth-error");
      await error.waitFor({ state: "visible" });
      assert.match(await error.textContent(), /wrong username or password/i);
      assert.equal(await c.page.getByTestId("todo-view").isVisible(), false);

      await submitCredentials(c.page, username, password, "sign-up");
      await c.page.waitForFunction(() => /taken/i.test(document.querySelector("[data-testid=auth-error]").textContent));
      assert.equal(await c.page.getByTestId("todo-view").isVisible(), false);
      await mkdir(SHOTS, { recursive: true });
      await c.page.screenshot({ path: `${SHOTS}demo-sign-in.png`, fullPage: true });
      // The failed sign-ins answer 401/409, which the browser logs as failed loads.
      assertNoPageErrors(c.page, [/status of 40[19]/, /CofferError/i, /wrong username|taken/i]);
    } finally {
      await c.context.close();
    }
  });

  it("a reload keeps A signed in, with the list", async () => {
    await a.page.reload();
    await a.page.waitForFunction(() => ["signed-out", "ready"].includes(document.body.dataset.state));
    await expectSignedIn(a.page, username);
    assert.deepEqual(await a.page.getByTestId("todo-title").allTextContents(), ["Buy oat milk", "Water the fern"]);
    assert.equal(await row(a.page, "Buy oat milk").getByTestId("todo-toggle").isChecked(), true);
    // Still live after the reload.
    await addTodo(b.page, "Call the bakery");
    await row(a.page, "Call the bakery").waitFor();
  });

  it("screenshots the page", async () => {
    await mkdir(SHOTS, { recursive: true });
    await a.page.getByLabel("New to-do").fill("");
    await a.page.mouse.move(0, 0);
    // `animations: "disabled"` ends the highlight of the to-do B just added.
    await a.page.screenshot({ path: `${SHOTS}demo.png`, fullPage: true, animations: "disabled" });
    await b.page.screenshot({ path: `${SHOTS}demo-phone.png`, fullPage: true, animations: "disabled" });
    assertNoPageErrors(a.page);
    assertNoPageErrors(b.page);
  });

  it("offline on A: the badge counts what waits there; back online it reaches B", async () => {
    const badge = a.page.getByTestId("sync-note");
    assert.equal(await badge.getAttribute("data-status"), "online");
    await a.context.setOffline(true);
    await addTodo(a.page, "Pack the tent");
    await a.page.locator("[data-testid=sync-note][data-status=offline][data-pending='1']").waitFor();
    assert.match(await badge.textContent(), /Offline · 1 change saved here/);
    await row(a.page, "Call the bakery").getByTestId("todo-toggle").check();
    await a.page.locator("[data-testid=sync-note][data-status=offline][data-pending='2']").waitFor();
    assert.match(await badge.textContent(), /Offline · 2 changes saved here/);
    await mkdir(SHOTS, { recursive: true });
    await a.page.screenshot({ path: `${SHOTS}demo-offline.png`, fullPage: true, animations: "disabled" });
    assert.equal(await row(b.page, "Pack the tent").count(), 0, "nothing reached B while A was offline");

    await a.context.setOffline(false);
    await a.page.locator("[data-testid=sync-note][data-status=online][data-pending='0']").waitFor({ timeout: 30_000 });
    assert.match(await badge.textContent(), /Live on all your devices/);
    await row(b.page, "Pack the tent").waitFor();
    await b.page.locator("[data-testid=todo][data-done=true]", { hasText: "Call the bakery" }).waitFor();
  });

  it("signs out on B; a reload stays signed out; A is unaffected", async () => {
    await b.page.getByTestId("sign-out").click();
    await b.page.getByTestId("auth-view").waitFor({ state: "visible" });
    assert.equal(await b.page.getByTestId("todo-title").count(), 0);
    await b.page.reload();
    await b.page.waitForFunction(() => document.body.dataset.state === "signed-out");
    assert.equal(await b.page.getByTestId("todo-view").isVisible(), false);

    await addTodo(a.page, "Still here");
    assertNoPageErrors(b.page);
  });
});

describe("demo to-do page: one user, two tabs", { timeout: 300_000 }, () => {
  let browser;

  before(async () => {
    browser = await launch();
  });

  after(async () => {
    await closeQuietly(browser);
  });

  it("kept signed in, a second tab opens signed in; both stay live on one websocket; signing out in one signs out both", async () => {
    const name = uniqueName("tabs");
    const { context, page: first } = await newPage(browser);
    try {
      const sockets = [];
      const watch = (page) => page.on("websocket", () => sockets.push(page));
      watch(first);
      await open(first);
      await first.getByLabel("Keep me signed in on this browser").check();
      await submitCredentials(first, name, password, "sign-up");
      await expectSignedIn(first, name);
      await addTodo(first, "From the first tab");

      // A second tab of the same browser: signed in already, with the list.
      const second = await context.newPage();
      second.problems = [];
      second.on("pageerror", (e) => second.problems.push(`pageerror: ${e.message}`));
      watch(second);
      await open(second);
      await expectSignedIn(second, name);
      await row(second, "From the first tab").waitFor();

      // Live both ways.
      await addTodo(second, "From the second tab");
      await row(first, "From the second tab").waitFor();
      await row(second, "From the first tab").getByTestId("todo-toggle").check();
      await first.waitForFunction(() => document.querySelector("[data-testid=open-count]").dataset.open === "1");
      assert.equal(new Set(sockets).size, 1, "one tab holds the change feed's websocket for both");

      // Signing out in one tab signs the other out, and says why.
      await second.getByTestId("sign-out").click();
      await first.getByTestId("auth-view").waitFor({ state: "visible" });
      assert.match(await first.getByTestId("auth-note").textContent(), /signed out in another tab/);
      assert.equal(await first.getByTestId("todo-title").count(), 0);
      await first.reload();
      await first.waitForFunction(() => document.body.dataset.state === "signed-out");
      assertNoPageErrors(first);
      assertNoPageErrors(second);
    } finally {
      await context.close();
    }
  });
});
