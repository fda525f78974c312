//! An answer that arrives batch by batch. Planning and execution run on a task of the runtime
//! (whose worker threads have a stack a deep plan cannot overflow, see the CLI); batches come
//! through a channel of two, so a slow reader holds the query back instead of the answer piling
//! up in memory. The time limit covers the whole query, reading included; the answer limits
//! (rows, bytes) are counted as the batches pass.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{Limits, QueryError, bounds};

/// What the query task sends.
enum Part {
    Schema(SchemaRef),
    Batch(RecordBatch),
    End,
}

/// Why a query stopped inside the engine.
pub(super) enum Stop {
    Engine(DataFusionError),
    Answer(String),
    Refused(QueryError),
}

impl From<QueryError> for Stop {
    fn from(e: QueryError) -> Stop {
        Stop::Refused(e)
    }
}

/// The answer of one query, read with [`Answer::next`] until it gives None.
pub struct Answer {
    schema: SchemaRef,
    rx: mpsc::Receiver<Result<Part, Stop>>,
    limits: Limits,
    rows: usize,
    done: bool,
}

impl Answer {
    /// Runs the plan that `plan` makes on a task of the runtime and waits until the answer's
    /// columns are known: a refusal or a planning error is returned here, before any row.
    pub(super) async fn start<F>(plan: F, limits: Limits) -> Result<Answer, QueryError>
    where
        F: std::future::Future<Output = Result<DataFrame, Stop>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel(2);
        let timeout = limits.timeout;
        tokio::spawn(async move {
            let work = pump(plan, limits, tx.clone());
            if tokio::time::timeout(timeout, work).await.is_err() {
                let _ = tx.send(Err(Stop::Answer(time_limit(&limits)))).await;
            }
        });
        match rx.recv().await {
            Some(Ok(Part::Schema(schema))) => Ok(Answer {
                schema,
                rx,
                limits,
                rows: 0,
                done: false,
            }),
            Some(Err(stop)) => Err(classify(stop, &limits)),
            Some(Ok(_)) | None => Err(failed_inside()),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows given so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The next batch; None once the answer is complete. An error ends the answer.
    pub async fn next(&mut self) -> Option<Result<RecordBatch, QueryError>> {
        if self.done {
            return None;
        }
        let item = match self.rx.recv().await {
            Some(Ok(Part::Batch(b))) => {
                self.rows += b.num_rows();
                return Some(Ok(b));
            }
            Some(Ok(Part::End)) => None,
            Some(Ok(Part::Schema(_))) | None => Some(Err(failed_inside())),
            Some(Err(stop)) => Some(Err(classify(stop, &self.limits))),
        };
        self.done = true;
        item
    }

    /// Every batch, in memory (bounded by the answer limits).
    pub async fn collect(mut self) -> Result<Vec<RecordBatch>, QueryError> {
        let mut out = Vec::new();
        while let Some(b) = self.next().await {
            out.push(b?);
        }
        Ok(out)
    }
}

fn failed_inside() -> QueryError {
    QueryError::Sql("the query failed inside the engine".into())
}

fn time_limit(limits: &Limits) -> String {
    format!(
        "over the time limit of {} s (query.timeout_seconds)",
        limits.timeout.as_secs()
    )
}

/// Plans, executes and sends the answer, held to the answer limits as it grows. Stops quietly
/// when the reader has gone.
async fn pump<F>(plan: F, limits: Limits, tx: mpsc::Sender<Result<Part, Stop>>)
where
    F: std::future::Future<Output = Result<DataFrame, Stop>>,
{
    let stream = match plan.await {
        Ok(df) => df.execute_stream().await.map_err(Stop::Engine),
        Err(e) => Err(e),
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    if tx.send(Ok(Part::Schema(stream.schema()))).await.is_err() {
        return;
    }
    let (mut rows, mut bytes) = (0usize, 0usize);
    while let Some(b) = stream.next().await {
        let b = match b {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(Stop::Engine(e))).await;
                return;
            }
        };
        rows += b.num_rows();
        bytes += b.get_array_memory_size();
        if let Some(over) = over_answer_limits(rows, bytes, &limits) {
            let _ = tx.send(Err(Stop::Answer(over))).await;
            return;
        }
        if tx.send(Ok(Part::Batch(b))).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Ok(Part::End)).await;
}

fn over_answer_limits(rows: usize, bytes: usize, limits: &Limits) -> Option<String> {
    if rows > limits.max_result_rows {
        return Some(format!(
            "the answer has more than {} rows (query.max_result_rows): aggregate, filter or add LIMIT",
            limits.max_result_rows
        ));
    }
    if bytes > limits.max_result_bytes {
        return Some(format!(
            "the answer is larger than {} MiB (query.max_result_mib): aggregate, filter or add LIMIT",
            limits.max_result_bytes / (1024 * 1024)
        ));
    }
    None
}

pub(super) fn classify(stop: Stop, limits: &Limits) -> QueryError {
    let e = match stop {
        Stop::Answer(m) => return QueryError::Limit(m),
        Stop::Refused(q) => return q,
        Stop::Engine(e) => e,
    };
    let text = e.to_string();
    if let Some(i) = text.find(bounds::VALUE_LIMIT) {
        let m = &text[i + bounds::VALUE_LIMIT.len()..];
        return QueryError::Limit(format!(
            "{} (query.max_value_mib)",
            m.trim_start_matches(':').trim()
        ));
    }
    if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_))
        || text.contains("Resources exhausted")
    {
        QueryError::Limit(format!(
            "over the memory limit of {} MiB (query.memory_limit_mib)",
            limits.memory_bytes / (1024 * 1024)
        ))
    } else {
        QueryError::Sql(text)
    }
}
