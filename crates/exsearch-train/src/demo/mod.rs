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

use candle_core::{DType, Device, Tensor};
use exsearch_agent::eval::EvalSummary;
use exsearch_agent::generator::{Local, OracleAnswer};
use exsearch_agent::{Agent, AgentSettings, Trajectory};
use exsearch_core::{CancelToken, EventSink, Home, Library, Quiet, SyncOptions};
use exsearch_model::model::ModelConfig;
use exsearch_model::{LoadedModel, ModelHandle, ModelSource};
use serde::{Deserialize, Serialize};

use crate::adapters::AdapterNote;
use crate::em::{Rounds, RoundsConfig};
use crate::error::{Error, Result};
use crate::estep::{example_of, EStepSummary};
use crate::events::{Recorder, TrainEvent, CHARTS_DIR};
use crate::files::write_atomic;
use crate::init::init_model;
use crate::phase::Phase;
use crate::run::{evaluate_into, evaluated};
use crate::supervised::{encode, Encoded};
use crate::trainer::{evaluate_loss, TrainConfig, Trainer};
use crate::tuned::{Outputs, Tuned};
use crate::world::{World, WorldConfig, WorldQuestion};

mod config;
pub use config::{DemoConfig, ReadingConfig};

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
    /// From scratch, every weight trains.
    tuned: Tuned,
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
        self.tuned
            .vars()
            .iter()
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?)))
            .collect()
    }

    fn restore(&self, snapshot: &HashMap<String, Tensor>) -> Result<()> {
        self.tuned.set(snapshot)
    }
}

/// The agent settings a demonstration's models were trained with, in its folder.
const AGENT_FILE: &str = "agent.json";
const REPORT_FILE: &str = "report.json";

/// A demonstration's folder: its world, index, model, trajectories,
/// `runs.sqlite`, charts, a checkpoint per phase and `report.json`.
#[derive(Clone, Debug)]
pub struct Demo {
    pub name: String,
    pub dir: PathBuf,
}

impl Demo {
    /// Where the app and `exsearch demo em` keep demonstrations.
    pub fn root(home: &Home) -> PathBuf {
        home.root().join("demos")
    }

    /// Demonstration `name` in the home, which need not exist yet.
    pub fn named(home: &Home, name: &str) -> Result<Self> {
        crate::files::check_name("demonstration", name)?;
        Ok(Self {
            name: name.to_string(),
            dir: Self::root(home).join(name),
        })
    }

    /// An existing demonstration of the home.
    pub fn open(home: &Home, name: &str) -> Result<Self> {
        let demo = Self::named(home, name)?;
        if !demo.dir.is_dir() {
            return Err(Error::UnknownTraining {
                what: "demonstration",
                name: name.to_string(),
                dir: Self::root(home),
            });
        }
        Ok(demo)
    }

    /// A demonstration in any folder (`exsearch demo em --dir`).
    pub fn in_dir(dir: PathBuf) -> Self {
        let name = dir
            .file_name()
            .map_or_else(|| "demo".into(), |n| n.to_string_lossy().into_owned());
        Self { name, dir }
    }

    /// The home's demonstrations, by name.
    pub fn list(home: &Home) -> Vec<Self> {
        let mut demos: Vec<Self> = std::fs::read_dir(Self::root(home))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir() && !crate::real::RealDemo::holds(&e.path()))
            .map(|e| Self::in_dir(e.path()))
            .collect();
        demos.sort_by(|a, b| a.name.cmp(&b.name));
        demos
    }

    pub fn finished(&self) -> bool {
        self.dir.join(REPORT_FILE).is_file()
    }

    /// The report, once the demonstration has finished.
    pub fn report(&self) -> Result<Option<DemoReport>> {
        crate::files::read_json(&self.dir.join(REPORT_FILE))
    }

    fn finished_report(&self) -> Result<DemoReport> {
        self.report()?.ok_or_else(|| Error::Unfinished {
            what: format!("demonstration `{}`", self.name),
            dir: self.dir.clone(),
        })
    }

    /// The model folder of the phase validation chose: the best round, or
    /// the warm-up when no round beat it.
    pub fn best_checkpoint(&self) -> Result<PathBuf> {
        let phase = match self.finished_report()?.best_round {
            0 => Phase::Warmup,
            n => Phase::Round(n),
        };
        Ok(self.checkpoint(phase))
    }

    /// The model folder saved at the end of `phase`.
    pub fn checkpoint(&self, phase: Phase) -> PathBuf {
        self.dir.join("checkpoints").join(phase.folder())
    }

    /// The search settings its models were trained with: asking them
    /// anything needs the same ones.
    pub fn agent_settings(&self) -> Result<AgentSettings> {
        let path = self.dir.join(AGENT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::bad_file(&path, e.to_string()))
    }

    /// The world's documents, for a library.
    pub fn corpus(&self) -> PathBuf {
        self.world_dir().join("corpus")
    }

    fn world_dir(&self) -> PathBuf {
        self.dir.join("world")
    }

    pub fn charts_dir(&self) -> PathBuf {
        self.dir.join(CHARTS_DIR)
    }

    pub fn store(&self) -> Result<crate::store::RunStore> {
        crate::store::RunStore::open(&self.dir)
    }

    /// Runs the whole demonstration, afresh: its world and model come from
    /// the seed, so a folder of that name is replaced.
    pub fn run(
        &self,
        home: &Home,
        config: &DemoConfig,
        events: &dyn EventSink<TrainEvent>,
        cancel: &CancelToken,
    ) -> Result<DemoReport> {
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        }
        let started = Instant::now();
        let dir = &self.dir;
        let recorder = Recorder::open(dir, events)?;
        let events: &dyn EventSink<TrainEvent> = &recorder;
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
        let files = world.write(&self.world_dir())?;
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
        let base = model_dir.to_string_lossy().into_owned();
        let outputs = Outputs {
            home,
            name: &self.name,
            dir,
            files: &bench.files,
            base: &base,
            agent: Some(&config.agent),
        };

        if config.reading.questions > 0 {
            phase(&Phase::Reading.label());
            read_other_world(&bench, config, events, cancel)?;
        }

        // Warm-up data: the real agent, driven by an oracle that knows each
        // question's sub-queries and evidence, over the real index.
        phase("warm-up trajectories");
        let warm = oracle_trajectories(&bench, settings, &world.warmup, cancel)?;
        write_jsonl(&dir.join("warmup-trajectories.jsonl"), &warm)?;
        // The validation loss is measured on the same teacher's trajectories,
        // slips included, for questions held out of training: the warm-up
        // fits the teacher it is given, as it would on a real teacher's data
        // (a clean validation set would stop it early, before it follows the
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

        phase(&Phase::Warmup.label());
        let (warmup_epochs, warmup_steps) =
            warm_up(&bench, config, &warm_data, &valid_data, events, cancel)?;
        let after_warmup = bench.snapshot()?;
        bench
            .tuned
            .save(&outputs, Phase::Warmup, &AdapterNote::default())?;
        // Read back from the files a user can open: what is evaluated is
        // what they see.
        let test = exsearch_agent::eval::load(&files.test)?;
        let valid = exsearch_agent::eval::load(&files.valid)?;
        let train = exsearch_agent::eval::load(&files.train)?;
        let eval = |phase: Phase, split: &str| -> Result<EvalSummary> {
            let items = if split == "test" { &test } else { &valid };
            let out = dir
                .join("evals")
                .join(format!("{}-{split}.jsonl", phase.folder()));
            let s = evaluate_into(&bench.agent(settings), items, out, cancel)?;
            events.emit(evaluated(phase, split, &s));
            Ok(s)
        };
        let warm_eval = eval(Phase::Warmup, "test")?;
        let warm_valid = eval(Phase::Warmup, "valid")?;
        recorder.charts()?;

        // The EM rounds, each evaluated on the validation and test questions.
        let mut sampling = settings.clone();
        sampling.sampling.temperature = config.estep_temperature;
        let sampler = bench.agent(&sampling);
        let rounds = Rounds {
            dir,
            sampler: &sampler,
            local: &bench.local,
            decoder: &bench.decoder,
            tuned: &bench.tuned,
            outputs: &outputs,
            recorder: &recorder,
            cancel,
        };
        let mut tests: HashMap<usize, EvalSummary> = HashMap::new();
        let outcome = rounds.run(
            &RoundsConfig {
                questions: &train,
                rounds: config.rounds,
                patience: 0,
                estep: &config.estep,
                mstep: &config.mstep,
            },
            Some(warm_valid.em),
            &mut |phase| {
                let valid = eval(phase, "valid")?;
                tests.insert(phase.round().unwrap_or(0), eval(phase, "test")?);
                Ok(Some(valid.em))
            },
        )?;
        let em_steps: usize = outcome.rounds.iter().map(|r| r.steps).sum();

        // The control: the warmed-up model, the same number of optimizer
        // steps spent on more warm-up epochs.
        phase(&Phase::Control.label());
        bench.restore(&after_warmup)?;
        let control_steps = more_warm_up(&bench, config, &warm_data, em_steps, events, cancel)?;
        let control_eval = eval(Phase::Control, "test")?;
        recorder.charts()?;

        let summaries = recorder.with_store(|s| s.rounds())?;
        let rounds: Vec<RoundReport> = outcome
            .rounds
            .iter()
            .filter_map(|r| {
                let round = r.phase.round()?;
                let test = tests.get(&round)?;
                Some(RoundReport {
                    round,
                    estep: summaries
                        .iter()
                        .find(|s| s.round == round)
                        .map(|s| s.summary.clone())
                        .unwrap_or_default(),
                    mstep_steps: r.steps,
                    mstep_loss: r.last_loss.unwrap_or(0.0),
                    valid_em: r.valid_em.unwrap_or(0.0),
                    test_em: test.em,
                    test_recall: test.recall,
                })
            })
            .collect();
        let best = outcome
            .best
            .and_then(|b| rounds.iter().find(|r| r.round == b));
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
            best_round: best.map_or(0, |r| r.round),
            final_em: best.map_or(warm_eval.em, |r| r.test_em),
            final_recall: best.map_or(warm_eval.recall, |r| r.test_recall),
            rounds,
            seconds: started.elapsed().as_secs_f64(),
        };
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        write_atomic(&dir.join(REPORT_FILE), text.as_bytes())?;
        Ok(report)
    }
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
        tuned: Tuned::full(&decoder, vars),
        decoder,
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
        bench.tuned.params(),
        config.warmup.clone(),
        None,
    )?;
    trainer.run_until(
        data,
        &mut |r| {
            steps.set(r.step);
            events.emit(TrainEvent::Step {
                phase: Phase::Warmup,
                record: r.clone(),
            })
        },
        &mut |epoch| {
            let loss = evaluate_loss(&bench.decoder, valid, config.warmup.token_budget)?;
            events.emit(TrainEvent::Epoch {
                phase: Phase::Warmup,
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
        bench.tuned.params(),
        config.reading.train.clone(),
        None,
    )?;
    trainer.run(
        &data,
        &mut |r| {
            events.emit(TrainEvent::Step {
                phase: Phase::Reading,
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
        bench.tuned.params(),
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
                phase: Phase::Control,
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
    let known = questions
        .iter()
        .map(|q| {
            let answer = OracleAnswer {
                queries: q.queries.clone(),
                facts: q.facts.clone(),
                // The teacher answers what it noted.
                answer: q.facts.last().cloned().unwrap_or_default(),
            };
            (q.question.clone(), answer)
        })
        .collect();
    crate::plan::oracle_trajectories(known, &bench.library, settings, cancel)
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
