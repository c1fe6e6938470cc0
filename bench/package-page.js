// The browser side of bench/package.mjs: compiles and instantiates the module it is
// given ({ runs, wasm, glue } in ?p=…) and reports the medians in
// milliseconds, with Chromium's version.

import { median, p, post } from "./page.js";

/** `bytes` with a custom section named `name` (< 100 bytes) appended: a module V8 has not seen. */
function unique(bytes, name) {
  const n = new TextEncoder().encode(name);
  const out = new Uint8Array(bytes.length + 3 + n.length);
  out.set(bytes);
  out.set([0, n.length + 1, n.length, ...n], bytes.length);
  return out;
}

async function measure({ wasm, glue }) {
  const response = await fetch(wasm);
  if (!response.ok) throw new Error(`${wasm}: ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const compile = [];
  const instantiate = [];
  for (let run = -1; run < p.runs; run++) {
    // A fresh glue module each time: initSync instantiates once per glue.
    const { initSync } = await import(`${glue}?run=${run}`);
    const t0 = performance.now();
    const module = await WebAssembly.compile(unique(bytes, `run-${run}`));
    const t1 = performance.now();
    initSync({ module });
    const t2 = performance.now();
    if (run >= 0) { // the first is a warm-up
      compile.push(t1 - t0);
      instantiate.push(t2 - t1);
    }
  }
  return { compile: median(compile), instantiate: median(instantiate) };
}

try {
  const result = await measure(p);
  const chromium = navigator.userAgentData?.brands?.find((b) => /Chrom/.test(b.brand))?.version
    ?? navigator.userAgent.match(/Chrom(?:e|ium)\/([\d.]+)/)?.[1] ?? "?";
  await post("/result", JSON.stringify({ result, chromium }));
} catch (e) {
  await post("/error", `${e?.stack ?? e}`);
}
