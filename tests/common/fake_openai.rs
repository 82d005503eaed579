//! A loopback server that speaks the OpenAI chat-completions API the way
//! llama.cpp's server, vLLM and Ollama do: `POST /v1/chat/completions` with
//! `stream: true` answered as server-sent events, a content delta per word.
//! It plays back fixed replies in request order, records every request body
//! and its `Authorization` header, and ignores `stop` (so the client's own
//! stop handling is exercised). Faults are replies too: `HTTP <code>
//! <message>` answers that status (429 with `Retry-After: 0`), and
//! `CUT <n> <text>` streams the first n words of the text and closes the
//! connection without ending the stream, as a server killed mid-answer does;
//! `STALL <ms> <text>` streams nothing for that long first, as a server
//! that hangs does.
//! Replies come from a queue in request order, or from a function of the
//! request body (`serve_by`) when requests run concurrently. With a context
//! (`with_context`) it reports it at `/props` as llama.cpp's server does,
//! and refuses with a 400, as that server does, a request whose messages
//! (a token per 4 bytes, a typical tokenizer's rate) and `max_tokens`
//! exceed it.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

type Route = Box<dyn Fn(&serde_json::Value) -> String + Send + Sync>;

#[derive(Default)]
struct State {
    replies: VecDeque<String>,
    route: Option<Route>,
    context: Option<usize>,
    requests: Vec<(serde_json::Value, Option<String>)>,
    refused: usize,
}

pub struct FakeOpenAi {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FakeOpenAi {
    pub fn serve<S: Into<String>>(replies: impl IntoIterator<Item = S>) -> FakeOpenAi {
        Self::start(State {
            replies: replies.into_iter().map(Into::into).collect(),
            ..State::default()
        })
    }

    /// Answers each request with `route(body)`.
    pub fn serve_by(
        route: impl Fn(&serde_json::Value) -> String + Send + Sync + 'static,
    ) -> FakeOpenAi {
        Self::start(State {
            route: Some(Box::new(route)),
            ..State::default()
        })
    }

    fn start(state: State) -> FakeOpenAi {
        let state = Arc::new(Mutex::new(state));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = handle(stream, &state);
                });
            }
        });
        FakeOpenAi { endpoint, state }
    }

    /// Reports `tokens` as its context and holds requests to it.
    pub fn with_context(self, tokens: usize) -> Self {
        self.state.lock().expect("lock").context = Some(tokens);
        self
    }

    /// Requests refused for exceeding the context.
    pub fn refused(&self) -> usize {
        self.state.lock().expect("lock").refused
    }

    /// Request bodies received so far, in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let st = self.state.lock().expect("lock");
        st.requests.iter().map(|(b, _)| b.clone()).collect()
    }

    /// `Authorization` headers received so far, in order.
    pub fn auth(&self) -> Vec<Option<String>> {
        let st = self.state.lock().expect("lock");
        st.requests.iter().map(|(_, a)| a.clone()).collect()
    }
}

fn handle(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut length, mut auth) = (0usize, None);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "authorization" => auth = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let context = state.lock().expect("lock").context;
    if let (Some(n_ctx), "/props") = (context, path.as_str()) {
        let msg = serde_json::json!({"default_generation_settings": {"n_ctx": n_ctx}}).to_string();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        )?;
        return stream.flush();
    }
    if path != "/v1/chat/completions" {
        let msg = b"{\"error\":{\"message\":\"not found\"}}";
        write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            msg.len()
        )?;
        return stream.write_all(msg);
    }
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(n_ctx) = context {
        let bytes: usize = body["messages"].as_array().map_or(0, |m| {
            m.iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum()
        });
        let needed = bytes / 4 + body["max_tokens"].as_u64().unwrap_or(0) as usize;
        if needed > n_ctx {
            state.lock().expect("lock").refused += 1;
            let msg = serde_json::json!({"error": {"message": format!(
                "the request exceeds the available context size ({needed} > {n_ctx} tokens)")}})
            .to_string();
            write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            )?;
            return stream.flush();
        }
    }
    let reply = {
        let mut st = state.lock().expect("lock");
        let reply = match &st.route {
            Some(route) => route(&body),
            None => st.replies.pop_front().unwrap_or_default(),
        };
        st.requests.push((body, auth));
        reply
    };
    if let Some(rest) = reply.strip_prefix("HTTP ") {
        let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
        let msg = serde_json::json!({"error": {"message": message}}).to_string();
        let retry = if code == "429" {
            "Retry-After: 0\r\n"
        } else {
            ""
        };
        write!(
            stream,
            "HTTP/1.1 {code} Error\r\nContent-Type: application/json\r\n{retry}Content-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        )?;
        return stream.flush();
    }
    let reply = match reply.strip_prefix("STALL ") {
        Some(rest) => {
            let (ms, text) = rest.split_once(' ').unwrap_or((rest, ""));
            std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
            text.to_string()
        }
        None => reply,
    };
    let (cut, reply) = match reply.strip_prefix("CUT ") {
        Some(rest) => {
            let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
            (n.parse::<usize>().ok(), text.to_string())
        }
        None => (None, reply),
    };
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    )?;
    let mut words = 0;
    for word in reply.split_inclusive(char::is_whitespace) {
        if cut == Some(words) {
            stream.flush()?;
            return stream.shutdown(std::net::Shutdown::Both);
        }
        words += 1;
        let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]});
        write!(stream, "data: {chunk}\n\n")?;
    }
    let end = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let usage = serde_json::json!({"choices": [], "usage": {"completion_tokens": words}});
    write!(stream, "data: {end}\n\ndata: {usage}\n\ndata: [DONE]\n\n")?;
    stream.flush()
}
