// Opens a share link — `/open.html#<manifest>` — without signing in: an anonymous
// client reads the file by its manifest (the capability), decrypting it here. The
// manifest stays in the fragment, which the browser never sends to the server.
//
// Audio and video play at once, with seeking, without reading the whole file: the
// page's service worker (media-sw.js) passes each of the media element's range
// requests here, and a range read fetches only the chunks that hold it. Where that
// cannot work (no service worker, a type the browser cannot play), the page says
// why and offers the download.

import init, { Client, inspectManifest } from "/pkg/coffer.js";
import { formatBytes, mediaKind, previewKind } from "./files.js";

const $ = (id) => document.getElementById(id);
const ui = {
  card: $("file-card"),
  status: $("status"),
  file: $("file"),
  badge: $("file-badge"),
  name: $("file-name"),
  details: $("file-details"),
  progressRow: $("progress-row"),
  progress: $("progress"),
  progressText: $("progress-text"),
  actions: $("file-actions"),
  download: $("download"),
  preview: $("preview"),
  failed: $("open-failed"),
  error: $("open-error"),
};

/** Characters of a text file shown inline. */
const TEXT_PREVIEW_BYTES = 256 * 1024;

const MESSAGES = {
  empty: "This link has no file in it. Check that you copied the whole link.",
  damaged: "This link is incomplete or damaged. Check that you copied all of it, or ask for a new one.",
  NotFound: "This file was deleted or the link is wrong.",
  Integrity: "This file could not be verified, so it is not shown: it may have been damaged on the server.",
  Network: "Could not reach the server. Check your connection and reload the page.",
};

function messageFor(error) {
  return MESSAGES[error?.code] ?? `Could not open this file: ${error?.message ?? error}`;
}

/** The manifest in the link's fragment ("" if none). */
function manifestFromLink() {
  const raw = location.hash.slice(1).trim();
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function fail(message) {
  ui.status.hidden = true;
  ui.file.hidden = true;
  ui.error.textContent = message;
  ui.failed.hidden = false;
  ui.card.setAttribute("aria-busy", "false");
  document.body.dataset.state = "error";
}

/** What the file says of itself (metadata is whatever the writer gave: check it). */
function describe(stat) {
  const meta = stat.metadata && typeof stat.metadata === "object" ? stat.metadata : {};
  const name = typeof meta.name === "string" && meta.name.trim() ? meta.name : "Shared file";
  const type = typeof meta.type === "string" ? meta.type : "";
  return { name, type, size: stat.size };
}

function showFile({ name, type, size }) {
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 && name.length - dot <= 6 ? name.slice(dot + 1).toUpperCase() : "FILE";
  ui.badge.textContent = ext;
  ui.name.textContent = name;
  ui.details.textContent = [formatBytes(size), type].filter(Boolean).join(" · ");
  document.title = `${name} · Shared file`;
  ui.status.hidden = true;
  ui.file.hidden = false;
}

function showProgress(done, total) {
  const fraction = total > 0 ? done / total : 1;
  ui.progress.value = fraction;
  ui.progressText.textContent = `Decrypting… ${Math.floor(fraction * 100)}%`;
}

async function showPreview(blob, { name, type }) {
  const kind = previewKind(type, name);
  if (kind === "image") {
    const img = document.createElement("img");
    img.alt = name;
    img.dataset.testid = "preview-image";
    img.src = URL.createObjectURL(blob.slice(0, blob.size, type));
    img.addEventListener("error", () => (ui.preview.hidden = true));
    ui.preview.replaceChildren(img);
    ui.preview.hidden = false;
  } else if (kind === "text") {
    const text = await blob.slice(0, TEXT_PREVIEW_BYTES).text();
    const pre = document.createElement("pre");
    pre.dataset.testid = "preview-text";
    pre.textContent = text;
    ui.preview.replaceChildren(pre);
    if (blob.size > TEXT_PREVIEW_BYTES) {
      const note = document.createElement("figcaption");
      note.className = "muted";
      note.textContent = `Showing the first ${formatBytes(TEXT_PREVIEW_BYTES)}: download the file for the rest.`;
      ui.preview.append(note);
    }
    ui.preview.hidden = false;
  }
}

/** Says in the preview why the file does not play here; the download stays. */
function cannotPlay(why) {
  if (document.body.dataset.state === "error") return;
  const note = document.createElement("p");
  note.className = "muted";
  note.dataset.testid = "media-note";
  note.textContent = `It cannot play here (${why}): download it instead.`;
  ui.preview.replaceChildren(note);
  ui.preview.hidden = false;
}

/**
 * Plays the file in an `<audio>`/`<video>` element fed by range reads through the
 * service worker; resolves once it plays from there, or to why it cannot.
 */
async function playWithRanges(reader, manifest, { name, type, size }, kind) {
  if (!("serviceWorker" in navigator)) return "this browser runs no service worker here";
  const media = document.createElement(kind);
  if (!media.canPlayType(type)) return `this browser cannot play ${type}`;
  try {
    await navigator.serviceWorker.register("/media-sw.js", { scope: "/open.html" });
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
    }
  } catch (e) {
    return `its service worker did not start (${e?.message ?? e})`;
  }
  const token = crypto.randomUUID();
  const { chunkSize } = inspectManifest(manifest);
  let bytesRead = 0;
  navigator.serviceWorker.addEventListener("message", async (event) => {
    const { type: kind, token: asked, offset, length } = event.data ?? {};
    if (kind !== "coffer-media-range" || asked !== token) return;
    const [port] = event.ports;
    try {
      // Up to the end of the chunk the range starts in: the next request starts on
      // a chunk boundary, so no chunk is fetched twice for one pass through the file.
      const upToBoundary = chunkSize - (offset % chunkSize);
      const { data } = await reader.storage.readByManifest(manifest, { offset, length: Math.min(length, upToBoundary) });
      // A range read may hand back a view of a larger chunk: send only the range.
      const bytes = data.byteLength === data.buffer.byteLength ? data : data.slice();
      bytesRead += bytes.byteLength;
      media.dataset.bytesRead = String(bytesRead);
      port.postMessage({ bytes, size, type }, [bytes.buffer]);
    } catch (e) {
      port.postMessage({ error: messageFor(e), status: e?.code === "NotFound" ? 404 : 502 });
      // Deleted, damaged or unreachable: the page says so, as for any other file.
      fail(messageFor(e));
    }
  });
  media.addEventListener("error", () => cannotPlay("the browser could not decode it"));
  media.controls = true;
  media.preload = "metadata";
  media.dataset.testid = `preview-${kind}`;
  media.setAttribute("aria-label", name);
  media.src = `/media/${token}`;
  ui.preview.replaceChildren(media);
  ui.preview.hidden = false;
  return null;
}

/** Reads the whole file, with progress, into a download link; resolves to the Blob. */
async function readAll(reader, manifest, file) {
  ui.progressRow.hidden = false;
  showProgress(0, file.size);
  const { data } = await reader.storage.readByManifest(manifest, { as: "stream" });
  const parts = [];
  let done = 0;
  const stream = data.getReader();
  for (;;) {
    const { value, done: end } = await stream.read();
    if (end) break;
    parts.push(value);
    done += value.length;
    showProgress(done, file.size);
  }
  // Typed as an opaque download, so a file claiming to be HTML never opens as a
  // page of this origin.
  const blob = new Blob(parts, { type: "application/octet-stream" });
  ui.download.href = URL.createObjectURL(blob);
  ui.download.download = file.name;
  ui.download.setAttribute("aria-label", `Download ${file.name} (${formatBytes(file.size)})`);
  ui.progressRow.hidden = true;
  return blob;
}

/**
 * Audio or video: plays it from range reads, and reads it all only for a download;
 * resolves to null, or to why it cannot play here.
 */
async function openMedia(reader, manifest, file, kind) {
  const why = await playWithRanges(reader, manifest, file, kind);
  if (why) return why;
  // Ready once the player knows the file (its first range read came back), or
  // knows it cannot play it; a file that is gone fails the page instead (fail()).
  const media = ui.preview.firstElementChild;
  await new Promise((resolve) => {
    media.addEventListener("loadedmetadata", resolve, { once: true });
    media.addEventListener("error", resolve, { once: true });
  });
  if (document.body.dataset.state === "error") return null;
  ui.progressRow.hidden = true;
  ui.actions.hidden = false;
  ui.download.addEventListener(
    "click",
    async (event) => {
      if (ui.download.href) return;
      event.preventDefault();
      try {
        await readAll(reader, manifest, file);
        ui.download.click();
      } catch (e) {
        fail(messageFor(e));
      }
    },
  );
  ui.card.setAttribute("aria-busy", "false");
  document.body.dataset.state = "ready";
  return null;
}

async function main() {
  document.body.dataset.state = "opening";
  const manifest = manifestFromLink();
  if (!manifest) return fail(MESSAGES.empty);
  try {
    await init();
  } catch (e) {
    return fail(`Could not load Coffer: ${e?.message ?? e}`);
  }
  try {
    inspectManifest(manifest);
  } catch {
    return fail(MESSAGES.damaged);
  }

  let reader;
  let file;
  try {
    reader = await Client.anonymous({ url: location.origin });
    // What the file says of itself, from a read of no bytes.
    const { stat } = await reader.storage.readByManifest(manifest, { length: 0 });
    file = describe(stat);
  } catch (e) {
    return fail(messageFor(e));
  }
  showFile(file);

  const kind = mediaKind(file.type);
  if (kind) {
    const why = await openMedia(reader, manifest, file, kind);
    if (!why) return;
    cannotPlay(why);
  }

  let blob;
  try {
    blob = await readAll(reader, manifest, file);
  } catch (e) {
    return fail(messageFor(e));
  }
  ui.actions.hidden = false;
  await showPreview(blob, file).catch(() => (ui.preview.hidden = true));
  ui.card.setAttribute("aria-busy", "false");
  document.body.dataset.state = "ready";
}

// Another link pasted into this tab: open that one.
window.addEventListener("hashchange", () => location.reload());

main();
