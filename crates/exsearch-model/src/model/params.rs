//! The decoder's weights by their Hugging Face names: read them (to save a
//! checkpoint), turn them into trainable variables (full fine-tuning), and
//! reach each projection by its module name (to attach LoRA adapters).
//!
//! A tied language-model head is the embedding itself: it is never listed on
//! its own, and after [`Decoder::make_trainable`] both read the same variable.

use candle_core::{Tensor, Var};

use super::decoder::{Decoder, RmsNorm};
use super::linear::Linear;
use crate::error::{Error, Result};

/// The projection kinds LoRA can target, by their HF module names.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

impl Decoder {
    /// Every projection of every block as (`model.layers.{i}.self_attn.q_proj`,
    /// the layer), in a fixed order; the language-model head is not included.
    pub fn projections_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = Vec::with_capacity(self.layers.len() * PROJECTIONS.len());
        for (i, b) in self.layers.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &mut b.self_attn;
            let m = &mut b.mlp;
            for (kind, layer) in [
                ("self_attn.q_proj", &mut a.q_proj),
                ("self_attn.k_proj", &mut a.k_proj),
                ("self_attn.v_proj", &mut a.v_proj),
                ("self_attn.o_proj", &mut a.o_proj),
                ("mlp.gate_proj", &mut m.gate_proj),
                ("mlp.up_proj", &mut m.up_proj),
                ("mlp.down_proj", &mut m.down_proj),
            ] {
                out.push((format!("{p}.{kind}"), layer));
            }
        }
        out
    }

    /// Calls `f` on every weight tensor under its HF name (the tied head
    /// excluded). Quantized (GGUF) layers cannot be visited: training and
    /// checkpoints need dense weights.
    fn visit_weights(
        &mut self,
        mut f: impl FnMut(String, &mut Tensor) -> Result<()>,
    ) -> Result<()> {
        let dense_only = || {
            Error::Unsupported(
                "this model has quantized (GGUF) weights; training and saving need the \
                 safetensors model"
                    .into(),
            )
        };
        f(
            "model.embed_tokens.weight".into(),
            self.embed_tokens.dense_mut().ok_or_else(dense_only)?,
        )?;
        // A norm's scale follows its weight wherever the weight changes.
        let mut norm = |name: String, n: &mut RmsNorm| -> Result<()> {
            f(name, &mut n.weight)?;
            n.refresh()
        };
        let sandwich = self.config.sandwich_norms;
        for i in 0..self.layers.len() {
            let p = format!("model.layers.{i}");
            let b = &mut self.layers[i];
            norm(
                format!("{p}.input_layernorm.weight"),
                &mut b.input_layernorm,
            )?;
            // Llama's pre-MLP norm is `post_attention_layernorm`; Gemma uses
            // that name for the norm on the attention's output.
            let pre_mlp = if sandwich {
                "pre_feedforward_layernorm"
            } else {
                "post_attention_layernorm"
            };
            norm(
                format!("{p}.{pre_mlp}.weight"),
                &mut b.pre_feedforward_layernorm,
            )?;
            if let Some(n) = &mut b.post_attention_layernorm {
                norm(format!("{p}.post_attention_layernorm.weight"), n)?;
            }
            if let Some(n) = &mut b.post_feedforward_layernorm {
                norm(format!("{p}.post_feedforward_layernorm.weight"), n)?;
            }
            if let Some(n) = &mut b.self_attn.q_norm {
                norm(format!("{p}.self_attn.q_norm.weight"), n)?;
            }
            if let Some(n) = &mut b.self_attn.k_norm {
                norm(format!("{p}.self_attn.k_norm.weight"), n)?;
            }
        }
        norm("model.norm.weight".into(), &mut self.norm)?;
        for (name, layer) in self.projections_mut() {
            let (w, bias) = layer.dense_parts_mut().ok_or_else(dense_only)?;
            // The projections' names outlive the borrow of `self` above.
            let mut visit = |suffix: &str, t: &mut Tensor| f(format!("{name}.{suffix}"), t);
            visit("weight", w)?;
            if let Some(bias) = bias {
                visit("bias", bias)?;
            }
        }
        if !self.config.tie_word_embeddings {
            let (w, _) = self.lm_head.dense_parts_mut().ok_or_else(dense_only)?;
            f("lm_head.weight".into(), w)?;
        }
        Ok(())
    }

    /// All weights under their HF names, as a checkpoint stores them. LoRA
    /// adapters are not included (merge them first to keep their effect).
    pub fn named_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        self.clone().visit_weights(|name, t| {
            out.push((name, t.clone()));
            Ok(())
        })?;
        Ok(out)
    }

    /// Turns every weight into a trainable variable in place (full
    /// fine-tuning) and returns them by name. Inference code that shares the
    /// variables' storage sees each optimizer update.
    pub fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        let mut vars = Vec::new();
        self.visit_weights(|name, t| {
            let var = Var::from_tensor(t)?;
            *t = var.as_tensor().clone();
            vars.push((name, var));
            Ok(())
        })?;
        if self.config.tie_word_embeddings {
            self.lm_head = Linear::dense(self.dense_embedding()?, None)?;
        }
        Ok(vars)
    }

    /// Replaces weights by name (a merged or trained checkpoint); names not
    /// given keep their tensors, shapes must match.
    pub fn replace_weights(
        &mut self,
        new: &std::collections::HashMap<String, Tensor>,
    ) -> Result<()> {
        self.visit_weights(|name, t| {
            if let Some(n) = new.get(&name) {
                if n.dims() != t.dims() {
                    return Err(Error::InvalidOption(format!(
                        "weight `{name}` has shape {:?}, the model's is {:?}",
                        n.dims(),
                        t.dims()
                    )));
                }
                *t = n.to_dtype(t.dtype())?;
            }
            Ok(())
        })?;
        if self.config.tie_word_embeddings {
            self.lm_head = Linear::dense(self.dense_embedding()?, None)?;
        }
        Ok(())
    }

    fn dense_embedding(&mut self) -> Result<Tensor> {
        self.embed_tokens.dense_mut().cloned().ok_or_else(|| {
            Error::Unsupported("a quantized (GGUF) embedding cannot be tied to a new head".into())
        })
    }
}
