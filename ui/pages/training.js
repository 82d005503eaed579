// Training: teaching the model the person's library (questions written
// from it, warm-up, EM rounds), EM rounds on the person's questions, on a built-in synthetic
// world, or a real model's demonstration on a question file; live
// convergence charts (the core's plotters SVGs), the rounds' metrics, and
// the adapters they produce.
import { invoke, errorMessage } from "../ipc.js";
import { jobs } from "../jobs.js";
import { h, clear, fmtDuration, toast } from "../util.js";
import { runSync } from "./library.js";

// A run outlives the page: come back and it is still shown.
const training = jobs.training;
let selected = null;

function svgImage(svg, alt) {
  // CSP: images come from 'self' or data: URLs only; an SVG image cannot run script.
  const bytes = new TextEncoder().encode(svg);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return h("img", { src: `data:image/svg+xml;base64,${btoa(bin)}`, alt, class: "chart" });
}

/** A path input with a "Choose…" button that opens the native file picker. */
function withPicker(input) {
  return h("span", { class: "with-picker" }, input,
    h("button", {
      type: "button", title: "Choose a file",
      onclick: async () => {
        try {
          const path = await invoke("pick_file", { kind: "questions" });
          if (path) input.value = path;
        } catch (e) { toast(errorMessage(e), "error"); }
      },
    }, "…"));
}

/** The time left in a count (a phase's steps, a round's sampled questions)
 * at its mean pace since it was first seen, as `exsearch` prints it: a
 * resumed phase starts part-way, and a step takes seconds. A new length or
 * a position going back starts a new count. */
function pace(job, pos, len) {
  const now = Date.now();
  const p = job.pace;
  if (!p || p.len !== len || pos < p.last) {
    job.pace = { since: now, first: pos, len, last: pos };
    job.left = null;
    return;
  }
  p.last = pos;
  const moved = pos - p.first;
  job.left = moved > 0 && pos < len ? ((now - p.since) / 1000 / moved) * (len - pos) : null;
}

function pct(x) {
  return x === null || x === undefined ? "–" : x.toFixed(1);
}

// The shell's training defaults (one source for the CLI, the app and these forms).
async function formDefaults() {
  try {
    return await invoke("training_defaults");
  } catch (e) {
    toast(errorMessage(e), "error");
    return {};
  }
}

export async function render(root) {
  const d = await formDefaults();
  const list = h("ul", { class: "trainings", "data-testid": "trainings" });
  const detail = h("div", { class: "training-detail", "data-testid": "training-detail" });
  const live = h("div", { class: "progress-box", hidden: true, "data-testid": "training-progress" });
  const adapters = h("tbody", {});

  const teach = {
    size: h("select", { "aria-label": "Questions", "data-testid": "teach-size", onchange: () => estimate() },
      h("option", { value: "100" }, "100 questions"),
      h("option", { value: "30" }, "30 questions (shorter, less to learn from)")),
    estimate: h("span", { class: "where", "data-testid": "teach-estimate" }, ""),
  };
  const teachForm = h("form", { class: "train-form", "data-testid": "teach-form", onsubmit: (e) => { e.preventDefault(); startTeach(); } },
    teach.size, h("button", { class: "primary", "data-testid": "start-teach" }, "Teach the model my library"), teach.estimate);

  const seed = h("input", { type: "number", value: 1, min: 0, "aria-label": "Seed" });
  const size = h("select", { "aria-label": "Size", "data-testid": "demo-size" },
    h("option", { value: "quick" }, "Quick (a minute or two)"),
    h("option", { value: "full" }, "Full (about 11 minutes)"));
  const demoForm = h("form", { class: "train-form", "data-testid": "demo-form", onsubmit: (e) => { e.preventDefault(); startDemo(); } },
    h("label", {}, "Seed ", seed), size, h("button", { class: "primary", "data-testid": "start-demo" }, "Start demonstration"));

  const r = {
    model: h("input", { type: "text", placeholder: "default: the model that answers", "aria-label": "Base model" }),
    data: h("input", { type: "text", placeholder: "/path/to/hotpotqa.jsonl", required: true, "aria-label": "Questions with supporting paragraphs" }),
    size: h("select", { "aria-label": "Size", "data-testid": "real-size" },
      h("option", { value: "quick" }, "Quick (about 10 minutes with SmolLM2-135M)"),
      h("option", { value: "full" }, "Full (1-3 hours with SmolLM2-135M on two cores)")),
  };
  const realForm = h("form", { class: "train-form grid", "data-testid": "real-form", onsubmit: (e) => { e.preventDefault(); startReal(); } },
    h("label", {}, "Base model", r.model), h("label", {}, "Question file (JSONL)", withPicker(r.data)), h("label", {}, "Size", r.size),
    h("button", { class: "primary", "data-testid": "start-real" }, "Start"));

  const f = {
    name: h("input", { type: "text", value: `em-${new Date().toISOString().slice(0, 10)}`, required: true }),
    data: h("input", { type: "text", placeholder: "/path/to/questions.jsonl", required: true }),
    valid: h("input", { type: "text", placeholder: "optional: /path/to/validation.jsonl" }),
    rounds: h("input", { type: "number", value: d.rounds, min: 1, max: 20 }),
    samples: h("input", { type: "number", value: d.samples, min: 1, max: 32 }),
    rank: h("input", { type: "number", value: d.lora_rank, min: 1, max: 256 }),
    lr: h("input", { type: "number", value: d.lr, min: 0, step: "any" }),
  };
  const w = {
    name: h("input", { type: "text", value: `warmup-${new Date().toISOString().slice(0, 10)}`, required: true }),
    data: h("input", { type: "text", placeholder: "/path/to/trajectories.jsonl", required: true }),
    valid: h("input", { type: "text", placeholder: "optional: for early stopping" }),
    epochs: h("input", { type: "number", value: d.warmup_epochs, min: 1, max: 100 }),
    rank: h("input", { type: "number", value: d.lora_rank, min: 1, max: 256 }),
    lr: h("input", { type: "number", value: d.lr, min: 0, step: "any" }),
  };
  const warmupForm = h("form", { class: "train-form grid", "data-testid": "warmup-form", onsubmit: (e) => { e.preventDefault(); startWarmup(); } },
    h("label", {}, "Run name", w.name), h("label", {}, "Trajectories (JSONL)", withPicker(w.data)), h("label", {}, "Validation", withPicker(w.valid)),
    h("label", {}, "Epochs", w.epochs), h("label", {}, "LoRA rank", w.rank), h("label", {}, "Learning rate", w.lr),
    h("button", { class: "primary" }, "Start warm-up"));
  f.adapter = h("input", { type: "text", placeholder: "optional: e.g. a warm-up's adapter" });

  const emForm = h("form", { class: "train-form grid", "data-testid": "em-form", onsubmit: (e) => { e.preventDefault(); startEm(); } },
    h("label", {}, "Run name", f.name), h("label", {}, "Questions (JSONL)", withPicker(f.data)), h("label", {}, "Validation", withPicker(f.valid)),
    h("label", {}, "Rounds", f.rounds), h("label", {}, "Samples per question (K)", f.samples),
    h("label", {}, "LoRA rank", f.rank), h("label", {}, "Learning rate", f.lr),
    h("label", {}, "Start from adapter", f.adapter),
    h("button", { class: "primary" }, "Start EM rounds"));

  root.append(
    h("header", { class: "page-head" }, h("h1", {}, "Training")),
    h("p", { class: "summary" }, "Self-training by generalized EM: the model samples searches for questions with known answers, "
      + "weights them by how likely they make the right answer, and learns from the best."),
    live,
    h("div", { class: "training-split" },
      h("section", {}, h("h2", {}, "Runs"), list),
      h("section", {}, detail)),
    h("section", {}, h("h2", {}, "Teach the model my library"),
      h("p", { class: "where" }, "The model writes questions from your documents (each with its answer and the passages it came from), "
        + "learns from the searches that found them, then improves by EM rounds. A fifth of the questions are held out to measure it "
        + "before and after; the best result becomes the active adapter. Everything stays on this computer; Stop and Resume lose nothing."),
      teachForm),
    h("section", {}, h("h2", {}, "Demonstration on a synthetic world"),
      h("p", { class: "where" }, "A new small model learns to search invented documents from scratch: warm-up, then EM rounds."), demoForm),
    h("section", {}, h("h2", {}, "A real model on questions with answers"),
      h("p", { class: "where" }, "The paper's experiment at small scale: the file's paragraphs become the library; "
        + "its questions train a warm-up and EM rounds and measure each phase against the untrained model. "
        + "The best adapter is made active for that model."), realForm),
    h("section", {}, h("h2", {}, "Warm-up on written trajectories"),
      h("p", { class: "where" }, "Optional: supervised training on example searches (as `exsearch ask --json` writes them) before EM."), warmupForm),
    h("section", {}, h("h2", {}, "Train on your questions"), emForm),
    h("section", {}, h("h2", {}, "Adapters"),
      h("table", { class: "adapters" }, h("thead", {}, h("tr", {}, h("th", {}, "Adapter"), h("th", {}, "Base model"), h("th", {}, "Rank"), h("th", {}, "Validation EM"), h("th", {}))), adapters)),
  );


  // Built once and updated in place, so Stop stays under the pointer.
  const liveLabel = h("div", { class: "progress-label" });
  const liveBar = h("progress", { max: 1, value: 0 });
  live.append(liveLabel, liveBar,
    h("button", { class: "danger", "data-testid": "stop-training", onclick: () => training.cancel() }, "Stop"));

  function drawLive() {
    live.hidden = !training.running;
    if (!training.running) return;
    const job = training.state;
    const parts = [`${job.name}: ${job.phase || "starting"}`];
    if (job.step) parts.push(`step ${job.step.step} of ${job.step.total_steps} · loss ${job.step.loss.toFixed(3)}`);
    if (job.sampled) parts.push(`sampling ${job.sampled.done} of ${job.sampled.total} questions`);
    if (job.written) parts.push(`${job.written.kept} of ${job.written.wanted} questions kept (${job.written.candidates} written)`);
    if (job.left != null) parts.push(`ETA ${fmtDuration(job.left)}`);
    if (job.evaluated) parts.push(`${job.evaluated.phase} ${job.evaluated.split} EM ${pct(job.evaluated.em)}`);
    if (training.stopping) parts.push("stopping…");
    liveLabel.textContent = parts.join(" · ");
    liveBar.value = job.step ? job.step.step / job.step.total_steps : job.sampled ? job.sampled.done / job.sampled.total
      : job.written ? job.written.kept / job.written.wanted : 0;
  }

  async function follow(kind, name, command, args) {
    if (training.running) { toast("A training run is already going"); return false; }
    selected = { kind, name };
    const run = training.run(command, args, {
      state: { kind, name, phase: "", step: null, sampled: null, written: null, evaluated: null, pace: null, left: null },
      onEvent: (e, job) => {
        if (e.event === "phase") Object.assign(job, { phase: e.name, step: null, sampled: null, written: null, pace: null, left: null });
        else if (e.event === "written") { job.written = e; pace(job, e.kept, e.wanted); }
        else if (e.event === "step") { job.step = e.record; pace(job, e.record.step, e.record.total_steps); }
        else if (e.event === "sampled") { job.sampled = e; pace(job, e.done, e.total); }
        else if (e.event === "evaluated") job.evaluated = e;
      },
    });
    loadList();
    try {
      const report = await run;
      toast(finished(name, report));
      return true;
    } catch (e) {
      toast(e && e.code === "cancelled" ? `${name} stopped; Resume continues it` : `${name}: ${errorMessage(e)}`, e && e.code === "cancelled" ? "info" : "error");
      return false;
    } finally {
      await loadList();
      await loadAdapters();
    }
  }

  function finished(name, report) {
    if (report.final_em !== undefined) return `${name} finished: held-out EM ${pct(report.final_em)} (warm-up ${pct(report.warmup_em)})`;
    if (report.questions) {
      const kept = (report.phases || []).find((p) => p.phase === report.best);
      return `${name} finished: held-out EM ${pct(report.questions.start_em)} before training, ${pct(kept && kept.valid_em)} after`;
    }
    return `${name} finished`;
  }

  async function estimate() {
    teach.estimate.textContent = "";
    try {
      const e = await invoke("train_auto_estimate", { model: null, questions: Number(teach.size.value) });
      teach.estimate.textContent = ` About ${fmtDuration(e.seconds)} (${e.basis}).`;
    } catch (e) {
      teach.estimate.textContent = ` ${errorMessage(e)}`;
    }
  }

  function startTeach() {
    const name = `library-${new Date().toISOString().slice(0, 10)}-${teach.size.value}`;
    follow("run", name, "train_auto", { request: { name, model: null, questions: Number(teach.size.value) } });
  }

  function startDemo() {
    const name = `demo-seed${seed.value}-${size.value}`;
    follow("demo", name, "train_demo", { name, seed: Number(seed.value), quick: size.value === "quick", config: null });
  }

  function startReal() {
    const data = r.data.value.trim();
    const file = data.split(/[\\/]/).pop().replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_-]+/g, "-");
    const name = `real-${file || "questions"}-${r.size.value}`;
    follow("real", name, "train_real", {
      request: { name, model: r.model.value.trim() || null, data, quick: r.size.value === "quick", config: null },
    });
  }

  function startWarmup() {
    const name = w.name.value.trim();
    follow("run", name, "train_warmup", {
      request: {
        name, model: null, data: w.data.value.trim(), valid: w.valid.value.trim() || null,
        epochs: Number(w.epochs.value), lora_rank: Number(w.rank.value), lr: Number(w.lr.value),
      },
    }).then((ok) => { if (ok && !f.adapter.value) f.adapter.value = `${name}.warm-up`; });
  }

  function startEm() {
    follow("run", f.name.value.trim(), "train_em", {
      request: {
        name: f.name.value.trim(), model: null, adapter: f.adapter.value.trim() || null, data: f.data.value.trim(),
        valid: f.valid.value.trim() || null, rounds: Number(f.rounds.value), samples: Number(f.samples.value),
        lora_rank: Number(f.rank.value), lr: Number(f.lr.value),
      },
    });
  }

  async function loadList() {
    let entries;
    try { entries = await invoke("training_list"); } catch (e) { toast(errorMessage(e), "error"); return; }
    clear(list);
    if (!entries.length) list.append(h("li", { class: "empty" }, "No runs yet."));
    for (const t of entries) {
      const running = training.running && training.state.name === t.name && training.state.kind === t.kind;
      list.append(h("li", { class: selected && selected.name === t.name && selected.kind === t.kind ? "active" : "" },
        h("button", { class: "link", onclick: () => { selected = { kind: t.kind, name: t.name }; loadList(); loadDetail(); } },
          t.name),
        h("span", { class: "where" }, ` ${t.kind} · ${running ? "running" : t.finished ? "finished" : "stopped"}`),
        !running && !t.finished && t.kind !== "demo"
          ? h("button", {
            class: "link", "data-testid": `resume-${t.name}`,
            onclick: () => follow(t.kind, t.name, t.kind === "real" ? "train_real_resume" : "train_resume", { name: t.name }),
          }, " Resume") : null));
    }
    if (!selected && entries.length) selected = { kind: entries[entries.length - 1].kind, name: entries[entries.length - 1].name };
    await loadDetail();
  }

  async function loadDetail() {
    if (!selected) { clear(detail); return; }
    const want = selected;
    let d;
    try {
      d = await invoke("training_detail", { kind: want.kind, name: want.name });
    } catch (e) {
      if (selected === want) {
        clear(detail).append(h("h2", {}, want.name),
          h("p", { class: "error", "data-testid": "training-detail-error" }, `Could not read this run: ${errorMessage(e)}`));
      }
      return;
    }
    if (selected !== want) return; // another run was chosen meanwhile
    clear(detail).append(h("h2", {}, selected.name));
    if (selected.kind === "demo" && d.report) {
      const name = selected.name;
      detail.append(h("p", {},
        h("button", {
          class: "primary", "data-testid": "try-demo-model",
          title: "Answer with this demonstration's best model and add its synthetic documents to the library",
          onclick: async () => {
            try {
              const use = await invoke("demo_use", { name });
              toast(`${name}'s model now answers; indexing its world's documents`);
              location.hash = "#library";
              runSync("library_add", { paths: [use.corpus] });
            } catch (e) { toast(errorMessage(e), "error"); }
          },
        }, "Try this model"),
        h("span", { class: "where" }, ` held-out EM ${pct(d.report.warmup_em)} after warm-up, ${pct(d.report.final_em)} after EM`)));
    }
    if (selected.kind === "real" && d.report) detail.append(beforeAfter(d.report));
    if (d.questions) detail.append(writtenSummary(d.questions));
    if (d.before_after && d.before_after.length) detail.append(questionsBeforeAfter(d.before_after));
    if (!d.charts.length) detail.append(h("p", { class: "empty" }, "The charts appear once the first phase finishes."));
    const main = d.charts.find((c) => c.name === "convergence");
    if (main) detail.append(h("div", { class: "charts", "data-testid": "chart" }, svgImage(main.svg, `Convergence of ${selected.name}`)));
    if (d.evals.length) {
      detail.append(h("table", { class: "evals" },
        h("thead", {}, h("tr", {}, h("th", {}, "Phase"), h("th", {}, "Split"), h("th", {}, "EM"), h("th", {}, "F1"), h("th", {}, "Recall"), h("th", {}, "Questions"))),
        h("tbody", {}, d.evals.map((e) => h("tr", {}, h("td", {}, e.phase), h("td", {}, e.split), h("td", { class: "num" }, pct(e.em)),
          h("td", { class: "num" }, pct(e.f1)), h("td", { class: "num" }, pct(e.recall)), h("td", { class: "num" }, e.questions))))));
    }
    if (d.rounds.length) {
      detail.append(h("table", { class: "rounds", "data-testid": "rounds" },
        h("thead", {}, h("tr", {}, h("th", {}, "Round"), h("th", {}, "Samples EM"), h("th", {}, "Bound"), h("th", {}, "ESS"), h("th", {}, "Questions used"), h("th", {}, "Failed samples"), h("th", {}, "E-step time"))),
        h("tbody", {}, d.rounds.map((r) => h("tr", {}, h("td", {}, r.round), h("td", { class: "num" }, pct(r.summary.sample_em * 100)),
          h("td", { class: "num" }, r.summary.bound.toFixed(2)), h("td", { class: "num" }, r.summary.ess.toFixed(2)),
          h("td", { class: "num" }, `${r.summary.used} of ${r.summary.questions}`),
          h("td", { class: "num", title: "Samples whose model call failed, dropped from the round" }, r.summary.failed ?? 0),
          h("td", { class: "num" }, fmtDuration(r.summary.seconds)))))));
    }
  }

  // The test split before training (each zero-shot method) and after each
  // phase, the kept one marked.
  function beforeAfter(rep) {
    const rows = [
      ...Object.entries(rep.zero_shot).map(([method, s]) => [`untrained, ${method}`, s, false]),
      ["warm-up", rep.warmup, rep.best === "warm-up"],
      ...rep.rounds.map((s, i) => [`round ${i + 1}`, s, rep.best === `round ${i + 1}`]),
      [`control (${rep.control_steps} more warm-up steps)`, rep.control, false],
    ];
    return h("div", {},
      h("p", {}, `Test questions: ${rep.questions.test}. Kept: ${rep.best}`
        + (rep.active_adapter ? `, active as ${rep.active_adapter} for ${rep.model}.` : ".")),
      h("table", { class: "evals", "data-testid": "before-after" },
        h("thead", {}, h("tr", {}, h("th", {}, "Test split"), h("th", {}, "EM"), h("th", {}, "F1"), h("th", {}, "Acc"), h("th", {}, "Recall"))),
        h("tbody", {}, rows.map(([name, s, kept]) => h("tr", { class: kept ? "active" : "" },
          h("td", {}, kept ? `${name} (kept)` : name), h("td", { class: "num" }, pct(s.em)), h("td", { class: "num" }, pct(s.f1)),
          h("td", { class: "num" }, pct(s.acc)), h("td", { class: "num" }, pct(s.recall)))))));
  }

  // How many questions were written from the library, kept, and why the
  // others were dropped.
  function writtenSummary(q) {
    const dropped = [...q.filtered].sort((a, b) => b.count - a.count)
      .map((f) => `${f.filter.replaceAll("_", " ")} ${f.count}`).join(", ");
    return h("p", { "data-testid": "teach-questions" },
      `Questions from your library: ${q.kept} kept of ${q.candidates} written (${q.kept_one_hop} one-hop, ${q.kept_two_hop} two-hop)`
      + (dropped ? `; dropped: ${dropped}.` : "."));
  }

  // A few held-out questions answered before training and after.
  function questionsBeforeAfter(rows) {
    return h("table", { class: "evals", "data-testid": "teach-before-after" },
      h("thead", {}, h("tr", {}, h("th", {}, "Held-out question"), h("th", {}, "Answer"), h("th", {}, "Before training"), h("th", {}, "After"))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", {}, r.question), h("td", {}, r.answer),
        h("td", { class: r.before_em > 0 ? "right" : "wrong" }, r.before || "–"),
        h("td", { class: r.after_em > 0 ? "right" : "wrong" }, r.after || "–")))));
  }

  async function loadAdapters() {
    let list2;
    try { list2 = await invoke("adapters_list"); } catch (e) { toast(errorMessage(e), "error"); return; }
    clear(adapters);
    if (!list2.length) adapters.append(h("tr", {}, h("td", { colspan: 5, class: "empty" }, "None yet: EM runs on your questions save one per round.")));
    for (const a of list2) {
      adapters.append(h("tr", { class: a.active ? "active" : "" },
        h("td", {}, a.name), h("td", {}, a.base_model), h("td", { class: "num" }, a.rank),
        h("td", { class: "num" }, pct(a.note.valid_em)),
        h("td", {}, a.active ? "active" : h("button", {
          onclick: async () => {
            try { await invoke("adapter_use", { name: a.name }); toast(`${a.name} is now active`); loadAdapters(); } catch (e) { toast(errorMessage(e), "error"); }
          },
        }, "Make active"))));
    }
  }

  training.listen((event) => {
    drawLive();
    if (event && (event.event === "charts" || event.event === "round" || event.event === "evaluated")
      && selected && selected.name === training.state.name) loadDetail();
  });
  drawLive();
  estimate();
  await loadList();
  await loadAdapters();
}
