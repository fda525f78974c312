//! Validation: canonical text → typed values, checked against the record type's schema.
//! A row with any problem is quarantined as a whole and reported with its row number, the
//! field and a reason code — never the value. Identifier fields are normalised here (they leave
//! this stage only to be keyed into pseudonyms); derived fields are computed here.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, Int64Array,
    ListBuilder, StringArray, StringBuilder,
};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};

use crate::config::Registry;
use crate::normalise::{self, DateProblem};
use crate::schema::{
    Catalog, DefaultFrom, DeriveFn, FieldClass, FieldDef, FieldType, Normaliser, RecordSchema,
};
use crate::source::{LIST_JOIN, Reason, RowIssue};
use crate::util::months::EPOCH_DAYS_CE;

/// Typed value of one field of one row.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Str(String),
    Date(NaiveDate),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<String>),
}

pub struct Validator<'a> {
    pub record: &'a RecordSchema,
    pub catalog: &'a Catalog,
    pub registry: &'a Registry,
    pub partner: String,
    pub date_formats: Vec<String>,
    pub decimal_comma: bool,
    /// Dates may arrive as Excel serial numbers.
    pub spreadsheet: bool,
    pub today: NaiveDate,
    /// Normaliser of each identifier field (from the pseudonym definitions).
    normalisers: Vec<Option<Normaliser>>,
    /// For a pre-pseudonymised file: the key version its pseudonyms must carry.
    pub expect_key_version: Option<String>,
    /// Read only these fields (a withdrawal needs the key fields alone); others are left null
    /// and not required.
    pub only: Option<std::collections::BTreeSet<String>>,
}

/// The columns of a canonical batch that validation reads.
struct Input<'b> {
    rows: &'b Int64Array,
    imputed: Option<&'b StringArray>,
    /// Each field's text, in schema order (None: not in the batch).
    fields: Vec<Option<&'b StringArray>>,
    /// Each pseudonym: name, prefix, and the column a pre-pseudonymised file carries.
    pseudonyms: Vec<(String, String, Option<&'b StringArray>)>,
}

impl<'b> Input<'b> {
    fn of(v: &Validator<'_>, batch: &'b RecordBatch) -> Result<Input<'b>, String> {
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        };
        let rows = batch
            .column_by_name("source_row")
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .ok_or("canonical batch has no source_row")?;
        let pseudonyms = v
            .record
            .pseudonyms()
            .into_iter()
            .map(|p| {
                let prefix = v
                    .catalog
                    .pseudonyms
                    .get(&p)
                    .map(|d| d.prefix.clone())
                    .unwrap_or_default();
                let col = text(&p);
                (p, prefix, col)
            })
            .collect();
        Ok(Input {
            rows,
            imputed: text("imputed_fields"),
            fields: v.record.fields.iter().map(|f| text(&f.name)).collect(),
            pseudonyms,
        })
    }
}

impl<'a> Validator<'a> {
    pub fn new(
        record: &'a RecordSchema,
        catalog: &'a Catalog,
        registry: &'a Registry,
        partner: &str,
        date_formats: Vec<String>,
        decimal_comma: bool,
        spreadsheet: bool,
    ) -> Validator<'a> {
        let normalisers = record
            .fields
            .iter()
            .map(|f| {
                let p = f.pseudonym.as_ref()?;
                let def = catalog.pseudonyms.get(p)?;
                def.inputs
                    .iter()
                    .find(|i| i.field == f.name)
                    .map(|i| i.normalise)
            })
            .collect();
        Validator {
            record,
            catalog,
            registry,
            partner: partner.to_string(),
            date_formats,
            decimal_comma,
            spreadsheet,
            today: chrono::Utc::now().date_naive(),
            normalisers,
            expect_key_version: None,
            only: None,
        }
    }

    /// Validates a canonical batch. Returns the typed rows that passed and the problems of
    /// the rows that did not.
    pub fn apply(&self, batch: &RecordBatch) -> Result<(RecordBatch, Vec<RowIssue>), String> {
        let n = batch.num_rows();
        let input = Input::of(self, batch)?;
        let schema = self.record.validated_schema();
        let mut builders: Vec<Col> = schema.fields()[1..schema.fields().len() - 1]
            .iter()
            .map(|f| Col::new(f.data_type()))
            .collect();
        let mut row_builder = arrow::array::Int64Builder::with_capacity(n);
        let mut imputed_builder = StringBuilder::new();
        let mut issues = Vec::new();
        let mut vals: Vec<V> = Vec::with_capacity(self.record.fields.len());
        let mut month_only = vec![false; self.record.fields.len()];
        for r in 0..n {
            let row = input.rows.value(r) as u64;
            let before = issues.len();
            month_only.fill(false);
            self.row(&input, (r, row), &mut vals, &mut month_only, &mut issues);
            if issues.len() > before {
                continue;
            }
            row_builder.append_value(row as i64);
            for (b, v) in builders.iter_mut().zip(&vals) {
                b.push(v);
            }
            match input.imputed.filter(|a| a.is_valid(r)) {
                Some(a) => imputed_builder.append_value(a.value(r)),
                None => imputed_builder.append_null(),
            }
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(row_builder.finish())];
        arrays.extend(builders.iter_mut().map(Col::finish));
        arrays.push(Arc::new(imputed_builder.finish()));
        let out = RecordBatch::try_new(schema, arrays).map_err(|e| e.to_string())?;
        Ok((out, issues))
    }

    /// One row's typed values (fields, then given pseudonyms) into `vals`; its problems into
    /// `issues`.
    fn row(
        &self,
        input: &Input<'_>,
        (r, row): (usize, u64),
        vals: &mut Vec<V>,
        month_only: &mut [bool],
        issues: &mut Vec<RowIssue>,
    ) {
        vals.clear();
        for (i, f) in self.record.fields.iter().enumerate() {
            if self.only.as_ref().is_some_and(|o| !o.contains(&f.name)) {
                vals.push(V::Null);
                continue;
            }
            let raw = input.fields[i]
                .filter(|a| a.is_valid(r))
                .map(|a| a.value(r));
            let v = self
                .field(i, f, raw, vals, month_only)
                .unwrap_or_else(|reason| {
                    issues.push(RowIssue {
                        row,
                        field: f.name.clone(),
                        reason,
                    });
                    V::Null
                });
            vals.push(v);
        }
        for (name, prefix, col) in &input.pseudonyms {
            let given = col.filter(|a| a.is_valid(r)).map(|a| a.value(r).trim());
            let v = match (given, &self.expect_key_version) {
                (Some(g), Some(kv)) => {
                    self.given_pseudonym(g, prefix, kv)
                        .unwrap_or_else(|reason| {
                            issues.push(RowIssue {
                                row,
                                field: name.clone(),
                                reason,
                            });
                            V::Null
                        })
                }
                _ => V::Null,
            };
            vals.push(v);
        }
    }

    /// A pseudonym made at the partner: kept when it was made with the lake's key.
    fn given_pseudonym(&self, g: &str, prefix: &str, key_version: &str) -> Result<V, Reason> {
        match crate::pseudonym::parse_pseudonym(g, prefix) {
            Some(found) if found == key_version => Ok(V::Str(g.to_string())),
            Some(_) => Err(Reason::WrongKeyVersion),
            None => Err(Reason::InvalidPseudonym),
        }
    }

    fn field(
        &self,
        i: usize,
        f: &FieldDef,
        raw: Option<&str>,
        prior: &[V],
        month_only: &mut [bool],
    ) -> Result<V, Reason> {
        let fields = &self.record.fields;
        if let Some(d) = &f.derive {
            let derived = self.derive(d.function, &d.from, prior, month_only)?;
            if derived != V::Null || raw.is_none() {
                return self.check_range(f, derived);
            }
        }
        let raw = match raw.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => {
                if let Some(d) = &f.default {
                    return self.parse(i, f, d, month_only);
                }
                if f.default_from == Some(DefaultFrom::Partner) {
                    return self.parse(i, f, &self.partner.clone(), month_only);
                }
                if f.required {
                    return Err(Reason::MissingRequired);
                }
                return Ok(V::Null);
            }
        };
        let v = self.parse(i, f, raw, month_only)?;
        if let (V::Date(d), Some(other)) = (&v, &f.not_before)
            && let V::Date(o) = lookup(fields, prior, other)
            && d < o
        {
            return Err(Reason::InconsistentDates);
        }
        Ok(v)
    }

    fn parse(
        &self,
        i: usize,
        f: &FieldDef,
        raw: &str,
        month_only: &mut [bool],
    ) -> Result<V, Reason> {
        if f.class == FieldClass::Identifier {
            return Ok(match (f.ftype, self.normalisers[i]) {
                (FieldType::Date, _) => V::Date(self.date(f, raw)?),
                (_, Some(Normaliser::Name)) => normalise::name(raw).map(V::Str).unwrap_or(V::Null),
                (_, Some(Normaliser::Document)) => {
                    normalise::document(raw).map(V::Str).unwrap_or(V::Null)
                }
                (_, Some(Normaliser::Code)) => normalise::code(raw).map(V::Str).unwrap_or(V::Null),
                (_, Some(Normaliser::Country)) => V::Str(
                    self.catalog
                        .country(raw)
                        .ok_or(Reason::UnknownCountry)?
                        .to_string(),
                ),
                // Identifiers that feed no pseudonym are dropped unread.
                _ => V::Null,
            });
        }
        let v = match f.ftype {
            FieldType::String => V::Str(raw.to_string()),
            FieldType::Date => V::Date(self.date(f, raw)?),
            FieldType::MonthOrDate => match month(raw) {
                Some(d) => {
                    month_only[i] = true;
                    self.not_future(f, d)?;
                    V::Date(d)
                }
                None => V::Date(self.date(f, raw)?),
            },
            FieldType::Int => V::Int(integer(raw)?),
            FieldType::Float => V::Float(decimal(raw, self.decimal_comma)?),
            FieldType::Bool => match self
                .catalog
                .lists
                .get("boolean")
                .and_then(|l| l.lookup(raw))
            {
                Some("true") => V::Bool(true),
                Some("false") => V::Bool(false),
                _ => return Err(Reason::InvalidBoolean),
            },
            FieldType::Code => {
                let list = self.list(f)?;
                V::Str(list.lookup(raw).ok_or(Reason::UnknownCode)?.to_string())
            }
            FieldType::CodeList => V::List(codes(self.list(f)?, raw)?),
            FieldType::Country => V::Str(
                self.catalog
                    .country(raw)
                    .ok_or(Reason::UnknownCountry)?
                    .to_string(),
            ),
            FieldType::Region => V::Str(
                self.catalog.lists["region"]
                    .lookup(raw)
                    .ok_or(Reason::UnknownRegion)?
                    .to_string(),
            ),
            FieldType::Org => {
                let id = raw.trim();
                match self.registry.get(id) {
                    Some(o) => V::Str(o.org_id.clone()),
                    None => return Err(Reason::UnknownOrg),
                }
            }
        };
        self.check_range(f, v)
    }

    fn list(&self, f: &FieldDef) -> Result<&crate::schema::CodeList, Reason> {
        f.codes
            .as_deref()
            .and_then(|c| self.catalog.lists.get(c))
            .ok_or(Reason::UnknownCode)
    }

    fn check_range(&self, f: &FieldDef, v: V) -> Result<V, Reason> {
        let x = match &v {
            V::Int(n) => *n as f64,
            V::Float(x) => *x,
            _ => return Ok(v),
        };
        if f.min.is_some_and(|m| x < m) || f.max.is_some_and(|m| x > m) {
            return Err(Reason::OutOfRange);
        }
        if let V::Int(n) = v
            && i32::try_from(n).is_err()
        {
            return Err(Reason::OutOfRange);
        }
        Ok(v)
    }

    fn date(&self, f: &FieldDef, raw: &str) -> Result<NaiveDate, Reason> {
        let d = match normalise::date(raw, &self.date_formats) {
            Ok(d) => d,
            Err(p) => match self.excel_serial(raw) {
                Some(d) => d,
                None => return Err(date_reason(p)),
            },
        };
        if d.year() < 1900 {
            return Err(Reason::ImpossibleDate);
        }
        self.not_future(f, d)?;
        Ok(d)
    }

    fn not_future(&self, f: &FieldDef, d: NaiveDate) -> Result<(), Reason> {
        if (f.not_future || f.class == FieldClass::Identifier) && d > self.today {
            return Err(Reason::FutureDate);
        }
        Ok(())
    }

    /// An Excel serial day number (1900 date system), accepted only from spreadsheets.
    fn excel_serial(&self, raw: &str) -> Option<NaiveDate> {
        if !self.spreadsheet {
            return None;
        }
        let n: i64 = raw.trim().parse().ok()?;
        if !(1..=2_958_465).contains(&n) {
            return None;
        }
        NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_days(chrono::Days::new(n as u64))
    }

    fn derive(
        &self,
        function: DeriveFn,
        from: &[String],
        prior: &[V],
        month_only: &[bool],
    ) -> Result<V, Reason> {
        let fields = &self.record.fields;
        let a = from
            .first()
            .map(|s| lookup(fields, prior, s))
            .unwrap_or(&V::Null);
        let b = from
            .get(1)
            .map(|s| lookup(fields, prior, s))
            .unwrap_or(&V::Null);
        Ok(match (function, a, b) {
            (DeriveFn::AgeYears, V::Date(birth), V::Date(at)) => {
                if birth > at {
                    return Err(Reason::InconsistentDates);
                }
                let mut years = at.year() - birth.year();
                if (at.month(), at.day()) < (birth.month(), birth.day()) {
                    years -= 1;
                }
                V::Int(years as i64)
            }
            (DeriveFn::AgeBand, V::Int(age), _) => V::Str(age_band(*age).to_string()),
            (DeriveFn::AgeBand, V::Null, _) => V::Str("unknown".into()),
            (DeriveFn::IsMinor, V::Int(age), _) => V::Bool(*age < 18),
            (DeriveFn::OrgCountry, V::Str(org), _) => self
                .registry
                .get(org)
                .map(|o| V::Str(o.country.clone()))
                .unwrap_or(V::Null),
            (DeriveFn::OrgType, V::Str(org), _) => self
                .registry
                .get(org)
                .map(|o| V::Str(o.org_type.clone()))
                .unwrap_or(V::Null),
            (DeriveFn::Differs, V::Str(x), V::Str(y)) => V::Bool(x != y),
            (DeriveFn::DaysBetween, V::Date(x), V::Date(y)) => V::Int((*y - *x).num_days()),
            (DeriveFn::DatePrecision, V::Date(_), _) => {
                let i = self
                    .record
                    .fields
                    .iter()
                    .position(|g| Some(&g.name) == from.first())
                    .unwrap_or(0);
                V::Str(if month_only[i] { "month" } else { "day" }.into())
            }
            _ => V::Null,
        })
    }
}

/// The value of an earlier field of the same row.
fn lookup<'v>(fields: &[FieldDef], prior: &'v [V], name: &str) -> &'v V {
    fields
        .iter()
        .position(|g| g.name == name)
        .and_then(|j| prior.get(j))
        .unwrap_or(&V::Null)
}

/// Age bands used in trafficking statistics; children are split finely.
/// An integer, spaces allowed (`1 200`), or a decimal with no fraction (`3.0`).
fn integer(raw: &str) -> Result<i64, Reason> {
    let t = raw.replace([' ', '\u{a0}'], "");
    match t.parse::<i64>() {
        Ok(n) => Ok(n),
        Err(_) => match t.parse::<f64>() {
            Ok(x) if x.fract() == 0.0 && x.is_finite() => Ok(x as i64),
            _ => Err(Reason::InvalidNumber),
        },
    }
}

/// A decimal, spaces allowed, with a decimal comma where the partner declares one.
fn decimal(raw: &str, decimal_comma: bool) -> Result<f64, Reason> {
    let mut t = raw.replace([' ', '\u{a0}'], "");
    if decimal_comma {
        t = t.replace(',', ".");
    }
    match t.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(Reason::InvalidNumber),
    }
}

/// The codes of a list value, each looked up, duplicates dropped, in order.
fn codes(list: &crate::schema::CodeList, raw: &str) -> Result<Vec<String>, Reason> {
    let mut out: Vec<String> = Vec::new();
    for part in raw
        .split(LIST_JOIN)
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let c = list.lookup(part).ok_or(Reason::UnknownCode)?;
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    Ok(out)
}

fn date_reason(p: DateProblem) -> Reason {
    match p {
        DateProblem::Invalid => Reason::InvalidDate,
        DateProblem::Impossible => Reason::ImpossibleDate,
        DateProblem::Ambiguous => Reason::AmbiguousDate,
    }
}

pub fn age_band(age: i64) -> &'static str {
    match age {
        i64::MIN..=-1 => "unknown",
        0..=11 => "0-11",
        12..=14 => "12-14",
        15..=17 => "15-17",
        18..=24 => "18-24",
        25..=34 => "25-34",
        35..=44 => "35-44",
        _ => "45+",
    }
}

/// `YYYY-MM` (or `MM.YYYY`, `MM/YYYY`) as the first day of that month.
fn month(raw: &str) -> Option<NaiveDate> {
    let t = raw.trim();
    let (y, m) = if t.len() == 7 && t.as_bytes()[4] == b'-' {
        (&t[..4], &t[5..])
    } else if t.len() == 7 && matches!(t.as_bytes()[2], b'.' | b'/') {
        (&t[3..], &t[..2])
    } else {
        return None;
    };
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)
}

/// One typed output column.
enum Col {
    Str(StringBuilder),
    Date(Date32Builder),
    Int(Int32Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    List(ListBuilder<StringBuilder>),
}

impl Col {
    fn new(dt: &arrow::datatypes::DataType) -> Col {
        use arrow::datatypes::DataType as D;
        match dt {
            D::Date32 => Col::Date(Date32Builder::new()),
            D::Int32 => Col::Int(Int32Builder::new()),
            D::Float64 => Col::Float(Float64Builder::new()),
            D::Boolean => Col::Bool(BooleanBuilder::new()),
            D::List(_) => Col::List(ListBuilder::new(StringBuilder::new())),
            _ => Col::Str(StringBuilder::new()),
        }
    }

    fn push(&mut self, v: &V) {
        match (self, v) {
            (Col::Str(b), V::Str(s)) => b.append_value(s),
            (Col::Date(b), V::Date(d)) => b.append_value(d.num_days_from_ce() - EPOCH_DAYS_CE),
            (Col::Int(b), V::Int(n)) => b.append_value(*n as i32),
            (Col::Float(b), V::Float(x)) => b.append_value(*x),
            (Col::Bool(b), V::Bool(x)) => b.append_value(*x),
            (Col::List(b), V::List(items)) => {
                for it in items {
                    b.values().append_value(it);
                }
                b.append(true);
            }
            (Col::Str(b), _) => b.append_null(),
            (Col::Date(b), _) => b.append_null(),
            (Col::Int(b), _) => b.append_null(),
            (Col::Float(b), _) => b.append_null(),
            (Col::Bool(b), _) => b.append_null(),
            (Col::List(b), _) => b.append(false),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Int(b) => Arc::new(b.finish()),
            Col::Float(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::List(b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_and_months() {
        assert_eq!(age_band(11), "0-11");
        assert_eq!(age_band(17), "15-17");
        assert_eq!(age_band(18), "18-24");
        assert_eq!(month("2025-03"), NaiveDate::from_ymd_opt(2025, 3, 1));
        assert_eq!(month("03.2025"), NaiveDate::from_ymd_opt(2025, 3, 1));
        assert_eq!(month("2025-13"), None);
        assert_eq!(
            crate::util::months::date_from_days(0),
            NaiveDate::from_ymd_opt(1970, 1, 1)
        );
    }
}
