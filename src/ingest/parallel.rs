//! Batches through a stage on every core, results in the order they were read.
//!
//! A reader pushes items (raw batches) on the calling thread; `workers` threads run the work on
//! them (mapping, validation, pseudonymisation); one thread hands the results to the consumer
//! in the order the reader pushed them, so what a file gives does not depend on the scheduling.
//! The reader runs at most `2 × workers` items ahead of the consumer, so memory is bounded
//! whatever the size of the input.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Condvar, Mutex};

use crate::source::SourceError;

/// The threads to use: every core the process may run on.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `produce` on this thread, `work` on `workers` threads and `consume` on one more, in
/// the order items were produced. The first error stops everything: the consumer's, a worker's
/// (it reaches the consumer in order), or the reader's. A panic in the work is an error of its
/// item, so it stops the run in order too; it never leaves the reader waiting.
pub fn ordered<I, O, R>(
    workers: usize,
    produce: impl FnOnce(&mut dyn FnMut(I) -> Result<(), SourceError>) -> Result<R, SourceError>,
    work: impl Fn(I) -> Result<O, SourceError> + Sync,
    consume: impl FnMut(O) -> Result<(), SourceError> + Send,
) -> Result<R, SourceError>
where
    I: Send,
    O: Send,
{
    let workers = workers.max(1);
    let window = Window::new(2 * workers);
    let (in_tx, in_rx) = sync_channel::<(u64, I)>(workers);
    let (out_tx, out_rx) = sync_channel::<(u64, Result<O, SourceError>)>(2 * workers);
    // Taken out (dropped) by a worker that finds the consumer gone, so the reader stops too.
    let in_rx = Mutex::new(Some(in_rx));
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (in_rx, out_tx, work) = (&in_rx, out_tx.clone(), &work);
            s.spawn(move || {
                loop {
                    let next = match in_rx.lock().as_deref() {
                        Ok(Some(rx)) => rx.recv(),
                        _ => return,
                    };
                    let Ok((seq, item)) = next else { return };
                    let done =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(item)))
                            .unwrap_or_else(|_| {
                                Err(SourceError::Sink("internal error while reading".into()))
                            });
                    if out_tx.send((seq, done)).is_err() {
                        if let Ok(mut rx) = in_rx.lock() {
                            rx.take();
                        }
                        return;
                    }
                }
            });
        }
        drop(out_tx);
        let consumer = s.spawn(|| in_order(out_rx, consume, &window));
        let mut seq = 0u64;
        let produced = produce(&mut |item| {
            window.wait_for(seq)?;
            in_tx
                .send((seq, item))
                .map_err(|_| SourceError::Sink("stopped".into()))?;
            seq += 1;
            Ok(())
        });
        drop(in_tx);
        let consumed = consumer
            .join()
            .unwrap_or_else(|_| Err(SourceError::Sink("internal error in ingestion".into())));
        // The consumer's error is the cause when the reader was stopped by it.
        consumed?;
        produced
    })
}

/// How far the consumer has come: the reader may run at most `ahead` items past it, so items
/// waiting to be put in order are bounded too, however slow one item is.
struct Window {
    state: Mutex<(u64, bool)>,
    moved: Condvar,
    ahead: u64,
}

impl Window {
    fn new(ahead: usize) -> Window {
        Window {
            state: Mutex::new((0, false)),
            moved: Condvar::new(),
            ahead: ahead as u64,
        }
    }

    /// Waits until item `seq` may be read; an error once the consumer has stopped.
    fn wait_for(&self, seq: u64) -> Result<(), SourceError> {
        let stopped = || SourceError::Sink("stopped".into());
        let mut st = self.state.lock().map_err(|_| stopped())?;
        while !st.1 && seq >= st.0 + self.ahead {
            st = self.moved.wait(st).map_err(|_| stopped())?;
        }
        if st.1 { Err(stopped()) } else { Ok(()) }
    }

    fn advance(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.0 += 1;
        }
        self.moved.notify_all();
    }

    fn stop(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.1 = true;
        }
        self.moved.notify_all();
    }
}

/// Marks the window stopped when the consumer ends, by return or by panic.
struct Stops<'a>(&'a Window);

impl Drop for Stops<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Hands results to `consume` by sequence number; the first error ends it.
fn in_order<O>(
    rx: Receiver<(u64, Result<O, SourceError>)>,
    mut consume: impl FnMut(O) -> Result<(), SourceError>,
    window: &Window,
) -> Result<(), SourceError> {
    let _stops = Stops(window);
    let mut next = 0u64;
    let mut waiting: BTreeMap<u64, Result<O, SourceError>> = BTreeMap::new();
    for (seq, r) in rx {
        waiting.insert(seq, r);
        while let Some(r) = waiting.remove(&next) {
            consume(r?)?;
            next += 1;
            window.advance();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_order_on_several_threads() {
        let mut got = Vec::new();
        let n = ordered(
            4,
            |push| {
                for i in 0..1000u64 {
                    push(i)?;
                }
                Ok(1000)
            },
            |i| {
                if i % 7 == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(50));
                }
                Ok(i * 2)
            },
            |o| {
                got.push(o);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(n, 1000);
        assert_eq!(got, (0..1000u64).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn a_panic_in_the_work_is_an_error_in_order_and_never_a_hang() {
        let mut consumed = 0;
        let r = ordered(
            2,
            |push| {
                for i in 0..10_000u64 {
                    push(i)?;
                }
                Ok(())
            },
            |i| {
                if i == 3 || i == 4 {
                    panic!("a bug in a stage");
                }
                Ok(i)
            },
            |_| {
                consumed += 1;
                Ok(())
            },
        );
        assert!(matches!(r, Err(SourceError::Sink(m)) if m.contains("internal error")));
        assert_eq!(consumed, 3);
    }

    #[test]
    fn a_worker_error_stops_the_reader_and_is_the_answer() {
        let mut consumed = 0;
        let r = ordered(
            2,
            |push| {
                for i in 0..100_000u64 {
                    push(i)?;
                }
                Ok(())
            },
            |i| {
                if i == 10 {
                    Err(SourceError::Sink("bad batch 10".into()))
                } else {
                    Ok(i)
                }
            },
            |_| {
                consumed += 1;
                Ok(())
            },
        );
        assert!(matches!(r, Err(SourceError::Sink(m)) if m == "bad batch 10"));
        assert_eq!(
            consumed, 10,
            "only the batches before the failed one are consumed"
        );
    }
}
