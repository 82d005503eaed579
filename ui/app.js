// The app: a hash router over five pages, the theme, and the status line.
import { invoke, errorMessage } from "./ipc.js";
import { clear, toast } from "./util.js";
import { leavePage } from "./jobs.js";
import { runSync, startWatching } from "./pages/library.js";
import * as chat from "./pages/chat.js";
import * as library from "./pages/library.js";
import * as models from "./pages/models.js";
import * as settings from "./pages/settings.js";
import * as training from "./pages/training.js";

const pages = { chat, library, models, training, settings };
const state = { info: null, current: null };

export function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === "light" || theme === "dark") root.dataset.theme = theme;
  else delete root.dataset.theme;
}

export async function refreshInfo() {
  try {
    state.info = await invoke("app_info");
    applyTheme(state.info.settings.theme);
    const lib = state.info.library;
    const model = state.info.settings.model;
    document.getElementById("status-line").textContent =
      `${lib.documents} documents · ${lib.passages} passages` +
      (model ? ` · model: ${model.split(/[\\/]/).filter(Boolean).slice(-2).join("/")}` : " · no model");
    document.getElementById("status-line").title = model || "";
  } catch (e) {
    toast(errorMessage(e), "error");
  }
  return state.info;
}

async function show() {
  const name = (location.hash || "#chat").slice(1).split("/")[0];
  const page = pages[name] ? name : "chat";
  for (const a of document.querySelectorAll(".sidebar a")) {
    a.classList.toggle("active", a.dataset.page === page);
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  leavePage();
  if (state.current && state.current.leave) state.current.leave();
  const root = clear(document.getElementById("page"));
  root.dataset.page = page;
  state.current = pages[page];
  const info = state.info || (await refreshInfo());
  await pages[page].render(root, { info, refreshInfo });
}

window.addEventListener("hashchange", show);
/** What the last session left running when the window closed. */
function resumeInterrupted(info) {
  if (!info) return;
  if (info.indexing_interrupted) {
    toast("Indexing was interrupted when the app closed: resuming it");
    runSync("library_sync", {});
  }
  if (info.unfinished_runs.length) {
    toast(`Unfinished training: ${info.unfinished_runs.join(", ")} (Resume on the Training page)`);
  }
}

window.addEventListener("DOMContentLoaded", async () => {
  const info = await refreshInfo();
  await show();
  resumeInterrupted(info);
  if (info && info.library.watch) startWatching();
  document.body.dataset.ready = "true";
});
