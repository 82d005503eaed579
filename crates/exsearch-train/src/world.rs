//! Synthetic multi-hop worlds: invented companies, books, people and
//! cities, one short document per entity, and two-hop questions whose
//! answer needs two searches ("In which city was the founder of Velcora
//! born?": search the company, read the founder, search the founder, read
//! the city). Every entity is new, so a model can only answer by searching.
//!
//! The same seed always gives the same world. Questions are split into
//! warm-up questions (with written sub-queries and evidence, turned into
//! trajectories by the real agent), EM training questions (answer only),
//! validation and held-out test questions.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{Error, Result};
use crate::files::write_atomic;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorldConfig {
    pub seed: u64,
    pub cities: usize,
    pub warmup: usize,
    pub train: usize,
    pub valid: usize,
    pub test: usize,
    /// Share of the warm-up questions whose written steps come from a
    /// teacher that slips, as trajectories written by a model do. It makes
    /// the two classic multi-hop mistakes, one per kind of question: for a
    /// company it notes the city the founder lives in instead of the one
    /// they were born in, and answers that; for a book it stops after the
    /// first search and answers with the author (the bridge entity) without
    /// searching for them. The gold answers stay right; only the EM rounds,
    /// which learn from gold answers, can undo the slips.
    pub teacher_error: f64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            cities: 24,
            warmup: 60,
            train: 400,
            valid: 60,
            test: 100,
            teacher_error: 0.0,
        }
    }
}

/// One entity document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub title: String,
    pub text: String,
}

impl Document {
    /// The document as its corpus file reads: a `# Title` line, then the text.
    pub fn page(&self) -> String {
        format!("# {}\n\n{}", self.title, self.text)
    }
}

/// A two-hop question with what an ideal searcher writes on the way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldQuestion {
    pub id: String,
    pub question: String,
    pub answer: String,
    pub queries: Vec<String>,
    /// The evidence the warm-up teacher notes; its last entry is the
    /// teacher's answer (the gold one unless the teacher slipped).
    pub facts: Vec<String>,
    /// Titles of the two documents that answer it.
    pub supporting: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct World {
    pub config: WorldConfig,
    pub documents: Vec<Document>,
    pub warmup: Vec<WorldQuestion>,
    pub train: Vec<WorldQuestion>,
    pub valid: Vec<WorldQuestion>,
    pub test: Vec<WorldQuestion>,
}

/// Where [`World::write`] puts each part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldFiles {
    pub corpus: PathBuf,
    pub warmup: PathBuf,
    pub train: PathBuf,
    pub valid: PathBuf,
    pub test: PathBuf,
}

const ONSETS: [&str; 16] = [
    "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr",
];
const VOWELS: [&str; 6] = ["a", "e", "i", "o", "u", "ai"];
const CODAS: [&str; 8] = ["", "", "n", "r", "l", "s", "th", "k"];
const TRADES: [&str; 8] = [
    "lamps", "boats", "clocks", "paper", "glass", "rope", "bells", "maps",
];
const JOBS: [&str; 6] = ["painter", "sailor", "teacher", "baker", "miner", "weaver"];

/// Invented words, never repeated within one world.
struct Names {
    rng: StdRng,
    used: HashSet<String>,
}

impl Names {
    fn word(&mut self, syllables: usize) -> String {
        loop {
            let mut w = String::new();
            for _ in 0..syllables {
                w.push_str(ONSETS.choose(&mut self.rng).unwrap_or(&"b"));
                w.push_str(VOWELS.choose(&mut self.rng).unwrap_or(&"a"));
                w.push_str(CODAS.choose(&mut self.rng).unwrap_or(&""));
            }
            let mut c = w.chars();
            let w: String = match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => continue,
            };
            if self.used.insert(w.clone()) {
                return w;
            }
        }
    }
}

impl World {
    pub fn generate(config: &WorldConfig) -> Result<Self> {
        let total = config.warmup + config.train + config.valid + config.test;
        if total == 0 || config.cities < 2 {
            return Err(Error::InvalidSetting(
                "a world needs at least one question and two cities".into(),
            ));
        }
        let mut names = Names {
            rng: StdRng::seed_from_u64(config.seed),
            used: HashSet::new(),
        };
        let cities: Vec<String> = (0..config.cities).map(|_| names.word(2)).collect();
        let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(1));
        let mut documents = Vec::new();
        let mut questions = Vec::new();
        for i in 0..total {
            // Each question has its own work and its own person, so no answer
            // can be learnt by heart from another question.
            let person = names.word(2);
            let born = cities.choose(&mut rng).cloned().unwrap_or_default();
            let lives = loop {
                let c = cities.choose(&mut rng).cloned().unwrap_or_default();
                if c != born {
                    break c;
                }
            };
            let job = JOBS.choose(&mut rng).unwrap_or(&"painter");
            documents.push(Document {
                title: person.clone(),
                text: format!(
                    "{person} is a {job} who was born in {born}. {person} now lives in {lives}."
                ),
            });
            let company = rng.random_bool(0.5);
            let (work, question, relation) = if company {
                let company = names.word(3);
                let trade = TRADES.choose(&mut rng).unwrap_or(&"lamps");
                let year = rng.random_range(1850..2020);
                documents.push(Document {
                    title: company.clone(),
                    text: format!(
                        "{company} is a company that makes {trade}. {company} was founded \
                         by {person} in {year}."
                    ),
                });
                (
                    company.clone(),
                    format!("In which city was the founder of {company} born?"),
                    format!("founder of {company}"),
                )
            } else {
                let book = format!("The {}", names.word(2));
                let year = rng.random_range(1850..2020);
                documents.push(Document {
                    title: book.clone(),
                    text: format!("{book} is a novel from {year}. {book} was written by {person}."),
                });
                (
                    book.clone(),
                    format!("Where was the author of {book} born?"),
                    format!("author of {book}"),
                )
            };
            let slips = i < config.warmup
                && config.teacher_error > 0.0
                && rng.random_bool(config.teacher_error.min(1.0));
            let mut queries = vec![relation, format!("{person} born")];
            let mut facts = vec![person.clone(), born.clone()];
            match (slips, company) {
                (false, _) => {}
                (true, true) => facts[1] = lives,
                (true, false) => {
                    queries.truncate(1);
                    facts.truncate(1);
                }
            }
            questions.push(WorldQuestion {
                id: format!("w{}-{i}", config.seed),
                question,
                answer: born.clone(),
                queries,
                facts,
                supporting: vec![work, person],
            });
        }
        documents.shuffle(&mut rng);
        let mut rest = questions.into_iter();
        let mut take = |n: usize| rest.by_ref().take(n).collect::<Vec<_>>();
        Ok(Self {
            config: config.clone(),
            warmup: take(config.warmup),
            train: take(config.train),
            valid: take(config.valid),
            test: take(config.test),
            documents,
        })
    }

    /// The warm-up questions' pages in pairs, each work's page then its
    /// person's: the person's name is read in one and heads the next, as a
    /// searcher repeats a name it read into its next search.
    pub fn paired_pages(&self) -> Vec<String> {
        self.warmup
            .iter()
            .flat_map(|q| q.supporting.iter().filter_map(|t| self.document(t)))
            .map(Document::page)
            .collect()
    }

    fn document(&self, title: &str) -> Option<&Document> {
        self.documents.iter().find(|d| d.title == title)
    }

    /// Writes the corpus (one Markdown file per entity) and the four
    /// question files in the QA JSONL format `exsearch eval` reads; the
    /// warm-up file also carries each question's sub-queries and evidence.
    pub fn write(&self, dir: &Path) -> Result<WorldFiles> {
        let corpus = dir.join("corpus");
        std::fs::create_dir_all(&corpus).map_err(|e| Error::io(&corpus, e))?;
        for (i, d) in self.documents.iter().enumerate() {
            let path = corpus.join(format!("{i:05}.md"));
            let body = format!("{}\n", d.page());
            write_atomic(&path, body.as_bytes())?;
        }
        let write_split = |name: &str, qs: &[WorldQuestion], with_steps: bool| -> Result<PathBuf> {
            let path = dir.join(name);
            let mut out = String::new();
            for q in qs {
                let contexts: Vec<_> = q
                    .supporting
                    .iter()
                    .filter_map(|t| self.document(t))
                    .map(|d| json!({"title": d.title, "text": d.text, "supporting": true}))
                    .collect();
                let mut row = json!({
                    "id": q.id, "question": q.question, "answers": [q.answer],
                    "contexts": contexts,
                });
                if with_steps {
                    row["queries"] = json!(q.queries);
                    row["facts"] = json!(q.facts);
                }
                out.push_str(&row.to_string());
                out.push('\n');
            }
            write_atomic(&path, out.as_bytes())?;
            Ok(path)
        };
        let files = WorldFiles {
            corpus,
            warmup: write_split("warmup.jsonl", &self.warmup, true)?,
            train: write_split("train.jsonl", &self.train, false)?,
            valid: write_split("valid.jsonl", &self.valid, false)?,
            test: write_split("test.jsonl", &self.test, false)?,
        };
        let config = serde_json::to_string_pretty(&self.config).unwrap_or_default();
        write_atomic(&dir.join("world.json"), config.as_bytes())?;
        Ok(files)
    }

    /// All text a tokenizer for this world should know.
    pub fn text(&self) -> impl Iterator<Item = String> + '_ {
        let docs = self
            .documents
            .iter()
            .map(|d| format!("{}\n{}", d.title, d.text));
        let qs = [&self.warmup, &self.train, &self.valid, &self.test]
            .into_iter()
            .flatten()
            .map(|q| {
                format!(
                    "{} {} {}",
                    q.question,
                    q.queries.join(" "),
                    q.facts.join(" ")
                )
            });
        docs.chain(qs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_world_and_every_answer_is_two_documents_away() {
        let config = WorldConfig {
            seed: 9,
            ..WorldConfig::default()
        };
        let a = World::generate(&config).expect("world");
        assert_eq!(a, World::generate(&config).expect("world"));
        assert_ne!(
            a.documents,
            World::generate(&WorldConfig {
                seed: 10,
                ..config.clone()
            })
            .expect("world")
            .documents
        );
        assert_eq!(a.test.len(), 100);
        for q in a.warmup.iter().chain(&a.test) {
            let [work, person] = [&q.supporting[0], &q.supporting[1]]
                .map(|t| a.document(t).expect("supporting document exists"));
            // The question names only the work; the work names the person;
            // only the person's page names the answer.
            assert!(q.question.contains(&work.title));
            assert!(!q.question.contains(&person.title));
            assert!(work.text.contains(&person.title));
            assert!(!work.text.contains(&q.answer));
            assert!(person.text.contains(&format!("born in {}", q.answer)));
        }
        let titles: HashSet<&str> = a.documents.iter().map(|d| d.title.as_str()).collect();
        assert_eq!(titles.len(), a.documents.len(), "titles are unique");
    }
    #[test]
    fn a_slipping_teacher_notes_the_wrong_city_or_stops_at_the_bridge_in_warm_up_steps_only() {
        let world = World::generate(&WorldConfig {
            seed: 3,
            warmup: 200,
            teacher_error: 0.5,
            ..WorldConfig::default()
        })
        .expect("world");
        let slipped = |q: &WorldQuestion| q.facts.last() != Some(&q.answer);
        let n = world.warmup.iter().filter(|q| slipped(q)).count();
        assert!((60..=140).contains(&n), "{n} of 200 slipped");
        let mut stopped = 0;
        for q in world.warmup.iter().filter(|q| slipped(q)) {
            let person = world.document(&q.supporting[1]).expect("person");
            let noted = q.facts.last().expect("a fact");
            if q.question.contains("author of") {
                // One search, and the author noted as if they were the answer.
                assert_eq!(q.queries.len(), 1);
                assert_eq!(noted, &person.title);
                stopped += 1;
            } else {
                assert_eq!(q.queries.len(), 2);
                assert!(person.text.contains(&format!("lives in {noted}")));
                assert!(person.text.contains(&format!("born in {}", q.answer)));
            }
        }
        assert!((20..=n - 20).contains(&stopped), "{stopped} of {n} stopped");
        // The questions learnt from gold answers, and the held-out ones, are
        // the teacher's business only through their gold answers.
        for q in world.train.iter().chain(&world.valid).chain(&world.test) {
            assert!(!slipped(q));
        }
    }
}
