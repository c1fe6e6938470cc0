// The share page's service worker (scope /open.html): plays an audio or video file
// with seeking, without reading all of it first. The media element asks for
// /media/<token> with a Range header; this worker passes the range to the page that
// opened the file, which reads just those bytes (a range read of its manifest, the
// only chunks fetched being those that hold them) and hands them back as a 206.
// The bytes never leave the browser, and nothing is cached.

/** The most one answer carries (the page also stops at the end of a chunk): a media element asking for "bytes=0-" gets this much, then asks on. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith("/media/")) return;
  event.respondWith(answer(event, url.pathname.slice("/media/".length)));
});

/** `{ start, end }` of a `bytes=start-[end]` header (`end` null when open), or null. */
function parseRange(header) {
  const match = /^bytes=(\d+)-(\d*)$/.exec((header ?? "bytes=0-").trim());
  if (!match) return null;
  return { start: Number(match[1]), end: match[2] === "" ? null : Number(match[2]) };
}

async function answer(event, token) {
  const range = parseRange(event.request.headers.get("range"));
  const page = await self.clients.get(event.clientId);
  if (!range) return new Response("only single byte ranges are served", { status: 416 });
  if (!page) return new Response("the page that opened this file is gone", { status: 410 });
  const wanted = range.end === null ? MAX_ANSWER_BYTES : range.end - range.start + 1;
  const reply = await ask(page, { token, offset: range.start, length: Math.min(wanted, MAX_ANSWER_BYTES) });
  if (reply.error) return new Response(reply.error, { status: reply.status });
  const { bytes, size, type } = reply;
  if (bytes.byteLength === 0) return new Response(null, { status: 416, headers: { "Content-Range": `bytes */${size}` } });
  return new Response(bytes, {
    status: 206,
    headers: {
      "Content-Type": type,
      "Content-Length": String(bytes.byteLength),
      "Content-Range": `bytes ${range.start}-${range.start + bytes.byteLength - 1}/${size}`,
      "Accept-Ranges": "bytes",
      "Cache-Control": "no-store",
    },
  });
}

/** Asks the page for a range; resolves to `{ bytes, size, type }` or `{ error, status }`. */
function ask(page, request) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (event) => resolve(event.data);
    page.postMessage({ type: "coffer-media-range", ...request }, [channel.port2]);
  });
}
