//! Sentence embeddings for dense retrieval: a BERT encoder from a
//! sentence-transformers folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`, optionally `sentence_bert_config.json`), mean-pooled
//! and scaled to unit length, so a dot product is the cosine similarity.
//! all-MiniLM-L6-v2 ([`crate::hub::EMBEDDER`]) is the one we ship.

pub mod bert;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use self::bert::{mean_pool_normalized, Bert, BertConfig};
use crate::error::{Error, Result};

/// Tokens in one forward pass (batch size times padded length): large
/// enough to keep the matrix kernels busy, small enough that attention
/// scores stay a few MB.
const TOKENS_PER_BATCH: usize = 4096;
const MAX_BATCH: usize = 64;

pub struct SentenceEncoder {
    bert: Bert,
    tokenizer: Tokenizer,
    max_tokens: usize,
    device: Device,
    name: String,
}

impl SentenceEncoder {
    /// Loads the encoder in `dir`. Its name is the folder's name.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let file = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::Missing {
                    path,
                    hint: "a sentence-transformers model folder holds config.json, \
                           model.safetensors and tokenizer.json"
                        .into(),
                })
            }
        };
        let read_json = |path: &Path| -> Result<serde_json::Value> {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            serde_json::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))
        };
        let config_path = file("config.json")?;
        let config: BertConfig = serde_json::from_value(read_json(&config_path)?)
            .map_err(|e| Error::bad_file(&config_path, e.to_string()))?;
        let model_type = read_json(&config_path)?["model_type"]
            .as_str()
            .unwrap_or("bert")
            .to_string();
        if model_type != "bert" {
            return Err(Error::Unsupported(format!(
                "{}: sentence encoder of type {model_type} (supported: bert)",
                config_path.display()
            )));
        }
        // sentence-transformers cuts texts at `max_seq_length`, which is
        // shorter than the position table (256 of 512 for MiniLM).
        let sbert = dir.join("sentence_bert_config.json");
        let max_tokens = if sbert.is_file() {
            read_json(&sbert)?["max_seq_length"]
                .as_u64()
                .map(|n| n as usize)
        } else {
            None
        }
        .unwrap_or(config.max_position_embeddings)
        .min(config.max_position_embeddings);
        let tokenizer_path = file("tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| Error::bad_file(&tokenizer_path, e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| Error::bad_file(&tokenizer_path, e.to_string()))?;
        let bert = Bert::load(config, &file("model.safetensors")?, device)?;
        let name = dir
            .file_name()
            .map_or_else(|| "encoder".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            bert,
            tokenizer,
            max_tokens,
            device: device.clone(),
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of the vectors.
    pub fn dim(&self) -> usize {
        self.bert.config.hidden_size
    }

    /// Texts are cut at this many tokens (special tokens included).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The token ids the encoder sees for `text`.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// One unit vector per text, in order. Texts of similar length are
    /// batched together, so little compute goes to padding.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());
        let mut out = vec![Vec::new(); ids.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted by length: the last text of a batch is its longest.
            let mut end = start + 1;
            while end < order.len()
                && end - start < MAX_BATCH
                && (end + 1 - start) * ids[order[end]].len().max(1) <= TOKENS_PER_BATCH
            {
                end += 1;
            }
            let batch = &order[start..end];
            let vectors = self.encode_batch(batch.iter().map(|&i| ids[i]))?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    fn encode_batch<'a>(
        &self,
        ids: impl ExactSizeIterator<Item = &'a [u32]>,
    ) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<&[u32]> = ids.collect();
        let len = ids.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let mut flat = Vec::with_capacity(ids.len() * len);
        let mut mask = Vec::with_capacity(ids.len() * len);
        for t in &ids {
            flat.extend_from_slice(t);
            flat.extend(std::iter::repeat_n(0, len - t.len()));
            mask.extend(std::iter::repeat_n(1f32, t.len()));
            mask.extend(std::iter::repeat_n(0f32, len - t.len()));
        }
        let shape = (ids.len(), len);
        let ids = Tensor::from_vec(flat, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        let hidden = self.bert.forward(&ids, &mask)?;
        Ok(mean_pool_normalized(&hidden, &mask)?.to_vec2()?)
    }
}
