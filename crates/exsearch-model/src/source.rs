//! Where a model comes from, and which files make it up.
//!
//! A model is named by a local folder (config.json, tokenizer.json,
//! tokenizer_config.json, *.safetensors with or without an index), a single
//! `.gguf` file, or a hub repository id (`Qwen/Qwen2.5-0.5B-Instruct`,
//! optionally `@revision` and `:file.gguf`) read from the local HF cache.
//! Resolving never touches the network: a missing file is reported by name,
//! with the command that would fetch it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::hub::HubCache;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    Dir(PathBuf),
    Gguf(PathBuf),
    Hub {
        repo: String,
        revision: String,
        file: Option<String>,
    },
}

/// The weight files of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightFiles {
    Safetensors(Vec<PathBuf>),
    Gguf(PathBuf),
}

/// Every file the loader reads, resolved to paths that exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelFiles {
    pub name: String,
    pub config: Option<PathBuf>,
    pub tokenizer: Option<PathBuf>,
    pub tokenizer_config: Option<PathBuf>,
    pub generation_config: Option<PathBuf>,
    pub weights: WeightFiles,
}

impl std::str::FromStr for ModelSource {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(Self::Dir(path.to_path_buf()));
        }
        if path.is_file() {
            return if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            {
                Ok(Self::Gguf(path.to_path_buf()))
            } else {
                Err(Error::Unsupported(format!(
                    "{spec}: a model file must be .gguf; for safetensors give the folder"
                )))
            };
        }
        let (rest, file) = match spec.split_once(':') {
            Some((r, f)) => (r, Some(f.to_string())),
            None => (spec, None),
        };
        let (repo, revision) = match rest.split_once('@') {
            Some((r, v)) => (r, v.to_string()),
            None => (rest, "main".to_string()),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match repo.split_once('/') {
            Some((org, name)) if valid(org) && valid(name) && !spec.starts_with('.') => Ok(Self::Hub {
                repo: repo.to_string(),
                revision,
                file,
            }),
            _ => Err(Error::Missing {
                path: PathBuf::from(spec),
                hint: "no such folder or .gguf file, and not a hub repository id like Qwen/Qwen2.5-0.5B-Instruct".into(),
            }),
        }
    }
}

impl ModelSource {
    /// Finds the model's files locally (folder, file, or HF cache snapshot).
    pub fn resolve(&self, cache: &HubCache) -> Result<ModelFiles> {
        match self {
            Self::Dir(dir) => resolve_dir(dir, &dir.display().to_string(), None, ""),
            Self::Gguf(path) => Ok(gguf_files(path, path.display().to_string())),
            Self::Hub {
                repo,
                revision,
                file,
            } => {
                let pull = match revision.as_str() {
                    "main" => format!("exsearch model pull {repo}"),
                    rev => format!("exsearch model pull {repo} --revision {rev}"),
                };
                let commit = cache
                    .commit_of(repo, revision)
                    .ok_or_else(|| Error::Missing {
                        path: cache.repo_dir(repo),
                        hint: format!(
                            "{repo}@{revision} is not downloaded (and no folder `{repo}` exists here); run `{pull}`"
                        ),
                    })?;
                let dir = cache.snapshot_dir(repo, &commit);
                let name = format!("{repo}@{}", &commit[..commit.len().min(10)]);
                resolve_dir(&dir, &name, file.as_deref(), &format!("; run `{pull}`"))
            }
        }
    }
}

fn gguf_files(path: &Path, name: String) -> ModelFiles {
    // A tokenizer.json next to a GGUF file takes precedence over its metadata.
    let dir = path.parent().unwrap_or(Path::new("."));
    let beside = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
    ModelFiles {
        name,
        config: None,
        tokenizer: beside("tokenizer.json"),
        tokenizer_config: beside("tokenizer_config.json"),
        generation_config: None,
        weights: WeightFiles::Gguf(path.to_path_buf()),
    }
}

fn resolve_dir(dir: &Path, name: &str, file: Option<&str>, hint: &str) -> Result<ModelFiles> {
    let missing = |p: PathBuf, what: &str| Error::Missing {
        path: p,
        hint: format!("{what}{hint}"),
    };
    if let Some(file) = file {
        let path = dir.join(file);
        return if path.is_file() {
            Ok(gguf_files(&path, format!("{name}:{file}")))
        } else {
            Err(missing(path, "the file is not in this snapshot"))
        };
    }
    let optional = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
    let mut listing: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    listing.sort();
    let has_ext = |p: &Path, ext: &str| p.extension().is_some_and(|e| e == ext) && p.is_file();
    let index = dir.join("model.safetensors.index.json");
    let safetensors = if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::bad_file(&index, e.to_string()))?;
        let mut shards: Vec<String> = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::bad_file(&index, "no `weight_map`"))?
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        shards.sort();
        shards.dedup();
        let mut paths = Vec::new();
        for shard in shards {
            let p = dir.join(&shard);
            if !p.is_file() {
                return Err(missing(
                    p,
                    "a shard listed in model.safetensors.index.json is missing",
                ));
            }
            paths.push(p);
        }
        paths
    } else {
        listing
            .iter()
            .filter(|p| has_ext(p, "safetensors"))
            .cloned()
            .collect()
    };
    let ggufs: Vec<&PathBuf> = listing.iter().filter(|p| has_ext(p, "gguf")).collect();
    if safetensors.is_empty() {
        return match ggufs.as_slice() {
            [one] => Ok(gguf_files(one, name.to_string())),
            [] => Err(missing(
                dir.join("model.safetensors"),
                "no *.safetensors or *.gguf weights",
            )),
            many => Err(Error::InvalidOption(format!(
                "{} holds several GGUF files ({}); name one as `{name}:FILE` or give its path",
                dir.display(),
                many.iter()
                    .filter_map(|p| p.file_name()?.to_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    let config = dir.join("config.json");
    if !config.is_file() {
        return Err(missing(config, "the model's config.json is missing"));
    }
    let tokenizer = dir.join("tokenizer.json");
    if !tokenizer.is_file() {
        return Err(missing(tokenizer, "the model's tokenizer.json is missing"));
    }
    Ok(ModelFiles {
        name: name.to_string(),
        config: Some(config),
        tokenizer: Some(tokenizer),
        tokenizer_config: optional("tokenizer_config.json"),
        generation_config: optional("generation_config.json"),
        weights: WeightFiles::Safetensors(safetensors),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_ids_with_revision_and_file() {
        let s: ModelSource = "Qwen/Qwen2.5-0.5B-Instruct-GGUF@v1:qwen2.5-0.5b-instruct-q8_0.gguf"
            .parse()
            .expect("repo id");
        assert_eq!(
            s,
            ModelSource::Hub {
                repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF".into(),
                revision: "v1".into(),
                file: Some("qwen2.5-0.5b-instruct-q8_0.gguf".into())
            }
        );
        let err = "./no/such/thing"
            .parse::<ModelSource>()
            .expect_err("not a repo");
        assert!(err.to_string().contains("./no/such/thing"), "{err}");
    }

    #[test]
    fn a_missing_hub_model_names_the_pull_command() {
        let cache = HubCache::new(tempfile::tempdir().expect("tmp").path());
        let s: ModelSource = "Qwen/Qwen3-0.6B".parse().expect("repo id");
        let err = s.resolve(&cache).expect_err("not downloaded");
        assert!(
            err.to_string()
                .contains("exsearch model pull Qwen/Qwen3-0.6B"),
            "{err}"
        );
    }
}
