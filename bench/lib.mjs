// Shared by the benchmark scripts: Debian's Chromium (driven by Playwright, or bare
// for measurements that DevTools would distort) and markdown tables.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

/** The accelerator to measure against (scripts/bench starts one with --bench-endpoints). */
export function acceleratorUrl() {
  const url = process.env.COFFER_URL;
  if (!url) throw new Error("set COFFER_URL to a running accelerator started with --bench-endpoints");
  return url;
}

/** Flags that keep Chromium quiet on a closed network. */
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];

/** Debian's Chromium, headless, driven by Playwright. */
export function launch() {
  return chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS });
}

/**
 * Opens `pageUrl` in a headless Chromium that no DevTools client is attached to, and
 * resolves to what the page reports. With Playwright's DevTools session on a page
 * (its Network domain reports request bodies), ArrayBuffer uploads run ~10× slower
 * here and add long tasks, so anything that uploads is measured this way.
 *
 * The page gets `report` (a URL on a little server here) in its query string as
 * `?report=…`, and POSTs plain text to `${report}/log` (printed), `${report}/mark`
 * (`onMark(text, browserPid)` is called before the answer), `${report}/result`
 * (JSON: resolves) or `${report}/error` (rejects). Chromium is stopped either way.
 */
export async function runBare(pageUrl, { timeoutMs = 600_000, log = (m) => console.error(m), onMark = () => {} } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "coffer-bench-chromium-"));
  let browser;
  let server;
  try {
    return await new Promise((resolve, reject) => {
      server = http.createServer((req, res) => {
        let body = "";
        req.setEncoding("utf8");
        req.on("data", (d) => (body += d));
        req.on("end", () => {
          if (req.url === "/mark") onMark(body, browser.pid);
          res.writeHead(204, { "access-control-allow-origin": "*" });
          res.end();
          if (req.url === "/log") log(body);
          else if (req.url === "/result") resolve(JSON.parse(body));
          else if (req.url === "/error") reject(new Error(`the bench page failed: ${body}`));
        });
      });
      server.listen(0, "127.0.0.1", () => {
        const report = `http://127.0.0.1:${server.address().port}`;
        const url = new URL(pageUrl);
        url.searchParams.set("report", report);
        browser = spawn("/usr/bin/chromium", ["--headless", ...FLAGS, `--user-data-dir=${profile}`, url.href],
                        { stdio: ["ignore", "ignore", "ignore"] });
        browser.on("exit", (code) => reject(new Error(`Chromium exited (${code}) before the page reported`)));
      });
      setTimeout(() => reject(new Error(`no result from ${pageUrl} within ${timeoutMs / 1000} s`)), timeoutMs).unref();
    });
  } finally {
    if (browser && browser.exitCode === null && browser.signalCode === null) {
      const exited = new Promise((ok) => browser.once("exit", ok));
      browser.kill("SIGTERM");
      await exited;
    }
    server?.close();
    // Its helper processes may still be writing their last state into the profile.
    for (let attempt = 1; ; attempt++) {
      try {
        rmSync(profile, { recursive: true, force: true });
        break;
      } catch (e) {
        if (attempt === 20) throw e;
        await new Promise((ok) => setTimeout(ok, 250));
      }
    }
  }
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

/**
 * CPU milliseconds used so far, by role: Chromium's processes under `browserPid`
 * (the renderer's main thread apart from its other threads, the network service,
 * the browser process, the rest) and the accelerator (`acceleratorPid`).
 */
export function cpuByRole(browserPid, acceleratorPid) {
  const out = { rendererMain: 0, rendererOther: 0, network: 0, browser: 0, chromiumOther: 0, accelerator: 0 };
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
        if (Number(tid) === pid) out.rendererMain += ms; else out.rendererOther += ms;
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
