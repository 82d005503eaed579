// A minimal W3C WebDriver client over fetch: enough to drive the real app
// through tauri-driver and WebKitWebDriver.
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
// The W3C key, or the legacy JSON-wire one some drivers still send.
const elementId = (e) => {
  const id = e && (e[ELEMENT] ?? e.ELEMENT);
  if (!id) throw new Error(`not an element reference: ${JSON.stringify(e)}`);
  return id;
};

export class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  static async start(base, application) {
    const res = await request(base, "POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application } } },
    });
    return new Session(base, res.sessionId);
  }

  cmd(method, path, body) {
    return request(this.base, method, `/session/${this.id}${path}`, body);
  }

  async find(css) {
    const el = await this.cmd("POST", "/element", { using: "css selector", value: css });
    return elementId(el);
  }

  async findAll(css) {
    const els = await this.cmd("POST", "/elements", { using: "css selector", value: css });
    return els.map(elementId);
  }

  /** Waits until `css` matches a displayed element; returns it. */
  async waitFor(css, { timeout = 30000, what = css } = {}) {
    return this.until(async () => {
      for (const el of await this.findAll(css)) {
        if (await this.cmd("GET", `/element/${el}/displayed`)) return el;
      }
      return null;
    }, { timeout, what });
  }

  async until(probe, { timeout = 30000, what = "condition" } = {}) {
    const end = Date.now() + timeout;
    let last = null;
    for (;;) {
      // The page re-renders as it updates: an element found a moment ago
      // may be gone; that is a "not yet", not a failure.
      const v = await probe().catch((e) => { last = e; return null; });
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
      await new Promise((ok) => setTimeout(ok, 250));
    }
  }

  click(el) {
    return this.cmd("POST", `/element/${el}/click`, {});
  }

  async type(el, text) {
    await this.cmd("POST", `/element/${el}/clear`, {});
    return this.cmd("POST", `/element/${el}/value`, { text });
  }

  text(el) {
    return this.cmd("GET", `/element/${el}/text`);
  }

  script(source, args = []) {
    return this.cmd("POST", "/execute/sync", { script: source, args });
  }

  asyncScript(source, args = []) {
    return this.cmd("POST", "/execute/async", { script: source, args });
  }

  async screenshot() {
    return Buffer.from(await this.cmd("GET", "/screenshot"), "base64");
  }

  setTimeouts(ms) {
    return this.cmd("POST", "/timeouts", { script: ms });
  }

  end() {
    return request(this.base, "DELETE", `/session/${this.id}`);
  }
}

async function request(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const v = json.value || {};
    throw new Error(`${method} ${path}: ${res.status} ${v.error || ""} ${v.message || JSON.stringify(json)}`);
  }
  return json.value;
}
