// Shared by the end-to-end tests: the accelerator's URL and storage from the
// environment, Debian's Chromium through playwright-core, unique names.
//
// Run by scripts/test, or by hand against a running accelerator:
//   COFFER_URL=http://127.0.0.1:8080 COFFER_DATA_DIR=./data node --test --test-concurrency=1 tests/e2e/

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { inDirectory, inPostgresAndS3 } from "./stored.mjs";

/** The accelerator under test (it also serves www/ and pkg/). */
export function cofferUrl() {
  const url = process.env.COFFER_URL;
  if (!url) {
    throw new Error(
      "COFFER_URL is not set: start an accelerator (scripts/test does) and run " +
        "COFFER_URL=http://127.0.0.1:PORT node --test tests/e2e/",
    );
  }
  return url.replace(/\/+$/, "");
}

/**
 * What the accelerator under test keeps (./stored.mjs), for the at-rest test: its
 * data directory (COFFER_DATA_DIR), or its PostgreSQL database and S3 bucket
 * (COFFER_STORED_DATABASE, COFFER_STORED_BUCKET, on the server AWS_ENDPOINT_URL names).
 */
export function sharedStore() {
  const { COFFER_DATA_DIR: dir, COFFER_STORED_DATABASE: databaseUrl, COFFER_STORED_BUCKET: bucket, AWS_ENDPOINT_URL: endpoint } = process.env;
  if (dir) return inDirectory(dir);
  if (databaseUrl && bucket && endpoint) return inPostgresAndS3({ databaseUrl, endpoint, bucket });
  throw new Error(
    "say where the accelerator under test keeps its data: COFFER_DATA_DIR=its --data-dir, or " +
      "COFFER_STORED_DATABASE=its --database, COFFER_STORED_BUCKET=its bucket and AWS_ENDPOINT_URL",
  );
}

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
// Without the background-networking flags Chromium keeps calling hosts the closed
// network refuses; see TOOLCHAIN.md.
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** A headless Chromium. Close it in an `after` hook. */
export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

/**
 * Opens `pageUrl` in a headless Chromium that no DevTools client is attached to, and
 * resolves to what the page reports. With Playwright's DevTools session on a page
 * (its Network domain reports request bodies), ArrayBuffer uploads run ~10× slower
 * here and add long tasks, so anything that uploads is measured this way (the
 * benchmarks, and the demo's responsiveness test).
 *
 * The page gets `report` (a URL on a little server here) in its query string as
 * `?report=…`, and POSTs plain text to `${report}/log` (printed), `${report}/mark`
 * (`onMark(text, browserPid)` is called before the answer), `${report}/result`
 * (JSON: resolves) or `${report}/error` (rejects). Chromium is stopped either way.
 */
export async function runBare(pageUrl, { timeoutMs = 600_000, log = (m) => console.error(m), onMark = () => {} } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "coffer-bare-chromium-"));
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
          else if (req.url === "/error") reject(new Error(`the page failed: ${body}`));
        });
      });
      server.listen(0, "127.0.0.1", () => {
        const report = `http://127.0.0.1:${server.address().port}`;
        const url = new URL(pageUrl);
        url.searchParams.set("report", report);
        browser = spawn(CHROMIUM, ["--headless", ...CHROMIUM_ARGS, `--user-data-dir=${profile}`, url.href],
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

/**
 * A fresh context (its own storage: another "device") with one page. Page errors
 * and console errors are collected on `page.problems` so a test can show them.
 */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 800 }, ...options });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") page.problems.push(`console.error: ${m.text()}`);
  });
  return { context, page };
}

/** A username nobody has used: `<prefix>-<12 hex>`. */
export function uniqueName(prefix = "user") {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/** Random lowercase hex, for markers and passwords. */
export function randomHex(bytes = 16) {
  return randomBytes(bytes).toString("hex");
}

/** Closes a browser if it was launched; never throws (used in `after`). */
export async function closeQuietly(browser) {
  try {
    await browser?.close();
  } catch {
    // Already gone.
  }
}

/**
 * Opens a page on the accelerator's origin (so `/pkg/coffer.js` imports and the
 * session storage belong to it) without running the demo app: the package's
 * package.json, a static file the accelerator serves.
 */
export async function blankPageOnOrigin(page) {
  await page.goto(`${cofferUrl()}/pkg/package.json`);
}
