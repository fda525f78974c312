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
    // The session's catalogue list, held until the answer ends: `pg_catalog` reads it (weakly)
    // while the answer streams, after the front end may have let its session go.
    let mut _catalogs = None;
    let stream = match plan.await {
        Ok(df) => {
            let (state, plan) = df.into_parts();
            _catalogs = Some(state.catalog_list().clone());
            DataFrame::new(state, plan)
                .execute_stream()
                .await
                .map_err(Stop::Engine)
        }
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
        bytes += answer_bytes(&b);
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

/// The bytes a batch adds to the answer: the values in its rows. Not the memory of the buffers
/// it points into: a batch sliced from a larger one (an aggregate's output, emitted batch by
/// batch from one table of groups) shares its buffers with every other slice, and counting
/// them whole counted one small answer many times over (a 10 M-row lake's busiest month of
/// groups stopped at "larger than 512 MiB"). String views count their 16-byte views and the
/// bytes of every string too long to sit in its view.
fn answer_bytes(b: &RecordBatch) -> usize {
    b.columns().iter().map(|c| array_bytes(c.as_ref())).sum()
}

fn array_bytes(a: &dyn datafusion::arrow::array::Array) -> usize {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::DataType;
    let long = |views: &[u128]| -> usize {
        views
            .iter()
            .map(|v| (*v as u32) as usize)
            .filter(|&n| n > 12)
            .sum()
    };
    let nulls = a.nulls().map_or(0, |_| a.len().div_ceil(8));
    match a.data_type() {
        DataType::Utf8View => 16 * a.len() + long(a.as_string_view().views()) + nulls,
        DataType::BinaryView => 16 * a.len() + long(a.as_binary_view().views()) + nulls,
        _ => a
            .to_data()
            .get_slice_memory_size()
            .unwrap_or_else(|_| a.get_array_memory_size()),
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringViewArray};
    use datafusion::arrow::record_batch::RecordBatch;

    use super::answer_bytes;

    #[test]
    fn a_slice_counts_its_rows_not_the_buffers_it_shares() {
        let n = 1_000_000;
        let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(0..n));
        let long = "a value long enough not to sit in its view";
        let texts: ArrayRef = Arc::new(StringViewArray::from_iter_values(
            (0..n).map(|i| if i % 2 == 0 { long } else { "short" }),
        ));
        let whole = RecordBatch::try_from_iter([("n", ints), ("t", texts)]).unwrap();
        let per_row = 8 + 16 + long.len() / 2;
        let all = answer_bytes(&whole);
        assert!(
            all >= n as usize * per_row && all <= n as usize * (per_row + 1),
            "{all}"
        );
        // 8192-row slices, as an aggregate emits them: together they are the whole once.
        let mut sum = 0;
        let mut at = 0;
        while at < n as usize {
            let len = 8192.min(n as usize - at);
            let slice = whole.slice(at, len);
            assert!(
                slice.get_array_memory_size() >= all,
                "the slice shares every buffer"
            );
            sum += answer_bytes(&slice);
            at += len;
        }
        assert!(sum.abs_diff(all) <= 1024, "{sum} vs {all}");
    }
}
