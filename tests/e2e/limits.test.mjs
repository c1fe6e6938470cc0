// The accelerator's rate limits as an app meets them through the SDK: a refused
// request is a `RateLimited` CofferError that says how long to wait
// (`retryAfterMs`, from the accelerator's `Retry-After`), and waiting that long is
// enough. Runs against the real accelerator at its own origin (a login signature
// names the origin it was made for).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { blankPageOnOrigin, closeQuietly, cofferUrl, launch, newPage, randomHex, uniqueName } from "./browser.mjs";

cofferUrl();

describe("rate limits through the SDK", { timeout: 120_000 }, () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    ({ page } = await newPage(browser));
    await blankPageOnOrigin(page);
  });

  after(async () => {
    await closeQuietly(browser);
  });

  it("failed sign-ins slow down with retryAfterMs, and the owner gets in after the wait", async () => {
    const out = await page.evaluate(
      async ({ username, password }) => {
        const { default: init, Client } = await import("/pkg/coffer.js");
        await init();
        const url = location.origin;
        await Client.signUp({ url, username, password, remember: "none" });
        const attempts = [];
        for (let i = 0; i < 8; i++) {
          try {
            await Client.signIn({ url, username, password: "not the password", remember: "none" });
            attempts.push({ ok: true });
          } catch (e) {
            attempts.push({ code: e.code, retryAfterMs: e.retryAfterMs ?? null });
          }
        }
        const limited = attempts.find((a) => a.code === "RateLimited");
        if (limited) await new Promise((resolve) => setTimeout(resolve, limited.retryAfterMs));
        let owner;
        try {
          owner = (await Client.signIn({ url, username, password, remember: "none" })) ? "in" : "no client";
        } catch (e) {
          owner = `${e.code}: ${e.message}`;
        }
        return { attempts, owner };
      },
      { username: uniqueName("limits"), password: `pw-${randomHex(8)}` },
    );
    const codes = out.attempts.map((a) => a.code);
    assert.deepEqual(codes.slice(0, 5), Array(5).fill("Unauthorized"), "the first failures cost nothing");
    const limited = out.attempts.filter((a) => a.code === "RateLimited");
    assert.ok(limited.length > 0, `later attempts are RateLimited: ${JSON.stringify(codes)}`);
    for (const a of limited) assert.ok(a.retryAfterMs >= 1000, `retryAfterMs says how long: ${a.retryAfterMs}`);
    assert.equal(out.owner, "in", "after waiting as told, the right password signs in");
  });
});
