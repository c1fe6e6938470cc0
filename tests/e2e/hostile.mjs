// A hostile accelerator for the tests: an HTTP proxy in front of a real one that
// passes every request through, except those a test told it to answer with a lie.
// The real accelerator never lies, so this is how the tests show what the SDK does
// when one does. Lies that stream without end count the bytes the browser actually
// took before it hung up.

import { createServer, request as httpRequest } from "node:http";

/** Filler for endless answers: spaces are valid JSON whitespace and any shard byte. */
const FILLER = Buffer.alloc(64 * 1024, 0x20);
/** An endless answer gives up on its own after this many bytes (the SDK should stop it far earlier). */
const ENDLESS_LIMIT = 1024 * 1024 * 1024;

function readBody(stream) {
  return new Promise((resolve, reject) => {
    const parts = [];
    stream.on("data", (part) => parts.push(part));
    stream.on("end", () => resolve(Buffer.concat(parts)));
    stream.on("error", reject);
  });
}

/** Sends a request on to the real accelerator; resolves to `{ status, headers, body }`. */
function forward(upstream, { method, url, headers, body }) {
  return new Promise((resolve, reject) => {
    const target = new URL(url, upstream);
    const out = httpRequest(target, { method, headers: { ...headers, host: target.host } }, async (answer) => {
      resolve({ status: answer.statusCode, headers: answer.headers, body: await readBody(answer) });
    });
    out.on("error", reject);
    out.end(body);
  });
}

/**
 * Starts a proxy to `upstream` on a free port. Returns
 * `{ url, lie(method, path, answer), truth(), stop() }`: `lie` makes requests whose
 * method matches and whose path matches the RegExp `path` go to
 * `answer(exchange)` instead, where `exchange` holds `{ req, res, body, json,
 * upstream(path?) }` — `json` is the parsed request body (or null) and `upstream`
 * fetches the real answer (to this request, or to a GET of another path). `answer`
 * may return `"pass"` to let the request through. `lie` returns a record whose
 * `calls` counts the lies told. `truth()` drops every lie.
 */
export async function startHostile(upstream) {
  let lies = [];
  const server = createServer(async (req, res) => {
    try {
      const body = await readBody(req);
      const exchange = {
        req,
        res,
        body,
        json: parseJson(body),
        upstream: (path) =>
          path === undefined
            ? forward(upstream, { method: req.method, url: req.url, headers: req.headers, body })
            : forward(upstream, { method: "GET", url: path, headers: withoutBody(req.headers), body: undefined }),
      };
      const path = new URL(req.url, "http://x").pathname;
      for (const lie of lies.filter((l) => l.method === req.method && l.path.test(path))) {
        if ((await lie.answer(exchange)) !== "pass") {
          lie.calls++;
          return;
        }
      }
      const real = await exchange.upstream();
      res.writeHead(real.status, real.headers);
      res.end(real.body);
    } catch (e) {
      res.destroy(e);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    lie(method, path, answer) {
      const lie = { method, path, answer, calls: 0 };
      lies.push(lie);
      return lie;
    },
    truth() {
      lies = [];
    },
    stop() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Request headers for a GET made on behalf of a request: the same session, no body. */
function withoutBody(headers) {
  const { "content-length": _length, "content-type": _type, ...rest } = headers;
  return rest;
}

function parseJson(body) {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return null;
  }
}

/** Answers 200 with `json` (an object, serialized). */
export function sendJson(res, json) {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(json));
}

/**
 * A lie that fetches the real JSON answer and sends `forge(real, exchange)` instead.
 * Requests for which `when(exchange)` is false pass through untouched.
 */
export function rewriteJson(forge, when = () => true) {
  return async (exchange) => {
    if (!when(exchange)) return "pass";
    const real = JSON.parse((await exchange.upstream()).body);
    sendJson(exchange.res, forge(real, exchange));
  };
}

/**
 * Answers `status` with `head` and then filler without end, honouring backpressure,
 * until the client hangs up (or ENDLESS_LIMIT). Resolves to the bytes the client
 * took — what the network accepted before the SDK cancelled the body.
 */
export function sendEndless(res, head, { status = 200, type = "application/json" } = {}) {
  res.writeHead(status, { "content-type": type });
  return new Promise((resolve) => {
    let sent = 0;
    let closed = false;
    res.on("close", () => {
      closed = true;
      resolve(sent);
    });
    const pump = () => {
      while (!closed && sent < ENDLESS_LIMIT) {
        const part = sent === 0 ? Buffer.concat([Buffer.from(head), FILLER]) : FILLER;
        sent += part.length;
        if (!res.write(part)) return res.once("drain", pump);
      }
      if (!closed) res.end();
    };
    pump();
  });
}
