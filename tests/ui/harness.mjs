// Serves ui/ over HTTP (ES modules do not load from file://) and opens it
// in Chromium with window.__TAURI__ replaced by a scripted backend whose
// calls the test can read back.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { readdirSync, readFileSync } from "node:fs";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const UI = fileURLToPath(new URL("../../ui/", import.meta.url));
const SHAPES = fileURLToPath(new URL("./shapes/", import.meta.url));

// Commands the shell tests cannot run through Tauri's mock runtime, so no
// shape of theirs is recorded: native dialogs and the opener, and the
// starter model (it needs the package index).
const UNRECORDED = new Set(["pick_folder", "pick_file", "open_document", "model_starter"]);

/** The same merge as src-tauri/tests/shapes.rs: null gives way, keys seen once become optional. */
function merge(a, b) {
  if (JSON.stringify(a) === JSON.stringify(b)) return a;
  if (a === "null") return b;
  if (b === "null") return a;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length && b.length) return [merge(a[0], b[0])];
    return a.length ? a : b;
  }
  if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const plain = (k) => k.replace(/\?$/, "");
    const index = (o) => new Map(Object.entries(o).map(([k, v]) => [plain(k), [k, v]]));
    const x = index(a);
    const y = index(b);
    const out = {};
    for (const key of new Set([...x.keys(), ...y.keys()])) {
      const [kx, vx] = x.get(key) || [];
      const [ky, vy] = y.get(key) || [];
      if (kx !== undefined && ky !== undefined) {
        out[kx.endsWith("?") || ky.endsWith("?") ? `${key}?` : key] = merge(vx, vy);
      } else {
        out[`${key}?`] = kx !== undefined ? vx : vy;
      }
    }
    return out;
  }
  return "any";
}

/** Every recorded answer shape, by command, merged over the shell tests that saw it. */
export function recordedShapes() {
  const shapes = {};
  for (const file of readdirSync(SHAPES).filter((f) => f.endsWith(".json") && !f.endsWith(".sample.json")).sort()) {
    for (const [cmd, shape] of Object.entries(JSON.parse(readFileSync(join(SHAPES, file), "utf8")))) {
      shapes[cmd] = cmd in shapes ? merge(shapes[cmd], shape) : shape;
    }
  }
  return shapes;
}

const opened = [];
const SHAPES_BY_COMMAND = recordedShapes();
/** Real answers recorded whole by the shell tests (`<name>.sample.json`), by name. */
const SAMPLES = Object.fromEntries(readdirSync(SHAPES).filter((f) => f.endsWith(".sample.json"))
  .map((f) => [f.replace(/\.sample\.json$/, ""), JSON.parse(readFileSync(join(SHAPES, f), "utf8"))]));

/** Scripted answers that disagree with the recorded shapes, on every page opened since the last call. */
export async function driftErrors() {
  const errors = [];
  for (const page of opened.splice(0)) {
    if (!page.isClosed()) errors.push(...await page.evaluate(() => window.__shapeErrors));
  }
  return errors;
}
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };

export async function serveUi() {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    const file = join(UI, path === "/" ? "index.html" : path);
    if (!file.startsWith(UI)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

export function browserPath() {
  return process.env.CHROMIUM || "/usr/bin/chromium";
}

export async function launch() {
  return chromium.launch({ executablePath: browserPath(), args: ["--no-sandbox"] });
}

/**
 * Opens the app with `backend`: a function source `(cmd, args, ctx) => result`
 * run in the page. `ctx.send(channel, event)` streams an event, `ctx.sleep(ms)`
 * waits, `ctx.state` (starting as `state`) persists across calls and is
 * `window.__state` to the test; `ctx.fail`
 * rejects with `{code, message}` as the shell does; `ctx.samples` holds the
 * real answers the shell tests recorded whole (the default settings). Every
 * answer is checked against the shapes of the real shell's answers
 * (`tests/ui/shapes/`); `driftErrors()` returns the disagreements.
 */
export async function openApp(browser, url, backend, { hash = "#chat", state = {} } = {}) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  opened.push(page);
  await page.addInitScript(({ backend, initial, shapes, unrecorded, samples }) => {
    const handler = new Function(`return (${backend})`)();
    const calls = [];
    // Every scripted answer must have the shape the real shell's answer
    // had (src-tauri/tests/shapes.rs records them).
    const shapeErrors = [];
    const check = (shape, value, at) => {
      if (shape === "any" || shape === "null" || value === null) return;
      if (typeof shape === "string") {
        if (typeof value !== shape) shapeErrors.push(`${at}: the shell answers a ${shape}, the script ${JSON.stringify(value)}`);
      } else if (Array.isArray(shape)) {
        if (!Array.isArray(value)) shapeErrors.push(`${at}: the shell answers an array`);
        else if (shape.length) value.forEach((v, i) => check(shape[0], v, `${at}[${i}]`));
      } else if (typeof value !== "object" || Array.isArray(value)) {
        shapeErrors.push(`${at}: the shell answers an object`);
      } else {
        for (const [key, inner] of Object.entries(shape)) {
          const name = key.replace(/\?$/, "");
          if (name in value) check(inner, value[name], `${at}.${name}`);
          else if (!key.endsWith("?")) shapeErrors.push(`${at}.${name}: in the shell's answer, missing from the script`);
        }
        for (const key of Object.keys(value)) {
          if (!(key in shape) && !(`${key}?` in shape)) shapeErrors.push(`${at}.${key}: not in the shell's answer`);
        }
      }
    };
    window.__shapeErrors = shapeErrors;
    const state = { ...initial };
    class Channel {
      constructor() { this.onmessage = () => {}; }
    }
    const ctx = {
      state,
      samples,
      send: (ch, event) => ch.onmessage(event),
      sleep: (ms) => new Promise((ok) => setTimeout(ok, ms)),
      fail: (code, message) => { throw { code, message }; },
    };
    window.__calls = calls;
    window.__state = state;
    window.__TAURI__ = {
      core: {
        Channel,
        invoke: async (cmd, args = {}) => {
          calls.push({ cmd, args: JSON.parse(JSON.stringify(args, (k, v) => (v instanceof Channel ? "<channel>" : v))) });
          const answer = await handler(cmd, args, ctx);
          if (cmd in shapes) check(shapes[cmd], answer, cmd);
          else if (!unrecorded.includes(cmd)) shapeErrors.push(`${cmd}: no recorded answer of the real shell (src-tauri/tests/shell.rs)`);
          return answer;
        },
      },
    };
  }, { backend: backend.toString(), initial: state, shapes: SHAPES_BY_COMMAND, unrecorded: [...UNRECORDED], samples: SAMPLES });
  await page.goto(url + hash);
  await page.waitForSelector("body[data-ready=true]");
  return { page, errors, calls: () => page.evaluate(() => window.__calls) };
}
