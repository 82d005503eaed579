// Serves ui/ over HTTP (ES modules do not load from file://) and opens it
// in Chromium with window.__TAURI__ replaced by a scripted backend whose
// calls the test can read back.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const UI = fileURLToPath(new URL("../../ui/", import.meta.url));
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
 * waits, `ctx.state` (starting as `state`) persists across calls; `ctx.fail`
 * rejects with `{code, message}` as the shell does.
 */
export async function openApp(browser, url, backend, { hash = "#chat", state = {} } = {}) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.addInitScript(({ backend, initial }) => {
    const handler = new Function(`return (${backend})`)();
    const calls = [];
    const state = { ...initial };
    class Channel {
      constructor() { this.onmessage = () => {}; }
    }
    const ctx = {
      state,
      send: (ch, event) => ch.onmessage(event),
      sleep: (ms) => new Promise((ok) => setTimeout(ok, ms)),
      fail: (code, message) => { throw { code, message }; },
    };
    window.__calls = calls;
    window.__TAURI__ = {
      core: {
        Channel,
        invoke: async (cmd, args = {}) => {
          calls.push({ cmd, args: JSON.parse(JSON.stringify(args, (k, v) => (v instanceof Channel ? "<channel>" : v))) });
          return handler(cmd, args, ctx);
        },
      },
    };
  }, { backend: backend.toString(), initial: state });
  await page.goto(url + hash);
  await page.waitForSelector("body[data-ready=true]");
  return { page, errors, calls: () => page.evaluate(() => window.__calls) };
}
