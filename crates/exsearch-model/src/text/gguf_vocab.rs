//! A Hugging Face `tokenizer.json` built from GGUF metadata
//! (`tokenizer.ggml.*`) or from a plain list of tokens (the test models):
//! byte-level BPE (`gpt2`: Qwen, Llama 3, SmolLM) or SentencePiece BPE
//! (`llama`: Gemma, Llama 2, Mistral). Producing the JSON document and
//! loading it with the `tokenizers` crate keeps one code path for every
//! source.

use serde_json::json;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{
    NormalizerWrapper, Prepend, Replace, Sequence as NormalizerSequence,
};
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};
use crate::model::loading::Gguf;

/// GPT-2's pre-tokenizer split (llama.cpp's, without the final `\s+`: the
/// whitespace it would take stays a piece of its own either way).
const GPT2_SPLIT: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Every digit a piece of its own.
const DIGITS: &str = r"\p{N}";
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
/// `merges` are `"left right"` pairs, `special` lists ids that are special,
/// `splits` are the pre-tokenizer's regular expressions, applied in turn
/// (each match, and each stretch between matches, a piece).
pub fn byte_level_bpe_json(
    tokens: &[String],
    merges: &[String],
    special: &[u32],
    splits: &[&str],
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
    let mut pre: Vec<_> = splits
        .iter()
        .map(|split| json!({"type": "Split", "pattern": {"Regex": split}, "behavior": "Isolated", "invert": false}))
        .collect();
    pre.push(byte_level.clone());
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": pre},
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges}
    })
    .to_string()
}

/// The split patterns for a GGUF `tokenizer.ggml.pre` name, as llama.cpp
/// reads them (`llama-vocab.cpp`); names it does not list split as Llama 3.
pub fn split_for(pre: &str) -> &'static [&'static str] {
    match pre {
        "qwen2" | "deepseek-llm" | "stablelm2" => &[QWEN2_SPLIT],
        "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" | "trillion" => &[GPT2_SPLIT],
        // SmolLM, StarCoder and their kin isolate digits, then split as GPT-2.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            &[DIGITS, GPT2_SPLIT]
        }
        _ => &[LLAMA3_SPLIT],
    }
}

/// GGUF token types (llama.cpp's `llama_token_type`).
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// SentencePiece's stand-in for a space.
const SPACE: &str = "\u{2581}";

/// The tokenizer of a SentencePiece BPE vocabulary: `tokens[i]` has id `i`,
/// score `scores[i]` and GGUF type `types[i]`.
///
/// SentencePiece BPE merges, at each step, the adjacent pair whose joined
/// piece scores highest. A BPE merge list ranked by the joined piece's score
/// does the same, so the merges are recovered from the vocabulary: every way
/// to split a normal piece into two pieces of the vocabulary, best score
/// first (as `tokenizers`' SentencePiece converter does). Characters the
/// vocabulary lacks fall back to their UTF-8 bytes (`<0xNN>` pieces).
/// Control and unknown tokens are special; user-defined ones (Gemma's
/// newline runs, HTML tags) are matched whole wherever they occur. Built
/// through `tokenizers`' API rather than a tokenizer.json document: for
/// Gemma's 262k pieces and 513k merges the document took 0.9 s to write
/// and as long to parse.
pub fn sentencepiece_tokenizer(
    tokens: &[String],
    scores: &[f32],
    types: &[i32],
    add_space_prefix: bool,
) -> std::result::Result<Tokenizer, String> {
    let kind = |id: usize| types.get(id).copied().unwrap_or(NORMAL);
    let ids: rustc_hash::FxHashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .filter(|&(id, _)| kind(id) == NORMAL)
        .map(|(id, t)| (t.as_str(), id))
        .collect();
    let mut merges: Vec<(f32, usize, usize)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if kind(id) != NORMAL {
            continue;
        }
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (at, _) in piece.char_indices().skip(1) {
            if let (Some(&left), Some(&right)) = (ids.get(&piece[..at]), ids.get(&piece[at..])) {
                merges.push((score, left, right));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|&(_, l, r)| (tokens[l].clone(), tokens[r].clone()))
        .collect();
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let unk = types
        .iter()
        .position(|&t| t == UNKNOWN)
        .or_else(|| tokens.iter().position(|t| t == "<unk>"))
        .map(|id| tokens[id].clone());
    let mut bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if let Some(unk) = unk {
        bpe = bpe.unk_token(unk);
    }
    let mut tokenizer = Tokenizer::new(bpe.build().map_err(|e| e.to_string())?);
    let replace = Replace::new(" ", SPACE).map_err(|e| e.to_string())?;
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new(SPACE.into()).into(), replace.into()]).into()
    } else {
        replace.into()
    };
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| e.to_string())?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE, " ").map_err(|e| e.to_string())?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    let added = |wanted: &[i32], special: bool| {
        tokens
            .iter()
            .enumerate()
            .filter(|&(id, _)| wanted.contains(&kind(id)))
            .map(|(_, content)| AddedToken::from(content.clone(), special).normalized(false))
            .collect::<Vec<_>>()
    };
    tokenizer
        .add_special_tokens(added(&[UNKNOWN, CONTROL], true))
        .map_err(|e| e.to_string())?;
    tokenizer
        .add_tokens(added(&[USER_DEFINED], false))
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

/// The tokenizer a GGUF file's metadata describes.
pub(crate) fn tokenizer_from_gguf(gguf: &Gguf) -> Result<Tokenizer> {
    let model = gguf.string("tokenizer.ggml.model").unwrap_or_default();
    if model != "gpt2" && model != "llama" {
        return Err(Error::Unsupported(format!(
            "{}: tokenizer type `{model}` in GGUF metadata; byte-level BPE (`gpt2`) and \
             SentencePiece (`llama`) vocabularies are read from GGUF. \
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
    if model == "llama" {
        let list = |key: &str| {
            gguf.get(key)
                .and_then(|v| v.to_vec().ok())
                .ok_or_else(|| Error::bad_file(&gguf.path, format!("metadata `{key}` is missing")))
        };
        let scores: Vec<f32> = list("tokenizer.ggml.scores")?
            .iter()
            .map(|v| v.to_f32().unwrap_or(0.0))
            .collect();
        let types: Vec<i32> = match list("tokenizer.ggml.token_type") {
            Ok(types) => types.iter().map(|v| v.to_i32().unwrap_or(NORMAL)).collect(),
            Err(_) => Vec::new(),
        };
        if scores.len() != tokens.len() {
            return Err(Error::bad_file(
                &gguf.path,
                format!(
                    "{} tokens but {} scores in the SentencePiece vocabulary",
                    tokens.len(),
                    scores.len()
                ),
            ));
        }
        // llama.cpp's default for SentencePiece vocabularies is a leading space.
        let add_space_prefix = gguf
            .get("tokenizer.ggml.add_space_prefix")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(true);
        return sentencepiece_tokenizer(&tokens, &scores, &types, add_space_prefix)
            .map_err(|e| Error::bad_file(&gguf.path, format!("tokenizer metadata: {e}")));
    }
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
    let json = byte_level_bpe_json(&tokens, &merges, &special, split_for(&pre));
    Tokenizer::from_bytes(json.as_bytes())
        .map_err(|e| Error::bad_file(&gguf.path, format!("tokenizer metadata: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SentencePiece vocabulary: specials, the 256 byte pieces, then
    /// pieces best score first.
    fn vocabulary(pieces: &[(&str, f32)], user: &[&str]) -> (Vec<String>, Vec<f32>, Vec<i32>) {
        let mut tokens: Vec<String> = ["<unk>", "<bos>", "<eos>"].map(String::from).to_vec();
        let mut types = vec![UNKNOWN, CONTROL, CONTROL];
        tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        types.extend([6; 256]);
        tokens.extend(user.iter().map(|u| u.to_string()));
        types.extend(user.iter().map(|_| USER_DEFINED));
        let mut scores = vec![0.0; tokens.len()];
        for (piece, score) in pieces {
            tokens.push(piece.replace(' ', SPACE));
            scores.push(*score);
            types.push(NORMAL);
        }
        (tokens, scores, types)
    }

    fn tokenizer(pieces: &[(&str, f32)], user: &[&str], prefix: bool) -> Tokenizer {
        let (tokens, scores, types) = vocabulary(pieces, user);
        sentencepiece_tokenizer(&tokens, &scores, &types, prefix).expect("a tokenizer")
    }

    fn pieces(tok: &Tokenizer, text: &str) -> Vec<String> {
        tok.encode(text, false)
            .expect("encodes")
            .get_tokens()
            .iter()
            .map(|t| t.replace(SPACE, " "))
            .collect()
    }

    const LETTERS: [(&str, f32); 10] = [
        (" ", -1.0),
        ("a", -2.0),
        ("b", -3.0),
        ("c", -4.0),
        ("h", -5.0),
        ("e", -6.0),
        ("l", -7.0),
        ("o", -8.0),
        ("w", -9.0),
        ("r", -10.0),
    ];

    #[test]
    fn merges_follow_the_scores_of_the_joined_pieces() {
        let with = |extra: &[(&str, f32)]| {
            let all: Vec<_> = LETTERS.iter().chain(extra).copied().collect();
            tokenizer(&all, &[], false)
        };
        // The better-scoring pair is joined first, and takes the shared `b`.
        let ab_first = with(&[("ab", -11.0), ("bc", -12.0)]);
        assert_eq!(pieces(&ab_first, "abc"), ["ab", "c"]);
        let bc_first = with(&[("ab", -12.0), ("bc", -11.0)]);
        assert_eq!(pieces(&bc_first, "abc"), ["a", "bc"]);
        // Longer pieces are reached through pieces that exist.
        let hello = with(&[
            ("he", -11.0),
            ("ll", -12.0),
            ("hell", -13.0),
            ("hello", -14.0),
            (" w", -15.0),
            ("or", -16.0),
            (" wor", -17.0),
        ]);
        assert_eq!(
            pieces(&hello, "hello world"),
            ["hello", " wor", "l", "<0x64>"]
        );
    }

    #[test]
    fn unknown_characters_fall_back_to_bytes_and_decode_back() {
        let tok = tokenizer(&LETTERS, &["\n\n"], false);
        let text = "a\n\nb é";
        assert_eq!(
            pieces(&tok, text),
            ["a", "\n\n", "b", " ", "<0xC3>", "<0xA9>"],
            "user-defined pieces are matched whole; é is two UTF-8 bytes"
        );
        let ids = tok.encode(text, false).expect("encodes").get_ids().to_vec();
        assert_eq!(tok.decode(&ids, true).expect("decodes"), text);
        // Control tokens are read in rendered text and skipped in decoding.
        let ids = tok
            .encode("<bos>ab", false)
            .expect("encodes")
            .get_ids()
            .to_vec();
        assert_eq!(ids[0], 1);
        assert_eq!(tok.decode(&ids, true).expect("decodes"), "ab");
    }

    #[test]
    fn a_space_prefix_is_added_and_removed_when_the_vocabulary_asks() {
        let tok = tokenizer(&LETTERS, &[], true);
        assert_eq!(pieces(&tok, "ab a"), [" ", "a", "b", " ", "a"]);
        let ids = tok
            .encode("ab a", false)
            .expect("encodes")
            .get_ids()
            .to_vec();
        assert_eq!(tok.decode(&ids, true).expect("decodes"), "ab a");
    }
}
