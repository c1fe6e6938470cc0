// The demo stays responsive while a large attachment uploads (issue #8): the demo,
// driven by tests/e2e/responsive/harness.js in the same main thread, attaches a
// 128 MiB file to a to-do, and while it uploads the page answers within 100 ms
// every time it is asked, shows no task of 100 ms or more, keeps taking new to-dos
// through its form, and moves its progress bar; the file ends up attached.
//
// Run the way the benchmarks run uploads: in a Chromium with no DevTools client
// attached (browser.mjs runBare), since Playwright's Network domain slows uploads
// and adds long tasks of its own. The harness is served beside a copy of www/ by an
// accelerator of this test's own, started with --bench-endpoints so that its pages
// may frame the demo and report to the test (the demo's own CSP forbids both).

import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { startAccelerator } from "./accelerator.mjs";
import { runBare } from "./browser.mjs";
import { ROOT } from "./spawned.mjs";

const UPLOAD_MIB = 128;
/** How soon the page must answer, every time, while the file uploads. */
const ANSWER_MS = 100;

const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

describe(`the demo while a ${UPLOAD_MIB} MiB attachment uploads`, () => {
  let accelerator;
  let www;

  before(async () => {
    www = mkdtempSync(join(tmpdir(), "coffer-responsive-www-"));
    cpSync(join(ROOT, "www"), www, { recursive: true });
    cpSync(join(ROOT, "tests/e2e/responsive"), join(www, "responsive"), { recursive: true });
    accelerator = await startAccelerator(["--bench-endpoints"], { www });
  });

  after(async () => {
    await accelerator?.stop();
    if (www) rmSync(www, { recursive: true, force: true });
  });

  it(`answers input within ${ANSWER_MS} ms throughout, and the file attaches`, async () => {
    const result = await runBare(`${accelerator.url}/responsive/?mib=${UPLOAD_MIB}`, {
      timeoutMs: 300_000,
      log: (m) => console.error(`responsive: ${m}`),
    });
    const { uploadMs, delays, longTasks, todoMs, progress, attached, error } = result;
    console.error(
      `responsive: ${UPLOAD_MIB} MiB in ${(uploadMs / 1000).toFixed(1)} s; ${delays.length} probes, ` +
        `p50 ${quantile(delays, 0.5).toFixed(1)} ms, p99 ${quantile(delays, 0.99).toFixed(1)} ms, ` +
        `max ${Math.max(...delays).toFixed(1)} ms; long tasks ${longTasks.map((t) => t.ms.toFixed(0)).join(", ") || "none"}; ` +
        `to-dos shown in ${todoMs.map((ms) => ms.toFixed(0)).join(", ")} ms`,
    );

    assert.equal(error, null, "the demo showed an error");
    assert.deepEqual(attached, ["big.bin"], "the file is attached to its to-do");
    // The probes ran all along: one per 20 ms of the upload, give or take.
    assert.ok(delays.length >= uploadMs / 60, `only ${delays.length} probes ran in ${uploadMs.toFixed(0)} ms`);
    const slow = delays.filter((ms) => ms >= ANSWER_MS);
    assert.deepEqual(slow, [], `the page took ${ANSWER_MS} ms or more to answer`);
    const long = longTasks.filter((t) => t.ms >= ANSWER_MS);
    assert.deepEqual(long, [], `the main thread ran tasks of ${ANSWER_MS} ms or more`);
    assert.ok(todoMs.length >= 1, "no to-do was added while the file uploaded");
    assert.ok(progress.some((v) => v > 0 && v < 1), `the progress bar never showed a part-way value (${progress})`);
  });
});
