// Drives the demo (framed at /, same origin, so on this page's main thread) the way
// a person would — sign up, add a to-do, attach a large file — and, while the file
// uploads, measures how long the main thread takes to answer:
//
// - probes: every PROBE_EVERY_MS a message is posted to this thread and the time until
//   its handler runs is recorded. An input event waits in the same queue (Chromium
//   runs input before such messages, so real input waits no longer than a probe);
// - long tasks (PerformanceObserver "longtask"), in this window and the demo's;
// - to-dos added through the demo's own form while the file uploads: the time until
//   the new row is on screen (a kv write, so a round trip to the accelerator too).
//
// Runs in a Chromium with no DevTools client attached (bench/lib.mjs runBare): it
// reports to the test over HTTP (?report=…) and the test asserts on the figures.

const params = new URLSearchParams(location.search);
const REPORT = params.get("report");
const MIB = 1024 * 1024;
const SIZE = Number(params.get("mib")) * MIB;
const PROBE_EVERY_MS = 20;
const TODO_EVERY_MS = 1000;

const post = (path, body) => fetch(`${REPORT}${path}`, { method: "POST", body });
const log = (message) => post("/log", message);
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Waits until `test()` is truthy (polled), or fails naming `what`. */
async function until(test, what, ms = 120_000) {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = test();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** `size` bytes of random data in a File of the window `w` (the demo checks for its own
 * realm's `Blob`): one random 4 MiB block, repeated. */
function bigFile(w, size) {
  const block = new Uint8Array(4 * MIB);
  for (let at = 0; at < block.length; at += 65536) crypto.getRandomValues(block.subarray(at, at + 65536));
  const parts = [];
  for (let left = size; left > 0; left -= block.length) parts.push(block.subarray(0, Math.min(left, block.length)));
  return new w.File(parts, "big.bin", { type: "application/octet-stream" });
}

/** Posts a message to this thread every PROBE_EVERY_MS until stopped; the delays until each ran. */
function probe() {
  const channel = new MessageChannel();
  const delays = [];
  let sent = 0;
  let running = true;
  channel.port1.onmessage = () => {
    delays.push(performance.now() - sent);
    if (running) setTimeout(send, PROBE_EVERY_MS);
  };
  const send = () => {
    sent = performance.now();
    channel.port2.postMessage(null);
  };
  send();
  return () => {
    running = false;
    return delays;
  };
}

/** Long tasks seen in `windows` from now on (each window observes its own; a task
 * both see is counted once). */
function watchLongTasks(windows) {
  const seen = new Map(); // start time on this page's clock → ms
  const observers = windows.map((w) => {
    const offset = w.performance.timeOrigin - performance.timeOrigin;
    const observer = new w.PerformanceObserver((list) => {
      for (const e of list.getEntries()) seen.set(Math.round(e.startTime + offset), e.duration);
    });
    observer.observe({ type: "longtask" });
    return observer;
  });
  return () => {
    for (const o of observers) o.disconnect();
    return [...seen].map(([start, ms]) => ({ start, ms }));
  };
}

async function run() {
  const frame = document.getElementById("app");
  const win = frame.contentWindow;
  await until(() => win.document.body?.dataset.state === "signed-out", "the demo's sign-in form");
  const doc = win.document;
  const $ = (id) => doc.getElementById(id);
  const byTestId = (root, id) => root.querySelector(`[data-testid="${id}"]`);

  await log("signing up");
  $("username").value = `resp-${Date.now().toString(36)}`;
  $("password").value = "responsive test password";
  byTestId(doc, "sign-up").click();
  await until(() => doc.body.dataset.state === "ready", "the to-do list after sign-up", 60_000);

  /** Adds a to-do through the demo's form; resolves to the ms until its row shows. */
  const addTodo = async (title) => {
    const start = performance.now();
    $("new-title").value = title;
    $("new-form").requestSubmit();
    await until(() => [...doc.querySelectorAll('[data-testid="todo-title"]')].some((t) => t.textContent === title), `the to-do “${title}”`);
    return performance.now() - start;
  };
  await addTodo("holds the file");
  const row = [...doc.querySelectorAll('[data-testid="todo"]')].find((li) => li.textContent.includes("holds the file"));

  const file = bigFile(win, SIZE);
  await log(`attaching ${SIZE / MIB} MiB`);
  const stopLong = watchLongTasks([window, win]);
  const stopProbe = probe();
  const started = performance.now();
  // The paper clip opens the file picker (none opens without a real click); the
  // picked file arrives as the input's change event, as when a person picks one.
  byTestId(row, "todo-attach").click();
  const input = $("attach-input");
  const picked = new win.DataTransfer();
  picked.items.add(file);
  input.files = picked.files;
  input.dispatchEvent(new Event("change", { bubbles: true }));

  const bar = await until(() => byTestId(row, "upload-progress"), "the upload's progress bar", 10_000);
  const progress = new Set();
  const todoMs = [];
  let next = performance.now() + TODO_EVERY_MS;
  while (bar.isConnected) {
    progress.add(bar.value);
    if (performance.now() >= next) {
      todoMs.push(await addTodo(`added while uploading ${todoMs.length + 1}`));
      next = performance.now() + TODO_EVERY_MS;
    }
    await sleep(50);
  }
  const uploadMs = performance.now() - started;
  const delays = stopProbe();
  const longTasks = stopLong();
  const failed = () => ($("todo-error").hidden ? null : $("todo-error").textContent);
  await until(() => byTestId(row, "attachment-name") || failed(), "the attachment or an error", 30_000);
  const attached = [...row.querySelectorAll('[data-testid="attachment-name"]')].map((n) => n.textContent);
  await post("/result", JSON.stringify({ uploadMs, delays, longTasks, todoMs, progress: [...progress], attached, error: failed() }));
}

run().catch((e) => post("/error", `${e?.code ? `[${e.code}] ` : ""}${e?.stack ?? e}`));
