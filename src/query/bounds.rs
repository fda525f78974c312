//! Functions that can make one value far larger than their input (`repeat('x', 2147483647)`,
//! `lpad`, `range(1, 500000000)`) allocate before any memory pool sees it. Each is replaced in
//! every session by the same function behind a check of its arguments: a value larger than
//! `query.max_value_mib` stops the query with that limit named.

use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
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
}

const BOUNDED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("range", Growth::Series),
    ("generate_series", Growth::Series),
    ("array_repeat", Growth::ArrayRepeat),
];

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    max_bytes: usize,
}

/// Replaces the session's growing functions with bounded ones.
pub(super) fn install(ctx: &SessionContext, max_bytes: usize) {
    for (name, growth) in BOUNDED {
        if let Ok(inner) = ctx.udf(name) {
            let f = Bounded {
                inner,
                growth: *growth,
                max_bytes,
            };
            ctx.register_udf(ScalarUDF::new_from_impl(f));
        }
    }
}

/// Argument `i` at row `r` as an integer (None when null or not an integer).
fn int_at(args: &[ColumnarValue], i: usize, r: usize) -> Option<i64> {
    let v = match args.get(i)? {
        ColumnarValue::Scalar(s) => s.clone(),
        ColumnarValue::Array(a) => ScalarValue::try_from_array(a, r).ok()?,
    };
    match v.cast_to(&DataType::Int64).ok()? {
        ScalarValue::Int64(x) => x,
        _ => None,
    }
}

/// The byte length of text argument `i` at each row (one entry for a scalar), computed once
/// per call: a cast per row would make the check quadratic in the batch.
fn text_lengths(args: &[ColumnarValue], i: usize) -> Vec<usize> {
    let array = match args.get(i) {
        Some(ColumnarValue::Scalar(s)) => s.to_array().ok(),
        Some(ColumnarValue::Array(a)) => Some(a.clone()),
        None => None,
    };
    let Some(text) = array.and_then(|a| datafusion::arrow::compute::cast(&a, &DataType::Utf8).ok())
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

impl Bounded {
    /// The bytes row `r` would make (`lens`: the text argument's lengths, for `repeat`).
    fn size(&self, args: &[ColumnarValue], lens: &[usize], r: usize) -> u128 {
        let n = |i| int_at(args, i, r).unwrap_or(0).max(0) as u128;
        match self.growth {
            Growth::Repeat => {
                let len = lens.get(r).or(lens.first()).copied().unwrap_or(0);
                n(1) * len as u128
            }
            Growth::Pad => n(1) * 4,
            Growth::ArrayRepeat => n(1) * 8,
            Growth::Series => {
                let (a, b) = (
                    int_at(args, 0, r).unwrap_or(0),
                    int_at(args, 1, r).unwrap_or(0),
                );
                let step = int_at(args, 2, r).unwrap_or(1).unsigned_abs().max(1) as u128;
                ((b as i128 - a as i128).unsigned_abs() / step + 1) * 8
            }
        }
    }

    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let scalars = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if scalars { 1 } else { args.number_rows };
        let lens = match self.growth {
            Growth::Repeat => text_lengths(&args.args, 0),
            _ => Vec::new(),
        };
        let mut total: u128 = 0;
        for r in 0..rows {
            let size = self.size(&args.args, &lens, r);
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
