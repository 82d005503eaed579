//! A Hugging Face `tokenizer.json` for a byte-level BPE vocabulary, built
//! either from GGUF metadata (`tokenizer.ggml.*`) or from a plain list of
//! tokens (the test models). Producing the JSON document and loading it with
//! the `tokenizers` crate keeps one code path for every source.

use serde_json::json;

use crate::error::{Error, Result};
use crate::model::weights::Gguf;

/// The pre-tokenizer split of Qwen2 (digits one by one).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The pre-tokenizer split of Llama 3 (digits in groups of up to three).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's map from bytes to printable characters, used by byte-level BPE.
pub fn byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        out[b as usize] = if printable {
            b as char
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('?')
        };
    }
    out
}

/// A tokenizer.json document: `tokens[i]` has id `i` (byte-level encoded),
/// `merges` are `"left right"` pairs, `special` lists ids that are special.
pub fn byte_level_bpe_json(
    tokens: &[String],
    merges: &[String],
    special: &[u32],
    split: &str,
) -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), json!(i)))
        .collect();
    let added: Vec<_> = special
        .iter()
        .filter_map(|&id| tokens.get(id as usize).map(|t| (id, t)))
        .map(|(id, content)| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": false},
            byte_level
        ]},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
    .to_string()
}

/// The split pattern for a GGUF `tokenizer.ggml.pre` name.
pub fn split_for(pre: &str) -> &'static str {
    match pre {
        "qwen2" | "deepseek-llm" => QWEN2_SPLIT,
        _ => LLAMA3_SPLIT,
    }
}

pub(crate) fn tokenizer_json_from_gguf(gguf: &Gguf) -> Result<String> {
    let model = gguf.string("tokenizer.ggml.model").unwrap_or_default();
    if model != "gpt2" {
        return Err(Error::Unsupported(format!(
            "{}: tokenizer type `{model}` in GGUF metadata; only byte-level BPE (`gpt2`) is read from GGUF. \
             Put the model's tokenizer.json next to the file to use it instead",
            gguf.path.display()
        )));
    }
    let strings = |key: &str| -> Result<Vec<String>> {
        let list = gguf
            .get(key)
            .ok_or_else(|| Error::bad_file(&gguf.path, format!("metadata `{key}` is missing")))?
            .to_vec()
            .map_err(|e| Error::bad_file(&gguf.path, format!("{key}: {e}")))?;
        Ok(list
            .iter()
            .map(|v| v.to_string().cloned().unwrap_or_default())
            .collect())
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    // Token types: 3 = control, 4 = user defined; both are matched whole.
    let special: Vec<u32> = match gguf
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
    {
        Some(types) => types
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(t.to_i32(), Ok(3 | 4)))
            .map(|(i, _)| i as u32)
            .collect(),
        None => Vec::new(),
    };
    let pre = gguf.string("tokenizer.ggml.pre").unwrap_or_default();
    Ok(byte_level_bpe_json(
        &tokens,
        &merges,
        &special,
        split_for(&pre),
    ))
}
