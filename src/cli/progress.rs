//! Progress bars on a terminal: rows so far, their rate and the file's size, drawn on stderr
//! while a long load runs. Nothing is drawn when stderr is not a terminal (logs, pipes, CI).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tip::ingest::Progress;

/// A bar that follows one file's [`Progress`] from its own thread until dropped.
pub struct FileBar {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileBar {
    /// The counters to hand to the ingestion, and the bar drawing them (None off a terminal).
    pub fn start(path: &Path) -> (Option<Arc<Progress>>, Option<FileBar>) {
        if !std::io::stderr().is_terminal() {
            return (None, None);
        }
        let progress = Arc::new(Progress::default());
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let name = tip::source::display_name(path);
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
        let style = ProgressStyle::with_template(
            "{spinner} {prefix}: {human_pos} rows, {per_sec}, {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!("{name} ({})", indicatif::HumanBytes(bytes)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, progress) = (stop.clone(), progress.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    bar.set_position(progress.rows_done());
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(200));
                }
                bar.finish_and_clear();
            })
        };
        let bar = FileBar {
            stop,
            thread: Some(thread),
        };
        (Some(progress), Some(bar))
    }
}

impl Drop for FileBar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
