// The SDK trusts no size or record from the wire. A page talks to a hostile
// accelerator (tests/e2e/hostile.mjs: a proxy in front of the real one that lies
// when told to) and shows that
//
// - an endless answer fails with `TooLarge` at the answer's cap: the browser takes
//   no more than the cap and its buffers, and wasm memory stays small;
// - a shard batch announcing a 4 GiB shard, or running on past its last shard, fails
//   with `Integrity` after a few bytes;
// - readFile refuses another file's record (`Integrity`);
// - a commit whose answer is lost after it went through is retried, and the
//   Conflict the retry meets is this very file: one file, writeFile succeeds;
// - one bad entry never hides the good ones: space.list, members and listFiles
//   return the good entries and name the bad ones in `skipped`;
// - a tampered invite token never replaces a member's key (`Conflict`) and is not
//   saved for a newcomer (`Integrity`).
//
// Timeouts only stop a broken run from hanging; nothing asserts on time.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { closeQuietly, cofferUrl, launch, newPage } from "./browser.mjs";
import { rewriteJson, sendEndless, sendJson, startHostile } from "./hostile.mjs";
import { installPageHelpers } from "./page-helpers.mjs";

const MiB = 1024 * 1024;
/**
 * What the browser's and the kernel's buffers may take beyond what the SDK read
 * (seen: ~3 MiB for a small answer, ~15 MiB after 64 MiB streamed in).
 */
const BUFFERS = 32 * MiB;
/** The SDK's caps (crates/core/src/proto/answer.rs). */
const KV_VALUE_CAP = 2 * 256 * 1024 + 64 * 1024;
/** One page of a list: 1,000 entries of at most 4 KiB, and 64 KiB more. */
const LIST_CAP = 1000 * 4096 + 64 * 1024;

/** Runs in the page after `installPageHelpers`: this suite's own helpers on `window.T`. */
function installHostileHelpers() {
  Object.assign(window.T, {
    /** A list call's ids (of `key`) and its `skipped`, or its rejection. */
    async listing(promise, key) {
      const out = await T.settle(promise);
      if (!out.ok) return out;
      return { ok: true, ids: out.value.map((e) => e[key]), skipped: out.value.skipped, keys: Object.keys(out.value) };
    },
    /** An invite token with one byte of its space key flipped (its secret still valid). */
    tamperKey(token) {
      const prefix = "coffer-invite1:";
      const b64 = token.slice(prefix.length).replace(/-/g, "+").replace(/_/g, "/");
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const idLen = new DataView(bytes.buffer).getUint32(1);
      bytes[1 + 4 + idLen] ^= 0x01;
      const text = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      return prefix + text;
    },
  });
}

describe("a hostile accelerator", { timeout: 300_000 }, () => {
  let hostile;
  let browser;
  let page;

  before(async () => {
    hostile = await startHostile(cofferUrl());
    browser = await launch();
    ({ page } = await newPage(browser));
    await page.goto(`${hostile.url}/pkg/package.json`);
    await page.evaluate(installPageHelpers);
    await page.evaluate(installHostileHelpers);
    await page.evaluate(async () => {
      window.ada = await T.signUp("hostile");
      window.space = await ada.space.create({ name: "Ada's" });
      const a = await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(70_000, 1), metadata: { name: "a" } });
      const b = await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(50_000, 2), metadata: { name: "b" } });
      window.fileA = { id: a.stat.id, manifest: a.manifest };
      window.fileB = { id: b.stat.id, manifest: b.manifest };
    });
  });

  after(async () => {
    await closeQuietly(browser);
    await hostile?.stop();
  });

  /** Runs `call` (a page function) while `lie` stands; drops the lie afterwards. */
  async function underLie(method, path, answer, call, arg) {
    const lie = hostile.lie(method, path, answer);
    try {
      return { out: await page.evaluate(call, arg), calls: lie.calls, lie };
    } finally {
      hostile.truth();
    }
  }

  describe("answers larger than any valid one", () => {
    it("an endless kv answer fails with TooLarge at its cap; wasm memory stays small", async (t) => {
      let taken;
      const { out } = await underLie(
        "POST",
        /^\/v1\/kv\/get$/,
        ({ res }) => (taken = sendEndless(res, '{"value":{"kind":"plain","json":"')),
        async () => {
          const before = T.memory();
          const got = await T.settle(ada.kv.get("notes", "n1"));
          return { ...got, grew: T.memory() - before };
        },
      );
      assert.equal(out.code, "TooLarge", out.message);
      const bytes = await taken;
      t.diagnostic(`kv cap ${KV_VALUE_CAP}: the browser took ${bytes} bytes; wasm memory grew ${out.grew} bytes`);
      assert.ok(bytes >= KV_VALUE_CAP, `the lie got as far as the cap (${bytes} bytes)`);
      assert.ok(bytes < KV_VALUE_CAP + BUFFERS, `the SDK stopped reading near its cap, not at ${bytes} bytes`);
      assert.ok(out.grew <= 4 * MiB, `wasm memory grew by ${out.grew} bytes`);
    });

    it("an endless list fails with TooLarge at the list cap, not at the end of the stream", async (t) => {
      let taken;
      const { out } = await underLie(
        "GET",
        /^\/v1\/spaces$/,
        ({ res }) => (taken = sendEndless(res, '{"spaces":[')),
        () => T.settle(ada.space.list()),
      );
      assert.equal(out.code, "TooLarge", out.message);
      const bytes = await taken;
      t.diagnostic(`list cap ${LIST_CAP}: the browser took ${bytes} bytes`);
      // The browser reads ahead of what the SDK takes (a few MiB seen): the bound says it
      // stopped near the cap, not at the end of the stream (1 GiB).
      assert.ok(bytes >= LIST_CAP && bytes < LIST_CAP + BUFFERS, `read ${bytes} bytes of an endless list`);
    });

    it("an endless error body is cut at its cap too", async () => {
      let taken;
      const { out } = await underLie(
        "GET",
        /\/usage$/,
        ({ res }) => (taken = sendEndless(res, '{"code":"Internal","message":"', { status: 500 })),
        () => T.settle(ada.space.usage(space.id)),
      );
      assert.equal(out.ok, false);
      assert.ok((await taken) < 64 * 1024 + BUFFERS, "the error body was not read to its end");
    });

    it("a shard batch announcing a 4 GiB shard fails with Integrity after its length prefix", async (t) => {
      let taken;
      const { out } = await underLie(
        "POST",
        /^\/v1\/shards\/fetch$/,
        ({ res }) => (taken = sendEndless(res, Buffer.from([0xff, 0xff, 0xff, 0xfe]), { type: "application/octet-stream" })),
        async () => {
          const before = T.memory();
          const got = await T.settle(ada.storage.readByManifest(fileA.manifest));
          return { ...got, grew: T.memory() - before };
        },
      );
      assert.equal(out.code, "Integrity", out.message);
      assert.match(out.message, /4294967294 bytes/);
      const bytes = await taken;
      t.diagnostic(`4 GiB prefix: the browser took ${bytes} bytes; wasm memory grew ${out.grew} bytes`);
      assert.ok(bytes < BUFFERS, "nothing near 4 GiB was read");
      assert.ok(out.grew <= 4 * MiB, `wasm memory grew by ${out.grew} bytes`);
    });

    it("a shard batch running on past its last shard fails with Integrity", async () => {
      let taken;
      const { out, lie } = await underLie(
        "POST",
        /^\/v1\/shards\/fetch$/,
        async ({ res, upstream }) => {
          const real = await upstream();
          taken = sendEndless(res, real.body, { type: "application/octet-stream" });
          return taken;
        },
        () => T.settle(ada.storage.readByManifest(fileB.manifest)),
      );
      assert.equal(out.code, "Integrity", out.message);
      // A lie is counted once its endless answer ends, when the proxy sees the hang-up,
      // a few promise turns after `taken` settles: let them run before counting.
      assert.ok((await taken) < BUFFERS);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(lie.calls, 1, "a lie is not retried");
    });
  });

  describe("rate limits", () => {
    it("a shard upload answered RateLimited is retried, no sooner than its Retry-After", async () => {
      const seen = new Map(); // path → times it was asked for
      let refused = null;
      const { out } = await underLie(
        "PUT",
        /^\/v1\/shards\//,
        ({ req, res }) => {
          const path = new URL(req.url, "http://x").pathname;
          seen.set(path, [...(seen.get(path) ?? []), Date.now()]);
          if (refused) return "pass";
          refused = path;
          res.writeHead(429, { "content-type": "application/json", "retry-after": "2" });
          res.end(JSON.stringify({ code: "RateLimited", message: "slow down" }));
        },
        async () => {
          const out = await T.settle(ada.storage.writeFile({ spaceId: space.id, data: T.bytes(3_000, 9), metadata: {} }));
          // The other tests count this space's files: leave none behind.
          if (out.ok) await ada.storage.deleteFile(space.id, out.value.stat.id);
          return out;
        },
      );
      assert.ok(out.ok, `the upload succeeds after the wait: ${out.code} ${out.message}`);
      const [first, retry] = seen.get(refused);
      assert.ok(retry !== undefined, "the refused shard was asked for again");
      // Not a speed figure: the retry must not come before the accelerator allowed it.
      assert.ok(retry - first >= 1_900, `retried ${retry - first} ms after a Retry-After of 2 s`);
    });
  });

  describe("lost answers", () => {
    it("a commit whose answer is lost after it went through is retried and counts once", async () => {
      let commits = 0;
      const { out, calls } = await underLie(
        "POST",
        /^\/v1\/spaces\/[^/]+\/files$/,
        async ({ res, upstream }) => {
          commits++;
          if (commits > 1) return "pass";
          // The accelerator commits; the answer dies on the way, as when a proxy's
          // accelerator is killed just after.
          const real = await upstream();
          if (real.status !== 200) throw new Error(`the real commit failed: ${real.status}`);
          res.writeHead(502, { "content-type": "text/html" });
          res.end("<html>502 Bad Gateway</html>");
        },
        async () => {
          const out = await T.settle(ada.storage.writeFile({ spaceId: space.id, data: T.bytes(5_000, 12), metadata: { name: "lost" } }));
          const listed = (await ada.storage.listFiles({ spaceId: space.id })).filter((f) => f.metadata?.name === "lost");
          // The other tests count this space's files: leave none behind.
          for (const f of listed) await ada.storage.deleteFile(space.id, f.id);
          return { ok: out.ok, code: out.code, id: out.value?.stat.id, listed: listed.map((f) => f.id) };
        },
      );
      assert.equal(calls, 1, "the answer was lost once");
      assert.equal(commits, 2, "the commit was sent again");
      assert.equal(out.ok, true, `writeFile succeeds: ${out.code}`);
      assert.deepEqual(out.listed, [out.id], "one file, the one writeFile answered with");
    });
  });

  describe("records other than the one asked for", () => {
    it("readFile refuses another file's entry, and another file's record under the asked ids", async () => {
      const ids = await page.evaluate(() => ({ space: space.id, a: fileA.id, b: fileB.id }));
      const entryOf = async (upstream, id) => JSON.parse((await upstream(`/v1/spaces/${ids.space}/files/${id}`)).body);
      const pathOfA = new RegExp(`/files/${ids.a}$`);
      const readA = () => T.settle(ada.storage.readFile(space.id, fileA.id));

      const whole = await underLie("GET", pathOfA, async ({ res, upstream }) => sendJson(res, await entryOf(upstream, ids.b)), readA);
      assert.equal(whole.out.code, "Integrity", whole.out.message);
      assert.match(whole.out.message, /another space or file/);

      const moved = await underLie(
        "GET",
        pathOfA,
        async ({ res, upstream }) => {
          const [a, b] = [await entryOf(upstream, ids.a), await entryOf(upstream, ids.b)];
          sendJson(res, { ...a, sealedRecord: b.sealedRecord });
        },
        readA,
      );
      assert.equal(moved.out.code, "Integrity", moved.out.message);

      assert.equal((await page.evaluate(readA)).ok, true, "the same read without the lie works");
    });
  });

  describe("kv names (SPEC.md §4.4)", () => {
    it("list refuses an id the account never sealed, or one moved from another collection", async () => {
      await page.evaluate(async () => {
        await ada.kv.set("moved-from", "salary-2026", 1);
        await ada.kv.set("moved-to", "x", 2);
      });
      let sealedElsewhere;
      const { out: honest } = await underLie(
        "POST",
        /^\/v1\/kv\/list$/,
        rewriteJson((real) => {
          sealedElsewhere = real.ids;
          return real;
        }),
        () => ada.kv.list("moved-from"),
      );
      assert.deepEqual(honest, ["salary-2026"], "the SDK opens the id the accelerator holds sealed");
      assert.notEqual(sealedElsewhere[0], "salary-2026", "the accelerator holds it only sealed");
      const moved = await underLie(
        "POST",
        /^\/v1\/kv\/list$/,
        rewriteJson((real) => ({ ids: [...real.ids, ...sealedElsewhere], next: null })),
        () => T.settle(ada.kv.list("moved-to")),
      );
      assert.equal(moved.out.code, "Integrity", moved.out.message);
      const plain = await underLie(
        "POST",
        /^\/v1\/kv\/list$/,
        rewriteJson(() => ({ ids: ["salary-2026"], next: null })),
        () => T.settle(ada.kv.list("moved-from")),
      );
      assert.equal(plain.out.code, "Integrity", plain.out.message);
      assert.deepEqual(await page.evaluate(() => ada.kv.list("moved-to")), ["x"], "the truth reads again");
    });
  });

  describe("moving keys from plain names (SPEC.md §4.4)", () => {
    it("a listed key whose value does not open under its names is refused, and no name is sealed for it", async () => {
      // An account of its own, remembered here, so that Client.resume starts a new move.
      let real;
      await underLie(
        "POST",
        /^\/v1\/kv\/get$/,
        rewriteJson((answer) => {
          real = answer.value;
          return answer;
        }),
        async () => {
          const username = `mover-${crypto.randomUUID().slice(0, 12)}`;
          const mover = await coffer.Client.signUp({ url: location.origin, username, password: `pw-${username}`, remember: "local" });
          await mover.kv.set("notes", "real", { x: 1 });
          return mover.kv.get("notes", "real");
        },
      );
      const guesses = [
        { collection: "medical", id: "hiv-test", value: real },
        { collection: "notes", id: "real", value: { kind: "plain", json: "1", mac: "A".repeat(43) } },
      ];
      const renames = [];
      for (const guess of guesses) {
        const legacy = hostile.lie("GET", /^\/v1\/kv\/legacy$/, ({ res }) => sendJson(res, { keys: [guess] }));
        hostile.lie("POST", /^\/v1\/kv\/rename$/, ({ json }) => {
          renames.push(json);
          return "pass";
        });
        try {
          const got = await page.evaluate(async () => {
            const again = await coffer.Client.resume({ url: location.origin });
            return T.settle(again.kv.get("notes", "real"));
          });
          assert.equal(got.code, "Integrity", got.message);
          assert.match(got.message, /legacy kv key/);
          assert.ok(legacy.calls >= 1, "the SDK asked for the legacy keys");
        } finally {
          hostile.truth();
        }
      }
      assert.deepEqual(renames, [], "no rename was asked for, so no guessed name was sealed");
      const honest = await page.evaluate(async () => {
        const again = await coffer.Client.resume({ url: location.origin });
        const value = await again.kv.get("notes", "real");
        await again.signOut();
        return value;
      });
      assert.deepEqual(honest, { x: 1 }, "with the truth, the same session reads");
    });
  });

  describe("one bad entry never hides the good ones", () => {
    it("space.list returns the good spaces and names the bad ones in skipped", async () => {
      await page.evaluate(async () => {
        window.second = await ada.space.create({ name: "Second" });
      });
      const { out } = await underLie(
        "GET",
        /^\/v1\/spaces$/,
        rewriteJson((real) => {
          const [first, ...rest] = real.spaces;
          const tampered = { ...first, sealedName: first.sealedName.replace(/^../, "AA") };
          return { spaces: [tampered, ...rest, { spaceId: "bogus", sealedName: 5 }, "not a space"] };
        }),
        () => T.listing(ada.space.list(), "id"),
      );
      const real = await page.evaluate(() => ({ first: space.id, second: second.id }));
      assert.equal(out.ok, true, out.message);
      assert.deepEqual(out.ids, [real.second], "the good space is listed");
      assert.deepEqual(out.keys, ["0"], "skipped is not enumerable");
      assert.deepEqual(
        out.skipped.map((s) => [s.id, s.code]),
        [
          [real.first, "Integrity"],
          ["bogus", "Integrity"],
          [null, "Integrity"],
        ],
      );
      const honest = await page.evaluate(() => T.listing(ada.space.list(), "id"));
      assert.deepEqual(honest.skipped, [], "an honest list skips nothing");
      assert.deepEqual(honest.ids, [real.first, real.second]);
    });

    it("listFiles({ spaceId }) returns the good files and names the bad ones", async () => {
      const { out } = await underLie(
        "GET",
        /\/files$/,
        rewriteJson((real) => {
          const [a, b] = real.files;
          // a's record moved onto b's entry (its AAD names a), and garbage.
          return { files: [a, { ...b, sealedRecord: a.sealedRecord }, { fileId: "junk" }] };
        }),
        () => T.listing(ada.storage.listFiles({ spaceId: space.id }), "id"),
      );
      const ids = await page.evaluate(() => [fileA.id, fileB.id]);
      assert.equal(out.ok, true, out.message);
      assert.deepEqual(out.ids, [ids[0]]);
      assert.deepEqual(
        out.skipped.map((s) => [s.id, s.code]),
        [
          [ids[1], "Integrity"],
          ["junk", "Integrity"],
        ],
      );
    });

    it("listFiles() skips a shared-files record that does not authenticate", async () => {
      const { ids, keys } = await page.evaluate(() => ({
        ids: [fileA.id, fileB.id],
        keys: [fileA, fileB].map((f) => `${space.id}:${f.id}`),
      }));
      // The accelerator sees `$files` and its ids only sealed (§4.4): the lie learns
      // the sealed collection from the list request, and B's record is the one
      // fetched at B's place in the ids' order.
      let files;
      let fetched = 0;
      const atB = [...keys].sort().indexOf(keys[1]);
      const tamper = rewriteJson(
        ({ value: { envelope } }) => ({
          value: { kind: "sealed", envelope: envelope.slice(0, -4) + (envelope.endsWith("AAAA") ? "BBBB" : "AAAA") },
        }),
        ({ json }) => json?.collection === files && fetched++ === atB,
      );
      const { out, calls } = await underLie(
        "POST",
        /^\/v1\/kv\/(get|list)$/,
        (exchange) => {
          if (exchange.req.url.endsWith("/list")) {
            files = exchange.json.collection;
            return "pass";
          }
          return tamper(exchange);
        },
        () => T.listing(ada.storage.listFiles(), "id"),
      );
      assert.equal(calls, 1);
      assert.equal(out.ok, true, out.message);
      assert.deepEqual(out.ids, [ids[0]]);
      assert.deepEqual(out.skipped.map((s) => [s.id, s.code]), [[ids[1], "Integrity"]]);
    });

    it("members returns the good members and names a malformed one", async () => {
      const { out } = await underLie(
        "GET",
        /\/members$/,
        rewriteJson((real) => ({ members: [{ userId: "u-bad", username: 7 }, ...real.members] })),
        () => T.listing(ada.space.members(space.id), "role"),
      );
      assert.equal(out.ok, true, out.message);
      assert.deepEqual(out.ids, ["owner"]);
      assert.deepEqual(out.skipped.map((s) => [s.id, s.code]), [["u-bad", "Integrity"]]);
    });
  });

  describe("tampered invite tokens", () => {
    it("never replace a member's key, and are not saved for a newcomer", async () => {
      const out = await page.evaluate(async () => {
        const token = await ada.space.invite(space.id, { role: "reader", maxUses: 5 });
        const bad = T.tamperKey(token);
        const r = {};
        // Ada holds the space's key: a token with another key must not replace it.
        r.member = await T.settle(ada.space.join(bad));
        r.memberStillReads = (await T.settle(ada.storage.readFile(space.id, fileA.id))).ok;
        r.memberName = (await ada.space.list()).find((s) => s.id === space.id)?.name;
        // Bob holds no key: the tampered one does not open the space's name.
        const bob = await T.signUp("bob");
        r.newcomer = await T.settle(bob.space.join(bad));
        r.newcomerName = (await bob.space.list()).find((s) => s.id === space.id)?.name;
        r.newcomerRead = (await T.settle(bob.storage.readFile(space.id, fileA.id))).code;
        // The real token still works afterwards, and equal keys join fine.
        r.good = (await T.settle(bob.space.join(token))).value?.name;
        r.again = (await T.settle(bob.space.join(token))).ok;
        r.bobReads = (await T.settle(bob.storage.readFile(space.id, fileA.id))).ok;
        return r;
      });
      assert.equal(out.member.code, "Conflict", out.member.message);
      assert.equal(out.memberStillReads, true);
      assert.equal(out.memberName, "Ada's");
      assert.equal(out.newcomer.code, "Integrity", out.newcomer.message);
      assert.equal(out.newcomerName, null, "no key was saved for the newcomer");
      assert.equal(out.newcomerRead, "Forbidden");
      assert.equal(out.good, "Ada's");
      assert.equal(out.again, true);
      assert.equal(out.bobReads, true);
    });
  });
});
