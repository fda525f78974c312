//! What a submission replaces or removes, as one predicate of constant size whatever the number
//! of keys: a few keys as an IN list (files are skipped by their statistics), any number as a
//! test of each row's key against the submission's key set (on disk past a size), never a
//! list of every key. A predicate that grows with the keys overflowed the stack inside the
//! Delta writer at about 30 000 keys (it unrolls an IN list into a chain of ORs).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, col,
    lit,
};

/// A test of a record key against a set held outside the plan. An error (the set could not be
/// read) fails the commit: a key that could not be looked up is never taken as absent.
pub type KeyTest = Arc<dyn Fn(&str) -> std::io::Result<bool> + Send + Sync>;

/// Most keys an IN list holds; more are tested row by row (DataFusion prunes files by IN lists
/// of at most 20 values, and pseudonymous keys have no order anyway).
pub const FEW_KEYS: usize = 20;

/// The keys whose rows a commit replaces or removes.
#[derive(Clone)]
pub enum Keys<'a> {
    /// None: the commit only adds, or only a snapshot's period is replaced.
    None,
    /// At most [`FEW_KEYS`] keys, written into the predicate.
    Few(&'a [String]),
    /// Any number of keys, tested row by row.
    Set(KeyTest),
}

/// The rows a submission replaces or removes: the partner's rows (in its country, a partition
/// column) whose record key is one of `keys`, and — for a snapshot — every row of the declared
/// period (`Some(None)`: all periods) but those whose key is `kept` (a row of the snapshot with
/// that key was set aside: the record stays as it was rather than be removed).
#[derive(Clone)]
pub struct Scope<'a> {
    pub partner: &'a str,
    pub country: &'a str,
    pub keys: Keys<'a>,
    pub snapshot: Option<Option<(&'a str, &'a str)>>,
    pub kept: Option<KeyTest>,
}

/// What [`Lake::scope_keys`](super::Lake::scope_keys) counted among the partner's rows, and the
/// table version it read them at (None: no table yet). Counts, not keys: a re-submission of a
/// register of millions holds no key in memory; only the files (a few per month) that hold a
/// row the commit replaces are named, with how many of their rows it replaces.
#[derive(Debug, Default, Clone)]
pub struct ScopeRead {
    /// Rows whose key the submission sends (updated, or withdrawn).
    pub held: u64,
    /// A snapshot's rows of its period that it does not send (removed).
    pub left_out: u64,
    /// A snapshot's rows of its period whose key was set aside (kept as they were).
    pub kept: u64,
    pub version: Option<u64>,
    /// The data files (their URLs, as a scan names them) holding a row the commit replaces,
    /// and how many such rows each holds: a file whose every row is replaced is removed
    /// without being read again.
    pub touched: std::collections::BTreeMap<String, u64>,
}

/// The two row tests a predicate may call. They run only in tip's own scans (counting the rows,
/// and reading the rows a touched file keeps): the Delta library is never asked to parse them.
const SENT_KEY: &str = "tip_sent_key";
const KEPT_KEY: &str = "tip_kept_key";

impl Scope<'_> {
    /// The partner's rows in its country.
    pub(super) fn partner_rows(&self) -> Expr {
        col("partner")
            .eq(lit(self.partner))
            .and(col("reporting_country").eq(lit(self.country)))
    }

    /// A row of `period` is in a snapshot's declared period.
    pub(super) fn in_period(&self, period: &str) -> bool {
        match self.snapshot {
            None => false,
            Some(None) => true,
            Some(Some((from, to))) => from <= period && period <= to,
        }
    }

    /// Nothing is replaced: the commit only adds rows.
    pub(super) fn adds_only(&self) -> bool {
        matches!(self.keys, Keys::None) && self.snapshot.is_none()
    }

    /// The rows with one of the keys sent.
    fn sent(&self) -> Expr {
        match &self.keys {
            Keys::None => lit(false),
            Keys::Few([]) => lit(false),
            Keys::Few(keys) => {
                let keys = keys.iter().map(|k| lit(k.as_str())).collect();
                col("record_key").in_list(keys, false)
            }
            Keys::Set(test) => key_test(SENT_KEY, test.clone()),
        }
    }

    /// A snapshot's rows of its period (none without a snapshot).
    fn period(&self) -> Expr {
        match self.snapshot {
            None => lit(false),
            Some(None) => lit(true),
            Some(Some((from, to))) => col("period")
                .gt_eq(lit(from))
                .and(col("period").lt_eq(lit(to))),
        }
    }

    /// The rows the commit replaces: the partner's rows with one of `keys`, and a snapshot's
    /// period but the kept keys (the same test as [`Scope::count`], as an expression).
    pub(super) fn predicate(&self) -> Expr {
        let period = match (&self.kept, self.snapshot) {
            (Some(kept), Some(_)) => self
                .period()
                .and(Expr::Not(Box::new(key_test(KEPT_KEY, kept.clone())))),
            _ => self.period(),
        };
        self.partner_rows().and(self.sent().or(period))
    }

    /// What [`Lake::scope_keys`](super::Lake::scope_keys) reads: with a few keys, the rows of
    /// those keys and of a snapshot's period (files skipped by their statistics); otherwise
    /// every row of the partner in its country, tested as they stream past.
    pub(super) fn read_filter(&self) -> Expr {
        match self.keys {
            Keys::Few(_) => self.partner_rows().and(self.sent().or(self.period())),
            _ => self.partner_rows(),
        }
    }

    /// Counts one row of the partner: sent (held), or of the snapshot's period and left out
    /// or kept. Whether the commit replaces the row (held or left out).
    pub(super) fn count(
        &self,
        key: &str,
        period: &str,
        read: &mut ScopeRead,
    ) -> std::io::Result<bool> {
        let sent = match &self.keys {
            Keys::None => false,
            Keys::Few(keys) => keys.iter().any(|k| k == key),
            Keys::Set(test) => test(key)?,
        };
        if sent {
            read.held += 1;
            return Ok(true);
        }
        if !self.in_period(period) {
            return Ok(false);
        }
        match &self.kept {
            Some(kept) if kept(key)? => read.kept += 1,
            _ => {
                read.left_out += 1;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// `name(record_key)`: whether each row's key passes `test`.
fn key_test(name: &'static str, test: KeyTest) -> Expr {
    ScalarUDF::new_from_impl(KeyIn {
        name,
        test,
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![col("record_key")])
}

/// A row test of record keys (immutable: it gives the same answer for the same key).
struct KeyIn {
    name: &'static str,
    test: KeyTest,
    signature: Signature,
}

impl std::fmt::Debug for KeyIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for KeyIn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.test, &other.test)
    }
}

impl Eq for KeyIn {}

impl Hash for KeyIn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        (Arc::as_ptr(&self.test) as *const () as usize).hash(state);
    }
}

impl ScalarUDFImpl for KeyIn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [keys] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes one argument",
                self.name
            )));
        };
        let keys = keys.to_array(args.number_rows)?;
        let keys = arrow::compute::cast(&keys, &DataType::Utf8)?;
        let keys = keys.as_string::<i32>();
        let mut out = BooleanBuilder::with_capacity(keys.len());
        for r in 0..keys.len() {
            let passes = keys.is_valid(r)
                && (self.test)(keys.value(r)).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "cannot read the submission's staged record keys ({})",
                        e.kind()
                    ))
                })?;
            out.append_value(passes);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[&str]) -> KeyTest {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Arc::new(move |k| Ok(keys.iter().any(|x| x == k)))
    }

    fn scope<'a>(keys: Keys<'a>, snapshot: Option<Option<(&'a str, &'a str)>>) -> Scope<'a> {
        Scope {
            partner: "p",
            country: "LT",
            keys,
            snapshot,
            kept: None,
        }
    }

    #[test]
    fn the_predicate_does_not_grow_with_the_keys() {
        let many: Vec<String> = (0..100_000).map(|i| format!("k0_{i:032x}")).collect();
        let test: KeyTest = {
            let many = many.clone();
            Arc::new(move |k| Ok(many.binary_search_by(|x| x.as_str().cmp(k)).is_ok()))
        };
        let predicate = scope(Keys::Set(test), None).predicate().to_string();
        assert!(predicate.len() < 200, "{predicate}");
        assert!(predicate.contains(SENT_KEY), "{predicate}");
        let few = scope(Keys::Few(&many[..3]), None).predicate().to_string();
        assert!(few.contains("IN"), "{few}");
    }

    #[test]
    fn rows_are_counted_held_left_out_or_kept() {
        let mut s = scope(
            Keys::Set(set(&["a", "b"])),
            Some(Some(("2025-01", "2025-03"))),
        );
        s.kept = Some(set(&["c"]));
        let mut read = ScopeRead::default();
        for (k, p) in [
            ("a", "2024-12"),
            ("b", "2025-02"),
            ("c", "2025-02"),
            ("d", "2025-03"),
            ("e", "2025-04"),
        ] {
            let replaced = s.count(k, p, &mut read).unwrap();
            assert_eq!(replaced, matches!(k, "a" | "b" | "d"), "{k}");
        }
        assert_eq!((read.held, read.left_out, read.kept), (2, 1, 1));
        // A key that cannot be looked up is an error, never "not sent".
        let failing: KeyTest = Arc::new(|_| Err(std::io::Error::other("gone")));
        let s = scope(Keys::Set(failing), None);
        assert!(s.count("a", "2025-01", &mut read).is_err());
    }
}
