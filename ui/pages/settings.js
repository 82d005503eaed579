// Settings: search and decoding, the device, the theme, the data folder.
import { invoke, errorMessage } from "../ipc.js";
import { h, toast } from "../util.js";
import { applyTheme } from "../app.js";

function field(label, input, help) {
  return h("label", { class: "field" }, h("span", {}, label), input, help ? h("small", {}, help) : null);
}

function num(value, attrs = {}) {
  return h("input", { type: "number", value, ...attrs });
}

export async function render(root, { info, refreshInfo }) {
  let s;
  try { s = await invoke("settings_get"); } catch (e) { toast(errorMessage(e), "error"); return; }
  const a = s.agent;
  const k = num(a.k, { min: 1, max: 50, "data-testid": "k" });
  const maxSteps = num(a.max_steps, { min: 1, max: 32 });
  const stepTokens = num(a.step_tokens, { min: 8, max: 1024 });
  const answerTokens = num(a.answer_tokens, { min: 4, max: 2048 });
  const temperature = num(a.sampling.temperature, { min: 0, max: 2, step: 0.05 });
  const topP = num(a.sampling.top_p, { min: 0.05, max: 1, step: 0.05 });
  const rerank = h("input", { type: "checkbox", checked: a.rerank });
  const device = h("select", {}, (info.devices || ["auto", "cpu"]).map((d) => h("option", { value: d, selected: d === s.device }, d)));
  const adapter = h("input", { type: "text", value: s.adapter ?? "", placeholder: "the model's active adapter" });
  const theme = h("select", { "data-testid": "theme" },
    [["system", "Follow the system"], ["light", "Light"], ["dark", "Dark"]].map(([v, l]) => h("option", { value: v, selected: v === s.theme }, l)));
  theme.addEventListener("change", () => applyTheme(theme.value));

  async function save(e) {
    e.preventDefault();
    const next = structuredClone(s);
    Object.assign(next.agent, {
      k: Number(k.value), max_steps: Number(maxSteps.value), step_tokens: Number(stepTokens.value),
      answer_tokens: Number(answerTokens.value), rerank: rerank.checked,
    });
    next.agent.sampling.temperature = Number(temperature.value);
    next.agent.sampling.top_p = Number(topP.value);
    next.device = device.value;
    next.adapter = adapter.value.trim() || null;
    next.theme = theme.value;
    try {
      s = await invoke("settings_set", { settings: next });
      toast("Settings saved");
      refreshInfo();
    } catch (err) { toast(errorMessage(err), "error"); }
  }

  root.append(
    h("header", { class: "page-head" }, h("h1", {}, "Settings")),
    h("form", { class: "settings", onsubmit: save },
      h("fieldset", {}, h("legend", {}, "Search"),
        field("Passages per search", k),
        field("Searches at most", maxSteps, "before the answer is asked for anyway"),
        field("Re-rank each search's passages", rerank, "one extra model call per search")),
      h("fieldset", {}, h("legend", {}, "Decoding"),
        field("Temperature", temperature, "0 is greedy"),
        field("Top-p", topP),
        field("Tokens per search step", stepTokens),
        field("Tokens for the answer", answerTokens)),
      h("fieldset", {}, h("legend", {}, "Model"),
        field("Device", device),
        field("Adapter", adapter, "a name from the Training page, or none")),
      h("fieldset", {}, h("legend", {}, "Appearance"), field("Theme", theme)),
      h("p", { class: "where" }, `Data folder: ${info.home} (set EXSEARCH_HOME to move it)`),
      h("button", { class: "primary", "data-testid": "save-settings" }, "Save")),
  );
}
