// Opens a share link — `/open.html#<manifest>` — without signing in: an anonymous
// client reads the file by its manifest (the capability), decrypting it here. The
// manifest stays in the fragment, which the browser never sends to the server.

import init, { Client, inspectManifest } from "/pkg/coffer.js";
import { formatBytes, previewKind } from "./files.js";

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

  let result;
  try {
    const reader = await Client.anonymous({ url: location.origin });
    // A stream: the name shows at once, and the bytes follow chunk by chunk.
    result = await reader.storage.readByManifest(manifest, { as: "stream" });
  } catch (e) {
    return fail(messageFor(e));
  }
  const file = describe(result.stat);
  showFile(file);
  showProgress(0, file.size);

  const parts = [];
  let done = 0;
  try {
    const reader = result.data.getReader();
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      parts.push(value);
      done += value.length;
      showProgress(done, file.size);
    }
  } catch (e) {
    return fail(messageFor(e));
  }

  // Typed as an opaque download, so a file claiming to be HTML never opens as a
  // page of this origin.
  const blob = new Blob(parts, { type: "application/octet-stream" });
  ui.download.href = URL.createObjectURL(blob);
  ui.download.download = file.name;
  ui.download.setAttribute("aria-label", `Download ${file.name} (${formatBytes(file.size)})`);
  ui.progressRow.hidden = true;
  ui.actions.hidden = false;
  await showPreview(blob, file).catch(() => (ui.preview.hidden = true));
  ui.card.setAttribute("aria-busy", "false");
  document.body.dataset.state = "ready";
}

// Another link pasted into this tab: open that one.
window.addEventListener("hashchange", () => location.reload());

main();
