//! The library's saved settings (in the catalog's `settings` table): how
//! searches rank, whether syncs read scans by OCR, whether the desktop app
//! watches the folders, the file size limit.

use super::{Library, LibraryEvent, DEFAULT_MAX_FILE_BYTES};
use crate::corpus::Ocr;
use crate::dense::Retrieval;
use crate::error::Result;
use crate::jobs::EventSink;
use crate::store::Catalog;

pub(super) const MAX_FILE_SETTING: &str = "max_file_bytes";
pub(super) const RETRIEVAL_SETTING: &str = "retrieval";
/// "on" (the default) or "off": whether syncs read images and the scanned
/// pages of PDFs by OCR.
pub(super) const OCR_SETTING: &str = "ocr";
/// "on" (the default) or "off": whether the desktop app watches the
/// library's folders while it runs.
pub(super) const WATCH_SETTING: &str = "watch";

impl Library {
    /// How searches rank passages (saved with the library; hybrid unless
    /// changed).
    pub fn retrieval(&self) -> Retrieval {
        self.retrieval
    }

    /// Ranks this handle's searches with `retrieval`, without saving it.
    pub fn use_retrieval(&mut self, retrieval: Retrieval) {
        self.retrieval = retrieval;
    }

    pub fn set_retrieval(&mut self, retrieval: Retrieval) -> Result<()> {
        self.catalog
            .set_setting(RETRIEVAL_SETTING, retrieval.as_str())?;
        self.retrieval = retrieval;
        Ok(())
    }

    /// Whether syncs read images and the scanned pages of PDFs by OCR
    /// (saved with the library; on unless turned off).
    pub fn ocr(&self) -> bool {
        self.ocr
    }

    /// Turns OCR on or off for this library's syncs. Turned on, the next
    /// sync reads the images and image-only PDFs it passed over.
    pub fn set_ocr(&mut self, on: bool) -> Result<()> {
        self.catalog
            .set_setting(OCR_SETTING, if on { "on" } else { "off" })?;
        self.ocr = on;
        Ok(())
    }

    /// Saves whether the desktop app watches the folders while it runs.
    pub fn set_watch(&mut self, on: bool) -> Result<()> {
        self.catalog
            .set_setting(WATCH_SETTING, if on { "on" } else { "off" })
    }

    /// The OCR engine syncs use: `None` when OCR is off; an error when it
    /// is on and Tesseract cannot run.
    pub(super) fn ocr_engine(&self) -> std::result::Result<Option<&'static Ocr>, String> {
        if self.ocr {
            Ocr::detect().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The engine for a sync. When OCR is on but cannot run, the first
    /// sync of the process says so (status says it every time), so an app
    /// that syncs on every change does not repeat it.
    pub(super) fn ocr_for_sync(&self, sink: &dyn EventSink<LibraryEvent>) -> Option<&'static Ocr> {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        self.ocr_engine().unwrap_or_else(|why| {
            if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                sink.emit(LibraryEvent::Warning {
                    message: format!(
                        "OCR is on but cannot run, so images and scanned pages are not read: {why}"
                    ),
                });
            }
            None
        })
    }
}

pub(super) fn max_file_bytes(catalog: &Catalog) -> Result<u64> {
    Ok(catalog
        .setting(MAX_FILE_SETTING)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_FILE_BYTES))
}
