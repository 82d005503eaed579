//! One thread owns a loaded model; callers talk to it through a handle.
//!
//! Requests carry their own reply channel and cancel token, and queue in
//! arrival order. Dropping the handle stops the thread after the request in
//! progress. The text codec is shared (it is immutable), so callers render
//! and tokenize prompts without a round trip to the model thread.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use exsearch_jobs::{CancelToken, Quiet};
use serde::Serialize;

use super::{Completion, Engine, GenerateEvent, GenerateRequest, ScorePair};
use crate::error::{Error, Result};
use crate::model::{Family, LoadedModel};
use crate::text::TextCodec;

/// What a client may want to know about the loaded model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub family: Family,
    pub device: String,
    pub dtype: String,
    pub parameters: u64,
    pub layers: usize,
    pub context: usize,
}

enum Request {
    Generate {
        request: GenerateRequest,
        events: Option<Sender<GenerateEvent>>,
        cancel: CancelToken,
        reply: Sender<Result<Vec<Completion>>>,
    },
    Score {
        pairs: Vec<ScorePair>,
        cancel: CancelToken,
        reply: Sender<Result<Vec<Vec<f32>>>>,
    },
    /// Runs a closure on the model thread with the engine (training uses this).
    With(Box<dyn FnOnce(&mut Engine) + Send>),
}

pub struct ModelHandle {
    tx: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    codec: Arc<TextCodec>,
    info: ModelInfo,
}

impl ModelHandle {
    /// Loads a model on a new thread (the loader runs there) and returns once
    /// it is ready, or with the loader's error.
    pub fn spawn<F>(load: F, max_batch: usize) -> Result<Self>
    where
        F: FnOnce() -> Result<LoadedModel> + Send + 'static,
    {
        let (tx, rx) = unbounded::<Request>();
        let (ready_tx, ready_rx) = bounded(1);
        let thread = std::thread::Builder::new()
            .name("exsearch-model".into())
            .spawn(move || {
                let (engine, codec) = match load() {
                    Ok(model) => {
                        let codec = model.codec.clone();
                        (Engine::new(model).with_max_batch(max_batch), codec)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok((info_of(engine.model()), codec)));
                serve(engine, rx);
            })
            .map_err(|e| Error::io("model thread", e))?;
        let (info, codec) = ready_rx.recv().map_err(|_| Error::Stopped)??;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            codec,
            info,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn codec(&self) -> &Arc<TextCodec> {
        &self.codec
    }

    fn send(&self, request: Request) -> Result<()> {
        self.tx
            .as_ref()
            .ok_or(Error::Stopped)?
            .send(request)
            .map_err(|_| Error::Stopped)
    }

    /// Queues a generation; the reply arrives on the returned channel and
    /// text deltas on `events` as they are decoded.
    pub fn submit_generate(
        &self,
        request: GenerateRequest,
        events: Option<Sender<GenerateEvent>>,
        cancel: CancelToken,
    ) -> Result<Receiver<Result<Vec<Completion>>>> {
        let (reply, rx) = bounded(1);
        self.send(Request::Generate {
            request,
            events,
            cancel,
            reply,
        })?;
        Ok(rx)
    }

    pub fn generate(
        &self,
        request: GenerateRequest,
        cancel: CancelToken,
    ) -> Result<Vec<Completion>> {
        self.submit_generate(request, None, cancel)?
            .recv()
            .map_err(|_| Error::Stopped)?
    }

    pub fn score(&self, pairs: Vec<ScorePair>, cancel: CancelToken) -> Result<Vec<Vec<f32>>> {
        let (reply, rx) = bounded(1);
        self.send(Request::Score {
            pairs,
            cancel,
            reply,
        })?;
        rx.recv().map_err(|_| Error::Stopped)?
    }

    /// Runs `f` on the model thread with exclusive access to the engine.
    pub fn with_engine<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Engine) -> T + Send + 'static,
    {
        let (reply, rx) = bounded(1);
        self.send(Request::With(Box::new(move |engine| {
            let _ = reply.send(f(engine));
        })))?;
        rx.recv().map_err(|_| Error::Stopped)
    }
}

impl Drop for ModelHandle {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut engine: Engine, rx: Receiver<Request>) {
    for request in rx {
        match request {
            Request::Generate {
                request,
                events,
                cancel,
                reply,
            } => {
                let result = match events {
                    Some(tx) => {
                        let sink = move |e: GenerateEvent| {
                            let _ = tx.send(e);
                        };
                        engine.generate(&request, &sink, &cancel)
                    }
                    None => engine.generate(&request, &Quiet, &cancel),
                };
                let _ = reply.send(result);
            }
            Request::Score {
                pairs,
                cancel,
                reply,
            } => {
                let _ = reply.send(engine.score(&pairs, &cancel));
            }
            Request::With(f) => f(&mut engine),
        }
    }
}

fn info_of(model: &LoadedModel) -> ModelInfo {
    let d = &model.decoder;
    let c = d.config();
    ModelInfo {
        name: model.name.clone(),
        family: c.family,
        device: format!("{:?}", d.device().location()),
        dtype: format!("{:?}", d.dtype()).to_lowercase(),
        parameters: c.parameter_count(),
        layers: c.num_layers,
        context: c.max_position_embeddings,
    }
}
