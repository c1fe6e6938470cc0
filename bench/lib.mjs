// Shared by the benchmark scripts: Debian's Chromium (driven by Playwright, or bare
// for measurements that DevTools would distort) and markdown tables.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

import { CHROMIUM_ARGS, runBare } from "../tests/e2e/browser.mjs";

// A Chromium no DevTools client is attached to: shared with the tests that measure
// the same way (the demo's responsiveness).
export { runBare };

/** The accelerator to measure against (scripts/bench starts one with --bench-endpoints). */
export function acceleratorUrl() {
  const url = process.env.COFFER_URL;
  if (!url) throw new Error("set COFFER_URL to a running accelerator started with --bench-endpoints");
  return url;
}

/** Debian's Chromium, headless, driven by Playwright. */
export function launch() {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };

/**
 * Serves files on a loopback port of its own, with no Content-Security-Policy: the
 * accelerator serves its --www-dir under the demo's CSP (`connect-src 'self'`),
 * which refuses a page's requests to a report server or to S3. `routes` maps a URL
 * prefix ("/", "/pkg/") to a directory. Resolves to `{ url, close() }`.
 */
export function servePages(routes) {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const prefix = Object.keys(routes).filter((p) => path.startsWith(p)).sort((a, b) => b.length - a.length)[0];
    const rest = prefix === undefined ? null : normalize(path.slice(prefix.length));
    let body;
    try {
      if (rest === null || rest.startsWith("..")) throw new Error("outside");
      body = readFileSync(join(routes[prefix], rest));
    } catch {
      res.writeHead(404);
      return void res.end();
    }
    res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((ok) => server.close(ok)),
  })));
}

/** CPU milliseconds `pid` has used so far (0 once it is gone). */
export function processCpuMs(pid) {
  return procStat(`/proc/${pid}/stat`)?.ms ?? 0;
}

/** The id of a running process with every one of `words` among its arguments (or a path ending in `/word`), or 0. */
export function findProcess(...words) {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let args;
    try { args = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0"); } catch { continue; }
    if (words.every((w) => args.includes(w) || args.some((a) => a.endsWith(`/${w}`)))) return Number(name);
  }
  return 0;
}

const TICK_MS = 10; // USER_HZ: /proc counts CPU time in 1/100 s on Linux

function procStat(path) {
  try {
    const text = readFileSync(path, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(fields[1]), ms: (Number(fields[11]) + Number(fields[12])) * TICK_MS };
  } catch {
    return null; // gone
  }
}

/** A thread's name (Chromium names a dedicated worker's thread "DedicatedWorker thread"). */
function threadName(pid, tid) {
  try { return readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim(); } catch { return ""; }
}

/**
 * CPU milliseconds used so far, by role: Chromium's processes under `browserPid`
 * (the renderer's main thread, its dedicated workers' threads and its other threads
 * — WebCrypto's and the compositor's among them — apart, the network service,
 * the browser process, the rest) and the accelerator (`acceleratorPid`).
 */
export function cpuByRole(browserPid, acceleratorPid) {
  const out = { rendererMain: 0, rendererWorkers: 0, rendererOther: 0, network: 0, browser: 0, chromiumOther: 0, accelerator: 0 };
  const parents = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(`/proc/${name}/stat`);
    if (stat) parents.set(Number(name), stat.ppid);
  }
  const underBrowser = (pid) => { for (let p = pid; p > 1; p = parents.get(p) ?? 0) if (p === browserPid) return true; return false; };
  for (const pid of parents.keys()) {
    if (pid === acceleratorPid) {
      out.accelerator += procStat(`/proc/${pid}/stat`)?.ms ?? 0;
      continue;
    }
    if (!underBrowser(pid)) continue;
    let cmdline = "";
    try { cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8"); } catch { continue; }
    if (cmdline.includes("--type=renderer")) {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const ms = procStat(`/proc/${pid}/task/${tid}/stat`)?.ms ?? 0;
        if (Number(tid) === pid) out.rendererMain += ms;
        else if (threadName(pid, tid).startsWith("DedicatedWorker")) out.rendererWorkers += ms;
        else out.rendererOther += ms;
      }
    } else {
      const ms = procStat(`/proc/${pid}/stat`)?.ms ?? 0;
      if (cmdline.includes("NetworkService")) out.network += ms;
      else if (!cmdline.includes("--type=")) out.browser += ms;
      else out.chromiumOther += ms;
    }
  }
  return out;
}

/** A markdown table: `head` is a list of column names, `rows` lists of cells. */
export function table(head, rows) {
  return [head, head.map(() => "---"), ...rows].map((row) => `| ${row.join(" | ")} |`).join("\n");
}

/** Prints `text` and writes it to target/bench/`name`. */
export function report(name, text) {
  console.log(text);
  mkdirSync("target/bench", { recursive: true });
  writeFileSync(`target/bench/${name}`, text);
}
