// What the end-to-end tests' pages share: `installPageHelpers` runs in the page
// (`await page.evaluate(installPageHelpers)`, on an origin that serves /pkg/), so it
// may use nothing from this module's scope. It imports the package as `window.coffer`
// and defines `window.T`, which a test may extend with helpers of its own.

/** Runs in the page: imports the package and defines `window.T`. */
export async function installPageHelpers() {
  const coffer = await import("/pkg/coffer.js");
  const wasm = await coffer.default();
  window.coffer = coffer;
  window.T = {
    /** Bytes of wasm linear memory now (it only ever grows). */
    memory: () => wasm.memory.buffer.byteLength,
    /** `n` deterministic pseudo-random bytes (xorshift32). */
    bytes(n, seed) {
      const out = new Uint8Array(n);
      let x = seed >>> 0 || 1;
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x >>>= 0;
        x ^= x >>> 17;
        x ^= x << 5;
        x >>>= 0;
        out[i] = x & 0xff;
      }
      return out;
    },
    /** "same", or where two byte arrays first differ. */
    compare(a, b) {
      if (!(a instanceof Uint8Array)) return `not a Uint8Array: ${Object.prototype.toString.call(a)}`;
      if (a.length !== b.length) return `length ${a.length}, expected ${b.length}`;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `differs at byte ${i}`;
      return "same";
    },
    /** `{ ok: true, value }` or `{ ok: false, code, name, message }`: rejections as data. */
    async settle(promise) {
      try {
        return { ok: true, value: await promise };
      } catch (e) {
        return { ok: false, code: e?.code, name: e?.name, message: String(e?.message ?? e) };
      }
    },
    /** Signs up `<prefix>-<random>` on this page's origin. */
    async signUp(prefix) {
      const username = `${prefix}-${crypto.randomUUID().slice(0, 12)}`;
      return coffer.Client.signUp({ url: location.origin, username, password: `pw-${username}`, remember: "none" });
    },
    /** Retries `write` while the answer is a lost connection or a proxy's error. */
    async untilDone(write) {
      for (;;) {
        try {
          return await write();
        } catch (e) {
          if (e.code !== "Network" && e.code !== "Internal") throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    },
  };
}
