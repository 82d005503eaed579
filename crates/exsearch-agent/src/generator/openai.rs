//! Any OpenAI-compatible chat endpoint (Ollama, llama.cpp's server, vLLM,
//! hosted services): `POST {base}/chat/completions` with `stream: true`,
//! read as server-sent events. Requests run `concurrency` at a time; each
//! sample is its own request with its own seed. A prefill is sent as a
//! final assistant message that the server continues (`continue_final_message`
//! for vLLM; llama.cpp and Ollama continue it on their own).
//!
//! Transient failures are retried with exponential backoff ([`Retry`]): a
//! connection refused, reset or timed out (also mid-stream), HTTP 408, 429
//! (after the server's `Retry-After` when it sends one) and 5xx. Anything
//! else, such as a 400 for a prompt longer than the server's context, fails
//! at once: retrying would only fail again.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use exsearch_core::CancelToken;
use exsearch_model::{FinishReason, SamplingParams};
use serde_json::{json, Value};

use super::{cut_at_stop, Generated, Generator, OnDelta, Prompt};
use crate::error::{Error, Result};

pub struct OpenAi {
    /// Base URL ending in `/v1` (added when missing).
    base: String,
    model: String,
    api_key: Option<String>,
    concurrency: usize,
    retry: Retry,
    /// The context in tokens: set, or asked of the server once.
    context: std::sync::OnceLock<Option<usize>>,
    agent: ureq::Agent,
}

/// How a request that failed transiently is tried again: up to `attempts`
/// tries in all, waiting `first_wait`, then twice as long each time, at most
/// `max_wait` (a server's `Retry-After` is honoured up to `max_wait` too).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    pub attempts: u32,
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Retry {
    /// Five tries over about 7.5 s of waiting: enough for a server that
    /// restarts or sheds load for a moment, short enough to report a dead one.
    fn default() -> Self {
        Self {
            attempts: 5,
            first_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth another try, after `wait` when the server asked for it.
    Transient {
        message: String,
        wait: Option<Duration>,
    },
    /// Final: cancelled, or an answer that another try would repeat.
    Final(Error),
}

impl OpenAi {
    /// `endpoint` is the server's base URL, e.g. `http://localhost:11434`
    /// or `http://gpu-box:8000/v1`; `model` the name the server knows.
    pub fn new(endpoint: &str, model: &str, api_key: Option<String>) -> Self {
        let trimmed = endpoint.trim_end_matches('/');
        let base = if trimmed.ends_with("/v1") {
            trimmed.to_string()
        } else {
            format!("{trimmed}/v1")
        };
        Self {
            base,
            model: model.to_string(),
            api_key: api_key.filter(|k| !k.is_empty()),
            concurrency: 4,
            retry: Retry::default(),
            context: std::sync::OnceLock::new(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(600))
                .build(),
        }
    }

    /// How long a response may stay silent (no byte of headers or stream)
    /// before the request counts as stalled and is tried again; 10 minutes
    /// by default, as a long prompt on a slow server can take minutes.
    pub fn with_stall_timeout(mut self, timeout: Duration) -> Self {
        self.agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout_read(timeout)
            .build();
        self
    }

    /// Requests in flight at once (a server with batching profits from more).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// How transient failures are retried.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = Retry {
            attempts: retry.attempts.max(1),
            ..retry
        };
        self
    }

    /// The model's context in tokens, for a server that does not report it
    /// (or to use less of it).
    pub fn with_context(self, tokens: usize) -> Self {
        let _ = self.context.set(Some(tokens));
        self
    }

    /// What the server says its context is: llama.cpp's `/props` (the
    /// context of one slot), else `/v1/models` (vLLM's `max_model_len`,
    /// llama.cpp's `n_ctx_train`). `None` when it says nothing.
    fn server_context(&self) -> Option<usize> {
        let get = |url: &str| -> Option<Value> {
            let mut request = self.agent.get(url).timeout(Duration::from_secs(5));
            if let Some(key) = &self.api_key {
                request = request.set("Authorization", &format!("Bearer {key}"));
            }
            request.call().ok()?.into_json().ok()
        };
        let number = |v: &Value, pointers: &[&str]| {
            pointers
                .iter()
                .find_map(|p| v.pointer(p).and_then(Value::as_u64))
                .map(|n| n as usize)
                .filter(|&n| n > 0)
        };
        let root = self.base.trim_end_matches("/v1");
        get(&format!("{root}/props"))
            .and_then(|v| number(&v, &["/default_generation_settings/n_ctx", "/n_ctx"]))
            .or_else(|| {
                get(&format!("{}/models", self.base)).and_then(|v| {
                    number(&v, &["/data/0/max_model_len", "/data/0/meta/n_ctx_train"])
                })
            })
    }

    fn url(&self) -> String {
        format!("{}/chat/completions", self.base)
    }

    fn body(&self, prompt: &Prompt, sample: usize, params: &SamplingParams) -> Value {
        let mut messages: Vec<Value> = prompt
            .messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "seed": params.seed.wrapping_add(sample as u64),
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if !prompt.prefill.is_empty() {
            messages.push(json!({"role": "assistant", "content": prompt.prefill}));
            body["continue_final_message"] = json!(true);
            body["add_generation_prompt"] = json!(false);
        }
        body["messages"] = Value::Array(messages);
        if params.top_k > 0 {
            body["top_k"] = json!(params.top_k);
        }
        if !params.stop.is_empty() {
            body["stop"] = json!(params.stop);
        }
        body
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Endpoint {
            url: self.url(),
            message: message.into(),
        }
    }

    /// One streamed completion, tried again on transient failures. Text
    /// already streamed to `on_delta` by a failed attempt is not streamed
    /// again: a retry's deltas start where the last attempt's stopped.
    fn complete(
        &self,
        prompt: &Prompt,
        (p, s): (usize, usize),
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Generated> {
        let mut shown = 0;
        let mut wait = self.retry.first_wait;
        for attempt in 1.. {
            match self.attempt(prompt, (p, s), params, on_delta, &mut shown, cancel) {
                Ok(generated) => return Ok(generated),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Transient { message, .. }) if attempt >= self.retry.attempts => {
                    return Err(self.error(format!("{message} (gave up after {attempt} tries)")));
                }
                Err(Failure::Transient { wait: asked, .. }) => {
                    sleep(asked.unwrap_or(wait).min(self.retry.max_wait), cancel)?;
                    wait = (wait * 2).min(self.retry.max_wait);
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// One try at a streamed completion. `shown` counts the bytes of text
    /// already passed to `on_delta`, over every try.
    fn attempt(
        &self,
        prompt: &Prompt,
        (p, s): (usize, usize),
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        shown: &mut usize,
        cancel: &CancelToken,
    ) -> std::result::Result<Generated, Failure> {
        let transient = |message: String| Failure::Transient {
            message,
            wait: None,
        };
        if cancel.is_cancelled() {
            return Err(Failure::Final(Error::Cancelled));
        }
        let mut request = self.agent.post(&self.url());
        if let Some(key) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let response = match request.send_json(self.body(prompt, s, params)) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let wait = r
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = r.into_string().unwrap_or_default();
                // The server's own message when it sends OpenAI's error object.
                let detail = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_owned))
                    .unwrap_or(body);
                let detail: String = detail.trim().chars().take(300).collect();
                let message = format!("HTTP {code}: {detail}");
                return Err(match code {
                    408 | 429 | 500..=599 => Failure::Transient { message, wait },
                    _ => Failure::Final(self.error(message)),
                });
            }
            Err(e) => return Err(transient(e.to_string())),
        };
        let mut text = String::new();
        let mut chunks = 0;
        let mut usage = None;
        let mut finish = FinishReason::Eos;
        // Whether the server said it was done; a stream that just stops
        // (a server killed mid-answer) is a transient failure, not an answer.
        let mut ended = false;
        // Passes on what this try adds beyond what earlier tries showed.
        let mut show = |text: &str| {
            if let Some(new) = text.get(*shown..).filter(|n| !n.is_empty()) {
                on_delta(p, s, new);
                *shown = text.len();
            }
        };
        for line in BufReader::new(response.into_reader()).lines() {
            if cancel.is_cancelled() {
                return Err(Failure::Final(Error::Cancelled));
            }
            let line = line.map_err(|e| transient(format!("reading the stream: {e}")))?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                ended = true;
                break;
            }
            let event: Value = serde_json::from_str(data)
                .map_err(|e| Failure::Final(self.error(format!("bad event {data:?}: {e}"))))?;
            if let Some(message) = event.pointer("/error/message").and_then(Value::as_str) {
                return Err(Failure::Final(self.error(message.to_string())));
            }
            if let Some(n) = event
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64)
            {
                usage = Some(n as usize);
            }
            let choice = event.pointer("/choices/0");
            if let Some(delta) = choice
                .and_then(|c| c.pointer("/delta/content"))
                .and_then(Value::as_str)
            {
                chunks += 1;
                text.push_str(delta);
                // Servers apply `stop` themselves; this catches those that do not.
                if let Some((kept, stop)) = cut_at_stop(&text, &params.stop) {
                    let (kept_len, stop) = (kept.len(), stop.to_string());
                    text.truncate(kept_len);
                    show(&text);
                    finish = FinishReason::Stop(stop);
                    ended = true;
                    break;
                }
                show(&text);
            }
            match choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(Value::as_str)
            {
                Some("length") => {
                    finish = FinishReason::Length;
                    ended = true;
                }
                Some(_) => ended = true,
                None => {}
            }
        }
        if !ended {
            return Err(transient("the stream ended before the answer did".into()));
        }
        Ok(Generated {
            text,
            tokens: usage.unwrap_or(chunks),
            finish,
        })
    }
}

/// Waits `how_long`, or less when `cancel` is set.
fn sleep(how_long: Duration, cancel: &CancelToken) -> Result<()> {
    let until = std::time::Instant::now() + how_long;
    while std::time::Instant::now() < until {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        std::thread::sleep(
            Duration::from_millis(20)
                .min(until.saturating_duration_since(std::time::Instant::now())),
        );
    }
    Ok(())
}

impl Generator for OpenAi {
    fn generate(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Vec<Vec<Generated>>> {
        self.generate_each(prompts, samples, params, on_delta, cancel)?
            .into_iter()
            .collect()
    }

    /// Every (prompt, sample) is its own request, `concurrency` at a time;
    /// one that fails (after its retries) fails only its prompt.
    fn generate_each(
        &self,
        prompts: &[Prompt],
        samples: usize,
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Vec<Result<Vec<Generated>>>> {
        let jobs: Vec<(usize, usize)> = (0..prompts.len())
            .flat_map(|p| (0..samples).map(move |s| (p, s)))
            .collect();
        let results: Vec<Mutex<Option<Result<Generated>>>> =
            jobs.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..self.concurrency.min(jobs.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(p, s)) = jobs.get(i) else { break };
                    let result = self.complete(&prompts[p], (p, s), params, on_delta, cancel);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                });
            }
        });
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let mut out: Vec<Result<Vec<Generated>>> = (0..prompts.len())
            .map(|_| Ok(Vec::with_capacity(samples)))
            .collect();
        for (&(p, _), slot) in jobs.iter().zip(results) {
            let result = slot
                .into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(self.error("a request was not run")));
            match (&mut out[p], result) {
                (Ok(row), Ok(g)) => row.push(g),
                (Ok(_), Err(e)) => out[p] = Err(e),
                (Err(_), _) => {}
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, self.base)
    }

    fn context_tokens(&self) -> Option<usize> {
        *self.context.get_or_init(|| self.server_context())
    }
}
