//! Which model answers and how the agent searches: the options `ask` and
//! `eval` share, and the generator they build from them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use exsearch_agent::generator::{Local, OpenAi, Retry};
use exsearch_agent::{AgentSettings, Generator, Method};
use exsearch_core::Home;
use exsearch_model::hub::HubCache;
use exsearch_model::{parse_device, parse_dtype, ModelSource};

/// Which model answers.
#[derive(Args, Clone)]
pub struct BackendArgs {
    /// Local model: a folder, a .gguf file, or a hub id ORG/NAME[@REV][:FILE.gguf]
    #[arg(long, short = 'm', env = "EXSEARCH_MODEL")]
    pub(crate) model: Option<String>,
    /// An OpenAI-compatible server instead (Ollama, llama.cpp, vLLM), e.g. http://localhost:11434
    #[arg(long, conflicts_with = "model")]
    pub(crate) endpoint: Option<String>,
    /// The model name the server knows (with --endpoint)
    #[arg(long, default_value = "default")]
    pub(crate) endpoint_model: String,
    /// API key for --endpoint
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Requests in flight at once (with --endpoint)
    #[arg(long, default_value_t = 4)]
    pub(crate) concurrency: usize,
    /// Tries per request to --endpoint when it fails for a moment (connection
    /// lost, 429, 5xx), the waits doubling from 0.5 s; a failure that would
    /// repeat (such as a 400) is not retried
    #[arg(long, default_value_t = 5)]
    pub(crate) retries: u32,
    /// The model's context in tokens, for an --endpoint that does not report
    /// it (llama.cpp's server and vLLM do); prompts are kept within it
    #[arg(long)]
    pub(crate) context: Option<usize>,
    /// Seconds an --endpoint may stay silent before the request counts as
    /// stalled and is tried again
    #[arg(long, default_value_t = 600)]
    pub(crate) stall_secs: u64,
    /// auto, cpu, cuda[:N] or metal (local model)
    #[arg(long, default_value = "auto")]
    pub(crate) device: String,
    /// auto, f32, bf16 or f16 (local model)
    #[arg(long, default_value = "auto")]
    pub(crate) dtype: String,
    /// LoRA adapter for the local model: a name from `exsearch adapters
    /// list`, a PEFT folder, or `none` [default: the active adapter when
    /// the model is its base]
    #[arg(long, conflicts_with = "endpoint")]
    pub(crate) adapter: Option<String>,
}

/// How the agent searches.
#[derive(Args, Clone)]
pub struct AgentArgs {
    /// exsearch (agentic search), rag (retrieve once) or direct (no retrieval)
    #[arg(long, default_value = "exsearch")]
    pub(crate) method: Method,
    #[command(flatten)]
    pub(crate) search: SearchArgs,
    /// Sampling temperature, 0 for greedy [default: 0.8]
    #[arg(long)]
    pub(crate) temperature: Option<f32>,
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Let the model re-rank each search's passages (paper, section 3)
    #[arg(long)]
    pub(crate) rerank: bool,
}

/// The agent's settings file and the search options that override it.
#[derive(Args, Clone)]
pub struct SearchArgs {
    /// Agent settings as JSON (any subset of the fields; see ARCHITECTURE.md)
    #[arg(long)]
    pub(crate) settings: Option<PathBuf>,
    /// Passages per search [default: 5]
    #[arg(short = 'k', long)]
    pub(crate) k: Option<usize>,
    /// Searches at most before answering [default: 8]
    #[arg(long)]
    pub(crate) max_steps: Option<usize>,
}

impl SearchArgs {
    /// The settings file (or the defaults) with `-k` and `--max-steps` applied.
    pub(crate) fn settings(&self) -> Result<AgentSettings> {
        let s = match &self.settings {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?
            }
            None => AgentSettings::default(),
        };
        Ok(self.overridden(s))
    }

    /// `s` with `-k` and `--max-steps` applied.
    fn overridden(&self, mut s: AgentSettings) -> AgentSettings {
        if let Some(k) = self.k {
            s.k = k;
        }
        if let Some(n) = self.max_steps {
            s.max_steps = n;
        }
        s
    }
}

impl AgentArgs {
    /// The settings: a settings file when given, else the ones the
    /// answering adapter was trained with (`trained`), else the defaults;
    /// the command's options applied over them.
    pub(crate) fn settings_with(&self, trained: Option<AgentSettings>) -> Result<AgentSettings> {
        let mut s = match (&self.search.settings, trained) {
            (None, Some(trained)) => self.search.overridden(trained),
            _ => self.search.settings()?,
        };
        if let Some(t) = self.temperature {
            s.sampling.temperature = t;
        }
        if let Some(seed) = self.seed {
            s.sampling.seed = seed;
        }
        s.rerank |= self.rerank;
        s.validate()?;
        Ok(s)
    }
}

/// The search settings the adapter that will answer was trained with, if
/// a local model answers with such an adapter; says so on stderr.
pub(crate) fn trained_settings(home: &Home, args: &BackendArgs) -> Result<Option<AgentSettings>> {
    let (None, Some(spec)) = (&args.endpoint, &args.model) else {
        return Ok(None);
    };
    let chosen =
        exsearch_train::adapters::Adapters::new(home).choose(spec, args.adapter.as_deref())?;
    let Some((name, agent)) = chosen.and_then(|a| Some((a.name, a.note.agent?))) else {
        return Ok(None);
    };
    eprintln!(
        "searching as adapter {name} was trained to (k = {}, at most {} searches; \
         --settings FILE to choose)",
        agent.k, agent.max_steps
    );
    Ok(Some(agent))
}

pub(crate) fn generator(home: &Home, args: &BackendArgs) -> Result<Box<dyn Generator>> {
    if let Some(endpoint) = &args.endpoint {
        let g = OpenAi::new(endpoint, &args.endpoint_model, args.api_key.clone())
            .with_concurrency(args.concurrency)
            .with_retry(Retry {
                attempts: args.retries,
                ..Retry::default()
            })
            .with_stall_timeout(std::time::Duration::from_secs(args.stall_secs.max(1)));
        let g = match args.context {
            Some(tokens) => g.with_context(tokens),
            None => g,
        };
        return Ok(Box::new(g));
    }
    let Some(spec) = &args.model else {
        bail!(
            "no model: pass --model (a folder, a .gguf file or a hub id; see \
             `exsearch model list --available`) or --endpoint URL"
        );
    };
    let source: ModelSource = spec.parse()?;
    let files = source.resolve(&HubCache::from_env())?;
    let device = parse_device(&args.device)?;
    let dtype = parse_dtype(&args.dtype, &device)?;
    let adapter = crate::adapters::adapter_for(home, spec, args.adapter.as_deref())?;
    let handle = exsearch_train::adapters::spawn_answerer(files, device, dtype, adapter)?;
    Ok(Box::new(Local::new(Arc::new(handle))))
}
