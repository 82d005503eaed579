// DOM helpers. Text always goes in as text nodes, never as HTML, so file
// names and passages cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtBytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1000)));
  return `${(n / 1000 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(secs) {
  if (secs === null || secs === undefined || !isFinite(secs)) return "–";
  secs = Math.round(secs);
  if (secs < 60) return `${secs} s`;
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m} min ${secs % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Passage text with the matched words wrapped in <mark>. */
export function highlighted(text, ranges = []) {
  const chars = Array.from(text);
  const out = [];
  let at = 0;
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    if (a < at) continue;
    out.push(chars.slice(at, a).join(""));
    out.push(h("mark", {}, chars.slice(a, b).join("")));
    at = b;
  }
  out.push(chars.slice(at).join(""));
  return out;
}

export function fileName(path) {
  return path.split(/[\\/]/).pop();
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}` }, message);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 9000 : 4000);
}
