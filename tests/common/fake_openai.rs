//! A loopback server that speaks the OpenAI chat-completions API the way
//! llama.cpp's server, vLLM and Ollama do: `POST /v1/chat/completions` with
//! `stream: true` answered as server-sent events, a content delta per word.
//! It plays back fixed replies in request order, records every request body
//! and its `Authorization` header, and ignores `stop` (so the client's own
//! stop handling is exercised). A reply starting with `HTTP 500` is sent as
//! that error instead.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    replies: VecDeque<String>,
    requests: Vec<(serde_json::Value, Option<String>)>,
}

pub struct FakeOpenAi {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FakeOpenAi {
    pub fn serve<S: Into<String>>(replies: impl IntoIterator<Item = S>) -> FakeOpenAi {
        let state = Arc::new(Mutex::new(State {
            replies: replies.into_iter().map(Into::into).collect(),
            requests: Vec::new(),
        }));
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
    let reply = {
        let mut st = state.lock().expect("lock");
        st.requests.push((body, auth));
        st.replies.pop_front().unwrap_or_default()
    };
    if let Some(message) = reply.strip_prefix("HTTP 500 ") {
        let msg = serde_json::json!({"error": {"message": message}}).to_string();
        write!(
            stream,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        )?;
        return stream.flush();
    }
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    )?;
    let mut words = 0;
    for word in reply.split_inclusive(char::is_whitespace) {
        words += 1;
        let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]});
        write!(stream, "data: {chunk}\n\n")?;
    }
    let end = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let usage = serde_json::json!({"choices": [], "usage": {"completion_tokens": words}});
    write!(stream, "data: {end}\n\ndata: {usage}\n\ndata: [DONE]\n\n")?;
    stream.flush()
}
