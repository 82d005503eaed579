//! Text in and out of the model: the tokenizer, the chat template, the special
//! tokens that end a turn, and incremental decoding with stop strings.

mod gguf_vocab;
pub mod stream;
pub mod template;

use std::path::Path;

use tokenizers::Tokenizer;

pub use gguf_vocab::{
    byte_chars, byte_level_bpe_json, sentencepiece_tokenizer, split_for as gguf_vocab_split,
};

/// Gemma's chat template (Gemma 3 instruction-tuned models' turn format,
/// text content only): used for Gemma GGUF files that carry no template,
/// such as the base models, so that warm-up can teach them the format.
pub const GEMMA_CHAT_TEMPLATE: &str = include_str!("gemma_chat_template.jinja");
pub use stream::TextStream;
pub use template::{ChatMessage, ChatTemplate};

use crate::error::{Error, Result};
use crate::model::config::token_ids;
use crate::model::loading::Gguf;

/// Tokenizer, chat template and end-of-turn tokens of one model.
pub struct TextCodec {
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    /// Why there is no template, for the error when one is needed.
    template_missing: String,
    eos_ids: Vec<u32>,
    bos_id: Option<u32>,
    /// Prepend BOS to raw prompts (GGUF `add_bos_token`; tokenizer.json
    /// post-processors do this themselves).
    add_bos: bool,
}

impl std::fmt::Debug for TextCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCodec")
            .field("vocab", &self.tokenizer.get_vocab_size(true))
            .field("eos_ids", &self.eos_ids)
            .finish_non_exhaustive()
    }
}

/// A token given as a string or as `{"content": ...}` in tokenizer_config.json.
fn token_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))
}

impl TextCodec {
    /// Loads `tokenizer.json` and, when present, `tokenizer_config.json`,
    /// `chat_template.jinja` and `generation_config.json` from `dir`'s files.
    pub fn from_hf_files(
        tokenizer: &Path,
        tokenizer_config: Option<&Path>,
        generation_config: Option<&Path>,
        config_eos: &[u32],
    ) -> Result<Self> {
        let tok = Tokenizer::from_file(tokenizer).map_err(|e| {
            Error::bad_file(tokenizer, format!("not a readable tokenizer.json: {e}"))
        })?;
        let dir = tokenizer.parent().unwrap_or(Path::new("."));
        let (mut source, mut bos, mut eos) = (None, String::new(), String::new());
        let mut origin = String::new();
        let mut template_missing = format!(
            "{} has no chat template (no tokenizer_config.json next to it)",
            dir.display()
        );
        if let Some(path) = tokenizer_config {
            let cfg = read_json(path)?;
            bos = token_text(cfg.get("bos_token")).unwrap_or_default();
            eos = token_text(cfg.get("eos_token")).unwrap_or_default();
            origin = path.display().to_string();
            source = match cfg.get("chat_template") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Array(named)) => named
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .or_else(|| named.first())
                    .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
                _ => None,
            };
            template_missing = format!("{} has no `chat_template`", path.display());
        }
        let jinja = dir.join("chat_template.jinja");
        if source.is_none() && jinja.is_file() {
            source = Some(std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?);
            origin = jinja.display().to_string();
        }
        let template = source
            .map(|s| ChatTemplate::new(s, bos.clone(), eos.clone(), &origin))
            .transpose()?;
        let mut eos_ids = config_eos.to_vec();
        if let Some(path) = generation_config {
            eos_ids.extend(token_ids(read_json(path)?.get("eos_token_id")));
        }
        if let Some(id) = tok.token_to_id(&eos) {
            eos_ids.push(id);
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        let bos_id = tok.token_to_id(&bos);
        Ok(Self {
            tokenizer: tok,
            template,
            template_missing,
            eos_ids,
            bos_id,
            add_bos: false,
        })
    }

    /// Builds the tokenizer and template from GGUF metadata: byte-level BPE
    /// (`gpt2`, as Qwen, Llama 3 and SmolLM files carry) or SentencePiece
    /// (`llama`, as Gemma, Llama 2 and Mistral files carry).
    pub fn from_gguf(gguf: &Gguf, config_eos: &[u32]) -> Result<Self> {
        let tokenizer = gguf_vocab::tokenizer_from_gguf(gguf)?;
        let token = |key: &str| {
            gguf.get(key)
                .and_then(|v| v.to_u32().ok())
                .and_then(|id| tokenizer.id_to_token(id))
                .unwrap_or_default()
        };
        let (bos, eos) = (
            token("tokenizer.ggml.bos_token_id"),
            token("tokenizer.ggml.eos_token_id"),
        );
        let gemma_turns = ["<start_of_turn>", "<end_of_turn>"]
            .iter()
            .all(|t| tokenizer.token_to_id(t).is_some());
        let (source, origin) = match gguf.string("tokenizer.chat_template") {
            Some(s) => (Some(s), "tokenizer.chat_template"),
            None if gemma_turns => (
                Some(GEMMA_CHAT_TEMPLATE.to_string()),
                "Gemma's chat template",
            ),
            None => (None, ""),
        };
        let origin = format!("{} ({origin})", gguf.path.display());
        let template = source
            .map(|s| ChatTemplate::new(s, bos.clone(), eos.clone(), &origin))
            .transpose()?;
        let mut eos_ids = config_eos.to_vec();
        // Chat models end a turn with a token that is not always the GGUF
        // eos. Only control tokens count: Gemma's `</s>` is an HTML tag.
        let control = tokenizer.get_added_tokens_decoder();
        for name in [
            "<|im_end|>",
            "<|eot_id|>",
            "<end_of_turn>",
            "<|end_of_text|>",
            "<|endoftext|>",
            "</s>",
        ] {
            if let Some(id) = tokenizer.token_to_id(name) {
                if control.get(&id).is_some_and(|t| t.special) {
                    eos_ids.push(id);
                }
            }
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        let add_bos = gguf
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        Ok(Self {
            bos_id: tokenizer.token_to_id(&bos),
            tokenizer,
            template,
            template_missing: format!("{} has no tokenizer.chat_template", gguf.path.display()),
            eos_ids,
            add_bos,
        })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// The end-of-sequence token the chat template writes right after an
    /// assistant turn (`<|im_end|>` for Qwen, `<|eot_id|>` for Llama 3): what
    /// a model emits when it has finished answering. `eos_ids` is sorted, so
    /// its first entry is often a document end such as `<|endoftext|>`
    /// instead. Without a template, the first end-of-sequence token.
    pub fn end_of_turn(&self) -> Option<u32> {
        const PROBE: &str = "exsearch-probe";
        let messages = [ChatMessage::user("?"), ChatMessage::assistant(PROBE)];
        let after_turn = self
            .render_chat(&messages, false, &Default::default())
            .ok()
            .and_then(|text| {
                let at = text.rfind(PROBE)? + PROBE.len();
                Some(text[at..].to_string())
            });
        if let Some(after) = after_turn {
            let found = self.eos_ids.iter().copied().find(|&id| {
                self.tokenizer
                    .id_to_token(id)
                    .is_some_and(|t| after.trim_start().starts_with(t.as_str()))
            });
            if found.is_some() {
                return found;
            }
        }
        self.eos_ids.first().copied()
    }

    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// Renders a conversation with the model's chat template.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        self.template
            .as_ref()
            .ok_or_else(|| Error::Template(self.template_missing.clone()))?
            .render(messages, add_generation_prompt, extra)
    }

    /// Tokenizes text that already carries its special tokens (rendered chat).
    pub fn encode_rendered(&self, text: &str) -> Result<Vec<u32>> {
        self.encode(text, false)
    }

    /// Tokenizes a raw prompt, adding BOS the way the model expects.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(text, true)?;
        if self.add_bos {
            if let Some(bos) = self.bos_id {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, special)
            .map_err(|e| Error::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }
}
