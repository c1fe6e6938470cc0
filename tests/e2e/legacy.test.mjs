// Data written before sealed names (SPEC.md §4.4, issue #10 point 5) keeps working.
// fixtures/legacy/data is an accelerator's data directory as the SDK and accelerator
// of commit 2da0aba — the last to send kv names in plain text — left it
// (fixtures/legacy/make.mjs made it): two accounts, sealed and plain kv values, a
// deleted key, a space with a member and a file. This accelerator upgrades its
// schema on start; each account's first sign-in moves its keys to their sealed
// names; then every value, list, space and file reads back, and nothing legacy is
// left. The fixture is SQLite, so this test runs its own SQLite accelerator on
// either backend run.
//
// Timeouts only stop a broken run from hanging; nothing asserts on time.

import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { runAccelerator } from "./accelerator.mjs";
import { closeQuietly, launch, newPage } from "./browser.mjs";
import { installPageHelpers } from "./page-helpers.mjs";
import { ROOT, freePort } from "./spawned.mjs";

const FIXTURE = join(ROOT, "tests/e2e/fixtures/legacy");
const expected = JSON.parse(readFileSync(join(FIXTURE, "expect.json"), "utf8"));

describe("data written before sealed names", { timeout: 180_000 }, () => {
  let dataDir;
  let accelerator;
  let browser;
  let page;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "coffer-legacy-"));
    cpSync(join(FIXTURE, "data"), dataDir, { recursive: true });
    accelerator = await runAccelerator(await freePort(), ["--data-dir", dataDir]);
    browser = await launch();
    ({ page } = await newPage(browser));
    await page.goto(`${accelerator.url}/pkg/package.json`);
    await page.evaluate(installPageHelpers);
    await page.evaluate(() => {
      /** Keys the accelerator still holds under plain names, asked with the session's token. */
      window.legacyKeys = async () => {
        const saved = JSON.parse(localStorage.getItem(`coffer:session:${location.origin}`));
        const answer = await fetch("/v1/kv/legacy", { headers: { authorization: `Bearer ${saved.token}` } });
        return (await answer.json()).keys;
      };
    });
  });

  after(async () => {
    await closeQuietly(browser);
    await accelerator?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("signing in moves the account's keys: none is left under a plain name once a kv call answers", async () => {
    const left = await page.evaluate(async ({ username, password }) => {
      const client = await coffer.Client.signIn({ url: location.origin, username, password, remember: "local" });
      await client.kv.get("todos", "t1");
      return legacyKeys();
    }, expected.ada);
    assert.deepEqual(left, []);
  });

  it("every kv value and list reads back, and new writes sit beside them", async () => {
    const out = await page.evaluate(async ({ username, password }) => {
      const client = await coffer.Client.signIn({ url: location.origin, username, password, remember: "local" });
      const read = {};
      for (const [collection, ids] of Object.entries({ todos: ["t1", "t2", "t3"], medical: ["salary-2026"] })) {
        read[collection] = { list: await client.kv.list(collection), values: {} };
        for (const id of ids) read[collection].values[id] = await client.kv.get(collection, id);
      }
      await client.kv.set("todos", "t4", { title: "after the move" });
      await client.kv.delete("todos", "t1");
      return { read, afterWrites: await client.kv.list("todos"), left: await legacyKeys() };
    }, expected.ada);
    const { todos, medical } = expected.kv.ada;
    assert.deepEqual(out.read.todos, { list: ["t1", "t2"], values: { ...todos, t3: null } });
    assert.deepEqual(out.read.medical, { list: ["salary-2026"], values: medical });
    assert.deepEqual(out.afterWrites, ["t2", "t4"]);
    assert.deepEqual(out.left, []);
  });

  it("the SDK's own $spaces and $files read back: spaces, files and the other account's value", async () => {
    const out = await page.evaluate(
      async ({ accounts, space, file }) => {
        const seen = {};
        for (const [who, account] of Object.entries(accounts)) {
          const client = await coffer.Client.signIn({ url: location.origin, ...account, remember: "local" });
          const inSpace = await client.storage.listFiles({ spaceId: space.id });
          const read = await client.storage.readFile(space.id, file.id);
          seen[who] = {
            spaces: (await client.space.list()).map((s) => ({ id: s.id, name: s.name })),
            // listFiles() without a space reads this account's $files records.
            written: (await client.storage.listFiles()).map((f) => f.id),
            inSpace: inSpace.map((f) => ({ id: f.id, name: f.metadata?.name })),
            text: new TextDecoder().decode(read.data),
            left: await legacyKeys(),
          };
        }
        seen.bob.theme = await (await coffer.Client.signIn({ url: location.origin, ...accounts.bob, remember: "none" })).kv.get("prefs", "theme");
        return seen;
      },
      {
        accounts: {
          ada: { username: expected.ada.username, password: expected.ada.password },
          bob: { username: expected.bob.username, password: expected.bob.password },
        },
        space: expected.space,
        file: expected.file,
      },
    );
    for (const who of ["ada", "bob"]) {
      assert.deepEqual(out[who].spaces, [expected.space], `${who}'s space and its name`);
      assert.deepEqual(out[who].inSpace, [{ id: expected.file.id, name: expected.file.name }], `${who} lists the file`);
      assert.equal(out[who].text, expected.file.text, `${who} reads the file`);
      assert.deepEqual(out[who].left, [], `nothing of ${who}'s is left under a plain name`);
    }
    assert.deepEqual(out.ada.written, [expected.file.id], "ada's $files record");
    assert.deepEqual(out.bob.written, []);
    assert.equal(out.bob.theme, expected.kv.bob.prefs.theme);
  });
});
