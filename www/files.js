// Small helpers for files, shared by the to-do app (app.js) and the page that opens
// share links (open.js).

/** A byte count for people: "812 bytes", "4.2 kB", "2.5 MB". */
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1000) return `${n} byte${n === 1 ? "" : "s"}`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** Bytes of metadata JSON a file may carry (the SDK refuses more). */
const MAX_METADATA_BYTES = 256;
const utf8Length = (text) => new TextEncoder().encode(text).length;

/**
 * `{ name, type }` of a `File`, shortened to fit the SDK's 256 bytes of metadata:
 * a very long name keeps its start and its extension ("A long repo…rt.pdf").
 */
export function fileMetadata(file) {
  const type = file.type && file.type.length <= 100 ? file.type : "";
  const fits = (name) => utf8Length(JSON.stringify({ name, type })) <= MAX_METADATA_BYTES;
  const name = file.name || "file";
  if (fits(name)) return { name, type };
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 && name.length - dot <= 12 ? name.slice(dot) : "";
  let stem = [...name.slice(0, name.length - ext.length)];
  while (stem.length > 1 && !fits(`${stem.join("")}…${ext}`)) stem.pop();
  return { name: `${stem.join("")}…${ext}`, type };
}

/** The link that opens a file from its manifest; the manifest stays in the fragment,
 * which browsers never send to a server. */
export function shareLink(manifest) {
  return `${location.origin}/open.html#${manifest}`;
}

/** Image types shown inline. No SVG: opened on its own, it could run script here. */
const PREVIEW_IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"]);

/** `"audio"` or `"video"` for a type a media element may play, else null. */
export function mediaKind(type) {
  const t = String(type || "").toLowerCase().split(";")[0].trim();
  if (t.startsWith("audio/")) return "audio";
  if (t.startsWith("video/")) return "video";
  return null;
}

/** How a file of this type may be previewed: "image", "text" or null. */
export function previewKind(type, name = "") {
  const t = String(type || "").toLowerCase().split(";")[0].trim();
  if (PREVIEW_IMAGES.has(t)) return "image";
  if (t.startsWith("text/") || t === "application/json" || t === "application/xml") return "text";
  if (!t && /\.(txt|md|csv|json|log)$/i.test(name)) return "text";
  return null;
}

/**
 * Saves a Blob as a download named `name`. The Blob is retyped as an opaque
 * download first: a file typed `text/html` must never be opened as a page of this
 * origin (where the sessions live).
 */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(new Blob([blob], { type: "application/octet-stream" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name || "download";
  link.rel = "noopener";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its own reference by now; free ours a little later.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
