// Resumable uploads: how much of a file a resume sends again after the page was
// reloaded partway through the upload, beside what the whole upload sends — shard
// bytes counted by a proxy in front of the accelerator (tests/e2e/resume-page.mjs,
// the measure the e2e test asserts on at 48 MiB). Prints a table and writes it to
// target/bench/resume.md. Asserts nothing.
//
//   COFFER_URL=http://127.0.0.1:PORT node bench/resume.mjs   (scripts/bench sets it)
//   BENCH_RESUME_MIB (256), BENCH_RESUME_AT (0.25,0.5,0.75): the file, where it is cut.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { uniqueName } from "../tests/e2e/browser.mjs";
import { countingProxy, uploadCutAndResumed } from "../tests/e2e/resume-page.mjs";
import { acceleratorUrl, launch, report, table } from "./lib.mjs";

const MIB = 1024 * 1024;
const sizeMib = Number(process.env.BENCH_RESUME_MIB ?? 256);
const cuts = (process.env.BENCH_RESUME_AT ?? "0.25,0.5,0.75").split(",").map(Number);

const dir = mkdtempSync(join(tmpdir(), "coffer-bench-resume-"));
const proxy = await countingProxy(acceleratorUrl());
const browser = await launch();
const rows = [];
try {
  const path = join(dir, "file.bin");
  const size = sizeMib * MIB;
  writeFileSync(path, randomBytes(size));
  for (const killAt of cuts) {
    const who = { username: uniqueName("bench-resume"), password: "pw" };
    const run = await uploadCutAndResumed({ browser, proxy, who, path, chunkSize: 4 * MIB, killAt });
    const pct = (n) => `${(100 * n).toFixed(1)} %`;
    rows.push([
      `${sizeMib} MiB`,
      `${pct(killAt)} reported`,
      pct(run.pending.doneBytes / size),
      `${(run.whole / MIB).toFixed(1)} MiB`,
      `${(run.resumed / MIB).toFixed(1)} MiB`,
      `**${pct(run.resumed / run.whole)}**`,
      run.result.same ? "byte-identical" : "**differs**",
    ]);
  }
} finally {
  await browser.close();
  await proxy.stop();
  rmSync(dir, { recursive: true, force: true });
}
report(
  "resume.md",
  `## Resumable uploads: a page reloaded partway, then resumeUpload

${table(["file", "reloaded once", "stored before the reload", "whole upload sends", "resume sends", "resume ÷ whole", "read back"], rows)}

Shard bytes counted by a proxy in front of the accelerator; 4 MiB chunks, 4 + 2
shards. "Reloaded once": the page reloads when the write's onProgress reaches that
share (chunks reported in file order); "stored before": what pendingUploads() says
was stored by then (chunks done out of order count too). Target: cut at half, the
resume sends at most 55 %.
`,
);
