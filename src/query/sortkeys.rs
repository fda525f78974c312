//! Sort keys made columns before the sort. A sort by an expression (`ORDER BY random()`, in a
//! window's `OVER` too) over rows with no column of their own would hand the sorter batches of
//! zero bytes: its memory reservation never grew, so it never spilled, and at the end it
//! evaluated the key over every row at once outside the memory pool (60 M rows took a process
//! with a 512 MiB limit past 1.5 GiB). With each key computed into a column first, the sorter
//! counts what it holds, and spills or stops at `query.memory_limit_mib`.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;

/// The rule: a sort by anything but columns becomes a projection that adds the keys, a sort by
/// them, and a projection that drops them again (the same rows, columns and order out).
#[derive(Debug)]
pub(super) struct SortKeysAsColumns;

impl PhysicalOptimizerRule for SortKeysAsColumns {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|p| {
            let keyed = match p.downcast_ref::<SortExec>() {
                Some(sort) if !sort.expr().iter().all(|e| e.expr.is::<Column>()) => keyed(sort)?,
                _ => None,
            };
            Ok(match keyed {
                Some(k) => Transformed::yes(k),
                None => Transformed::no(p),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "tip_sort_keys_as_columns"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The columns of `plan`, each as itself.
fn columns(plan: &Arc<dyn ExecutionPlan>) -> Vec<ProjectionExpr> {
    plan.schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| ProjectionExpr {
            expr: Arc::new(Column::new(f.name(), i)),
            alias: f.name().clone(),
        })
        .collect()
}

fn keyed(sort: &SortExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let input = sort.input().clone();
    let width = input.schema().fields().len();
    let mut exprs = columns(&input);
    let mut keys = Vec::new();
    for (k, e) in sort.expr().iter().enumerate() {
        let name = format!("__tip_sort_key_{k}");
        exprs.push(ProjectionExpr {
            expr: e.expr.clone(),
            alias: name.clone(),
        });
        keys.push(PhysicalSortExpr::new(
            Arc::new(Column::new(&name, width + k)),
            e.options,
        ));
    }
    let Some(ordering) = LexOrdering::new(keys) else {
        return Ok(None);
    };
    let with_keys: Arc<dyn ExecutionPlan> =
        Arc::new(ProjectionExec::try_new(exprs, input.clone())?);
    let sorted: Arc<dyn ExecutionPlan> = Arc::new(
        SortExec::new(ordering, with_keys)
            .with_fetch(sort.fetch())
            .with_preserve_partitioning(sort.preserve_partitioning()),
    );
    Ok(Some(Arc::new(ProjectionExec::try_new(
        columns(&input),
        sorted,
    )?)))
}
