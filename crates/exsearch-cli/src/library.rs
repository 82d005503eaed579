//! `exsearch library ...`: add, sync, watch, remove, status, check.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use exsearch_core::{
    CancelToken, EventSink, Home, Library, LibraryEvent, Retrieval, SyncOptions, SyncReport,
    WatchEvent,
};

use crate::output;

#[derive(Subcommand)]
pub enum LibraryCommand {
    /// Register folders and index them (then the whole library is synced)
    Add {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        opts: SyncArgs,
    },
    /// Rescan every folder: index new and changed files, drop deleted ones
    Sync {
        #[command(flatten)]
        opts: SyncArgs,
    },
    /// Keep the index current: sync now, then whenever files in the
    /// library's folders are created, changed, renamed or deleted (Ctrl-C
    /// stops)
    Watch {
        /// Wait for this many milliseconds of quiet after a change before syncing
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
        debounce_ms: u64,
        #[command(flatten)]
        opts: SyncArgs,
    },
    /// Unregister a folder and drop its documents from the index
    Remove { dir: PathBuf },
    /// Show folders, counts and the files that could not be indexed
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Verify that the catalog and the passage index agree
    Check {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct SyncArgs {
    /// Skip files larger than this many MiB (saved for later syncs; default 100)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    max_file_mb: Option<u64>,
    /// Extractor threads [default: one per core]
    #[arg(long)]
    threads: Option<usize>,
    /// Print the final report as JSON
    #[arg(long)]
    json: bool,
    /// Rank passages with `hybrid` (BM25 fused with the all-MiniLM-L6-v2
    /// sentence encoder, fetched once; new passages are embedded after each
    /// sync) or `bm25` alone; saved with the library [default: hybrid]
    #[arg(long)]
    retrieval: Option<Retrieval>,
    /// Read images (PNG, JPEG, TIFF...) and the scanned pages of PDFs with
    /// OCR (Tesseract): `on` or `off`; saved with the library [default: on]
    #[arg(long)]
    ocr: Option<Switch>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl SyncArgs {
    /// Saves the settings given on the command line with the library.
    fn save(&self, library: &mut Library) -> exsearch_core::Result<()> {
        if let Some(ocr) = self.ocr {
            library.set_ocr(ocr == Switch::On)?;
        }
        Ok(())
    }
}

pub fn run(home: &Home, cmd: LibraryCommand) -> Result<ExitCode> {
    match cmd {
        LibraryCommand::Add { dirs, opts } => {
            let mut library = Library::open(home)?;
            opts.save(&mut library)?;
            with_progress(&opts, |options, sink, cancel| {
                crate::retrieval::prepare_for_indexing(&mut library, opts.retrieval, cancel)?;
                library.add_folders(&dirs, options, sink, cancel)
            })
        }
        LibraryCommand::Sync { opts } => {
            let mut library = Library::open(home)?;
            opts.save(&mut library)?;
            with_progress(&opts, |options, sink, cancel| {
                crate::retrieval::prepare_for_indexing(&mut library, opts.retrieval, cancel)?;
                library.sync(options, sink, cancel)
            })
        }
        LibraryCommand::Watch { debounce_ms, opts } => watch(home, debounce_ms, &opts),
        LibraryCommand::Remove { dir } => {
            let mut library = Library::open(home)?;
            let removed = library.remove_folder(&dir)?;
            println!(
                "removed {} and its {removed} documents from the library",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        LibraryCommand::Status { json } => {
            let status = Library::open(home)?.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                output::print_status(&status);
            }
            Ok(ExitCode::SUCCESS)
        }
        LibraryCommand::Check { json } => {
            let report = Library::open(home)?.check()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "catalog: {} passages, index: {} passages, missing from index: {}, missing from catalog: {}, awaiting repair: {}",
                    report.catalog_passages,
                    report.index_passages,
                    report.missing_from_index,
                    report.missing_from_catalog,
                    report.dirty_documents
                );
                println!(
                    "{}",
                    if report.consistent {
                        "consistent"
                    } else {
                        "INCONSISTENT"
                    }
                );
            }
            Ok(if report.consistent {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn sync_options(args: &SyncArgs) -> SyncOptions {
    let mut options = SyncOptions {
        max_file_bytes: args.max_file_mb.map(|mb| mb * 1024 * 1024),
        ..SyncOptions::default()
    };
    if let Some(t) = args.threads {
        options.threads = t;
    }
    options
}

/// Runs an add or sync with a progress bar on stderr and Ctrl-C wired to
/// cancel, then prints the report.
fn with_progress(
    args: &SyncArgs,
    job: impl FnOnce(
        &SyncOptions,
        &dyn EventSink<LibraryEvent>,
        &CancelToken,
    ) -> exsearch_core::Result<SyncReport>,
) -> Result<ExitCode> {
    let options = sync_options(args);
    let cancel = crate::cancel_on_ctrl_c(
        "cancelling: finishing the files in flight and committing (Ctrl-C again to quit now)",
    )?;

    let progress = output::Progress::new();
    let sink = output::sync_progress(&progress);
    let report = job(&options, &sink, &cancel);
    progress.bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        output::print_report(&report);
    }
    Ok(if report.cancelled {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// `library watch`: a line (or a JSON object with `--json`) per event.
fn watch(home: &Home, debounce_ms: u64, args: &SyncArgs) -> Result<ExitCode> {
    let mut library = Library::open(home)?;
    args.save(&mut library)?;
    let options = sync_options(args);
    let cancel = crate::cancel_on_ctrl_c("stopping the watch after the sync in flight")?;
    crate::retrieval::prepare_for_indexing(&mut library, args.retrieval, &cancel)?;
    let progress = output::Progress::new();
    let sink = output::sync_progress(&progress);
    let json = args.json;
    let mut report = |event: WatchEvent<'_>| {
        progress.bar.finish_and_clear();
        let value = match event {
            WatchEvent::Watching(folders) => {
                if !json {
                    let names: Vec<_> = folders.iter().map(|f| f.display().to_string()).collect();
                    println!("watching {}", names.join(", "));
                }
                serde_json::json!({"event": "watching", "folders": folders})
            }
            WatchEvent::Unwatched { folder, reason } => {
                if !json {
                    println!("not watching {}: {reason}", folder.display());
                }
                serde_json::json!({"event": "unwatched", "folder": folder, "reason": reason})
            }
            WatchEvent::Missed(reason) => {
                if !json {
                    println!("changes may have been missed ({reason}); syncing everything");
                }
                serde_json::json!({"event": "missed", "reason": reason})
            }
            WatchEvent::Changed { paths, more } => {
                if !json {
                    let names: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
                    let more = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    println!("changed: {}{more}", names.join(", "));
                }
                serde_json::json!({"event": "changed", "paths": paths, "more": more})
            }
            WatchEvent::Synced(r) => {
                if !json {
                    output::print_report(r);
                }
                serde_json::json!({"event": "synced", "report": r})
            }
            WatchEvent::SyncFailed(e) => {
                if !json {
                    println!("sync failed: {e}; trying again at the next change");
                }
                serde_json::json!({"event": "sync_failed", "error": e.to_string()})
            }
        };
        if json {
            println!("{value}");
        }
    };
    library.watch(
        &options,
        std::time::Duration::from_millis(debounce_ms),
        &sink,
        &mut report,
        &cancel,
    )?;
    Ok(ExitCode::SUCCESS)
}
