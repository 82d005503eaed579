// Library: folders, indexing with progress (then embedding, for hybrid
// search), the documents and the files skipped with their reasons, passage
// search, the hybrid/BM25 and OCR switches, and the folder watch that keeps
// the index current while the app runs.
import { invoke, errorMessage } from "../ipc.js";
import { jobs } from "../jobs.js";
import { h, clear, fmtBytes, fmtDuration, highlighted, fileName, toast } from "../util.js";
import { openPassage } from "./chat.js";

const indexing = jobs.indexing;
const watch = jobs.watch;
// A change seen while indexing ran: rescan once it ends.
let rescanPending = false;

// Indexing outlives the page: navigating away and back shows it again.
// Other pages start indexing through runSync too (the Training page's
// "Try this model", the app resuming an interrupted run).
export async function runSync(command, args, { quiet = false } = {}) {
  if (indexing.running) {
    if (!quiet) toast("Indexing is already running", "info");
    return;
  }
  try {
    const report = await indexing.run(command, args, {
      state: { progress: null, skipped: [], embedding: null, fetching: null },
      onEvent: (e, state) => {
        if (e.event === "started" || e.event === "progress") state.progress = e;
        else if (e.event === "skipped") state.skipped.push(e);
        else if (e.event === "embedding") state.embedding = e;
        else if (e.event === "fetching") state.fetching = e;
        // Shown until the next file is done: a scan reads for seconds a page.
        else if (e.event === "ocr") state.ocr = { ...e, filesDone: state.progress ? state.progress.files_done : 0 };
        else if (e.event === "warning") toast(e.message, "error");
      },
    });
    const parts = [`${report.indexed} indexed`, `${report.failed} skipped`];
    if (report.removed) parts.push(`${report.removed} removed`);
    if (report.embedding && report.embedding.embedded) parts.push(`${report.embedding.embedded} passages embedded`);
    // A watch-started rescan that found nothing new says nothing.
    const changed = report.indexed + report.failed + report.removed > 0;
    if (!quiet || changed || report.cancelled) {
      toast(report.cancelled ? `Indexing stopped: ${parts.join(", ")} so far; Resume picks up the rest`
        : `Indexing finished: ${parts.join(", ")}`);
    }
  } catch (e) {
    toast(errorMessage(e), "error");
  }
  if (rescanPending) {
    rescanPending = false;
    runSync("library_sync", {}, { quiet: true });
  }
}

/** Starts watching the library's folders (the app does at start unless the
 *  watch is off): each quiet spell after changes starts a rescan, or queues
 *  one behind the indexing that is running. */
export function startWatching() {
  if (watch.running) return;
  watch.run("library_watch", {}, {
    state: { folders: [] },
    onEvent: (e, state) => {
      if (e.event === "watching") state.folders = e.folders;
      else if (e.event === "unwatched") toast(`Cannot watch ${e.folder}: ${e.reason}`, "error");
      else if (e.event === "changed") {
        if (indexing.running) rescanPending = true;
        else runSync("library_sync", {}, { quiet: true });
      }
    },
  }).catch((e) => toast(`Folder watch stopped: ${errorMessage(e)}`, "error"));
}

export function stopWatching() {
  rescanPending = false;
  return watch.cancel();
}

/** A labelled checkbox for one saved setting, with a note beside it. */
function settingSwitch(id, text, title) {
  const box = h("input", { type: "checkbox", "data-testid": id });
  const note = h("span", { class: "muted", "data-testid": `${id}-note` });
  return { box, note, label: h("label", { class: "switch", title }, box, ` ${text} `, note) };
}

/** Saves the box's state through `save` when it changes, then `then(status)`; a refusal puts the box back. */
function onToggle(box, save, then) {
  box.addEventListener("change", async () => {
    try { then(await save(box.checked)); } catch (e) { toast(errorMessage(e), "error"); box.checked = !box.checked; }
  });
}

export async function render(root, { refreshInfo }) {
  const folders = h("ul", { class: "folders", "data-testid": "folders" });
  const progress = h("div", { class: "progress-box", "data-testid": "progress", hidden: true });
  const docs = h("tbody", {});
  const skipped = h("ul", { class: "skipped", "data-testid": "skipped" });
  const summary = h("p", { class: "summary", "data-testid": "library-summary" });
  const { box: hybridBox, note: hybridNote, label: hybrid } = settingSwitch("hybrid", "Hybrid search (keywords + meaning)",
    "Rank passages by BM25 fused with a sentence encoder (all-MiniLM-L6-v2, fetched once, about 90 MB), so a question finds passages that say the same thing in other words. Off: BM25 only.");
  const { box: ocrBox, note: ocrNote, label: ocr } = settingSwitch("ocr", "Read scans and images (OCR)",
    "Read images (PNG, JPEG, TIFF...) and the scanned pages of PDFs with OCR (Tesseract). Off: they are passed over.");
  const { box: watchBox, note: watchNote, label: watching } = settingSwitch("watch", "Keep the index current as files change",
    "While the app runs, files created, changed, renamed or deleted in the library's folders are indexed a moment later (only what changed is read).");
  const query = h("input", { type: "search", placeholder: "Search passages…", "aria-label": "Search passages", "data-testid": "search" });
  const results = h("div", { class: "results", "data-testid": "results" });
  const addBtn = h("button", { class: "primary", "data-testid": "add-folder" }, "Add folder…");
  const syncBtn = h("button", { "data-testid": "sync" }, "Rescan");
  const pathInput = h("input", { type: "text", placeholder: "or paste a folder path", "aria-label": "Folder path", "data-testid": "folder-path" });
  const pathForm = h("form", {
    class: "search-form",
    onsubmit: (e) => {
      e.preventDefault();
      const path = pathInput.value.trim();
      if (path) { pathInput.value = ""; runSync("library_add", { paths: [path] }); }
    },
  }, pathInput, h("button", { "data-testid": "add-path" }, "Add"));

  root.append(
    h("header", { class: "page-head" }, h("h1", {}, "Library"), h("div", { class: "actions" }, addBtn, syncBtn)),
    summary, hybrid, ocr, watching, progress,
    h("section", {}, h("h2", {}, "Folders"), folders, pathForm),
    h("section", {},
      h("h2", {}, "Search"),
      h("form", { class: "search-form", onsubmit: (e) => { e.preventDefault(); search(); } }, query, h("button", {}, "Search")),
      results),
    h("section", {}, h("h2", {}, "Documents"),
      h("table", { class: "documents", "data-testid": "documents" },
        h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Type"), h("th", {}, "Status"), h("th", {}, "Passages"), h("th", {}, "Size"))),
        docs)),
    h("section", {}, h("h2", {}, "Skipped files"), skipped),
  );

  addBtn.addEventListener("click", async () => {
    let path;
    try { path = await invoke("pick_folder"); } catch (e) { toast(errorMessage(e), "error"); return; }
    if (path) runSync("library_add", { paths: [path] });
  });
  syncBtn.addEventListener("click", () => runSync("library_sync", {}));
  onToggle(hybridBox, (on) => invoke("library_set_retrieval", { retrieval: on ? "hybrid" : "bm25" }), (status) => {
    drawRetrieval(status);
    // Turning hybrid on: the sync embeds the passages that lack a vector.
    if (status.retrieval === "hybrid" && status.vectors < status.passages) runSync("library_sync", {});
  });
  onToggle(ocrBox, (on) => invoke("library_set_ocr", { on }), (status) => {
    drawOcr(status);
    // Turned on: the sync reads the scans and images it passed over.
    if (status.ocr && !status.ocr_unavailable && status.folders.length) runSync("library_sync", {});
  });
  onToggle(watchBox, (on) => invoke("library_set_watch", { on }), (status) => {
    if (status.watch) startWatching(); else stopWatching();
  });

  function drawWatch() {
    const n = watch.state.folders ? watch.state.folders.length : 0;
    watchNote.textContent = !watch.running ? "" : watch.stopping ? "(stopping…)"
      : n ? `(watching ${n} folder${n === 1 ? "" : "s"})` : "(no folder to watch yet)";
  }

  function drawOcr(status) {
    ocrBox.checked = status.ocr;
    ocrNote.textContent = status.ocr && status.ocr_unavailable ? `(cannot run: ${status.ocr_unavailable})` : "";
  }

  function drawRetrieval(status) {
    hybridBox.checked = status.retrieval === "hybrid";
    hybridNote.textContent = status.retrieval !== "hybrid" ? ""
      : status.vectors >= status.passages ? `(${status.vectors} passages embedded)`
      : `(${status.vectors} of ${status.passages} passages embedded; Rescan embeds the rest)`;
  }

  // Built once and updated in place, so Pause stays under the pointer.
  const progressLabel = h("div", { class: "progress-label" });
  const progressBar = h("progress", { max: 1, value: 0, "aria-label": "Indexing progress" });
  const pauseBtn = h("button", {
    class: "danger", "data-testid": "stop-indexing",
    title: "Stops after the current batch; what is indexed stays. Rescan resumes.",
    onclick: () => indexing.cancel(),
  }, "Pause");
  progress.append(progressLabel, progressBar, pauseBtn);

  function drawProgress() {
    const busy = indexing.running;
    addBtn.disabled = busy;
    pathForm.querySelector("button").disabled = busy;
    syncBtn.disabled = busy;
    progress.hidden = !busy;
    if (!busy) return;
    const { progress: p, embedding: em, fetching: f } = indexing.state;
    if (em) {
      progressBar.value = em.total ? em.done / em.total : 0;
      progressLabel.textContent = `Embedding passages for hybrid search: ${em.done} of ${em.total}`;
    } else if (f && !p) {
      progressBar.value = f.bytes_total ? f.bytes_done / f.bytes_total : 0;
      progressLabel.textContent = `Fetching the sentence encoder ${f.what} (once): ${fmtBytes(f.bytes_done)} of ${fmtBytes(f.bytes_total)}`;
    } else {
      progressBar.value = p && p.bytes_total ? p.bytes_done / p.bytes_total : 0;
      const ocr = indexing.state.ocr;
      const reading = ocr && (!p || p.files_done === ocr.filesDone)
        ? ` · OCR: ${fileName(ocr.path)}, page ${ocr.page} of ${ocr.pages}` : "";
      progressLabel.textContent = p
        ? `${p.files_done} of ${p.files_total} files · ${fmtBytes(p.bytes_done)} of ${fmtBytes(p.bytes_total)}`
          + ` · ${p.passages} passages · ${p.failed} skipped · ETA ${fmtDuration(p.eta_secs)}${reading}`
        : "Scanning folders…";
    }
    pauseBtn.disabled = indexing.stopping;
    pauseBtn.textContent = indexing.stopping ? "Stopping…" : "Pause";
  }

  async function reload() {
    try {
      const [status, documents] = await Promise.all([invoke("library_status"), invoke("library_documents")]);
      summary.textContent = `${status.documents} documents indexed · ${status.passages} passages · ${fmtBytes(status.bytes)}`
        + (status.pending ? ` · ${status.pending} waiting to be read again` : "");
      drawRetrieval(status);
      drawOcr(status);
      watchBox.checked = status.watch;
      clear(folders);
      if (!status.folders.length) folders.append(h("li", { class: "empty" }, "No folders yet. Add one to start."));
      for (const f of status.folders) {
        folders.append(h("li", {}, h("span", { class: "path" }, f.path),
          h("button", {
            class: "link danger", "aria-label": `Remove ${f.path}`,
            onclick: async () => {
              try {
                const n = await invoke("library_remove", { path: f.path });
                toast(`Removed ${f.path} (${n} documents)`);
                reload();
              } catch (e) { toast(errorMessage(e), "error"); }
            },
          }, "Remove")));
      }
      clear(docs);
      for (const d of documents) {
        docs.append(h("tr", { class: d.status },
          h("td", { title: d.path }, d.title || fileName(d.path)),
          h("td", {}, d.kind),
          h("td", { title: d.error || "" }, d.status),
          h("td", { class: "num" }, d.passages),
          h("td", { class: "num" }, fmtBytes(d.size))));
      }
      clear(skipped);
      if (!status.failed.length) skipped.append(h("li", { class: "empty" }, "None."));
      for (const f of status.failed) {
        skipped.append(h("li", {}, h("span", { class: "path" }, f.path), h("span", { class: "reason" }, f.reason)));
      }
      refreshInfo();
    } catch (e) { toast(errorMessage(e), "error"); }
  }

  async function search() {
    const q = query.value.trim();
    if (!q) return;
    try {
      const hits = await invoke("library_search", { query: q, k: 10 });
      clear(results);
      if (!hits.length) results.append(h("p", { class: "empty" }, "No passage matches."));
      for (const hit of hits) {
        results.append(h("div", { class: "hit", "data-testid": "hit" },
          h("div", { class: "hit-head" },
            h("button", { class: "link title", onclick: () => openPassage(hit) }, hit.title || fileName(hit.path)),
            h("span", { class: "where" }, fileName(hit.path), hit.page ? ` · page ${hit.page}` : "",
              hit.ocr ? h("span", { class: "tag", title: "Read from a scanned image by OCR" }, " · OCR") : "",
              ` · ${hit.score.toPrecision(3)}`)),
          h("p", {}, highlighted(hit.text, hit.highlights))));
      }
    } catch (e) { toast(errorMessage(e), "error"); }
  }

  // Whoever started the indexing (this page, or the Training page's "Try
  // this model"), the lists refresh when it ends.
  let wasBusy = indexing.running;
  indexing.listen(() => {
    drawProgress();
    if (wasBusy && !indexing.running) reload();
    wasBusy = indexing.running;
  });
  watch.listen(drawWatch);
  drawProgress();
  drawWatch();
  await reload();
}
