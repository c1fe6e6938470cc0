// Recovery codes (SPEC.md §3.8, issue #10 point 4), through the real accelerator:
// a code made on one device recovers the account on a fresh browser context with
// no stored state; the new password works and the old one does not; every other
// session is signed out; the data is all there; a new code replaces the old one;
// a mistyped code is caught before anything is sent, and a wrong one is
// `Unauthorized` like an unknown username.
//
// Timeouts only stop a broken run from hanging; nothing asserts on time.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { blankPageOnOrigin, closeQuietly, launch, newPage, randomHex, uniqueName } from "./browser.mjs";
import { installPageHelpers } from "./page-helpers.mjs";

describe("recovery codes", { timeout: 180_000 }, () => {
  const username = uniqueName("recover");
  const password = `first-${randomHex(8)}`;
  let browser;
  let first; // the device the code was made on
  let code;

  before(async () => {
    browser = await launch();
    ({ page: first } = await newPage(browser));
    await blankPageOnOrigin(first);
    await first.evaluate(installPageHelpers);
    code = await first.evaluate(
      async ({ username, password }) => {
        window.client = await coffer.Client.signUp({ url: location.origin, username, password, remember: "local" });
        await client.kv.set("notes", "n1", { text: "kept through recovery" });
        window.space = await client.space.create({ name: "Mine" });
        window.file = (await client.storage.writeFile({ spaceId: space.id, data: T.bytes(20_000, 9) })).stat.id;
        return client.createRecoveryCode();
      },
      { username, password },
    );
  });

  after(async () => {
    await closeQuietly(browser);
  });

  /** A new browser context (nothing stored) on the accelerator's origin. */
  async function freshDevice() {
    const { page } = await newPage(browser);
    await blankPageOnOrigin(page);
    await page.evaluate(installPageHelpers);
    return page;
  }

  it("the code is printable: nine groups of four", () => {
    assert.match(code, /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){8}$/);
  });

  it("a mistyped code is InvalidInput; a wrong code or username is Unauthorized", async () => {
    const page = await freshDevice();
    const out = await page.evaluate(
      async ({ username, code }) => {
        const url = location.origin;
        const at = code.search(/[0-9A-Z]/);
        const typo = code.slice(0, at) + (code[at] === "7" ? "8" : "7") + code.slice(at + 1);
        const other = await coffer.Client.signUp({ url, username: `other-${crypto.randomUUID().slice(0, 8)}`, password: "x", remember: "none" });
        const wrong = await other.createRecoveryCode();
        const recover = (o) => T.settle(coffer.Client.recover({ url, remember: "none", newPassword: "nope", ...o }));
        return {
          typo: await recover({ username, recoveryCode: typo }),
          short: await recover({ username, recoveryCode: code.slice(0, 20) }),
          wrong: await recover({ username, recoveryCode: wrong }),
          unknown: await recover({ username: `nobody-${crypto.randomUUID().slice(0, 8)}`, recoveryCode: code }),
          lower: code.toLowerCase().replaceAll("-", " "),
        };
      },
      { username, code },
    );
    assert.equal(out.typo.code, "InvalidInput", out.typo.message);
    assert.match(out.typo.message, /typo/);
    assert.equal(out.short.code, "InvalidInput", out.short.message);
    assert.equal(out.wrong.code, "Unauthorized", out.wrong.message);
    assert.equal(out.unknown.code, "Unauthorized", out.unknown.message);
    assert.equal(out.unknown.message, out.wrong.message, "a wrong code and an unknown username read the same");
  });

  it("recovers on a fresh device: new password, the data, other sessions signed out", async () => {
    const page = await freshDevice();
    const newPassword = `second-${randomHex(8)}`;
    const out = await page.evaluate(
      async ({ username, code, password, newPassword, file, spaceId }) => {
        const url = location.origin;
        const r = { stored: localStorage.length + sessionStorage.length };
        // Typed by a person: lower case, spaces for hyphens.
        const typed = code.toLowerCase().replaceAll("-", " ");
        const client = await coffer.Client.recover({ url, username, recoveryCode: typed, newPassword, remember: "none" });
        r.note = (await client.kv.get("notes", "n1"))?.text;
        r.file = T.compare((await client.storage.readFile(spaceId, file)).data, T.bytes(20_000, 9));
        r.spaces = (await client.space.list()).map((s) => s.name);
        r.oldPassword = (await T.settle(coffer.Client.signIn({ url, username, password, remember: "none" }))).code;
        r.newPassword = (await T.settle(coffer.Client.signIn({ url, username, password: newPassword, remember: "none" }))).ok;
        return r;
      },
      { username, code, password, newPassword, file: await first.evaluate(() => file), spaceId: await first.evaluate(() => space.id) },
    );
    assert.equal(out.stored, 0, "the fresh device had nothing stored");
    assert.equal(out.note, "kept through recovery");
    assert.equal(out.file, "same");
    assert.deepEqual(out.spaces, ["Mine"]);
    assert.equal(out.oldPassword, "Unauthorized");
    assert.equal(out.newPassword, true);
    // The first device's session was revoked.
    const firstAfter = await first.evaluate(async () => (await T.settle(client.kv.get("notes", "n1"))).code);
    assert.equal(firstAfter, "Unauthorized");
  });

  it("a new code replaces the old one", async () => {
    const page = await freshDevice();
    const out = await page.evaluate(
      async ({ username, code }) => {
        const url = location.origin;
        const recover = (recoveryCode, newPassword) =>
          T.settle(coffer.Client.recover({ url, username, recoveryCode, newPassword, remember: "none" }));
        const again = await recover(code, "third");
        if (!again.ok) return { again };
        const next = await again.value.createRecoveryCode();
        return { again: { ok: true }, old: await recover(code, "fourth"), next: (await recover(next, "fifth")).ok };
      },
      { username, code },
    );
    assert.equal(out.again.ok, true, "a code keeps working until replaced");
    assert.equal(out.old.code, "Unauthorized", out.old.message);
    assert.equal(out.next, true);
  });
});
