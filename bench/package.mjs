// Package benchmark: what a page downloads and waits for before the SDK answers —
// coffer_bg.wasm's size, raw and gzip -9 (what a server compressing it sends), and
// the time to compile and instantiate it in headless Chromium (WebAssembly.compile,
// then the glue's initSync: instantiation and the start function). Node's
// WebAssembly.compile of the same bytes is a second figure. Prints a table and
// writes it to target/bench/package.md. Asserts nothing.
//
//   node bench/package.mjs      (scripts/bench runs it after build_package)
//
// Needs pkg/ (scripts/lib.sh build_package). From the environment:
//
//   BENCH_PACKAGE_RUNS=9     compiles and instantiations of each module (medians)
//   BENCH_PACKAGE_EXTRA=     more modules measured beside pkg/'s, as comma-separated
//                            label=path/to/file.wasm (labels without commas); each is
//                            instantiated with the coffer.js glue in its own folder
//
// V8 may reuse a module compiled from the same bytes, so every compile gets bytes of
// its own (the module plus a custom section naming the run), and every instantiation
// a fresh import of the glue (initSync instantiates once per glue module).
import { readFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import { gzipSync } from "node:zlib";
import { report, runBare, servePages, table } from "./lib.mjs";

const RUNS = Number(process.env.BENCH_PACKAGE_RUNS ?? 9);
const modules = [
  { label: "pkg/coffer_bg.wasm (shipped)", path: "pkg/coffer_bg.wasm" },
  ...(process.env.BENCH_PACKAGE_EXTRA ?? "").split(",").filter(Boolean).map((entry) => {
    const at = entry.indexOf("=");
    return { label: entry.slice(0, at), path: entry.slice(at + 1) };
  }),
];
const log = (message) => console.error(`package: ${message}`);

/** `bytes` with a custom section named `name` (< 100 bytes) appended: a module V8 has not seen. */
function unique(bytes, name) {
  const n = new TextEncoder().encode(name);
  const out = new Uint8Array(bytes.length + 3 + n.length);
  out.set(bytes);
  out.set([0, n.length + 1, n.length, ...n], bytes.length);
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function nodeCompileMs(bytes) {
  const times = [];
  for (let i = -1; i < RUNS; i++) {
    const t = performance.now();
    await WebAssembly.compile(unique(bytes, `node-${i}`));
    if (i >= 0) times.push(performance.now() - t); // the first is a warm-up
  }
  return median(times);
}

// Each module's folder is served under a prefix of its own, the pages from bench/. A
// fresh Chromium per module: every instance stays alive in its page (the glue keeps it).
const routes = { "/": "bench" };
modules.forEach((m, i) => { routes[`/m${i}/`] = dirname(m.path); });
const server = await servePages(routes);
const measured = { results: [] };
try {
  for (const [i, m] of modules.entries()) {
    const page = new URL(`${server.url}/package.html`);
    page.searchParams.set("p", JSON.stringify({ runs: RUNS, wasm: `/m${i}/${basename(m.path)}`, glue: `/m${i}/coffer.js` }));
    log(`${m.label}: compiling and instantiating ${RUNS} times in headless Chromium`);
    const { result, chromium } = await runBare(page.href, { log });
    measured.results.push(result);
    measured.chromium = chromium;
  }
} finally {
  await server.close();
}

const KB = 1000;
const kb = (n) => `${(n / KB).toFixed(1)} KB`;
const ms = (x) => `${x.toFixed(1)} ms`;
const rows = [];
for (const [i, m] of modules.entries()) {
  const bytes = readFileSync(m.path);
  const gz = gzipSync(bytes, { level: 9 }).length;
  const b = measured.results[i];
  rows.push([m.label, kb(bytes.length), i === 0 ? `**${kb(gz)}**` : kb(gz), ms(b.compile), ms(b.instantiate),
             ms(b.compile + b.instantiate), ms(await nodeCompileMs(bytes)), i === 0 ? "gzip ≤ 250 KB" : ""]);
}
const glue = readFileSync("pkg/coffer.js");
rows.push(["pkg/coffer.js (glue, for reference)", kb(glue.length), kb(gzipSync(glue, { level: 9 }).length), "–", "–", "–", "–", ""]);

const text = `## package (headless Chromium ${measured.chromium}, node ${process.versions.node}, ${new Date().toISOString()})

${table(["module", "raw", "gzip -9", "compile (Chromium)", "instantiate (Chromium)", "compile + instantiate",
         "compile (node)", "target"], rows)}

KB = 1000 bytes. Times are medians of ${RUNS} after a warm-up, each on bytes V8 has not compiled before.
Compile is \`WebAssembly.compile\`; instantiate is the glue's \`initSync\` with the compiled module (imports,
\`new WebAssembly.Instance\`, the start function: the panic hook). V8 compiles function bodies lazily, on
first call, so neither includes the optimising tiers; a page pays those as the SDK's functions first run.
`;
report("package.md", text);
