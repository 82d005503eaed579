//! Any OpenAI-compatible chat endpoint (Ollama, llama.cpp's server, vLLM,
//! hosted services): `POST {base}/chat/completions` with `stream: true`,
//! read as server-sent events. Requests run `concurrency` at a time; each
//! sample is its own request with its own seed. A prefill is sent as a
//! final assistant message that the server continues (`continue_final_message`
//! for vLLM; llama.cpp and Ollama continue it on their own).

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
    agent: ureq::Agent,
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
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout_read(Duration::from_secs(600))
                .build(),
        }
    }

    /// Requests in flight at once (a server with batching profits from more).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
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

    /// One streamed completion.
    fn complete(
        &self,
        prompt: &Prompt,
        (p, s): (usize, usize),
        params: &SamplingParams,
        on_delta: OnDelta<'_>,
        cancel: &CancelToken,
    ) -> Result<Generated> {
        let mut request = self.agent.post(&self.url());
        if let Some(key) = &self.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let response = match request.send_json(self.body(prompt, s, params)) {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let detail = r.into_string().unwrap_or_default();
                let detail: String = detail.chars().take(300).collect();
                return Err(self.error(format!("HTTP {code}: {}", detail.trim())));
            }
            Err(e) => return Err(self.error(e.to_string())),
        };
        let mut text = String::new();
        let mut chunks = 0;
        let mut usage = None;
        let mut finish = FinishReason::Eos;
        for line in BufReader::new(response.into_reader()).lines() {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let line = line.map_err(|e| self.error(format!("reading the stream: {e}")))?;
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                break;
            }
            let event: Value = serde_json::from_str(data)
                .map_err(|e| self.error(format!("bad event {data:?}: {e}")))?;
            if let Some(message) = event.pointer("/error/message").and_then(Value::as_str) {
                return Err(self.error(message.to_string()));
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
                let before = text.len();
                text.push_str(delta);
                // Servers apply `stop` themselves; this catches those that do not.
                if let Some((kept, stop)) = cut_at_stop(&text, &params.stop) {
                    let (kept_len, stop) = (kept.len(), stop.to_string());
                    if kept_len > before {
                        on_delta(p, s, &text[before..kept_len]);
                    }
                    text.truncate(kept_len);
                    finish = FinishReason::Stop(stop);
                    break;
                }
                on_delta(p, s, delta);
            }
            if choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(Value::as_str)
                == Some("length")
            {
                finish = FinishReason::Length;
            }
        }
        Ok(Generated {
            text,
            tokens: usage.unwrap_or(chunks),
            finish,
        })
    }
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
                    if result.is_err() {
                        // One failure fails the call: stop taking new jobs.
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(result);
                    }
                });
            }
        });
        let results: Vec<Option<Result<Generated>>> = results
            .into_iter()
            .map(|slot| slot.into_inner().ok().flatten())
            .collect();
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let mut out: Vec<Vec<Generated>> = vec![Vec::with_capacity(samples); prompts.len()];
        let mut skipped = false;
        for (&(p, _), result) in jobs.iter().zip(results) {
            match result {
                Some(r) => out[p].push(r?),
                None => skipped = true,
            }
        }
        if skipped {
            return Err(self.error("a request was not run"));
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, self.base)
    }
}
