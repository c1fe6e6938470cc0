// Builds and serves the app in this folder, for tests/e2e/app.test.mjs:
//
//   buildApp()  `npm ci` (so ../../pkg is packed and copied in afresh on every run,
//               as an app installs a published package: see .npmrc), a check that
//               the installed copy is the pkg/ built now, then `vite build` into dist/;
//   serveApp()  `vite preview` of dist/ on a free loopback port.
//
// By hand, after building the package (scripts/lib.sh: build_package):
//   node tests/app/harness.mjs    builds, serves, prints the URL; Ctrl-C stops it.

import { spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

export const APP_DIR = fileURLToPath(new URL(".", import.meta.url));
const PKG_DIR = fileURLToPath(new URL("../../pkg/", import.meta.url));
const VITE = join(APP_DIR, "node_modules", ".bin", "vite");

/** Runs a command in the app's folder; rejects with its output when it fails. */
function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: APP_DIR, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0) resolve(output);
      else reject(new Error(`\`${command} ${args.join(" ")}\` in ${APP_DIR} failed (${signal ?? `exit ${code}`}):\n${output}`));
    });
  });
}

/** Every file under `dir`, as paths relative to it. */
function filesUnder(dir, root = dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path, root) : [relative(root, path)];
  });
}

/**
 * Fails unless node_modules/coffer holds exactly the files of pkg/ that the package
 * publishes, byte for byte: a stale copy would test an old build.
 */
function checkInstalledCopy() {
  const installed = join(APP_DIR, "node_modules", "coffer");
  const stale = filesUnder(installed).filter((file) => !readFileSync(join(installed, file)).equals(readFileSync(join(PKG_DIR, file))));
  if (stale.length > 0) {
    throw new Error(`node_modules/coffer is not the pkg/ built now (differs: ${stale.join(", ")}); remove tests/app/node_modules and run again`);
  }
}

/** Installs the package as an app does and builds the app into dist/. Returns vite's output. */
export async function buildApp() {
  try {
    readFileSync(join(PKG_DIR, "package.json"));
  } catch {
    throw new Error(`no package in ${PKG_DIR}: build it first (source scripts/lib.sh; build_package)`);
  }
  await run("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"]);
  checkInstalledCopy();
  return run(VITE, ["build"]);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Serves dist/ with `vite preview`; resolves `{ url, stop }` once it answers. */
export async function serveApp() {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(VITE, ["preview", "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
    cwd: APP_DIR,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(signal ?? `exit ${code}`)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`vite preview stopped (${await exited}):\n${output}`);
    try {
      if ((await fetch(`${url}/`)).ok) return { url, stop };
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`vite preview did not answer at ${url} within 20 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(await buildApp());
  const { url, stop } = await serveApp();
  console.log(`serving dist/ at ${url}/?accelerator=<the accelerator's URL>; Ctrl-C stops it`);
  process.on("SIGINT", () => stop().then(() => process.exit(0)));
}
