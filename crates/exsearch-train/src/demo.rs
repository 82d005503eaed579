//! `exsearch demo em`: the end-to-end proof that the EM rounds teach a model
//! to search. From one seed: generate a world, index its corpus, create a
//! model from scratch, warm it up on oracle trajectories until validation
//! loss stops improving, then (a) a control that spends the EM rounds'
//! optimizer steps on more warm-up instead and (b) the EM rounds, each
//! evaluated on held-out questions through the agent's eval harness.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use exsearch_agent::eval::EvalSummary;
use exsearch_agent::generator::{Local, Oracle, OracleAnswer};
use exsearch_agent::{Agent, AgentEvent, AgentSettings, Method, Question, Trajectory};
use exsearch_core::{CancelToken, EventSink, Home, Library, Quiet, SyncOptions};
use exsearch_model::model::ModelConfig;
use exsearch_model::{LoadedModel, ModelHandle, ModelSource};
use serde::{Deserialize, Serialize};

use crate::adapters::write_model_folder;
use crate::error::{Error, Result};
use crate::estep::{e_step, example_of, m_step_examples, EStepOptions, EStepSummary};
use crate::events::{Recorder, TrainEvent};
use crate::files::write_atomic;
use crate::init::{init_model, InitConfig};
use crate::run::{evaluate_into, evaluated};
use crate::supervised::{encode, Encoded};
use crate::trainer::{evaluate_loss, Params, TrainConfig, Trainer};
use crate::world::{World, WorldConfig, WorldQuestion};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DemoConfig {
    pub world: WorldConfig,
    pub model: InitConfig,
    pub agent: AgentSettings,
    /// Reading before warm-up: language modelling on the documents of
    /// another world from the same generator (other entities), so the new
    /// model learns to read and repeat names before it learns to search.
    pub reading: ReadingConfig,
    /// Warm-up: one epoch per `epochs`, stopped when the loss on held-out
    /// trajectories of the same teacher (5% of them) has not improved for
    /// `patience` epochs.
    pub warmup: TrainConfig,
    pub patience: usize,
    pub rounds: usize,
    pub estep: EStepOptions,
    pub mstep: TrainConfig,
    /// Sampling temperature of the E-step (evaluation is greedy).
    pub estep_temperature: f32,
}

impl Default for DemoConfig {
    /// Small enough to run on two CPU cores: a 2-layer model with a
    /// 512-token vocabulary (names are several syllable tokens, so a name
    /// never seen in training is still made of known tokens), one passage
    /// per search (the world's documents are short and BM25 finds each by
    /// its name), short instructions, greedy evaluation. The warm-up teacher
    /// slips on 60% of its trajectories (`teacher_error`), so a warmed-up
    /// model makes its mistakes more often than not; the EM rounds learn
    /// from gold answers alone.
    fn default() -> Self {
        let mut agent = AgentSettings {
            instructions: "Search with {query}, read {search}, note {fact}, end with {finish}."
                .into(),
            final_request: "Answer: {question}".into(),
            k: 1,
            max_steps: 3,
            step_tokens: 32,
            answer_tokens: 10,
            ..AgentSettings::default()
        };
        agent.sampling.temperature = 0.0;
        agent.sampling.top_p = 1.0;
        Self {
            world: WorldConfig {
                warmup: 1500,
                train: 400,
                valid: 40,
                test: 100,
                teacher_error: 0.6,
                ..WorldConfig::default()
            },
            model: InitConfig {
                hidden: 64,
                layers: 2,
                heads: 4,
                kv_heads: 2,
                intermediate: 256,
                vocab: 512,
                ..InitConfig::default()
            },
            agent,
            reading: ReadingConfig::default(),
            warmup: TrainConfig {
                lr: 3e-3,
                epochs: 16,
                warmup_ratio: 0.02,
                token_budget: 2048,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
            patience: 2,
            rounds: 3,
            estep: EStepOptions {
                batch: 16,
                min_answer_prob: 0.5,
                ..EStepOptions::default()
            },
            mstep: TrainConfig {
                lr: 1e-3,
                epochs: 1,
                warmup_ratio: 0.1,
                token_budget: 2048,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
            estep_temperature: 0.7,
        }
    }
}

impl DemoConfig {
    /// The same settings with the world and the model drawn from `seed`.
    pub fn seeded(mut self, seed: u64) -> Self {
        self.world.seed = seed;
        self.model.seed = seed;
        self
    }

    /// A run of a minute or two on two cores: the same pipeline on a small
    /// world (300 warm-up trajectories, 60 EM questions), three warm-up
    /// epochs and one EM round. It shows the loop and its charts; it is too
    /// short to show the EM gain the full demonstration measures.
    pub fn quick() -> Self {
        let full = Self::default();
        Self {
            world: WorldConfig {
                warmup: 300,
                train: 60,
                valid: 10,
                test: 20,
                ..full.world
            },
            reading: ReadingConfig {
                questions: 200,
                train: TrainConfig {
                    epochs: 1,
                    ..full.reading.train.clone()
                },
                ..full.reading.clone()
            },
            warmup: TrainConfig {
                epochs: 3,
                ..full.warmup.clone()
            },
            patience: 1,
            rounds: 1,
            ..full
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadingConfig {
    /// Questions of the other world whose documents are read (0: no reading).
    pub questions: usize,
    /// Documents concatenated into one training sequence.
    pub documents_per_sequence: usize,
    pub train: TrainConfig,
}

impl Default for ReadingConfig {
    fn default() -> Self {
        Self {
            questions: 1500,
            documents_per_sequence: 8,
            train: TrainConfig {
                lr: 5e-3,
                epochs: 5,
                warmup_ratio: 0.05,
                token_budget: 4096,
                checkpoint_every: 0,
                ..TrainConfig::default()
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundReport {
    pub round: usize,
    pub estep: EStepSummary,
    pub mstep_steps: usize,
    pub mstep_loss: f64,
    pub valid_em: f64,
    pub test_em: f64,
    pub test_recall: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoReport {
    pub seed: u64,
    pub dir: PathBuf,
    pub warmup_epochs: usize,
    pub warmup_steps: usize,
    pub warmup_em: f64,
    pub warmup_recall: Option<f64>,
    pub control_steps: usize,
    pub control_em: f64,
    pub control_recall: Option<f64>,
    /// Held-out EM after each round.
    pub round_em: Vec<f64>,
    pub rounds: Vec<RoundReport>,
    /// The round chosen by validation EM.
    pub best_round: usize,
    pub final_em: f64,
    pub final_recall: Option<f64>,
    pub seconds: f64,
}

/// Everything a phase needs: the library, the model and its variables.
struct Bench {
    library: Library,
    local: Local,
    decoder: exsearch_model::model::Decoder,
    vars: Vec<(String, Var)>,
    files: exsearch_model::ModelFiles,
}

impl Bench {
    fn agent<'a>(&'a self, settings: &'a AgentSettings) -> Agent<'a> {
        Agent {
            generator: &self.local,
            retriever: &self.library,
            settings,
        }
    }

    fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        self.vars
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    fn restore(&self, snapshot: &HashMap<String, Tensor>) -> Result<()> {
        for (n, v) in &self.vars {
            v.set(&snapshot[n])?;
        }
        Ok(())
    }
}

/// The agent settings a demonstration's models were trained with, in its folder.
pub const AGENT_FILE: &str = "agent.json";

/// Runs the whole demonstration under `dir`.
pub fn run_demo(
    dir: &Path,
    config: &DemoConfig,
    events: &dyn EventSink<TrainEvent>,
    cancel: &CancelToken,
) -> Result<DemoReport> {
    let started = Instant::now();
    let recorder = Recorder::open(dir, events)?;
    let events: &dyn EventSink<TrainEvent> = &recorder;
    let charts = dir.join("charts");
    // The prompts and search settings the demo's models are trained with:
    // asking them anything needs the same ones.
    let agent = serde_json::to_string_pretty(&config.agent)
        .map_err(|e| Error::InvalidSetting(e.to_string()))?;
    write_atomic(&dir.join(AGENT_FILE), agent.as_bytes())?;
    let phase = |name: &str| {
        events.emit(TrainEvent::Phase {
            name: name.to_string(),
        })
    };
    phase("world");
    let world = World::generate(&config.world)?;
    let files = world.write(&dir.join("world"))?;
    let mut library = Library::open(&Home::at(dir.join("library")))?;
    if library.status()?.folders.is_empty() {
        library.add_folders(
            std::slice::from_ref(&files.corpus),
            &SyncOptions::default(),
            &Quiet,
            cancel,
        )?;
    }
    let model_dir = dir.join("model");
    phase("model init");
    let settings = &config.agent;
    init_demo_model(&model_dir, config, &world)?;
    let bench = load_bench(&model_dir, library, config)?;

    if config.reading.questions > 0 {
        phase("reading");
        read_other_world(&bench, config, events, cancel)?;
    }

    // Warm-up data: the real agent, driven by an oracle that knows each
    // question's sub-queries and evidence, over the real index.
    phase("warm-up trajectories");
    let warm = oracle_trajectories(&bench, settings, &world.warmup, cancel)?;
    write_jsonl(&dir.join("warmup-trajectories.jsonl"), &warm)?;
    // The validation loss is measured on the same teacher's trajectories,
    // slips included, for questions held out of training: the warm-up fits
    // the teacher it is given, as it would on a real teacher's data (a
    // clean validation set would stop it early, before it follows the
    // teacher's habits, and flatter the warmed-up model).
    let held = if warm.len() >= 2 {
        (warm.len() / 20).max(1)
    } else {
        0
    };
    let (warm, valid_warm) = warm.split_at(warm.len() - held);
    let codec = bench.local.handle().codec().clone();
    let encode_all = |ts: &[Trajectory]| -> Result<Vec<Encoded>> {
        ts.iter().map(|t| encode(&codec, &example_of(t))).collect()
    };
    let warm_data = encode_all(warm)?;
    let valid_data = encode_all(valid_warm)?;

    phase("warm-up");
    let (warmup_epochs, warmup_steps) =
        warm_up(&bench, config, &warm_data, &valid_data, events, cancel)?;
    let after_warmup = bench.snapshot()?;
    save_checkpoint(&bench, &dir.join("checkpoints").join("warm-up"))?;
    // Read back from the files a user can open: what is evaluated is what
    // they see.
    let test = exsearch_agent::eval::load(&files.test)?;
    let valid = exsearch_agent::eval::load(&files.valid)?;
    let train = exsearch_agent::eval::load(&files.train)?;
    let eval = |name: &str, split: &str| -> Result<EvalSummary> {
        let items = if split == "test" { &test } else { &valid };
        let out = dir
            .join("evals")
            .join(format!("{}-{split}.jsonl", name.replace(' ', "-")));
        let s = evaluate_into(&bench.agent(settings), items, out, cancel)?;
        events.emit(evaluated(name, split, &s));
        Ok(s)
    };
    let warm_eval = eval("warm-up", "test")?;
    eval("warm-up", "valid")?;
    recorder.charts(&charts)?;

    // The EM rounds.
    let mut sampling = settings.clone();
    sampling.sampling.temperature = config.estep_temperature;
    let mut rounds = Vec::new();
    let mut em_steps = 0;
    let mut snapshots = Vec::new();
    for round in 1..=config.rounds {
        phase(&format!("round {round}: E-step"));
        let (questions, summary) = e_step(
            &bench.agent(&sampling),
            &bench.local,
            &train,
            &config.estep,
            &mut |done, total| events.emit(TrainEvent::Sampled { round, done, total }),
            cancel,
        )?;
        events.emit(TrainEvent::Round {
            round,
            estep: summary.clone(),
        });
        phase(&format!("round {round}: M-step"));
        let examples = m_step_examples(&questions, config.estep.rule);
        let data: Vec<Encoded> = examples
            .iter()
            .map(|e| encode(&codec, e))
            .collect::<Result<_>>()?;
        let mut trainer = Trainer::new(
            &bench.decoder,
            Params::Full(bench.vars.clone()),
            TrainConfig {
                seed: config.mstep.seed + round as u64,
                ..config.mstep.clone()
            },
            None,
        )?;
        let phase_name = format!("round {round}");
        let records = trainer.run(
            &data,
            &mut |r| {
                events.emit(TrainEvent::Step {
                    phase: phase_name.clone(),
                    record: r.clone(),
                })
            },
            cancel,
        )?;
        em_steps += records.len();
        let valid_eval = eval(&format!("round {round}"), "valid")?;
        let test_eval = eval(&format!("round {round}"), "test")?;
        recorder.charts(&charts)?;
        snapshots.push(bench.snapshot()?);
        save_checkpoint(
            &bench,
            &dir.join("checkpoints").join(format!("round-{round}")),
        )?;
        rounds.push(RoundReport {
            round,
            estep: summary,
            mstep_steps: records.len(),
            mstep_loss: records.last().map_or(0.0, |r| r.loss),
            valid_em: valid_eval.em,
            test_em: test_eval.em,
            test_recall: test_eval.recall,
        });
    }
    let best = rounds
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.valid_em.total_cmp(&b.1.valid_em).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i);

    // The control: the warmed-up model, the same number of optimizer steps
    // spent on more warm-up epochs.
    phase("control");
    bench.restore(&after_warmup)?;
    let control_steps = more_warm_up(&bench, config, &warm_data, em_steps, events, cancel)?;
    let control_eval = eval("control", "test")?;
    recorder.charts(&charts)?;
    if let Some(i) = best {
        bench.restore(&snapshots[i])?;
    }
    let (final_em, final_recall) = best.map_or((warm_eval.em, warm_eval.recall), |i| {
        (rounds[i].test_em, rounds[i].test_recall)
    });
    let report = DemoReport {
        seed: config.world.seed,
        dir: dir.to_path_buf(),
        warmup_epochs,
        warmup_steps,
        warmup_em: warm_eval.em,
        warmup_recall: warm_eval.recall,
        control_steps,
        control_em: control_eval.em,
        control_recall: control_eval.recall,
        round_em: rounds.iter().map(|r| r.test_em).collect(),
        best_round: best.map_or(0, |i| i + 1),
        rounds,
        final_em,
        final_recall,
        seconds: started.elapsed().as_secs_f64(),
    };
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    write_atomic(&dir.join("report.json"), text.as_bytes())?;
    Ok(report)
}

/// Creates the demonstration's model in `dir`: `config.model`'s shape, a
/// tokenizer trained on the world's texts and the agent's prompts, with the
/// agent's tags as whole tokens.
pub fn init_demo_model(dir: &Path, config: &DemoConfig, world: &World) -> Result<ModelConfig> {
    let t = &config.agent.tags;
    let mut model = config.model.clone();
    for tag in [&t.question, &t.query, &t.search, &t.fact, &t.finish] {
        if !model.words.contains(tag) {
            model.words.push(tag.clone());
        }
    }
    init_model(dir, &model, world.text().chain(agent_text(&config.agent)))
}

/// Writes the current weights as a model folder (the base's config and
/// tokenizer files beside them), loadable with `-m FOLDER`.
fn save_checkpoint(bench: &Bench, out: &Path) -> Result<()> {
    let weights = bench.decoder.named_weights()?.into_iter().collect();
    write_model_folder(weights, &bench.files, out)
}

fn load_bench(model_dir: &Path, library: Library, config: &DemoConfig) -> Result<Bench> {
    let source: ModelSource = model_dir
        .to_str()
        .ok_or_else(|| Error::InvalidSetting("the run folder is not UTF-8".into()))?
        .parse()?;
    let files = source.resolve(&exsearch_model::hub::HubCache::new(model_dir.join(".none")))?;
    let batch = config.estep.batch * config.estep.samples.max(1);
    let load_files = files.clone();
    let handle = Arc::new(ModelHandle::spawn(
        move || LoadedModel::load(&load_files, &Device::Cpu, DType::F32),
        batch.max(8),
    )?);
    // From scratch, every weight trains; the engine thread and the trainer
    // share the variables, so each update reaches generation at once.
    let (decoder, vars) = handle.with_engine(|engine| {
        let decoder = &mut engine.model_mut().decoder;
        decoder.make_trainable().map(|vars| (decoder.clone(), vars))
    })??;
    Ok(Bench {
        library,
        local: Local::new(handle),
        decoder,
        vars,
        files,
    })
}

fn warm_up(
    bench: &Bench,
    config: &DemoConfig,
    data: &[Encoded],
    valid: &[Encoded],
    events: &dyn EventSink<TrainEvent>,
    cancel: &CancelToken,
) -> Result<(usize, usize)> {
    let mut best = (f64::INFINITY, 0, 0);
    let mut best_state = None;
    let steps = std::cell::Cell::new(0);
    let mut trainer = Trainer::new(
        &bench.decoder,
        Params::Full(bench.vars.clone()),
        config.warmup.clone(),
        None,
    )?;
    trainer.run_until(
        data,
        &mut |r| {
            steps.set(r.step);
            events.emit(TrainEvent::Step {
                phase: "warm-up".into(),
                record: r.clone(),
            })
        },
        &mut |epoch| {
            let loss = evaluate_loss(&bench.decoder, valid, config.warmup.token_budget)?;
            events.emit(TrainEvent::Epoch {
                phase: "warm-up".into(),
                epoch,
                valid_loss: loss,
            });
            if loss < best.0 - 1e-4 {
                best = (loss, epoch, steps.get());
                best_state = Some(bench.snapshot()?);
            }
            Ok(epoch - best.1 < config.patience)
        },
        cancel,
    )?;
    if let Some(state) = best_state {
        bench.restore(&state)?;
    }
    Ok((best.1, best.2))
}

/// Language modelling on another world's documents, every token trained.
fn read_other_world(
    bench: &Bench,
    config: &DemoConfig,
    events: &dyn EventSink<TrainEvent>,
    cancel: &CancelToken,
) -> Result<()> {
    let other = World::generate(&WorldConfig {
        seed: config.world.seed.wrapping_add(0x9E37_79B9),
        warmup: config.reading.questions,
        train: 0,
        valid: 0,
        test: 0,
        ..config.world.clone()
    })?;
    let codec = bench.local.handle().codec().clone();
    let data = other
        .paired_pages()
        .chunks(config.reading.documents_per_sequence.max(1))
        .map(|pages| {
            let ids = codec.encode_rendered(&pages.join("\n\n"))?;
            Ok(Encoded {
                trained: vec![true; ids.len()],
                ids,
                weight: 1.0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut trainer = Trainer::new(
        &bench.decoder,
        Params::Full(bench.vars.clone()),
        config.reading.train.clone(),
        None,
    )?;
    trainer.run(
        &data,
        &mut |r| {
            events.emit(TrainEvent::Step {
                phase: "reading".into(),
                record: r.clone(),
            })
        },
        cancel,
    )?;
    Ok(())
}

fn more_warm_up(
    bench: &Bench,
    config: &DemoConfig,
    data: &[Encoded],
    steps: usize,
    events: &dyn EventSink<TrainEvent>,
    cancel: &CancelToken,
) -> Result<usize> {
    let per_epoch = crate::supervised::pack(data, config.mstep.token_budget)
        .len()
        .div_ceil(config.mstep.accumulation)
        .max(1);
    let mut trainer = Trainer::new(
        &bench.decoder,
        Params::Full(bench.vars.clone()),
        TrainConfig {
            epochs: steps.div_ceil(per_epoch).max(1),
            max_steps: steps.max(1),
            ..config.mstep.clone()
        },
        None,
    )?;
    let records = trainer.run(
        data,
        &mut |r| {
            events.emit(TrainEvent::Step {
                phase: "control".into(),
                record: r.clone(),
            })
        },
        cancel,
    )?;
    Ok(records.len())
}

fn oracle_trajectories(
    bench: &Bench,
    settings: &AgentSettings,
    questions: &[WorldQuestion],
    cancel: &CancelToken,
) -> Result<Vec<Trajectory>> {
    let oracle = Oracle::new(
        settings.tags.clone(),
        questions.iter().map(|q| {
            (
                q.question.clone(),
                OracleAnswer {
                    queries: q.queries.clone(),
                    facts: q.facts.clone(),
                    // The teacher answers what it noted.
                    answer: q.facts.last().cloned().unwrap_or_default(),
                },
            )
        }),
    );
    let agent = Agent {
        generator: &oracle,
        retriever: &bench.library,
        settings,
    };
    let asked: Vec<Question> = questions
        .iter()
        .map(|q| Question::new(&q.question))
        .collect();
    Ok(agent.run(
        &asked,
        1,
        Method::Exsearch,
        &Quiet as &dyn EventSink<AgentEvent>,
        cancel,
    )?)
}

/// The fixed texts of the agent's prompts, as often as the world's own
/// words, so the tokenizer learns them.
fn agent_text(settings: &AgentSettings) -> impl Iterator<Item = String> {
    [
        settings.instructions.clone(),
        settings.final_request.clone(),
        "Your Output: [1] Title: Content:".to_string(),
    ]
    .into_iter()
    .cycle()
    .take(1200)
}

fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r).unwrap_or_default());
        out.push('\n');
    }
    write_atomic(path, out.as_bytes())
}
