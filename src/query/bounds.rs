//! Functions that can make one value far larger than their input (`repeat('x', 2147483647)`,
//! `lpad`, `range(1, 500000000)`) allocate before any memory pool sees it. Each is replaced in
//! every session by the same function behind a check of its arguments: a value larger than
//! `query.max_value_mib` stops the query with that limit named.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The marker of a bound's error, so the session can name the limit.
pub(super) const VALUE_LIMIT: &str = "tip value limit";

/// How a function's arguments give the size of what it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: the text's length times n bytes.
    Repeat,
    /// `lpad(text, n, ...)`, `rpad`: n characters (up to 4 bytes each).
    Pad,
    /// `range(start, stop[, step])`, `generate_series`: (stop - start) / step items of 8 bytes.
    Series,
    /// `array_repeat(x, n)`: n items (of at least 8 bytes).
    ArrayRepeat,
    /// `concat(a, b, ...)`: the sum of the arguments' lengths.
    Concat,
    /// `concat_ws(sep, a, b, ...)`: the arguments' lengths and a separator between each two.
    ConcatWs,
}

const BOUNDED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("range", Growth::Series),
    ("generate_series", Growth::Series),
    ("array_repeat", Growth::ArrayRepeat),
    ("concat", Growth::Concat),
    ("concat_ws", Growth::ConcatWs),
];

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    max_bytes: usize,
}

/// Replaces the session's growing functions with bounded ones.
pub(super) fn install(ctx: &mut SessionContext, max_bytes: usize) {
    for (name, growth) in BOUNDED {
        if let Ok(inner) = ctx.udf(name) {
            let f = Bounded {
                inner,
                growth: *growth,
                max_bytes,
            };
            SessionContext::register_udf(ctx, ScalarUDF::new_from_impl(f));
        }
    }
    // `a || b` is an operator, not a function: planned as a bounded function instead.
    let _ = FunctionRegistry::register_expr_planner(ctx, Arc::new(ConcatPlanner { max_bytes }));
}

/// Argument `i` as an array (a scalar as one row).
fn as_array(args: &[ColumnarValue], i: usize) -> Option<ArrayRef> {
    match args.get(i)? {
        ColumnarValue::Scalar(s) => s.to_array().ok(),
        ColumnarValue::Array(a) => Some(a.clone()),
    }
}

/// Integer argument `i` at each row (one entry for a scalar; None when null or not an
/// integer), cast once per call.
fn ints(args: &[ColumnarValue], i: usize) -> Vec<Option<i64>> {
    let Some(a) =
        as_array(args, i).and_then(|a| datafusion::arrow::compute::cast(&a, &DataType::Int64).ok())
    else {
        return Vec::new();
    };
    let Some(a) = a.as_any().downcast_ref::<Int64Array>() else {
        return Vec::new();
    };
    a.iter().collect()
}

/// Entry `r` of a per-row vector, or its only entry (a scalar).
fn at<T: Copy>(v: &[T], r: usize) -> Option<T> {
    v.get(r).or(v.first()).copied()
}

/// The byte length of text argument `i` at each row (one entry for a scalar), computed once
/// per call: a cast per row would make the check quadratic in the batch.
fn text_lengths(args: &[ColumnarValue], i: usize) -> Vec<usize> {
    let Some(text) =
        as_array(args, i).and_then(|a| datafusion::arrow::compute::cast(&a, &DataType::Utf8).ok())
    else {
        return Vec::new();
    };
    let Some(text) = text
        .as_any()
        .downcast_ref::<datafusion::arrow::array::StringArray>()
    else {
        return Vec::new();
    };
    (0..text.len())
        .map(|r| {
            if text.is_valid(r) {
                text.value(r).len()
            } else {
                0
            }
        })
        .collect()
}

/// A call's arguments as the size check needs them: text lengths and integers per row.
struct Sizes {
    lens: Vec<usize>,
    ints: [Vec<Option<i64>>; 3],
    /// Concatenations: the sum of every argument's length at each row (separators included).
    total: Vec<usize>,
}

/// The byte length a concatenation of `args` makes at each row: every argument's length, and
/// for `concat_ws` its separator once per argument.
fn concat_lengths(args: &[ColumnarValue], rows: usize, separated: bool) -> Vec<usize> {
    let mut total = vec![0usize; rows];
    for i in 0..args.len() {
        let lens = text_lengths(args, i);
        let times = if separated && i == 0 { args.len() } else { 1 };
        for (r, t) in total.iter_mut().enumerate() {
            *t = t.saturating_add(at(&lens, r).unwrap_or(0).saturating_mul(times));
        }
    }
    total
}

impl Bounded {
    /// The bytes row `r` would make, from the arguments taken apart once per call.
    fn size(&self, a: &Sizes, r: usize) -> u128 {
        let int = |i: usize, default: i64| at(&a.ints[i], r).flatten().unwrap_or(default);
        let n = int(1, 0).max(0) as u128;
        match self.growth {
            Growth::Repeat => n * at(&a.lens, r).unwrap_or(0) as u128,
            Growth::Pad => n * 4,
            Growth::ArrayRepeat => n * 8,
            Growth::Concat | Growth::ConcatWs => at(&a.total, r).unwrap_or(0) as u128,
            Growth::Series => {
                let (from, to) = (int(0, 0), int(1, 0));
                let step = int(2, 1).unsigned_abs().max(1) as u128;
                ((to as i128 - from as i128).unsigned_abs() / step + 1) * 8
            }
        }
    }

    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let scalars = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalars { 1 } else { args.number_rows };
        let sizes = Sizes {
            lens: match self.growth {
                Growth::Repeat => text_lengths(&args.args, 0),
                _ => Vec::new(),
            },
            ints: [0, 1, 2].map(|i| match (self.growth, i) {
                (Growth::Concat | Growth::ConcatWs, _) => Vec::new(),
                // repeat, lpad, rpad, array_repeat: the first argument is not a count.
                (Growth::Series, _) | (_, 1) => ints(&args.args, i),
                _ => Vec::new(),
            }),
            total: match self.growth {
                Growth::Concat => concat_lengths(&args.args, rows, false),
                Growth::ConcatWs => concat_lengths(&args.args, rows, true),
                _ => Vec::new(),
            },
        };
        let mut total: u128 = 0;
        for r in 0..rows {
            let size = self.size(&sizes, r);
            total += size;
            if size > self.max_bytes as u128 || total > 4 * self.max_bytes as u128 {
                return Err(DataFusionError::Execution(format!(
                    "{VALUE_LIMIT}: {} would make a value larger than {} MiB",
                    self.inner.name(),
                    self.max_bytes / (1024 * 1024)
                )));
            }
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }
}

/// Plans `text || text` as [`ConcatOp`]: the operator allocates its result before any memory
/// pool sees it, so a recursive query doubling a string could take the process past its limit.
#[derive(Debug)]
struct ConcatPlanner {
    max_bytes: usize,
}

impl datafusion::logical_expr::planner::ExprPlanner for ConcatPlanner {
    fn plan_binary_op(
        &self,
        expr: datafusion::logical_expr::planner::RawBinaryExpr,
        schema: &datafusion::common::DFSchema,
    ) -> Result<
        datafusion::logical_expr::planner::PlannerResult<
            datafusion::logical_expr::planner::RawBinaryExpr,
        >,
    > {
        use datafusion::logical_expr::ExprSchemable;
        use datafusion::logical_expr::planner::PlannerResult;
        if expr.op != datafusion::sql::sqlparser::ast::BinaryOperator::StringConcat {
            return Ok(PlannerResult::Original(expr));
        }
        let ty = |e: &datafusion::logical_expr::Expr| e.get_type(schema).ok();
        let text = |t: &Option<DataType>| {
            matches!(
                t,
                Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            )
        };
        let list = |t: &Option<DataType>| {
            matches!(
                t,
                Some(DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..))
            )
        };
        let (l, r) = (ty(&expr.left), ty(&expr.right));
        if !(text(&l) || text(&r)) || list(&l) || list(&r) {
            return Ok(PlannerResult::Original(expr));
        }
        let op = ScalarUDF::new_from_impl(ConcatOp {
            max_bytes: self.max_bytes,
            signature: Signature::any(2, datafusion::logical_expr::Volatility::Immutable),
        });
        Ok(PlannerResult::Planned(op.call(vec![expr.left, expr.right])))
    }
}

/// `a || b` on text, behind the value bound: NULL when either side is NULL, as the operator.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConcatOp {
    max_bytes: usize,
    signature: Signature,
}

impl ScalarUDFImpl for ConcatOp {
    fn name(&self) -> &str {
        "tip_concat"
    }

    fn display_name(&self, args: &[datafusion::logical_expr::Expr]) -> Result<String> {
        match args {
            [a, b] => Ok(format!("{a} || {b}")),
            _ => Ok("||".into()),
        }
    }

    /// Named as the operator would be: an answer's column names do not change.
    fn schema_name(&self, args: &[datafusion::logical_expr::Expr]) -> Result<String> {
        match args {
            [a, b] => Ok(format!("{} || {}", a.schema_name(), b.schema_name())),
            _ => Ok("||".into()),
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            1
        } else {
            args.number_rows
        };
        let lens = concat_lengths(&args.args, rows, false);
        let mut total: u128 = 0;
        for size in lens {
            total += size as u128;
            if size > self.max_bytes || total > 4 * self.max_bytes as u128 {
                return Err(DataFusionError::Execution(format!(
                    "{VALUE_LIMIT}: || would make a value larger than {} MiB",
                    self.max_bytes / (1024 * 1024)
                )));
            }
        }
        let text = |i: usize| -> Result<ArrayRef> {
            let a = args.args[i].to_array(rows)?;
            Ok(datafusion::arrow::compute::cast(&a, &DataType::Utf8)?)
        };
        let (a, b) = (text(0)?, text(1)?);
        let joined = datafusion::arrow::compute::kernels::concat_elements::concat_elements_utf8(
            a.as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .ok_or_else(|| DataFusionError::Internal("|| of non-text".into()))?,
            b.as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>()
                .ok_or_else(|| DataFusionError::Internal("|| of non-text".into()))?,
        )?;
        let joined: ArrayRef = Arc::new(joined);
        Ok(match rows == 1 && args.number_rows != 1 {
            // Both sides were scalars: the answer is one.
            true => {
                ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&joined, 0)?)
            }
            false => ColumnarValue::Array(joined),
        })
    }
}
