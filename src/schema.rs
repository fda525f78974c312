//! Record types, code lists, countries and regions, read from `schemas/` as data. Adding a
//! record type or a field is a schema change: nothing in the pipeline has a code path per type.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

use crate::normalise;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldClass {
    /// Accepted on input, never stored in clear: keyed into a pseudonym or dropped.
    Identifier,
    /// Stored; a quasi-identifier for disclosure control.
    Quasi,
    /// Stored.
    Attribute,
    /// Added by the pipeline.
    Provenance,
}

impl FieldClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldClass::Identifier => "identifier",
            FieldClass::Quasi => "quasi",
            FieldClass::Attribute => "attribute",
            FieldClass::Provenance => "provenance",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Date,
    MonthOrDate,
    Int,
    Float,
    Bool,
    Code,
    CodeList,
    Country,
    Region,
    Org,
}

impl FieldType {
    pub fn arrow(self) -> DataType {
        match self {
            FieldType::String
            | FieldType::Code
            | FieldType::Country
            | FieldType::Region
            | FieldType::Org => DataType::Utf8,
            FieldType::Date | FieldType::MonthOrDate => DataType::Date32,
            FieldType::Int => DataType::Int32,
            FieldType::Float => DataType::Float64,
            FieldType::Bool => DataType::Boolean,
            FieldType::CodeList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
        }
    }
}

/// How a derived field is computed from earlier fields of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeriveFn {
    /// Whole years from a birth date to a date.
    AgeYears,
    /// The age band of an age (0-13, 14-17, 18-24, ...).
    AgeBand,
    /// An age under 18.
    IsMinor,
    /// The registry country of an organisation.
    OrgCountry,
    /// The registry type of an organisation.
    OrgType,
    /// Two values differ (a referral across borders).
    Differs,
    /// Days from one date to another.
    DaysBetween,
    /// `month` when a date was given as a month only, else `day`.
    DatePrecision,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derive {
    #[serde(rename = "fn")]
    pub function: DeriveFn,
    pub from: Vec<String>,
}

/// Where a field's value comes from when the row leaves it empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultFrom {
    /// The submitting partner's registry id.
    Partner,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub name: String,
    pub class: FieldClass,
    #[serde(rename = "type")]
    pub ftype: FieldType,
    #[serde(default)]
    pub codes: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub default_from: Option<DefaultFrom>,
    #[serde(default)]
    pub derive: Option<Derive>,
    /// A derived field that may also be given on input (used when the derivation has no inputs).
    #[serde(default)]
    pub input: Option<bool>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub not_future: bool,
    #[serde(default)]
    pub not_before: Option<String>,
    #[serde(default)]
    pub pseudonym: Option<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSchema {
    pub record_type: String,
    pub table: String,
    pub version: i32,
    pub description: String,
    #[serde(default)]
    pub period_field: Option<String>,
    /// What identifies one record at a partner: alternatives, each a list of stored columns
    /// (pseudonyms or stored fields); a row takes the first alternative it has every value of.
    pub key: Vec<Vec<String>>,
    /// Why these keys (documentation for partners and reviewers).
    #[serde(default)]
    pub key_notes: String,
    pub fields: Vec<FieldDef>,
}

/// Columns the pipeline adds to every stored row.
pub const PROVENANCE: &[(&str, &str)] = &[
    ("partner", "Registry id of the partner that sent the row."),
    (
        "reporting_country",
        "Country of the partner (partition column).",
    ),
    (
        "period",
        "Month of the record's date, YYYY-MM (partition column).",
    ),
    ("submission_id", "The submission the row arrived in."),
    ("source_sha256", "SHA-256 of the source file."),
    (
        "source_row",
        "Row number in the source file, as the partner sees it.",
    ),
    (
        "key_version",
        "Fingerprint of the key that made the pseudonyms (not the key).",
    ),
    ("schema_version", "Version of the record type's schema."),
    ("ingested_at", "When the row was committed (UTC)."),
    (
        "imputed_fields",
        "Fields the pipeline filled in, e.g. registered_on from the submission date.",
    ),
    (
        "record_key",
        "What identifies the record at its partner (a hash of the key fields, see the schema's key): a resubmission with the same key replaces it.",
    ),
];

/// The partition columns of every record table, so that filters on country and period prune.
pub const PARTITION_COLUMNS: &[&str] = &["reporting_country", "period"];

fn provenance_type(name: &str) -> DataType {
    match name {
        "source_row" => DataType::Int64,
        "schema_version" => DataType::Int32,
        "ingested_at" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => DataType::Utf8,
    }
}

impl RecordSchema {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Pseudonym columns this record type produces, in order of first appearance.
    pub fn pseudonyms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in &self.fields {
            if let Some(p) = &f.pseudonym
                && !out.contains(p)
            {
                out.push(p.clone());
            }
        }
        out
    }

    /// Fields read from input: those not derived, and derived ones marked `input`.
    pub fn input_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields
            .iter()
            .filter(|f| f.input.unwrap_or(f.derive.is_none()))
    }

    /// The Arrow schema after validation: every field typed, identifiers still present
    /// (normalised), the pseudonyms a pre-pseudonymised file brought (null otherwise), plus the
    /// source row number.
    pub fn validated_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = vec![Field::new("source_row", DataType::Int64, false)];
        for f in &self.fields {
            let dt = if f.class == FieldClass::Identifier && f.ftype != FieldType::Date {
                DataType::Utf8
            } else {
                f.ftype.arrow()
            };
            fields.push(Field::new(&f.name, dt, true));
        }
        for p in self.pseudonyms() {
            fields.push(Field::new(&p, DataType::Utf8, true));
        }
        fields.push(Field::new("imputed_fields", DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }

    /// The Arrow schema of the lake table: pseudonyms, stored fields, provenance.
    pub fn stored_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .pseudonyms()
            .iter()
            .map(|p| Field::new(p, DataType::Utf8, true))
            .collect();
        for f in &self.fields {
            if f.class != FieldClass::Identifier {
                fields.push(Field::new(&f.name, f.ftype.arrow(), !f.required));
            }
        }
        for (p, _) in PROVENANCE {
            let nullable = *p == "imputed_fields";
            fields.push(Field::new(*p, provenance_type(p), nullable));
        }
        Arc::new(Schema::new(fields))
    }
}

/// A list column as text in the canonical layout (items joined with `sep`); other columns as
/// they are. Lists of any string type (Utf8, Utf8View) are handled.
pub fn lists_as_text(a: &arrow::array::ArrayRef, sep: &str) -> arrow::array::ArrayRef {
    use arrow::array::{Array, AsArray, StringArray};
    let list = match a.data_type() {
        DataType::List(_) => a.as_list::<i32>(),
        _ => return a.clone(),
    };
    let out: StringArray = (0..list.len())
        .map(|i| {
            list.is_valid(i).then(|| {
                let v = arrow::compute::cast(&list.value(i), &DataType::Utf8).ok();
                v.map(|v| {
                    v.as_string::<i32>()
                        .iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(sep)
                })
                .unwrap_or_default()
            })
        })
        .collect();
    Arc::new(out)
}

// ---------------------------------------------------------------------------------------------
// Code lists, countries, regions

#[derive(Debug, Deserialize)]
struct CodeListFile {
    lists: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<String>>>>,
    regions: RegionsFile,
}

#[derive(Debug, Deserialize)]
struct RegionsFile {
    codes: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Deserialize)]
struct CountriesFile {
    countries: Vec<CountryEntry>,
}

#[derive(Debug, Clone, Deserialize)]
struct CountryEntry {
    alpha2: String,
    alpha3: String,
    names: BTreeMap<String, String>,
    #[serde(default)]
    aliases: Vec<String>,
}

/// One code list: folded label → canonical code.
#[derive(Debug, Clone, Default)]
pub struct CodeList {
    pub codes: Vec<String>,
    /// language → labels per code, for display.
    pub labels: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    lookup: HashMap<String, String>,
}

impl CodeList {
    pub fn lookup(&self, raw: &str) -> Option<&str> {
        self.lookup.get(&normalise::label(raw)).map(|s| s.as_str())
    }
}

/// An analyst view: SQL in `schemas/views/`, its leading comment the documentation.
#[derive(Debug, Clone)]
pub struct ViewDef {
    pub name: String,
    pub description: String,
    pub sql: String,
}

/// One row of the population reference table.
#[derive(Debug, Clone, Deserialize)]
pub struct PopulationRow {
    pub country: String,
    pub year: i32,
    pub population: i64,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub records: BTreeMap<String, RecordSchema>,
    pub views: Vec<ViewDef>,
    pub population: Vec<PopulationRow>,
    pub lists: BTreeMap<String, CodeList>,
    pub organisation: RecordSchema,
    pub pseudonyms: BTreeMap<String, PseudonymDef>,
    countries: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymDef {
    pub scope: PseudonymScope,
    pub prefix: String,
    pub inputs: Vec<PseudonymInput>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PseudonymScope {
    /// Same input at any partner → same pseudonym.
    Network,
    /// The partner id is part of the HMAC input.
    Partner,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymInput {
    pub field: String,
    pub normalise: Normaliser,
}

/// How an identifier is normalised before it enters an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normaliser {
    /// Case, accents, spacing and script folded (`normalise::name`).
    Name,
    /// A document number: letters and digits only, upper case.
    Document,
    /// A case or referral number.
    Code,
    /// A country, as ISO 3166-1 alpha-2.
    Country,
    /// A date, as ISO 8601.
    Date,
}

#[derive(Debug, Deserialize)]
struct PseudonymFile {
    pseudonyms: BTreeMap<String, PseudonymDef>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SchemaError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
        file: file.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SchemaError::Invalid {
        file,
        message: e.to_string(),
    })
}

pub const RECORD_TYPES: &[&str] = &["case", "service", "referral", "event", "outcome"];

impl Catalog {
    pub fn load(dir: &Path) -> Result<Catalog, SchemaError> {
        let cl: CodeListFile = read_json(&dir.join("codelists.json"))?;
        let cl_file = dir.join("codelists.json").display().to_string();
        let mut lists = BTreeMap::new();
        for (name, codes) in cl.lists {
            lists.insert(name.clone(), build_list(&cl_file, &name, codes)?);
        }
        lists.insert(
            "region".to_string(),
            build_list(&cl_file, "region", cl.regions.codes)?,
        );

        let cf: CountriesFile = read_json(&dir.join("countries.json"))?;
        let mut countries = HashMap::new();
        for c in &cf.countries {
            let mut keys = vec![c.alpha2.clone(), c.alpha3.clone()];
            keys.extend(c.names.values().cloned());
            keys.extend(c.aliases.iter().cloned());
            for k in keys {
                countries
                    .entry(normalise::label(&k))
                    .or_insert_with(|| c.alpha2.clone());
            }
        }

        let pf: PseudonymFile = read_json(&dir.join("pseudonyms.json"))?;
        let mut records = BTreeMap::new();
        // Every *.json file with a record_type other than organisation is a record type.
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|source| SchemaError::Read {
                file: dir.display().to_string(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        let mut organisation = None;
        for path in names {
            let stem = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if matches!(
                stem.as_str(),
                "codelists" | "countries" | "pseudonyms" | "population"
            ) {
                continue;
            }
            let rs: RecordSchema = read_json(&path)?;
            let file = path.display().to_string();
            check_record(&file, &rs, &lists, &pf.pseudonyms)?;
            if rs.record_type == "organisation" {
                organisation = Some(rs);
            } else {
                records.insert(rs.record_type.clone(), rs);
            }
        }
        let organisation = organisation.ok_or_else(|| SchemaError::Invalid {
            file: dir.display().to_string(),
            message: "organisation.json is missing".into(),
        })?;
        let views = load_views(&dir.join("views"))?;
        let population = load_population(&dir.join("population.csv"))?;
        Ok(Catalog {
            records,
            views,
            population,
            lists,
            organisation,
            pseudonyms: pf.pseudonyms,
            countries,
        })
    }

    pub fn record(&self, record_type: &str) -> Option<&RecordSchema> {
        self.records.get(record_type)
    }

    /// ISO 3166-1 alpha-2 code for an alpha-2, alpha-3 or country name in any of the
    /// supported languages.
    pub fn country(&self, raw: &str) -> Option<&str> {
        self.countries
            .get(&normalise::label(raw))
            .map(|s| s.as_str())
    }
}

fn load_views(dir: &Path) -> Result<Vec<ViewDef>, SchemaError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| SchemaError::Read {
            file: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let file = f.display().to_string();
        let sql = std::fs::read_to_string(&f).map_err(|source| SchemaError::Read {
            file: file.clone(),
            source,
        })?;
        let name = sql
            .split_whitespace()
            .skip_while(|w| !w.eq_ignore_ascii_case("VIEW"))
            .nth(1)
            .map(str::to_string)
            .ok_or_else(|| SchemaError::Invalid {
                file: file.clone(),
                message: "no CREATE VIEW statement".into(),
            })?;
        let description = sql
            .lines()
            .take_while(|l| l.starts_with("--"))
            .map(|l| l.trim_start_matches('-').trim())
            .collect::<Vec<_>>()
            .join(" ");
        let description = description
            .strip_prefix(&format!("{name}:"))
            .unwrap_or(&description)
            .trim()
            .to_string();
        out.push(ViewDef {
            name,
            description,
            sql,
        });
    }
    Ok(out)
}

fn load_population(path: &Path) -> Result<Vec<PopulationRow>, SchemaError> {
    let file = path.display().to_string();
    let mut rdr = csv::Reader::from_path(path).map_err(|e| SchemaError::Invalid {
        file: file.clone(),
        message: e.to_string(),
    })?;
    rdr.deserialize()
        .collect::<Result<Vec<PopulationRow>, _>>()
        .map_err(|e| SchemaError::Invalid {
            file,
            message: e.to_string(),
        })
}

fn build_list(
    file: &str,
    name: &str,
    codes: BTreeMap<String, BTreeMap<String, Vec<String>>>,
) -> Result<CodeList, SchemaError> {
    let mut list = CodeList::default();
    for (code, langs) in codes {
        list.codes.push(code.clone());
        let mut keys: Vec<String> = vec![code.clone()];
        for (lang, labels) in &langs {
            keys.extend(labels.iter().cloned());
            list.labels
                .entry(lang.clone())
                .or_default()
                .insert(code.clone(), labels.clone());
        }
        for k in keys {
            let folded = normalise::label(&k);
            if let Some(prev) = list.lookup.get(&folded)
                && prev != &code
            {
                return Err(SchemaError::Invalid {
                    file: file.into(),
                    message: format!(
                        "code list {name}: label {k:?} maps to both {prev} and {code}"
                    ),
                });
            }
            list.lookup.insert(folded, code.clone());
        }
    }
    Ok(list)
}

/// Every key alternative names stored columns: pseudonyms of the record or stored fields.
fn check_key(rs: &RecordSchema) -> Result<(), String> {
    if rs.key.is_empty() || rs.key.iter().any(|alt| alt.is_empty()) {
        return Err("key: at least one alternative, each of at least one column".into());
    }
    let pseudonyms = rs.pseudonyms();
    for col in rs.key.iter().flatten() {
        let stored = pseudonyms.contains(col)
            || rs
                .field(col)
                .is_some_and(|f| f.class != FieldClass::Identifier);
        if !stored {
            return Err(format!(
                "key: {col} is not a stored column of {}",
                rs.record_type
            ));
        }
    }
    Ok(())
}

fn check_record(
    file: &str,
    rs: &RecordSchema,
    lists: &BTreeMap<String, CodeList>,
    pseudonyms: &BTreeMap<String, PseudonymDef>,
) -> Result<(), SchemaError> {
    let bad = |message: String| SchemaError::Invalid {
        file: file.into(),
        message,
    };
    check_key(rs).map_err(bad)?;
    for (i, f) in rs.fields.iter().enumerate() {
        if rs.fields[..i].iter().any(|g| g.name == f.name) {
            return Err(bad(format!("field {} is defined twice", f.name)));
        }
        if matches!(f.ftype, FieldType::Code | FieldType::CodeList) {
            let c = f.codes.as_deref().unwrap_or("");
            if !lists.contains_key(c) {
                return Err(bad(format!("field {}: unknown code list {c:?}", f.name)));
            }
        }
        if let Some(p) = &f.pseudonym {
            let def = pseudonyms
                .get(p)
                .ok_or_else(|| bad(format!("field {}: unknown pseudonym {p}", f.name)))?;
            if !def.inputs.iter().any(|i| i.field == f.name) {
                return Err(bad(format!("field {} is not an input of {p}", f.name)));
            }
        }
        if f.pseudonym.is_some() && f.class != FieldClass::Identifier {
            return Err(bad(format!(
                "field {}: only identifiers feed pseudonyms",
                f.name
            )));
        }
        if let Some(d) = &f.derive {
            for src in &d.from {
                if !rs.fields[..i].iter().any(|g| &g.name == src) {
                    return Err(bad(format!(
                        "field {}: derives from {src}, which must be defined before it",
                        f.name
                    )));
                }
            }
        }
        if let Some(nb) = &f.not_before
            && rs.field(nb).is_none()
        {
            return Err(bad(format!(
                "field {}: not_before names unknown field {nb}",
                f.name
            )));
        }
        if PROVENANCE.iter().any(|(p, _)| *p == f.name) {
            return Err(bad(format!(
                "field {} collides with a provenance column",
                f.name
            )));
        }
    }
    if let Some(p) = &rs.period_field {
        match rs.field(p) {
            Some(f)
                if matches!(f.ftype, FieldType::Date | FieldType::MonthOrDate) && f.required => {}
            _ => {
                return Err(bad(format!(
                    "period_field {p} must be a required date field"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")).unwrap()
    }

    #[test]
    fn loads_all_record_types() {
        let c = catalog();
        for t in RECORD_TYPES {
            assert!(c.record(t).is_some(), "{t}");
        }
        let case = c.record("case").unwrap();
        let stored = case.stored_schema();
        for id in [
            "given_name",
            "family_name",
            "birth_date",
            "phone",
            "case_number",
        ] {
            assert!(
                stored.field_with_name(id).is_err(),
                "{id} must not be stored"
            );
        }
        assert!(stored.field_with_name("person_id").is_ok());
    }

    #[test]
    fn labels_in_partner_languages() {
        let c = catalog();
        let g = &c.lists["gender"];
        assert_eq!(g.lookup("Moteris"), Some("female"));
        assert_eq!(g.lookup("SIEVIETE"), Some("female"));
        assert_eq!(g.lookup("mężczyzna"), Some("male"));
        assert_eq!(g.lookup("naine"), Some("female"));
        let e = &c.lists["exploitation"];
        assert_eq!(e.lookup("seksualinis išnaudojimas"), Some("sexual"));
        assert_eq!(e.lookup("praca przymusowa"), Some("labour"));
        assert_eq!(c.country("LTU"), Some("LT"));
        assert_eq!(c.country("Lietuva"), Some("LT"));
        assert_eq!(c.country("Ukraina"), Some("UA"));
        assert_eq!(c.country("Norge"), Some("NO"));
        assert_eq!(
            c.lists["region"].lookup("Vilniaus apskritis"),
            Some("LT011")
        );
    }
}
