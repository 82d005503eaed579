//! A loopback HTTP server that serves model files the way the Hugging Face
//! hub does: `/api/models/{repo}/revision/{rev}` lists a commit's files,
//! `HEAD`/`GET /{repo}/resolve/{rev}/{file}` answers small files directly
//! (git sha1 `ETag`) and large ones with a redirect to LFS storage
//! (`X-Linked-Etag` = sha256, `X-Linked-Size`), which honours `Range`.
//! Faults can be injected: a connection cut mid-file, a throttled transfer,
//! corrupted bytes, a required token.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha1::Digest as _;

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Clone)]
struct File {
    bytes: Vec<u8>,
    etag: String,
    lfs: bool,
}

#[derive(Default)]
pub struct Faults {
    /// Cut the first transfer of each LFS file after this many bytes.
    pub cut_after: Option<usize>,
    /// Sleep between 16 KiB chunks of LFS bodies.
    pub throttle: Option<Duration>,
    /// Serve these files with one byte flipped (checksums stay the true ones).
    pub corrupt: Vec<String>,
    /// Require `Authorization: Bearer <token>` on the hub endpoints.
    pub token: Option<String>,
}

#[derive(Default)]
struct State {
    files: HashMap<String, File>,
    by_sha: HashMap<String, String>,
    cut_done: Vec<String>,
    log: Vec<String>,
}

pub struct FakeHub {
    pub endpoint: String,
    pub repo: String,
    state: Arc<Mutex<State>>,
}

impl FakeHub {
    /// Serves every file of `dir` as repository `repo`; files over 64 KiB or
    /// ending in `.safetensors`/`.gguf` are LFS files.
    pub fn serve(dir: &Path, repo: &str, faults: Faults) -> FakeHub {
        let mut state = State::default();
        for entry in std::fs::read_dir(dir).expect("fixture dir").flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string();
            let bytes = std::fs::read(&path).expect("fixture file");
            let lfs =
                bytes.len() > 65_536 || name.ends_with(".safetensors") || name.ends_with(".gguf");
            let etag = if lfs {
                hex::encode(sha2::Sha256::digest(&bytes))
            } else {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {}\0", bytes.len()).as_bytes());
                h.update(&bytes);
                hex::encode(h.finalize())
            };
            state.by_sha.insert(etag.clone(), name.clone());
            state.files.insert(name, File { bytes, etag, lfs });
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(state));
        let faults = Arc::new(faults);
        {
            let (state, faults, repo) = (state.clone(), faults.clone(), repo.to_string());
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (state, faults, repo) = (state.clone(), faults.clone(), repo.clone());
                    std::thread::spawn(move || {
                        let _ = handle(stream, &state, &faults, &repo);
                    });
                }
            });
        }
        FakeHub {
            endpoint,
            repo: repo.to_string(),
            state,
        }
    }

    /// Requests seen so far, as "METHOD path [range] [auth]".
    pub fn log(&self) -> Vec<String> {
        self.state.lock().expect("lock").log.clone()
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    headers: &[(String, String)],
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| k == "Content-Length") {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if !head {
        stream.write_all(body)?;
    }
    stream.flush()
}

fn handle(
    mut stream: TcpStream,
    state: &Mutex<State>,
    faults: &Faults,
    repo: &str,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let range = headers.get("range").cloned();
    let auth = headers.get("authorization").cloned();
    state.lock().expect("lock").log.push(format!(
        "{method} {path}{}{}",
        range.as_ref().map(|r| format!(" {r}")).unwrap_or_default(),
        if auth.is_some() { " auth" } else { "" }
    ));
    let head = method == "HEAD";
    let api = format!("/api/models/{repo}/revision/");
    let resolve = format!("/{repo}/resolve/");
    let authorized = match &faults.token {
        Some(t) => auth.as_deref() == Some(&format!("Bearer {t}")),
        None => true,
    };
    if (path.starts_with(&api) || path.starts_with(&resolve)) && !authorized {
        return respond(
            &mut stream,
            "401 Unauthorized",
            &[],
            b"{\"error\":\"Access to this repository is restricted\"}",
            head,
        );
    }
    if let Some(rev) = path.strip_prefix(&api) {
        if rev != "main" && rev != COMMIT {
            return respond(
                &mut stream,
                "404 Not Found",
                &[],
                b"{\"error\":\"Revision not found\"}",
                head,
            );
        }
        let st = state.lock().expect("lock");
        let mut names: Vec<&String> = st.files.keys().collect();
        names.sort();
        let siblings: Vec<serde_json::Value> = names
            .iter()
            .map(|n| serde_json::json!({ "rfilename": n }))
            .collect();
        let body =
            serde_json::json!({ "id": repo, "sha": COMMIT, "siblings": siblings }).to_string();
        return respond(
            &mut stream,
            "200 OK",
            &[("Content-Type".into(), "application/json".into())],
            body.as_bytes(),
            head,
        );
    }
    if let Some(rest) = path.strip_prefix(&resolve) {
        let name = rest.split_once('/').map(|(_, f)| f).unwrap_or("");
        let file = state.lock().expect("lock").files.get(name).cloned();
        let Some(file) = file else {
            return respond(
                &mut stream,
                "404 Not Found",
                &[("X-Error-Code".into(), "EntryNotFound".into())],
                b"",
                head,
            );
        };
        let mut hs = vec![("X-Repo-Commit".to_string(), COMMIT.to_string())];
        if file.lfs {
            hs.push(("X-Linked-Etag".into(), format!("\"{}\"", file.etag)));
            hs.push(("X-Linked-Size".into(), file.bytes.len().to_string()));
            hs.push(("ETag".into(), "\"not-the-content-hash\"".into()));
            // LFS storage lives on another host, as the hub's CDN does:
            // same port, but `localhost` instead of the endpoint's address.
            let port = stream.local_addr()?.port();
            hs.push((
                "Location".into(),
                format!("http://localhost:{port}/lfs/{}", file.etag),
            ));
            return respond(&mut stream, "302 Found", &hs, b"", head);
        }
        hs.push(("ETag".into(), format!("\"{}\"", file.etag)));
        return respond(&mut stream, "200 OK", &hs, &file.bytes, head);
    }
    if let Some(sha) = path.strip_prefix("/lfs/") {
        let (file, name) = {
            let st = state.lock().expect("lock");
            let name = st.by_sha.get(sha).cloned().unwrap_or_default();
            (st.files.get(&name).cloned(), name)
        };
        let Some(file) = file else {
            return respond(&mut stream, "404 Not Found", &[], b"", head);
        };
        let mut bytes = file.bytes.clone();
        if faults.corrupt.contains(&name) {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xFF;
        }
        let start = range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
            .unwrap_or(0)
            .min(bytes.len());
        let body = &bytes[start..];
        let (status, mut hs) = if start > 0 {
            (
                "206 Partial Content",
                vec![(
                    "Content-Range".to_string(),
                    format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
                )],
            )
        } else {
            ("200 OK", vec![])
        };
        hs.push(("Content-Length".into(), body.len().to_string()));
        let cut = match faults.cut_after {
            Some(n) => {
                let mut st = state.lock().expect("lock");
                if st.cut_done.contains(&name) {
                    None
                } else {
                    st.cut_done.push(name.clone());
                    Some(n.min(body.len()))
                }
            }
            None => None,
        };
        let mut head_text = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (k, v) in &hs {
            head_text.push_str(&format!("{k}: {v}\r\n"));
        }
        head_text.push_str("\r\n");
        stream.write_all(head_text.as_bytes())?;
        if head {
            return Ok(());
        }
        let send = cut.unwrap_or(body.len());
        for chunk in body[..send].chunks(16 * 1024) {
            stream.write_all(chunk)?;
            stream.flush()?;
            if let Some(pause) = faults.throttle {
                std::thread::sleep(pause);
            }
        }
        if cut.is_some() {
            // Drop the connection mid-body.
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
        return Ok(());
    }
    let mut sink = Vec::new();
    let _ = reader.read_to_end(&mut sink);
    respond(&mut stream, "404 Not Found", &[], b"", head)
}
