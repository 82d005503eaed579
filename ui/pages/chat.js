// Chat: the conversation list and a chat window that shows each answer's
// trajectory live: sub-queries, the passages found, the evidence, then the
// answer with numbered citations that open the passage in context.
import { invoke, channel, newJobId, cancelJob, errorMessage } from "../ipc.js";
import { h, clear, highlighted, fileName, toast } from "../util.js";

const METHODS = [
  ["exsearch", "ExSearch (agentic search)"],
  ["rag", "Single-shot RAG"],
  ["direct", "No retrieval"],
];

const END_NOTES = {
  budget: "step budget reached",
  unparsable: "the model stopped writing searches",
  repeated: "the model repeated a search",
  cancelled: "stopped",
  context_full: "the model's context was full",
  failed: "failed",
};

const view = { conversation: null, job: null };

export function leave() {
  // An answer in flight keeps running in the core; its turn is stored.
}

export async function render(root, { info, refreshInfo }) {
  const list = h("ul", { class: "conversations", "data-testid": "conversations" });
  const messages = h("div", { class: "messages", "data-testid": "messages" });
  const method = h("select", { "aria-label": "Method", "data-testid": "method" },
    METHODS.map(([v, label]) => h("option", { value: v }, label)));
  const input = h("textarea", {
    rows: 2, placeholder: "Ask a question about your documents…",
    "aria-label": "Question", "data-testid": "question",
  });
  const askBtn = h("button", { class: "primary", "data-testid": "ask" }, "Ask");
  const stopBtn = h("button", { class: "danger", hidden: true, "data-testid": "stop" }, "Stop");
  const banner = info && !info.settings.model
    ? h("div", { class: "banner", "data-testid": "no-model" },
        "No model is chosen yet, so questions cannot be answered. ",
        h("a", { href: "#models" }, "Pick one from the catalog"),
        " — searching your library works without one: ",
        h("a", { href: "#library" }, "open the Library"), ".")
    : null;

  root.append(
    h("section", { class: "chat-list" },
      h("button", { class: "new-chat", "data-testid": "new-chat", onclick: () => open(null) }, "+ New chat"),
      list),
    h("section", { class: "chat-main" },
      h("header", { class: "chat-head" }, h("h1", {}, "Chat"), method),
      banner,
      messages,
      h("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); ask(); } },
        input, askBtn, stopBtn)),
  );

  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); ask(); }
  });
  stopBtn.addEventListener("click", (e) => {
    e.preventDefault();
    if (view.job) cancelJob(view.job);
  });

  async function loadList() {
    try {
      const chats = await invoke("chats_list");
      clear(list);
      for (const c of chats) {
        list.append(h("li", { class: c.id === view.conversation ? "active" : "", dataset: { id: c.id } },
          h("button", { class: "link", onclick: () => open(c.id) }, c.title),
          h("button", {
            class: "icon", title: "Delete conversation", "aria-label": `Delete ${c.title}`,
            onclick: async () => {
              try {
                await invoke("chat_delete", { id: c.id });
                if (view.conversation === c.id) open(null);
                loadList();
              } catch (e) { toast(errorMessage(e), "error"); }
            },
          }, "×")));
      }
    } catch (e) { toast(errorMessage(e), "error"); }
  }

  async function open(id) {
    view.conversation = id;
    clear(messages);
    for (const li of list.children) li.classList.toggle("active", Number(li.dataset.id) === id);
    if (id === null) {
      messages.append(h("p", { class: "empty" }, "Ask anything about your documents. Each answer shows how it was found."));
      input.focus();
      return;
    }
    try {
      const c = await invoke("chat_get", { id });
      for (const turn of c.turns) messages.append(TurnView.fromStored(turn).el);
      messages.scrollTop = messages.scrollHeight;
    } catch (e) { toast(errorMessage(e), "error"); }
  }

  async function ask() {
    const question = input.value.trim();
    if (!question || view.job) return;
    input.value = "";
    const turn = new TurnView(question, method.value);
    if (view.conversation === null) clear(messages);
    messages.append(turn.el);
    const job = newJobId("ask");
    view.job = job;
    askBtn.hidden = true;
    stopBtn.hidden = false;
    const follow = (event) => {
      turn.apply(event);
      messages.scrollTop = messages.scrollHeight;
    };
    try {
      const asked = await invoke("ask", {
        question, conversation: view.conversation, method: method.value, job,
        onEvent: channel(follow),
      });
      turn.finish(asked.trajectory);
      view.conversation = asked.conversation;
      await loadList();
      refreshInfo();
    } catch (e) {
      turn.fail(errorMessage(e));
    } finally {
      view.job = null;
      askBtn.hidden = false;
      stopBtn.hidden = true;
    }
  }

  await loadList();
  await open(view.conversation);
}

/** One question and its answer, built from live events or a stored turn. */
class TurnView {
  constructor(question, method) {
    this.steps = new Map();
    this.answerText = "";
    this.stepsEl = h("ol", { class: "steps", "data-testid": "steps" });
    this.live = h("div", { class: "live" });
    this.answer = h("div", { class: "answer", "data-testid": "answer" });
    this.citations = h("ol", { class: "citations", "data-testid": "citations" });
    this.note = h("div", { class: "note" });
    this.el = h("article", { class: "turn", "data-testid": "turn" },
      h("div", { class: "question" }, question,
        method && method !== "exsearch" ? h("span", { class: "tag" }, method) : null),
      this.stepsEl, this.live, this.answer, this.citations, this.note);
  }

  static fromStored(turn) {
    const view = new TurnView(turn.question, turn.method);
    if (turn.trajectory) view.finish(turn.trajectory);
    else view.answer.textContent = turn.answer;
    if (turn.status === "failed") view.fail(turn.error || "failed");
    return view;
  }

  step(n) {
    let s = this.steps.get(n);
    if (!s) {
      s = {
        query: h("span", { class: "query" }),
        passages: h("div", { class: "passages" }),
        evidence: h("div", { class: "evidence", hidden: true }),
      };
      s.el = h("li", { class: "step", "data-testid": "step" },
        h("div", { class: "step-head" }, h("span", { class: "label" }, `Search ${n}`), s.query),
        s.passages, s.evidence);
      this.steps.set(n, s);
      this.stepsEl.append(s.el);
    }
    return s;
  }

  apply(event) {
    switch (event.event) {
      case "step_text":
        this.live.textContent = event.text;
        break;
      case "sub_query":
        this.live.textContent = "";
        this.step(event.step).query.textContent = event.query;
        break;
      case "retrieved":
        this.showPassages(this.step(event.step), event.passages);
        break;
      case "evidence":
        this.showEvidence(this.step(event.step), event.text);
        break;
      case "repeated":
        this.live.textContent = `Repeated search “${event.query}”: answering now.`;
        break;
      case "answer_delta":
        this.live.textContent = "";
        this.answerText += event.text;
        this.answer.textContent = this.answerText;
        break;
      case "finished":
        this.live.textContent = "";
        break;
      case "failed":
        this.fail(event.error);
        break;
      default:
        break;
    }
  }

  showPassages(step, passages) {
    clear(step.passages);
    for (const hit of passages) step.passages.append(passageCard(hit));
  }

  showEvidence(step, text) {
    step.evidence.hidden = false;
    clear(step.evidence).append(h("span", { class: "label" }, "Evidence"), " ", text);
  }

  finish(t) {
    t.steps.forEach((s, i) => {
      const step = this.step(i + 1);
      step.query.textContent = s.query;
      this.showPassages(step, s.passages);
      if (s.evidence) this.showEvidence(step, s.evidence);
    });
    this.live.textContent = "";
    clear(this.answer).append(t.answer || "(no answer)");
    for (const c of t.citations) {
      const marker = h("button", {
        class: "cite", title: c.passage.path, "data-testid": "cite",
        onclick: () => openPassage(c.passage),
      }, `[${c.number}]`);
      this.answer.append(" ", marker);
      const step = c.step ? this.steps.get(c.step) : null;
      if (step) step.evidence.append(" ", h("sup", {}, `[${c.number}]`));
      this.citations.append(h("li", {},
        h("button", { class: "link", onclick: () => openPassage(c.passage) },
          `[${c.number}] ${c.passage.title || fileName(c.passage.path)}`,
          c.passage.page ? `, page ${c.passage.page}` : "")));
    }
    this.note.textContent = END_NOTES[t.end] || "";
  }

  fail(message) {
    this.live.textContent = "";
    this.note.textContent = "";
    this.note.append(h("span", { class: "error", "data-testid": "turn-error" }, message));
  }
}

function passageCard(hit) {
  return h("details", { class: "passage", "data-testid": "passage" },
    h("summary", {},
      h("span", { class: "title" }, hit.title || fileName(hit.path)),
      h("span", { class: "where" }, fileName(hit.path), hit.page ? ` · page ${hit.page}` : "")),
    h("p", {}, highlighted(hit.text, hit.highlights)),
    h("button", { class: "link", onclick: () => openPassage(hit) }, "Show in context"));
}

/** The passage in its file, with the text around it and an Open button. */
export async function openPassage(hit) {
  let ctx;
  try {
    ctx = await invoke("passage_context", {
      path: hit.path, page: hit.page ?? null, charStart: hit.char_start, charEnd: hit.char_end,
    });
  } catch (e) {
    toast(errorMessage(e), "error");
    return;
  }
  const dialog = h("dialog", { class: "context", "data-testid": "context" },
    h("header", {},
      h("h2", {}, ctx.title || fileName(ctx.path)),
      h("div", { class: "where" }, ctx.path, ctx.page ? ` · page ${ctx.page} of ${ctx.pages}` : "")),
    h("div", { class: "context-text" },
      ctx.starts_document ? null : "… ",
      ctx.before,
      h("mark", { class: "cited", "data-testid": "cited" }, ctx.passage),
      ctx.after,
      ctx.ends_document ? null : " …"),
    h("footer", {},
      h("button", {
        "data-testid": "open-file",
        onclick: async () => {
          try { await invoke("open_document", { path: ctx.path }); } catch (e) { toast(errorMessage(e), "error"); }
        },
      }, "Open file"),
      h("button", { class: "primary", onclick: () => dialog.close() }, "Close")));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  const mark = dialog.querySelector("mark.cited");
  if (mark && mark.scrollIntoView) mark.scrollIntoView({ block: "center" });
}
