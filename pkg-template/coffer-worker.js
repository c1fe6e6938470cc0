// Coffer's file worker. The SDK starts a few of these itself (see browser.js in the
// SDK's source) to seal, erasure-code and upload chunks, and to fetch and open them,
// off the page's main thread. Nothing to configure: it is found next to coffer.js.
//
// The page posts the SDK's compiled module first; the worker instantiates it, says
// it is ready, then runs every job it is sent until the page stops it.
import init, { copiedBytes, runWorkerJob } from "./coffer.js";

const running = new Map(); // job id → AbortController
let wasm;

/** What the page's benchmark reads of each worker (browser.js sums it). */
const stats = () => ({ memory: wasm.memory.buffer.byteLength, copied: copiedBytes() });

function onJob({ data }) {
  if (data.cancel !== undefined) {
    running.get(data.cancel)?.abort();
    running.delete(data.cancel);
    return;
  }
  const controller = new AbortController();
  running.set(data.id, controller);
  runWorkerJob(data, controller.signal).then(
    (ok) => postMessage({ id: data.id, ok, stats: stats() }, [ok.buffer]),
    (error) => {
      const { code = "Internal", message = String(error) } = error ?? {};
      postMessage({ id: data.id, error: { code, message }, stats: stats() });
    },
  ).finally(() => running.delete(data.id));
}

addEventListener("message", async ({ data }) => {
  try {
    wasm = await init({ module_or_path: data.module });
  } catch (error) {
    postMessage({ failed: String(error?.message ?? error) });
    return;
  }
  addEventListener("message", onJob);
  postMessage({ ready: true });
}, { once: true });
