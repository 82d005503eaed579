//! Every shell command through Tauri's mock runtime: the same IPC path the
//! webview uses (JSON arguments in, JSON or a `{code, message}` error out),
//! over a real library, settings file and chat store in a temp directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use candle_core::DType;
use exsearch_core::Home;
use exsearch_desktop::{builder, Shell};
use exsearch_model::fixtures;
use exsearch_model::model::Family;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, MockRuntime};
use tauri::webview::InvokeRequest;
use tauri::{Manager, WebviewWindow};
use tempfile::TempDir;

#[path = "../../tests/common/fake_hub.rs"]
mod fake_hub;
#[path = "../../tests/common/qa.rs"]
mod qa;
mod shapes;
mod training;
use fake_hub::{FakeHub, Faults};

struct App {
    app: tauri::App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    home: PathBuf,
    /// The shapes of the answers, for the UI tests' scripted backend.
    shapes: shapes::Recorder,
}

fn app(home: &Path) -> App {
    static HF: Once = Once::new();
    HF.call_once(|| {
        // The model cache the models page lists: empty, and never the
        // developer's own.
        let dir = std::env::temp_dir().join(format!("exsearch-shell-hf-{}", std::process::id()));
        std::env::set_var("HF_HOME", dir);
    });
    // The app's real context: its config and the capabilities that grant
    // the main window each command (a command missing from them fails here).
    let app = builder(Shell::new(Home::at(home)))
        .build(tauri::generate_context!())
        .expect("mock app");
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("mock window");
    App {
        app,
        window,
        home: home.to_owned(),
        shapes: shapes::Recorder::default(),
    }
}

impl App {
    /// Calls `cmd` the way the frontend does; `Err` holds the error object.
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.window,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().expect("url"),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: self.app.invoke_key().to_string(),
            },
        )
        .map(|body| {
            let answer = body.deserialize::<Value>().expect("json response");
            self.shapes.record(cmd, &answer);
            answer
        })
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.call(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }

    /// Registers and indexes `folder` as the Library page does; its report.
    fn add_folder(&self, folder: impl serde::Serialize, job: &str) -> Value {
        self.ok(
            "library_add",
            json!({"paths": [folder], "job": job, "onEvent": channel(1)}),
        )
    }
}

/// A channel argument as the frontend's `new Channel()` serializes it.
fn channel(id: u32) -> Value {
    json!(format!("__CHANNEL__:{id}"))
}

/// Two notes and a corrupt PDF.
fn documents(dir: &Path) -> PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).expect("mkdir");
    std::fs::write(
        docs.join("unicorns.md"),
        "# Unicorns\n\nThe unicorn of Velcora was first described by Amsel Trent in 1821. \
         It lived in the northern forests and ate only silver moss.\n",
    )
    .expect("write");
    std::fs::write(
        docs.join("harbour.txt"),
        "The harbour of Lune was rebuilt after the storm of 1904 by the engineer Ida Rusk.\n",
    )
    .expect("write");
    std::fs::write(docs.join("broken.pdf"), b"%PDF-1.7\nthis is not a pdf body").expect("write");
    docs
}

#[test]
fn library_commands_index_list_search_and_show_a_passage_in_context() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let docs = documents(tmp.path());

    let report = app.add_folder(&docs, "index-1");
    assert_eq!(report["indexed"], 2, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(report["cancelled"], false);
    // A finished job leaves no mark; one cut off by a closing app does, and
    // the next start sees it (the frontend then resumes with a rescan).
    assert_eq!(app.ok("app_info", json!({}))["indexing_interrupted"], false);
    std::fs::write(app.home.join("indexing.running"), "index-0").expect("marker");
    assert_eq!(app.ok("app_info", json!({}))["indexing_interrupted"], true);
    app.ok(
        "library_sync",
        json!({"job": "resume", "onEvent": channel(9)}),
    );
    assert_eq!(app.ok("app_info", json!({}))["indexing_interrupted"], false);

    let status = app.ok("library_status", json!({}));
    assert_eq!(status["documents"], 2);
    let failed = status["failed"].as_array().expect("failed list");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["path"]
        .as_str()
        .unwrap_or("")
        .ends_with("broken.pdf"));
    assert!(!failed[0]["reason"].as_str().unwrap_or("").is_empty());

    let listed = app.ok("library_documents", json!({}));
    let statuses: Vec<(String, String)> = listed
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| {
            let name = Path::new(d["path"].as_str().unwrap_or(""))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, d["status"].as_str().unwrap_or("").to_string())
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("broken.pdf".to_string(), "failed".to_string()),
            ("harbour.txt".to_string(), "indexed".to_string()),
            ("unicorns.md".to_string(), "indexed".to_string()),
        ]
    );

    let hits = app.ok(
        "library_search",
        json!({"query": "silver moss unicorn", "k": 5}),
    );
    let hit = &hits[0];
    assert!(
        hit["path"].as_str().unwrap_or("").ends_with("unicorns.md"),
        "{hits}"
    );

    // Hybrid retrieval is the default: the sync fetched the sentence
    // encoder and embedded every passage, and scores are fused ranks.
    let status = app.ok("library_status", json!({}));
    assert_eq!(status["retrieval"], "hybrid", "{status}");
    assert_eq!(status["encoder"], "all-MiniLM-L6-v2", "{status}");
    assert_eq!(status["vectors"], status["passages"], "{status}");
    let fused = hit["score"].as_f64().unwrap_or(2.0);
    assert!(fused <= 1.0, "a fused score is at most 1: {fused}");
    // The switch is saved; BM25 alone still finds it, with BM25's score.
    let bm25 = app.ok("library_set_retrieval", json!({"retrieval": "bm25"}));
    assert_eq!(bm25["retrieval"], "bm25");
    assert_eq!(app.ok("library_status", json!({}))["retrieval"], "bm25");
    let lexical = app.ok(
        "library_search",
        json!({"query": "silver moss unicorn", "k": 5}),
    );
    assert_eq!(lexical[0]["passage_id"], hit["passage_id"], "{lexical}");
    assert!(
        lexical[0]["score"].as_f64().unwrap_or(0.0) > 1.0,
        "{lexical}"
    );
    app.ok("library_set_retrieval", json!({"retrieval": "hybrid"}));
    // OCR is on unless turned off, and the switch is saved.
    assert_eq!(status["ocr"], true, "{status}");
    let off = app.ok("library_set_ocr", json!({"on": false}));
    assert_eq!(off["ocr"], false, "{off}");
    assert_eq!(app.ok("library_status", json!({}))["ocr"], false);
    assert_eq!(app.ok("library_set_ocr", json!({"on": true}))["ocr"], true);

    // A citation opens the passage in its file, with the text around it.
    let context = app.ok(
        "passage_context",
        json!({"path": hit["path"], "page": hit["page"],
               "charStart": hit["char_start"], "charEnd": hit["char_end"]}),
    );
    let words = |v: &Value| {
        v.as_str()
            .unwrap_or("")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(words(&context["passage"]), words(&hit["text"]));
    assert!(context["starts_document"].as_bool().unwrap_or(false));
    let whole = format!(
        "{}{}{}",
        context["before"].as_str().unwrap_or(""),
        context["passage"].as_str().unwrap_or(""),
        context["after"].as_str().unwrap_or("")
    );
    assert!(whole.contains("ate only silver moss"), "{whole}");

    // Files outside the library's folders are refused, whatever the path.
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, "not for the frontend").expect("write");
    for cmd in ["passage_context", "open_document"] {
        let err = app
            .call(
                cmd,
                json!({"path": secret, "page": null, "charStart": 0, "charEnd": 5}),
            )
            .expect_err("outside the library");
        assert_eq!(err["code"], "outside_library", "{cmd}: {err}");
        assert!(err["message"].as_str().unwrap_or("").contains("secret.txt"));
    }
    let sneaky = docs.join("..").join("secret.txt");
    let err = app
        .call(
            "passage_context",
            json!({"path": sneaky, "page": null, "charStart": 0, "charEnd": 5}),
        )
        .expect_err("dot-dot out of the library");
    assert_eq!(err["code"], "outside_library");

    // Rescanning finds nothing new; removing the folder empties the library.
    let again = app.ok(
        "library_sync",
        json!({"job": "index-2", "onEvent": channel(2)}),
    );
    assert_eq!(again["indexed"], 0, "{again}");
    assert_eq!(app.ok("library_remove", json!({"path": docs})), 3);
    assert_eq!(app.ok("library_status", json!({}))["documents"], 0);
    let err = app
        .call("library_remove", json!({"path": docs}))
        .expect_err("not in the library any more");
    assert_eq!(err["code"], "unknown_folder");
    app.shapes.check("library");
}

#[test]
fn adding_a_missing_folder_names_it() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let missing = tmp.path().join("no-such-folder");
    let err = app
        .call(
            "library_add",
            json!({"paths": [missing], "job": "j", "onEvent": channel(1)}),
        )
        .expect_err("missing folder");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("no-such-folder"),
        "{err}"
    );
    // The failed job let go of its id: the same id can run again.
    let docs = documents(tmp.path());
    app.add_folder(&docs, "j");
}

#[test]
fn settings_are_validated_saved_and_read_back() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let mut settings = app.ok("settings_get", json!({}));
    // The UI tests' scripted backend starts from these very defaults.
    shapes::check_sample("default-settings", &settings);
    assert_eq!(
        settings["model"],
        Value::Null,
        "no model before the person picks one"
    );
    assert_eq!(settings["theme"], "system");

    settings["device"] = json!("tpu");
    let err = app
        .call("settings_set", json!({"settings": settings}))
        .expect_err("unknown device");
    assert_eq!(err["code"], "invalid_setting");
    assert!(
        err["message"].as_str().unwrap_or("").starts_with("device:"),
        "{err}"
    );
    assert!(!app.home.join("desktop.json").exists(), "nothing saved");

    settings["device"] = json!("cpu");
    settings["theme"] = json!("dark");
    settings["agent"]["k"] = json!(3);
    app.ok("settings_set", json!({"settings": settings}));
    let back = app.ok("settings_get", json!({}));
    assert_eq!(back, settings);
    // A fresh app on the same data directory sees them too.
    let again = self::app(&app.home);
    assert_eq!(again.ok("settings_get", json!({}))["agent"]["k"], 3);
    assert_eq!(again.ok("app_info", json!({}))["settings"]["theme"], "dark");
    app.shapes.check("settings");
}

#[test]
fn asking_without_a_model_says_so_and_stores_nothing() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let err = app
        .call(
            "ask",
            json!({"question": "who rebuilt the harbour?", "conversation": null,
                   "method": "exsearch", "job": "ask-1", "onEvent": channel(1)}),
        )
        .expect_err("no model");
    assert_eq!(err["code"], "no_model");
    assert!(err["message"]
        .as_str()
        .unwrap_or("")
        .contains("Models page"));
    assert_eq!(app.ok("chats_list", json!({})), json!([]));
    // Searching works without a model.
    let docs = documents(tmp.path());
    app.add_folder(&docs, "i");
    let hits = app.ok("library_search", json!({"query": "harbour storm", "k": 3}));
    assert!(hits[0]["path"]
        .as_str()
        .unwrap_or("")
        .ends_with("harbour.txt"));
}

#[test]
fn a_question_is_answered_by_a_local_model_and_kept_as_a_conversation() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let docs = documents(tmp.path());
    app.add_folder(&docs, "i");
    let model = tmp.path().join("tiny-model");
    fixtures::write_hf_model(&model, &fixtures::tiny_config(Family::Qwen2), 7, DType::F32)
        .expect("tiny model");
    let mut settings = app.ok("settings_get", json!({}));
    settings["model"] = json!(model);
    settings["device"] = json!("cpu");
    settings["agent"]["max_steps"] = json!(2);
    settings["agent"]["step_tokens"] = json!(12);
    settings["agent"]["answer_tokens"] = json!(6);
    app.ok("settings_set", json!({"settings": settings}));

    let asked = app.ok(
        "ask",
        json!({"question": "Who rebuilt the harbour of Lune?", "conversation": null,
               "method": "exsearch", "job": "ask-1", "onEvent": channel(2)}),
    );
    let conversation = asked["conversation"].as_i64().expect("conversation id");
    let trajectory = &asked["trajectory"];
    assert_eq!(trajectory["question"], "Who rebuilt the harbour of Lune?");
    assert!(
        trajectory["model_calls"].as_u64().unwrap_or(0) >= 2,
        "{trajectory}"
    );
    assert_ne!(trajectory["end"], "cancelled");

    let list = app.ok("chats_list", json!({}));
    assert_eq!(list[0]["id"], conversation);
    assert_eq!(list[0]["turns"], 1);

    // A follow-up goes into the same conversation; rag takes one search.
    let follow = app.ok(
        "ask",
        json!({"question": "And when?", "conversation": conversation,
               "method": "rag", "job": "ask-2", "onEvent": channel(3)}),
    );
    assert_eq!(follow["conversation"], conversation);
    assert_eq!(
        follow["trajectory"]["steps"].as_array().map(Vec::len),
        Some(1)
    );
    let shown = app.ok("chat_get", json!({"id": conversation}));
    let turns = shown["turns"].as_array().expect("turns");
    assert_eq!(turns.len(), 2);
    assert!(turns.iter().all(|t| t["status"] == "answered"), "{shown}");
    assert_eq!(turns[1]["method"], "rag");

    app.ok("chat_delete", json!({"id": conversation}));
    assert_eq!(app.ok("chats_list", json!({})), json!([]));
    let err = app
        .call("chat_get", json!({"id": conversation}))
        .expect_err("deleted");
    assert!(err["message"]
        .as_str()
        .unwrap_or("")
        .contains(&conversation.to_string()));
    app.shapes.check("chat");
}

#[test]
fn the_folder_watch_runs_beside_syncs_and_stops_when_cancelled() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let docs = documents(tmp.path());
    app.add_folder(&docs, "i");
    assert_eq!(
        app.ok("library_status", json!({}))["watch"],
        true,
        "on by default"
    );
    let off = app.ok("library_set_watch", json!({"on": false}));
    assert_eq!(off["watch"], false);
    assert_eq!(
        app.ok("library_set_watch", json!({"on": true}))["watch"],
        true
    );

    // While the watch runs, a file changes and a sync runs beside it (the
    // watch holds no lock), then the watch is cancelled and returns.
    let shell = Arc::clone(&*app.app.state::<Arc<Shell>>());
    let home = Home::at(&app.home);
    let side = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(500));
        std::fs::write(
            docs.join("new.md"),
            "# Walrus\n\nThe walrus lives on ice floes.\n",
        )
        .expect("write");
        let mut library = exsearch_core::Library::open(&home).expect("open");
        let report = library
            .sync(
                &exsearch_core::SyncOptions::default(),
                &exsearch_core::Quiet,
                &exsearch_core::CancelToken::new(),
            )
            .expect("a sync runs while the watch does");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(shell.cancel("watch-1"), "the watch is a running job");
        report.indexed
    });
    let started = std::time::Instant::now();
    let done = app.ok(
        "library_watch",
        json!({"job": "watch-1", "onEvent": channel(7)}),
    );
    assert_eq!(done, Value::Null);
    assert_eq!(side.join().expect("side thread"), 1);
    assert!(
        started.elapsed().as_secs() < 30,
        "cancel ends the watch promptly"
    );
    app.shapes.check("watch");
}

#[test]
fn jobs_are_cancelled_by_id_and_ids_are_released() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    assert_eq!(app.ok("job_cancel", json!({"job": "nothing"})), false);

    let shell = Shell::new(Home::at(tmp.path()));
    let job = shell.begin_job("index-9").expect("first");
    assert!(shell.begin_job("index-9").is_err(), "one job per id");
    assert!(shell.cancel("index-9"));
    assert!(job.cancel.is_cancelled());
    drop(job);
    assert!(!shell.cancel("index-9"), "a finished job is gone");
    shell.begin_job("index-9").expect("the id is free again");
    app.shapes.check("jobs");
}

#[test]
fn the_page_cannot_call_plugin_commands_directly() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    // The folder picker and the opener run inside the app's own commands,
    // which check their input; the page itself is granted neither.
    for cmd in ["plugin:dialog|open", "plugin:opener|open_path"] {
        let err = app
            .call(cmd, json!({"path": "/etc/passwd", "options": {}}))
            .expect_err("not granted");
        assert!(err.to_string().contains("not allowed"), "{cmd}: {err}");
    }
}

#[test]
fn the_models_page_lists_the_catalog_and_downloads_into_the_cache() {
    let tmp = TempDir::new().expect("tmp");
    let app = app(&tmp.path().join("home"));
    let models = app.ok("models_list", json!({}));
    let repos: Vec<&str> = models["catalog"]
        .as_array()
        .expect("catalog")
        .iter()
        .filter_map(|m| m["repo"].as_str())
        .collect();
    assert!(repos.contains(&"Qwen/Qwen2.5-0.5B-Instruct"), "{repos:?}");
    assert!(
        models["catalog"][0]["cpu_memory_gb"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(models["local"], json!([]));

    // A download from a loopback hub, cut mid-file and resumed.
    let src = tmp.path().join("repo");
    fixtures::write_hf_model(&src, &fixtures::tiny_config(Family::Qwen2), 1, DType::F32)
        .expect("tiny model");
    let hub = FakeHub::serve(
        &src,
        "tiny/model",
        Faults {
            cut_after: Some(20_000),
            ..Default::default()
        },
    );
    // Only this test downloads, so only it sets the endpoint.
    std::env::set_var("HF_ENDPOINT", &hub.endpoint);
    let report = app.ok(
        "model_pull",
        json!({"repo": "tiny/model", "revision": null, "include": null,
               "job": "pull", "onEvent": channel(1)}),
    );
    assert_eq!(report["commit"], fake_hub::COMMIT);
    assert!(report["files"]
        .as_array()
        .expect("files")
        .iter()
        .any(|f| f["name"] == "model.safetensors"));
    let local = app.ok("models_list", json!({}))["local"].clone();
    assert_eq!(local[0]["repo"], "tiny/model", "{local}");
    assert!(
        hub.log().iter().any(|l| l.contains("bytes=")),
        "resumed with a Range request"
    );
    app.shapes.check("models");
}
