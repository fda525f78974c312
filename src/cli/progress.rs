//! Progress bars on a terminal, drawn on stderr while a long job runs: rows so far and their
//! rate (loads, ingests, exports), or the time a step has taken (extracts). Nothing is drawn
//! when stderr is not a terminal (logs, pipes, CI). A bar shows only file, table and extract
//! names and counts: never a value from a record.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tip::util::Progress;

/// A bar drawn from its own thread until dropped.
pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bar {
    /// A bar following one file's ingestion: the counters to hand to it, and the bar drawing
    /// them (None off a terminal).
    pub fn file(path: &Path) -> (Option<Arc<Progress>>, Option<Bar>) {
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let name = tip::source::display_name(path);
        Bar::rows(format!("{name} ({})", indicatif::HumanBytes(bytes)))
    }

    /// A bar counting rows under `prefix`: the counters, and the bar (None off a terminal).
    pub fn rows(prefix: String) -> (Option<Arc<Progress>>, Option<Bar>) {
        if !std::io::stderr().is_terminal() {
            return (None, None);
        }
        let progress = Arc::new(Progress::default());
        let bar = Bar::draw(
            prefix,
            "{spinner} {prefix}: {human_pos} rows, {per_sec}, {elapsed}",
            Some(progress.clone()),
        );
        (Some(progress), Some(bar))
    }

    /// A spinner with the time `prefix` has taken so far (None off a terminal).
    pub fn step(prefix: String) -> Option<Bar> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        Some(Bar::draw(prefix, "{spinner} {prefix}: {elapsed}", None))
    }

    fn draw(prefix: String, template: &str, progress: Option<Arc<Progress>>) -> Bar {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(prefix);
        // Drawn once now, so that a job quicker than the first tick still shows what ran.
        bar.tick();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(p) = &progress {
                        bar.set_position(p.rows_done());
                    }
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(200));
                }
                bar.finish_and_clear();
            })
        };
        Bar {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
