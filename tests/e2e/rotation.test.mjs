// Key rotation (SPEC.md F.12, issue #10 points 1–3), through the real accelerator
// behind a proxy (./hostile.mjs) that passes everything through, records the
// accelerator's own answers, and lies only where a test says so:
//
// - three members; one removed mid-way: files before and after; every remaining
//   member reads all of them (the others' SDKs pick the new key up by themselves,
//   and a member who joins later reads the files from before it joined);
// - the removed member keeps the key it held and gets the new file's record as the
//   accelerator stores it: the record does not open under that key (opened here
//   with WebCrypto from SPEC.md's text, the same code that opens the old file's
//   record), and its own client is refused;
// - an invite made before the removal no longer works;
// - a member leaving makes a rotation due; the next write rotates and lands in the
//   new epoch;
// - a roster the proxy alters (a member's public key swapped, or an entry made up)
//   stops the rotation with `Integrity` and nothing is sent; a key sealed to a
//   member that does not open, or whose links are missing, is refused.
//
// Timeouts only stop a broken run from hanging; nothing asserts on time.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { closeQuietly, cofferUrl, launch, newPage } from "./browser.mjs";
import { rewriteJson, startHostile } from "./hostile.mjs";
import { installPageHelpers } from "./page-helpers.mjs";

/** Runs in the page: opens what the accelerator keeps with WebCrypto, from SPEC.md. */
function installSpecHelpers() {
  const enc = new TextEncoder();
  const b64 = (text) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  const lp = (bytes) => {
    const out = new Uint8Array(4 + bytes.length);
    new DataView(out.buffer).setUint32(0, bytes.length);
    out.set(bytes, 4);
    return out;
  };
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  /** `derive(ikm, label)` of SPEC.md §2: HKDF-SHA256, empty salt, 32 bytes. */
  async function derive(ikm, label) {
    const base = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
    const bits = await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(), info: enc.encode(label) },
      base,
      256,
    );
    return new Uint8Array(bits);
  }
  const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  /**
   * A kv name as the accelerator holds it (§4.4): siv = HMAC-SHA256(name MAC key,
   * label ‖ context ‖ name zero-padded to 32-byte blocks)[0..16], then siv ‖
   * AES-256-CTR(name seal key, counter siv, padded), base64url.
   */
  async function sealedName(root, label, context, name) {
    const bytes = enc.encode(name);
    const padded = new Uint8Array(Math.max(1, Math.ceil(bytes.length / 32)) * 32);
    padded.set(bytes);
    const mac = { name: "HMAC", hash: "SHA-256" };
    const macKey = await crypto.subtle.importKey("raw", await derive(root, "coffer/v1/kv-name-mac"), mac, false, ["sign"]);
    const siv = new Uint8Array(await crypto.subtle.sign("HMAC", macKey, concat(enc.encode(label), context, padded))).slice(0, 16);
    const sealKey = await crypto.subtle.importKey("raw", await derive(root, "coffer/v1/kv-name-seal"), "AES-CTR", false, ["encrypt"]);
    const body = await crypto.subtle.encrypt({ name: "AES-CTR", counter: siv, length: 128 }, sealKey, padded);
    return b64url(concat(siv, new Uint8Array(body)));
  }
  /** version ‖ nonce (12) ‖ AES-256-GCM; resolves to the plaintext or null. */
  async function open(key, sealed, aad) {
    const k = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
    try {
      const iv = sealed.slice(1, 13);
      return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, k, sealed.slice(13)));
    } catch {
      return null;
    }
  }
  Object.assign(window.T, {
    /**
     * The space key this device's account holds, read as the accelerator keeps it:
     * its sealed `$spaces` kv value (§4.1) under the key's sealed names (§4.4), opened
     * with the remembered root secret.
     */
    async heldSpaceKey(spaceId) {
      const saved = JSON.parse(localStorage.getItem(`coffer:session:${location.origin}`));
      const root = b64(saved.root);
      const collection = await sealedName(root, "coffer/v1/kv-collection-name", new Uint8Array(), "$spaces");
      const id = await sealedName(root, "coffer/v1/kv-id-name", lp(enc.encode("$spaces")), spaceId);
      const answer = await fetch("/v1/kv/get", {
        method: "POST",
        headers: { authorization: `Bearer ${saved.token}`, "content-type": "application/json" },
        body: JSON.stringify({ collection, id }),
      }).then((r) => r.json());
      const sealKey = await derive(b64(saved.root), "coffer/v1/kv");
      const aad = concat(enc.encode("coffer/v1/kv-aad"), lp(enc.encode(saved.userId)), lp(enc.encode("$spaces")), lp(enc.encode(spaceId)));
      const entry = JSON.parse(new TextDecoder().decode(await open(sealKey, b64(answer.value.envelope), aad)));
      return { key: entry.key, epoch: entry.epoch ?? 0 };
    },
    /** Opens a file record (F.7) under a space key (base64url); the manifest or null. */
    async openRecord(spaceKey, entry) {
      const recordKey = await derive(b64(spaceKey), "coffer/v1/space-file-record-key");
      const aad = concat(enc.encode("coffer/v1/file-record"), lp(enc.encode(entry.spaceId)), lp(enc.encode(entry.fileId)));
      const plain = await open(recordKey, b64(entry.sealedRecord), aad);
      return plain && new TextDecoder().decode(plain);
    },
  });
}

describe("removing a member rotates the space key", { timeout: 300_000 }, () => {
  let hostile;
  let browser;
  let page; // ada (owner), carol, dan: one device
  let bobPage; // bob, on a device of his own (his session remembered there)
  /** FileEntry answers as the accelerator sent them, by file id. */
  const entries = new Map();
  /** Rotation requests that reached the accelerator. */
  const rotations = [];

  /** Drops every lie; keeps recording the accelerator's file entries and the rotations sent. */
  function honest() {
    hostile.truth();
    hostile.lie("GET", /^\/v1\/spaces\/[^/]+\/files\/[^/]+$/, async ({ res, upstream }) => {
      const real = await upstream();
      if (real.status === 200) {
        const entry = JSON.parse(real.body);
        entries.set(entry.fileId, entry);
      }
      res.writeHead(real.status, real.headers);
      res.end(real.body);
    });
    hostile.lie("POST", /^\/v1\/spaces\/[^/]+\/rotate$/, async ({ json }) => {
      rotations.push(json);
      return "pass";
    });
  }

  before(async () => {
    hostile = await startHostile(cofferUrl());
    honest();
    browser = await launch();
    ({ page } = await newPage(browser));
    ({ page: bobPage } = await newPage(browser));
    for (const p of [page, bobPage]) {
      await p.goto(`${hostile.url}/pkg/package.json`);
      await p.evaluate(installPageHelpers);
      await p.evaluate(installSpecHelpers);
    }
    await bobPage.evaluate(async () => {
      const username = `bob-${crypto.randomUUID().slice(0, 12)}`;
      const opts = { url: location.origin, username, password: `pw-${username}`, remember: "local" };
      window.bob = await coffer.Client.signUp(opts);
    });
  });

  after(async () => {
    await closeQuietly(browser);
    await hostile?.stop();
  });

  it("three members; one removed mid-way; the rest read every file, the removed one none of the new", async () => {
    const token = await page.evaluate(async () => {
      window.ada = await T.signUp("ada");
      window.carol = await T.signUp("carol");
      window.space = await ada.space.create({ name: "Team" });
      await carol.space.join(await ada.space.invite(space.id, { role: "writer" }));
      window.before1 = await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(40_000, 1), metadata: { name: "before" } });
      window.stale = await ada.space.invite(space.id, { role: "reader" });
      return ada.space.invite(space.id, { role: "writer" });
    });
    const bobId = await bobPage.evaluate(async (token) => {
      const s = await bob.space.join(token);
      window.spaceId = s.id;
      const ok = (await T.settle(bob.storage.readFile(s.id, (await bob.storage.listFiles({ spaceId: s.id }))[0].id))).ok;
      if (!ok) throw new Error("bob could not read the first file");
      window.bobKey = await T.heldSpaceKey(s.id);
      return (await bob.space.members(s.id)).find((m) => m.username.startsWith("bob-")).userId;
    }, token);

    const out = await page.evaluate(async (bobId) => {
      await ada.space.removeMember(space.id, bobId);
      const after = await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(30_000, 2), metadata: { name: "after" } });
      const r = { afterId: after.stat.id, beforeId: before1.stat.id };
      // Carol was not told: her SDK finds the new key on its own.
      r.carolAfter = T.compare((await carol.storage.readFile(space.id, after.stat.id)).data, T.bytes(30_000, 2));
      r.carolBefore = T.compare((await carol.storage.readFile(space.id, before1.stat.id)).data, T.bytes(40_000, 1));
      r.adaAfter = T.compare((await ada.storage.readFile(space.id, after.stat.id)).data, T.bytes(30_000, 2));
      r.carolList = (await carol.storage.listFiles({ spaceId: space.id })).map((f) => f.metadata.name).sort();
      // Dan joins after the rotation and reads the file from before it.
      window.dan = await T.signUp("dan");
      r.danJoin = (await dan.space.join(await ada.space.invite(space.id))).name;
      r.danBefore = T.compare((await dan.storage.readFile(space.id, before1.stat.id)).data, T.bytes(40_000, 1));
      r.danAfter = T.compare((await dan.storage.readFile(space.id, after.stat.id)).data, T.bytes(30_000, 2));
      // The invite made before the removal stopped working.
      const eve = await T.signUp("eve");
      r.stale = await T.settle(eve.space.join(stale));
      r.names = (await carol.space.list()).map((s) => s.name);
      return r;
    }, bobId);
    for (const k of ["carolAfter", "carolBefore", "adaAfter", "danBefore", "danAfter"]) assert.equal(out[k], "same", k);
    assert.deepEqual(out.carolList, ["after", "before"]);
    assert.equal(out.danJoin, "Team");
    assert.equal(out.stale.code, "Forbidden", `an invite from before the rotation must not work: ${out.stale.message}`);
    assert.deepEqual(out.names, ["Team"], "the name, sealed again under the new key, opens");
    assert.equal(rotations.length, 1, "one rotation reached the accelerator");
    assert.equal(rotations[0].epoch, 1);
    assert.ok(!rotations[0].members.some((m) => m.userId === bobId), "nothing was sealed to the removed member");

    // The removed member, with the key it held and the records as the accelerator keeps them.
    const afterEntry = entries.get(out.afterId);
    const beforeEntry = entries.get(out.beforeId);
    assert.equal(afterEntry.epoch, 1);
    assert.equal(beforeEntry.epoch, 0);
    const bob = await bobPage.evaluate(
      async ({ afterEntry, beforeEntry }) => {
        const held = await T.heldSpaceKey(spaceId);
        const before = await T.openRecord(held.key, beforeEntry);
        return {
          held: held.epoch,
          sameKeyAsBefore: held.key === bobKey.key,
          before: before?.startsWith("coffer1:") ?? false,
          readsBefore: before ? T.compare((await bob.storage.readByManifest(before)).data, T.bytes(40_000, 1)) : null,
          after: await T.openRecord(held.key, afterEntry),
          client: (await T.settle(bob.storage.readFile(spaceId, afterEntry.fileId))).code,
        };
      },
      { afterEntry, beforeEntry },
    );
    assert.equal(bob.held, 0);
    assert.equal(bob.sameKeyAsBefore, true);
    assert.equal(bob.before, true, "the opener works: the old record opens under the old key");
    assert.equal(bob.readsBefore, "same");
    assert.equal(bob.after, null, "the new file's record must not open under the removed member's key");
    assert.equal(bob.client, "Forbidden");
  });

  it("a member leaving makes a rotation due; the next write rotates and lands in the new epoch", async () => {
    const out = await page.evaluate(async () => {
      await carol.space.leave(space.id);
      const f = await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(10_000, 3), metadata: { name: "third" } });
      await dan.storage.readFile(space.id, f.stat.id);
      return { id: f.stat.id, dan: T.compare((await dan.storage.readFile(space.id, f.stat.id)).data, T.bytes(10_000, 3)) };
    });
    assert.equal(out.dan, "same");
    assert.equal(entries.get(out.id).epoch, 2);
    assert.equal(rotations.length, 2);
    assert.deepEqual(rotations[1].members.length, 2, "ada and dan");
  });

  it("a roster the accelerator altered stops the rotation, and nothing is sent", async () => {
    const members = /^\/v1\/spaces\/[^/]+\/members$/;
    const sent = rotations.length;
    const out = {};
    // A member's public key swapped for another (its MAC kept).
    let lie = hostile.lie(
      "GET",
      members,
      rewriteJson((real) => {
        const [first, ...rest] = real.members;
        return { ...real, members: [first, ...rest.map((m) => ({ ...m, publicKey: first.publicKey }))] };
      }),
    );
    out.swapped = await page.evaluate(async () => {
      window.fred = await T.signUp("fred");
      await fred.space.join(await ada.space.invite(space.id));
      const fredId = (await ada.space.members(space.id)).find((m) => m.username.startsWith("fred-")).userId;
      return T.settle(ada.space.removeMember(space.id, fredId));
    });
    honest();
    // An entry made up (a key of the proxy's own, with a MAC under no key of the space).
    lie = hostile.lie(
      "GET",
      members,
      rewriteJson((real) => ({
        ...real,
        members: [
          ...real.members,
          { ...real.members[0], userId: "AAAAAAAAAAAAAAAAAAAAAA", username: "mallory", rosterMac: real.members[0].publicKey },
        ],
      })),
    );
    out.madeUp = await page.evaluate(() => T.settle(ada.storage.writeFile({ spaceId: space.id, data: T.bytes(100, 4) })));
    honest();
    assert.equal(lie.calls > 0, true);
    assert.equal(out.swapped.code, "Integrity", out.swapped.message);
    assert.match(out.swapped.message, /removed/);
    assert.match(out.swapped.message, /roster entry of member/);
    assert.equal(out.madeUp.code, "Integrity", out.madeUp.message);
    assert.match(out.madeUp.message, /roster entry of member "AAAAAAAAAAAAAAAAAAAAAA"/);
    assert.equal(rotations.length, sent, "no rotation was sent with an altered roster");
    // With the truth, the due rotation goes through on the next call.
    const written = await page.evaluate(async () => {
      const f = await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(100, 5) });
      return T.compare((await dan.storage.readFile(space.id, f.stat.id)).data, T.bytes(100, 5));
    });
    assert.equal(written, "same");
    assert.equal(rotations.length, sent + 1);
  });

  it("the member being removed, listed again by the accelerator, gets nothing", async () => {
    const members = /^\/v1\/spaces\/[^/]+\/members$/;
    const sent = rotations.length;
    // Hal's genuine roster entry, as the accelerator listed it while Hal was a member.
    const hal = await page.evaluate(async () => {
      window.hal = await T.signUp("hal");
      await hal.space.join(await ada.space.invite(space.id, { role: "writer" }));
      return (await ada.space.members(space.id)).find((m) => m.username.startsWith("hal-")).userId;
    });
    let entry;
    const seen = hostile.lie(
      "GET",
      members,
      rewriteJson((real) => {
        entry = real.members.find((m) => m.userId === hal);
        return real;
      }),
    );
    await page.evaluate(() => ada.space.members(space.id));
    assert.ok(entry?.rosterMac, "Hal's entry was seen");
    honest();
    hostile.lie("GET", members, rewriteJson((real) => ({ ...real, members: [...real.members, entry] })));
    const out = await page.evaluate((hal) => T.settle(ada.space.removeMember(space.id, hal)), hal);
    honest();
    assert.equal(seen.calls > 0, true);
    assert.equal(out.code, "Integrity", out.message);
    assert.match(out.message, /still lists member/);
    assert.equal(rotations.length, sent, "nothing was sealed with Hal listed");
    const after = await page.evaluate(async () => {
      const f = await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(100, 8) });
      return { id: f.stat.id, hal: (await T.settle(hal.storage.readFile(space.id, f.stat.id))).code };
    });
    assert.equal(rotations.length, sent + 1);
    assert.ok(!rotations.at(-1).members.some((m) => m.userId === hal));
    assert.equal(after.hal, "Forbidden");
  });

  it("a new key that does not open, or whose links are missing, is refused", async () => {
    const keys = /^\/v1\/spaces\/[^/]+\/keys$/;
    await page.evaluate(async () => {
      const f = await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(100, 6) });
      window.latest = f.stat.id;
      // A rotation Dan has not seen yet.
      window.gus = await T.signUp("gus");
      await gus.space.join(await ada.space.invite(space.id));
      const gusId = (await ada.space.members(space.id)).find((m) => m.username.startsWith("gus-")).userId;
      await ada.space.removeMember(space.id, gusId);
      window.newest = (await ada.storage.writeFile({ spaceId: space.id, data: T.bytes(100, 7) })).stat.id;
    });
    const out = {};
    hostile.lie("GET", keys, rewriteJson((real) => ({ ...real, sealedKey: real.sealedKey.slice(0, -4) + "AAAA" })));
    out.garbled = await page.evaluate(() => T.settle(dan.storage.readFile(space.id, newest)));
    honest();
    hostile.lie("GET", keys, rewriteJson((real) => ({ ...real, links: [] })));
    out.noLinks = await page.evaluate(() => T.settle(dan.storage.readFile(space.id, newest)));
    honest();
    out.truth = await page.evaluate(async () => T.compare((await dan.storage.readFile(space.id, newest)).data, T.bytes(100, 7)));
    assert.equal(out.garbled.code, "Integrity", out.garbled.message);
    assert.equal(out.noLinks.code, "Integrity", out.noLinks.message);
    assert.equal(out.truth, "same");
  });
});
