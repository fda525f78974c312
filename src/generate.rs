//! Synthetic partner reports: what the five sample partners would send over a year, in their
//! own layouts, languages, encodings and date formats. The same children are reported by
//! several partners with different spellings (letter case, accents, spacing and hyphens,
//! Cyrillic or Latin script) so linkage can be measured, and a handful of bad rows are planted.
//! `ground-truth.json` records, for every row, which synthetic person it is and how it was
//! written, and every planted bad row with the reason tip must give. All names are synthetic.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::normalise;
use crate::schema::Catalog;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
}

fn io<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> GenerateError + '_ {
    move |e| GenerateError::Io(format!("{what}: {e}"))
}

/// The HTCDS v2.0 Excel template (IOM, CC BY 4.0), filled to make the HTCDS partner's file.
pub const HTCDS_TEMPLATE: &[u8] = include_bytes!("../pipelines/presets/htcds-v2-template.xlsx");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub persons: usize,
    pub files: Vec<TruthFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TruthFile {
    /// Path relative to the output directory.
    pub path: String,
    pub partner: String,
    pub record_type: String,
    /// Data rows written, bad rows included.
    pub rows: u64,
    pub bad_rows: Vec<BadRow>,
    /// (row number, person index, name variant) of every good row that names a person.
    pub row_persons: Vec<(u64, usize, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BadRow {
    pub row: u64,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Person {
    given: String,
    family: String,
    /// The same names in Cyrillic, for persons from Ukraine.
    cyr: Option<(String, String)>,
    birth: NaiveDate,
    gender: &'static str,
    citizenship: &'static str,
    exploitation: Vec<&'static str>,
    exploitation_country: &'static str,
    recruitment: &'static str,
    control: Vec<&'static str>,
    registered: NaiveDate,
    document: Option<String>,
}

const LT_F: &[&str] = &[
    "Austėja",
    "Gabija",
    "Emilija",
    "Ugnė",
    "Kamilė",
    "Eglė",
    "Rūta",
    "Miglė",
    "Ieva",
    "Gintarė",
    "Aistė",
    "Žydrūnė",
    "Saulė",
    "Ona",
];
const LT_M: &[&str] = &[
    "Jonas",
    "Lukas",
    "Matas",
    "Dovydas",
    "Mantas",
    "Žygimantas",
    "Karolis",
    "Tomas",
    "Rokas",
    "Šarūnas",
    "Ąžuolas",
    "Vytautas",
];
const LT_FAM: &[(&str, &str)] = &[
    ("Kazlauskas", "Kazlauskaitė"),
    ("Jankauskas", "Jankauskaitė"),
    ("Petrauskas", "Petrauskaitė"),
    ("Stankevičius", "Stankevičiūtė"),
    ("Vasiliauskas", "Vasiliauskaitė"),
    ("Žukauskas", "Žukauskaitė"),
    ("Butkus", "Butkutė"),
    ("Paulauskas", "Paulauskaitė"),
    ("Urbonas", "Urbonaitė"),
    ("Kavaliauskas", "Kavaliauskaitė"),
    ("Šimkus", "Šimkutė"),
    ("Čepulis", "Čepulytė"),
];
const LV_F: &[&str] = &[
    "Anna",
    "Marta",
    "Elīza",
    "Sofija",
    "Laura",
    "Līga",
    "Ērika",
    "Kristīne",
    "Agnese",
    "Dārta",
];
const LV_M: &[&str] = &[
    "Jānis",
    "Roberts",
    "Kārlis",
    "Artūrs",
    "Mārtiņš",
    "Ģirts",
    "Edgars",
    "Raivis",
    "Dāvis",
    "Niks",
];
const LV_FAM: &[(&str, &str)] = &[
    ("Bērziņš", "Bērziņa"),
    ("Kalniņš", "Kalniņa"),
    ("Ozoliņš", "Ozoliņa"),
    ("Liepiņš", "Liepiņa"),
    ("Krūmiņš", "Krūmiņa"),
    ("Vītols", "Vītola"),
    ("Kļaviņš", "Kļaviņa"),
    ("Zariņš", "Zariņa"),
];
const PL_F: &[&str] = &[
    "Zuzanna",
    "Julia",
    "Zofia",
    "Hanna",
    "Maja",
    "Łucja",
    "Małgorzata",
    "Agnieszka",
    "Anna-Maria",
    "Wiktoria",
];
const PL_M: &[&str] = &[
    "Jakub",
    "Antoni",
    "Szymon",
    "Łukasz",
    "Mikołaj",
    "Paweł",
    "Michał",
    "Jan-Paweł",
    "Kacper",
    "Bartłomiej",
];
const PL_FAM: &[(&str, &str)] = &[
    ("Nowak", "Nowak"),
    ("Kowalski", "Kowalska"),
    ("Wiśniewski", "Wiśniewska"),
    ("Wójcik", "Wójcik"),
    ("Kamiński", "Kamińska"),
    ("Lewandowski", "Lewandowska"),
    ("Zieliński", "Zielińska"),
    ("Dąbrowski", "Dąbrowska"),
    ("Szymański", "Szymańska"),
    ("Woźniak", "Woźniak"),
];
const EE_F: &[&str] = &[
    "Mari", "Liis", "Kärt", "Triin", "Maarja", "Helen", "Kadri", "Sirje",
];
const EE_M: &[&str] = &[
    "Jüri", "Tõnu", "Märt", "Rasmus", "Karl", "Mihkel", "Jaan", "Ott",
];
const EE_FAM: &[&str] = &[
    "Tamm",
    "Saar",
    "Sepp",
    "Mägi",
    "Kask",
    "Kukk",
    "Rebane",
    "Ilves",
    "Pärn",
    "Kõiv",
    "Mäe-Üürike",
];
const NO_F: &[&str] = &["Nora", "Emma", "Ingrid", "Sølvi", "Åse", "Maja", "Ragnhild"];
const NO_M: &[&str] = &["Jakob", "Emil", "Søren", "Håkon", "Ørjan", "Lars", "Magnus"];
const NO_FAM: &[&str] = &[
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Bjørnstad",
    "Dahl-Østby",
    "Aasen",
];
const UA_F: &[&str] = &[
    "Олена",
    "Юлія",
    "Ірина",
    "Анастасія",
    "Дарина",
    "Софія",
    "Євгенія",
    "Марія",
    "Вікторія",
    "Наталія",
];
const UA_M: &[&str] = &[
    "Олександр",
    "Дмитро",
    "Максим",
    "Андрій",
    "Іван",
    "Богдан",
    "Юрій",
    "Євген",
    "Артем",
    "Тарас",
];
const UA_FAM: &[(&str, &str)] = &[
    ("Шевченко", "Шевченко"),
    ("Бойко", "Бойко"),
    ("Коваленко", "Коваленко"),
    ("Ткаченко", "Ткаченко"),
    ("Кравчук", "Кравчук"),
    ("Олійник", "Олійник"),
    ("Мельник", "Мельник"),
    ("Поліщук", "Поліщук"),
    ("Згурський", "Згурська"),
    ("Литвиненко", "Литвиненко"),
];

/// Passport Latin of a Cyrillic name (the same system the normaliser uses), capitalised.
fn passport_latin(cyr: &str) -> String {
    let lat = normalise::transliterate_cyrillic(&cyr.to_lowercase());
    capitalise(&lat)
}

fn capitalise(s: &str) -> String {
    let mut out = String::new();
    let mut up = true;
    for c in s.chars() {
        if up {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        up = !c.is_alphabetic();
    }
    out
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// The last day of the sample year: no report is dated after it.
fn year_end() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 12, 31).unwrap_or_default()
}

fn pick_s<'a>(rng: &mut ChaCha8Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn date_between(rng: &mut ChaCha8Rng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0);
    from + chrono::Duration::days(rng.random_range(0..=span))
}

fn make_person(rng: &mut ChaCha8Rng, i: usize) -> Person {
    let year_start = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default();
    let registered = date_between(rng, year_start, year_end());
    let female = rng.random_bool(0.66);
    let gender = if rng.random_bool(0.02) {
        "unknown"
    } else if female {
        "female"
    } else {
        "male"
    };
    let r: f64 = rng.random();
    let citizenship = match r {
        x if x < 0.28 => "LT",
        x if x < 0.46 => "LV",
        x if x < 0.60 => "PL",
        x if x < 0.70 => "EE",
        x if x < 0.88 => "UA",
        x if x < 0.93 => "NO",
        x if x < 0.96 => "VN",
        _ => "NG",
    };
    let (given, family, cyr) = {
        let f = female;
        let g = |a: &[&str], b: &[&str], rng: &mut ChaCha8Rng| {
            pick(rng, if f { a } else { b }).to_string()
        };
        let fam2 = |x: &[(&str, &str)], rng: &mut ChaCha8Rng| {
            let p = pick(rng, x);
            (if f { p.1 } else { p.0 }).to_string()
        };
        match citizenship {
            "LT" => (g(LT_F, LT_M, rng), fam2(LT_FAM, rng), None),
            "LV" => (g(LV_F, LV_M, rng), fam2(LV_FAM, rng), None),
            "PL" => (g(PL_F, PL_M, rng), fam2(PL_FAM, rng), None),
            "EE" => (g(EE_F, EE_M, rng), pick(rng, EE_FAM).to_string(), None),
            "NO" => (g(NO_F, NO_M, rng), pick(rng, NO_FAM).to_string(), None),
            "UA" => {
                let cg = g(UA_F, UA_M, rng);
                let cf = fam2(UA_FAM, rng);
                (passport_latin(&cg), passport_latin(&cf), Some((cg, cf)))
            }
            _ => (
                g(
                    &["Ngozi", "Linh", "Mai", "Chioma"],
                    &["Chinedu", "Minh", "Tuan", "Emeka"],
                    rng,
                ),
                pick_s(rng, &["Nguyen", "Okafor", "Tran", "Eze"]).to_string(),
                None,
            ),
        }
    };
    let minor = rng.random_bool(0.72);
    let age = if minor {
        rng.random_range(8..=17)
    } else {
        rng.random_range(18..=34)
    };
    let birth = date_between(
        rng,
        registered - chrono::Duration::days(365 * (age + 1) - 1),
        registered - chrono::Duration::days(365 * age + 1),
    );
    let sexual = rng.random_bool(if female { 0.7 } else { 0.3 });
    let mut exploitation = vec![if sexual {
        if rng.random_bool(0.35) {
            "online_sexual"
        } else {
            "sexual"
        }
    } else {
        pick_s(
            rng,
            &[
                "labour",
                "begging",
                "criminality",
                "domestic_servitude",
                "forced_marriage",
            ],
        )
    }];
    if rng.random_bool(0.15) {
        let extra = pick_s(rng, &["labour", "criminality", "begging"]);
        if !exploitation.contains(&extra) {
            exploitation.push(extra);
        }
    }
    let exploitation_country = pick_s(rng, &["LT", "LV", "PL", "EE", "NO", "NO", "DE", "GB", "SE"]);
    let recruitment = pick_s(
        rng,
        &[
            "online_social_network",
            "online_social_network",
            "online_advertisement",
            "job_offer",
            "family",
            "friend_or_acquaintance",
            "intimate_partner",
        ],
    );
    let mut control = vec![pick_s(
        rng,
        &[
            "threats",
            "debt_bondage",
            "false_promises",
            "psychological_abuse",
            "physical_abuse",
            "withholds_documents",
        ],
    )];
    if rng.random_bool(0.3) {
        let extra = pick_s(
            rng,
            &["substances", "restricts_movement", "withholds_earnings"],
        );
        control.push(extra);
    }
    let document = rng.random_bool(0.4).then(|| {
        format!(
            "{}{:07}",
            ["AB", "KC", "PL", "EE", "NX"][i % 5],
            rng.random_range(0..10_000_000)
        )
    });
    Person {
        given,
        family,
        cyr,
        birth,
        gender,
        citizenship,
        exploitation,
        exploitation_country,
        recruitment,
        control,
        registered,
        document,
    }
}

/// How a person's name is written in one report.
#[derive(Debug, Clone, Copy)]
enum Variant {
    Exact,
    Case,
    Accents,
    Spacing,
    Cyrillic,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Exact => "exact",
            Variant::Case => "case",
            Variant::Accents => "accents",
            Variant::Spacing => "spacing",
            Variant::Cyrillic => "cyrillic",
        }
    }
}

fn strip_accents(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .map(|c| match c {
            'ł' => 'l',
            'Ł' => 'L',
            'ø' => 'o',
            'Ø' => 'O',
            other => other,
        })
        .collect()
}

fn render_name(p: &Person, v: Variant, rng: &mut ChaCha8Rng) -> (String, String) {
    match v {
        Variant::Exact => (p.given.clone(), p.family.clone()),
        Variant::Case => {
            if rng.random_bool(0.5) {
                (p.given.to_uppercase(), p.family.to_uppercase())
            } else {
                (p.given.to_lowercase(), p.family.to_uppercase())
            }
        }
        Variant::Accents => (strip_accents(&p.given), strip_accents(&p.family)),
        Variant::Spacing => {
            let space = |s: &str| {
                if s.contains('-') {
                    s.replace('-', " ")
                } else if s.contains(' ') {
                    s.replace(' ', "-")
                } else {
                    format!("  {s} ")
                }
            };
            (space(&p.given), format!("{} ", space(&p.family)))
        }
        Variant::Cyrillic => match &p.cyr {
            Some((g, f)) => (g.clone(), f.clone()),
            None => (p.given.clone(), p.family.clone()),
        },
    }
}

/// Labels of a code in a language, from the code lists (the first label).
struct Labels<'a> {
    catalog: &'a Catalog,
}

impl Labels<'_> {
    fn get(&self, list: &str, lang: &str, code: &str) -> String {
        self.catalog
            .lists
            .get(list)
            .and_then(|l| l.labels.get(lang))
            .and_then(|m| m.get(code))
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_else(|| code.to_string())
    }
    fn many(&self, list: &str, lang: &str, codes: &[&str], sep: &str) -> String {
        codes
            .iter()
            .map(|c| self.get(list, lang, c))
            .collect::<Vec<_>>()
            .join(sep)
    }
    fn country(&self, lang: &str, code: &str) -> String {
        match (lang, code) {
            ("lt", "LT") => "Lietuva".into(),
            ("lt", "LV") => "Latvija".into(),
            ("lt", "PL") => "Lenkija".into(),
            ("lt", "NO") => "Norvegija".into(),
            ("lt", "UA") => "Ukraina".into(),
            ("pl", "PL") => "Polska".into(),
            ("pl", "UA") => "Ukraina".into(),
            ("pl", "DE") => "Niemcy".into(),
            _ => code.to_string(),
        }
    }
}

/// A person's reports: which partner registered them and how the name was written.
struct Writer {
    rows: Vec<Vec<String>>,
    truth: TruthFile,
    next_row: u64,
}

impl Writer {
    fn new(path: &str, partner: &str, record_type: &str, first_row: u64) -> Writer {
        Writer {
            rows: Vec::new(),
            truth: TruthFile {
                path: path.into(),
                partner: partner.into(),
                record_type: record_type.into(),
                rows: 0,
                bad_rows: vec![],
                row_persons: vec![],
            },
            next_row: first_row,
        }
    }
    fn push(&mut self, row: Vec<String>, person: Option<(usize, Variant)>) {
        if let Some((p, v)) = person {
            self.truth
                .row_persons
                .push((self.next_row, p, v.name().into()));
        }
        self.rows.push(row);
        self.truth.rows += 1;
        self.next_row += 1;
    }
    fn push_bad(&mut self, row: Vec<String>, field: &str, reason: &str) {
        self.truth.bad_rows.push(BadRow {
            row: self.next_row,
            field: field.into(),
            reason: reason.into(),
        });
        self.rows.push(row);
        self.truth.rows += 1;
        self.next_row += 1;
    }
}

fn dmy(d: NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}
fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn write_csv(
    path: &Path,
    header: &[&str],
    rows: &[Vec<String>],
    delim: u8,
    cp1257: bool,
) -> Result<(), GenerateError> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delim)
        .from_writer(Vec::new());
    w.write_record(header).map_err(io("csv"))?;
    for r in rows {
        w.write_record(r).map_err(io("csv"))?;
    }
    let text = String::from_utf8(w.into_inner().map_err(io("csv"))?).map_err(io("csv"))?;
    let bytes = if cp1257 {
        let (b, _, bad) = encoding_rs::WINDOWS_1257.encode(&text);
        if bad {
            return Err(GenerateError::Io(format!(
                "{}: text not representable in Windows-1257",
                path.display()
            )));
        }
        b.into_owned()
    } else {
        text.into_bytes()
    };
    std::fs::write(path, bytes).map_err(io("write"))
}

fn write_ndjson(
    path: &Path,
    keys: &[&str],
    rows: &[Vec<String>],
    lists: &[&str],
) -> Result<(), GenerateError> {
    let mut out = Vec::new();
    for r in rows {
        let mut m = serde_json::Map::new();
        for (k, v) in keys.iter().zip(r) {
            if v.is_empty() {
                continue;
            }
            let val = if lists.contains(k) {
                serde_json::Value::Array(
                    v.split('|')
                        .map(|s| serde_json::Value::String(s.into()))
                        .collect(),
                )
            } else if *k == "bez_pavadibas" || *k == "piekrisana" {
                serde_json::Value::Bool(v == "true")
            } else if *k == "kartas_nr" {
                serde_json::json!(v.parse::<i64>().unwrap_or(0))
            } else {
                serde_json::Value::String(v.clone())
            };
            m.insert(k.to_string(), val);
        }
        serde_json::to_writer(&mut out, &m).map_err(io("json"))?;
        out.push(b'\n');
    }
    std::fs::write(path, out).map_err(io("write"))
}

/// Generates the sample partner files under `out` and returns the ground truth.
pub fn generate(out: &Path, persons: usize, seed: u64) -> Result<Truth, GenerateError> {
    let catalog = Catalog::load(Path::new("schemas"))?;
    generate_with(out, persons, seed, &catalog)
}

pub fn generate_with(
    out: &Path,
    n_persons: usize,
    seed: u64,
    catalog: &Catalog,
) -> Result<Truth, GenerateError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Two synthetic persons never share normalised names and birth date: the ground truth says
    // they are different children, so linkage must keep them apart.
    let mut seen = std::collections::HashSet::new();
    let mut people: Vec<Person> = Vec::with_capacity(n_persons);
    for i in 0..n_persons {
        let mut p = make_person(&mut rng, i);
        while !seen.insert((
            normalise::name(&p.given),
            normalise::name(&p.family),
            p.birth,
        )) {
            p.birth -= chrono::Duration::days(1);
        }
        people.push(p);
    }
    let l = Labels { catalog };
    for d in [
        "lt-ngo",
        "lv-police",
        "pl-child-protection",
        "ee-services",
        "no-ngo",
    ] {
        std::fs::create_dir_all(out.join(d)).map_err(io("mkdir"))?;
    }
    let variant = |rng: &mut ChaCha8Rng, p: &Person, allow_cyr: bool| -> Variant {
        if allow_cyr && p.cyr.is_some() && rng.random_bool(0.7) {
            return Variant::Cyrillic;
        }
        *pick(
            rng,
            &[
                Variant::Exact,
                Variant::Exact,
                Variant::Case,
                Variant::Accents,
                Variant::Spacing,
            ],
        )
    };
    // Who registers each person: a primary partner by where they were found, and sometimes more.
    let mut reporters: Vec<Vec<&str>> = Vec::new();
    for p in &people {
        let primary = match p.exploitation_country {
            "LT" => "LT",
            "LV" => "LV",
            "PL" | "DE" => "PL",
            "NO" | "SE" | "GB" => "NO",
            _ => pick_s(&mut rng, &["LT", "LV", "PL"]),
        };
        let mut r = vec![primary];
        for other in ["LT", "LV", "PL", "NO"] {
            if other != primary && rng.random_bool(0.12) {
                r.push(other);
            }
        }
        reporters.push(r);
    }

    // --- Lithuanian NGO: cases and services, CSV ';', Windows-1257.
    let mut lt_cases = Writer::new("lt-ngo/bylos_2025.csv", "LT-NGO-01", "case", 2);
    let mut lt_services = Writer::new("lt-ngo/paslaugos_2025.csv", "LT-NGO-01", "service", 2);
    let lt_gender = |g: &str| match g {
        "female" => "M".to_string(),
        "male" => "V".to_string(),
        _ => "nežinoma".to_string(),
    };
    let mut case_no = 1000;
    for (i, p) in people.iter().enumerate() {
        if !reporters[i].contains(&"LT") {
            continue;
        }
        case_no += 1;
        let v = variant(&mut rng, p, false);
        let (g, f) = render_name(p, v, &mut rng);
        let reg = if reporters[i][0] == "LT" {
            p.registered
        } else {
            date_between(
                &mut rng,
                p.registered,
                p.registered + chrono::Duration::days(60),
            )
            .min(year_end())
        };
        let status = if rng.random_bool(0.7) {
            "identified"
        } else {
            "presumed"
        };
        lt_cases.push(
            vec![
                format!("LT-{case_no}"),
                g.clone(),
                f.clone(),
                dmy(p.birth),
                p.document.clone().unwrap_or_default(),
                if p.document.is_some() {
                    l.country("lt", p.citizenship)
                } else {
                    String::new()
                },
                format!("+3706{:07}", rng.random_range(0..10_000_000)),
                format!(
                    "Gatvė {} - {}",
                    rng.random_range(1..99),
                    rng.random_range(1..40)
                ),
                dmy(reg),
                lt_gender(p.gender),
                l.country("lt", p.citizenship),
                l.get("victim_status", "lt", status),
                l.get(
                    "identified_by",
                    "lt",
                    pick_s(
                        &mut rng,
                        &["police", "ngo", "child_protection", "border_guard"],
                    ),
                ),
                l.many("exploitation", "lt", &p.exploitation, ", "),
                l.get("recruitment", "lt", p.recruitment),
                l.many("means_of_control", "lt", &p.control, ", "),
                l.country("lt", p.exploitation_country),
                l.get(
                    "region",
                    "local",
                    pick_s(&mut rng, &["LT011", "LT022", "LT023", "LT026"]),
                ),
                if rng.random_bool(0.2) { "taip" } else { "ne" }.into(),
                l.get(
                    "migration_status",
                    "lt",
                    if p.citizenship == "LT" {
                        "national"
                    } else if p.citizenship == "UA" {
                        "refugee"
                    } else {
                        "eu_citizen"
                    },
                ),
                "taip".into(),
                "Pastaba: vaikas papasakojo apie išnaudojimą".into(),
            ],
            Some((i, v)),
        );
        let n_services = rng.random_range(0..=4);
        for _ in 0..n_services {
            let v = variant(&mut rng, p, false);
            let (g, f) = render_name(p, v, &mut rng);
            let d = date_between(
                &mut rng,
                reg,
                (reg + chrono::Duration::days(150)).min(year_end()),
            );
            let st = pick_s(
                &mut rng,
                &[
                    "psychological",
                    "legal",
                    "social",
                    "shelter",
                    "medical",
                    "interpretation",
                ],
            );
            lt_services.push(
                vec![
                    format!("LT-{case_no}"),
                    g,
                    f,
                    dmy(p.birth),
                    dmy(d),
                    l.get("service_type", "lt", st),
                    rng.random_range(1..=6).to_string(),
                    format!(
                        "{},{}",
                        rng.random_range(1..8),
                        [0, 5][rng.random_range(0..2)]
                    ),
                    l.get("recipient_role", "lt", "victim"),
                ],
                Some((i, v)),
            );
        }
    }
    // Planted bad rows.
    let p0 = &people[0];
    // Planted bad rows: an unknown gender label and a date that does not exist.
    let lt_bad = |case: &str, registered: String, gender: &str| -> Vec<String> {
        let mut row = vec![String::new(); 22];
        row[0] = case.into();
        row[1] = p0.given.clone();
        row[2] = p0.family.clone();
        row[3] = dmy(p0.birth);
        row[8] = registered;
        row[9] = gender.into();
        row[10] = "Lietuva".into();
        row[11] = l.get("victim_status", "lt", "presumed");
        row[18] = "ne".into();
        row[20] = "taip".into();
        row
    };
    lt_cases.push_bad(
        lt_bad("LT-9001", dmy(p0.registered), "Q"),
        "gender",
        "unknown_code",
    );
    lt_cases.push_bad(
        lt_bad("LT-9002", "31.02.2025".into(), "M"),
        "registered_on",
        "impossible_date",
    );
    write_csv(
        &out.join(&lt_cases.truth.path),
        &[
            "Bylos Nr.",
            "Vardas",
            "Pavardė",
            "Gimimo data",
            "Asmens dokumento Nr.",
            "Dokumentą išdavusi šalis",
            "Telefonas",
            "Adresas",
            "Registravimo data",
            "Lytis",
            "Pilietybė",
            "Statusas",
            "Nustatė",
            "Išnaudojimo forma",
            "Verbavimo būdas",
            "Kontrolės priemonės",
            "Išnaudojimo šalis",
            "Apskritis",
            "Be palydos",
            "Migracinis statusas",
            "Sutikimas",
            "Pastabos",
        ],
        &lt_cases.rows,
        b';',
        true,
    )?;
    write_csv(
        &out.join(&lt_services.truth.path),
        &[
            "Bylos Nr.",
            "Vardas",
            "Pavardė",
            "Gimimo data",
            "Paslaugos data",
            "Paslaugos rūšis",
            "Užsiėmimų skaičius",
            "Valandos",
            "Gavėjas",
        ],
        &lt_services.rows,
        b';',
        true,
    )?;

    // --- Latvian police: cases, referrals, route events, NDJSON.
    let mut lv_cases = Writer::new("lv-police/lietas_2025.ndjson", "LV-POL-01", "case", 1);
    let mut lv_refs = Writer::new(
        "lv-police/nosutijumi_2025.ndjson",
        "LV-POL-01",
        "referral",
        1,
    );
    let mut lv_events = Writer::new("lv-police/notikumi_2025.ndjson", "LV-POL-01", "event", 1);
    let orgs: Vec<&str> = vec![
        "LT-NGO-01",
        "LT-POL-01",
        "LT-CP-01",
        "LV-NGO-01",
        "LV-CP-01",
        "PL-POL-01",
        "PL-CP-01",
        "EE-POL-01",
        "EE-SVC-01",
        "NO-POL-01",
        "NO-CP-01",
        "NO-NGO-01",
    ];
    let mut lv_no = 500;
    for (i, p) in people.iter().enumerate() {
        if !reporters[i].contains(&"LV") {
            continue;
        }
        lv_no += 1;
        let case = format!("VP-2025-{lv_no:05}");
        let v = variant(&mut rng, p, true);
        let (g, f) = render_name(p, v, &mut rng);
        let reg = p.registered;
        lv_cases.push(
            vec![
                case.clone(),
                g.clone(),
                f.clone(),
                iso(p.birth),
                p.document.clone().unwrap_or_default(),
                if p.document.is_some() {
                    p.citizenship.into()
                } else {
                    String::new()
                },
                iso(reg),
                l.get("gender", "lv", p.gender),
                p.citizenship.into(),
                l.get(
                    "victim_status",
                    "lv",
                    if rng.random_bool(0.6) {
                        "identified"
                    } else {
                        "presumed"
                    },
                ),
                l.get("identified_by", "lv", "police"),
                p.exploitation
                    .iter()
                    .map(|c| l.get("exploitation", "lv", c))
                    .collect::<Vec<_>>()
                    .join("|"),
                l.get("recruitment", "lv", p.recruitment),
                p.control
                    .iter()
                    .map(|c| l.get("means_of_control", "lv", c))
                    .collect::<Vec<_>>()
                    .join("|"),
                p.exploitation_country.into(),
                (pick_s(&mut rng, &["LV006", "LV007", "LV005"])).into(),
                if rng.random_bool(0.15) {
                    "true"
                } else {
                    "false"
                }
                .into(),
                l.get(
                    "migration_status",
                    "lv",
                    if p.citizenship == "LV" {
                        "national"
                    } else {
                        "eu_citizen"
                    },
                ),
                "true".into(),
            ],
            Some((i, v)),
        );
        for k in 0..rng.random_range(0..=2) {
            let v = variant(&mut rng, p, true);
            let (g, f) = render_name(p, v, &mut rng);
            let sent = date_between(
                &mut rng,
                reg,
                (reg + chrono::Duration::days(30)).min(year_end()),
            );
            let status = pick_s(
                &mut rng,
                &[
                    "accepted",
                    "accepted",
                    "acknowledged",
                    "completed",
                    "rejected",
                    "no_response",
                ],
            );
            let responded = (status != "no_response")
                .then(|| sent + chrono::Duration::days(rng.random_range(0..21)));
            lv_refs.push(
                vec![
                    format!("NS-{lv_no}-{k}"),
                    case.clone(),
                    g,
                    f,
                    iso(p.birth),
                    l.get(
                        "referral_kind",
                        "lv",
                        pick_s(
                            &mut rng,
                            &[
                                "referral",
                                "referral",
                                "information_request",
                                "intelligence_report",
                                "alert",
                            ],
                        ),
                    ),
                    iso(sent),
                    pick_s(&mut rng, &orgs).into(),
                    l.get(
                        "referral_reason",
                        "lv",
                        pick_s(
                            &mut rng,
                            &["services", "protection", "investigation", "return"],
                        ),
                    ),
                    l.get(
                        "channel",
                        "lv",
                        pick_s(
                            &mut rng,
                            &["secure_platform", "email", "phone", "joint_team"],
                        ),
                    ),
                    l.get("referral_status", "lv", status),
                    responded.map(iso).unwrap_or_default(),
                ],
                Some((i, v)),
            );
        }
        // Route: recruitment at home (month only), transit, exploitation, identification in LV.
        let start = reg - chrono::Duration::days(rng.random_range(30..300));
        let mut legs: Vec<(&str, &str, String)> = vec![(
            "recruitment",
            p.citizenship,
            start.format("%Y-%m").to_string(),
        )];
        if rng.random_bool(0.5) {
            legs.push((
                "transit",
                pick_s(&mut rng, &["PL", "LT", "EE"]),
                iso(start + chrono::Duration::days(10)),
            ));
        }
        legs.push((
            "exploitation",
            p.exploitation_country,
            iso(start + chrono::Duration::days(20)),
        ));
        legs.push(("identification", "LV", iso(reg)));
        for (s, (t, c, d)) in legs.into_iter().enumerate() {
            lv_events.push(
                vec![
                    case.clone(),
                    l.get("event_type", "lv", t),
                    c.into(),
                    String::new(),
                    d,
                    (s + 1).to_string(),
                ],
                None,
            );
        }
    }
    let lvk = [
        "lietas_nr",
        "vards",
        "uzvards",
        "dzimsanas_datums",
        "pases_nr",
        "pases_valsts",
        "registrets",
        "dzimums",
        "pilsoniba",
        "statuss",
        "identificeja",
        "ekspluatacija",
        "vervesana",
        "kontrole",
        "ekspluatacijas_valsts",
        "regions",
        "bez_pavadibas",
        "migracijas_statuss",
        "piekrisana",
    ];
    lv_cases.push_bad(
        vec![
            "VP-2025-99999".into(),
            p0.given.clone(),
            p0.family.clone(),
            iso(p0.birth),
            String::new(),
            String::new(),
            iso(p0.registered),
            "sieviete".into(),
            "LT".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            "false".into(),
            String::new(),
            "true".into(),
        ],
        "status",
        "missing_required",
    );
    lv_refs.push_bad(
        vec![
            "NS-X".into(),
            "VP-2025-00001".into(),
            p0.given.clone(),
            p0.family.clone(),
            iso(p0.birth),
            "nosūtījums".into(),
            "2025-05-05".into(),
            "LV-XXX-99".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ],
        "to_org",
        "unknown_org",
    );
    write_ndjson(
        &out.join(&lv_cases.truth.path),
        &lvk,
        &lv_cases.rows,
        &["ekspluatacija", "kontrole"],
    )?;
    write_ndjson(
        &out.join(&lv_refs.truth.path),
        &[
            "nosutijuma_nr",
            "lietas_nr",
            "vards",
            "uzvards",
            "dzimsanas_datums",
            "veids",
            "nosutits",
            "uz_iestadi",
            "iemesls",
            "kanals",
            "statuss",
            "atbildets",
        ],
        &lv_refs.rows,
        &[],
    )?;
    write_ndjson(
        &out.join(&lv_events.truth.path),
        &[
            "lietas_nr",
            "notikuma_veids",
            "valsts",
            "regions",
            "datums",
            "kartas_nr",
        ],
        &lv_events.rows,
        &[],
    )?;

    // --- Polish child protection: one workbook, three sheets; real Excel dates and some text.
    let mut pl_cases = Writer::new(
        "pl-child-protection/rejestr_2025.xlsx#Sprawy",
        "PL-CP-01",
        "case",
        2,
    );
    let mut pl_out = Writer::new(
        "pl-child-protection/rejestr_2025.xlsx#Oceny ryzyka",
        "PL-CP-01",
        "outcome",
        2,
    );
    let mut pl_refs = Writer::new(
        "pl-child-protection/rejestr_2025.xlsx#Skierowania",
        "PL-CP-01",
        "referral",
        2,
    );
    let mut pl_no = 0;
    for (i, p) in people.iter().enumerate() {
        if !reporters[i].contains(&"PL") {
            continue;
        }
        pl_no += 1;
        let case = format!("{pl_no}/2025/OPS");
        let v = variant(&mut rng, p, false);
        let (g, f) = render_name(p, v, &mut rng);
        let reg = p.registered;
        pl_cases.push(
            vec![
                case.clone(),
                g.clone(),
                f.clone(),
                format!("D:{}", iso(p.birth)),
                format!("D:{}", iso(reg)),
                l.get("gender", "pl", p.gender),
                l.country("pl", p.citizenship),
                l.get(
                    "victim_status",
                    "pl",
                    if rng.random_bool(0.5) {
                        "identified"
                    } else {
                        "presumed"
                    },
                ),
                l.get(
                    "identified_by",
                    "pl",
                    pick_s(&mut rng, &["police", "child_protection", "border_guard"]),
                ),
                l.many("exploitation", "pl", &p.exploitation, ", "),
                l.get("recruitment", "pl", p.recruitment),
                l.many("means_of_control", "pl", &p.control, ", "),
                l.country("pl", p.exploitation_country),
                (pick_s(&mut rng, &["PL91", "PL84", "PL21"])).into(),
                if rng.random_bool(0.2) { "tak" } else { "nie" }.into(),
                l.get(
                    "migration_status",
                    "pl",
                    if p.citizenship == "PL" {
                        "national"
                    } else if p.citizenship == "UA" {
                        "refugee"
                    } else {
                        "eu_citizen"
                    },
                ),
                "tak".into(),
            ],
            Some((i, v)),
        );
        if p.birth + chrono::Duration::days(365 * 18) > reg {
            let mut risk = pick_s(&mut rng, &["high", "high", "medium"]);
            let mut d = reg;
            for (s, stage) in ["intake", "review", "review", "closure"]
                .iter()
                .enumerate()
                .take(rng.random_range(1..=4))
            {
                let v = variant(&mut rng, p, false);
                let (g, f) = render_name(p, v, &mut rng);
                let text_date = rng.random_bool(0.3);
                pl_out.push(
                    vec![
                        case.clone(),
                        g,
                        f,
                        if text_date {
                            dmy(p.birth)
                        } else {
                            format!("D:{}", iso(p.birth))
                        },
                        format!("D:{}", iso(d)),
                        l.get("stage", "pl", stage),
                        l.get("risk_level", "pl", risk),
                        l.many(
                            "indicators",
                            "pl",
                            &[pick_s(
                                &mut rng,
                                &[
                                    "missing_episodes",
                                    "school_absence",
                                    "online_risk",
                                    "substance_misuse",
                                ],
                            )],
                            ", ",
                        ),
                        if rng.random_bool(0.8) { "tak" } else { "nie" }.into(),
                    ],
                    Some((i, v)),
                );
                let _ = s;
                risk = match risk {
                    "high" => pick_s(&mut rng, &["high", "medium", "medium"]),
                    "medium" => pick_s(&mut rng, &["medium", "low", "low"]),
                    _ => pick_s(&mut rng, &["low", "none"]),
                };
                d = (d + chrono::Duration::days(rng.random_range(30..90))).min(year_end());
            }
        }
        if rng.random_bool(0.5) {
            let v = variant(&mut rng, p, false);
            let (g, f) = render_name(p, v, &mut rng);
            let sent = (reg + chrono::Duration::days(rng.random_range(0..20))).min(year_end());
            let to = pick_s(&mut rng, &orgs);
            pl_refs.push(
                vec![
                    format!("SK-{pl_no}"),
                    case.clone(),
                    g,
                    f,
                    format!("D:{}", iso(p.birth)),
                    l.get("referral_kind", "pl", "referral"),
                    format!("D:{}", iso(sent)),
                    to.into(),
                    l.get(
                        "referral_reason",
                        "pl",
                        pick_s(&mut rng, &["services", "protection", "relocation"]),
                    ),
                    l.get(
                        "channel",
                        "pl",
                        pick_s(&mut rng, &["email", "letter", "secure_platform"]),
                    ),
                    l.get("referral_status", "pl", "accepted"),
                    format!(
                        "D:{}",
                        iso((sent + chrono::Duration::days(rng.random_range(1..15)))
                            .min(year_end()))
                    ),
                ],
                Some((i, v)),
            );
        }
    }
    pl_out.push_bad(
        vec![
            "1/2025/OPS".into(),
            p0.given.clone(),
            p0.family.clone(),
            dmy(p0.birth),
            format!("D:{}", iso(p0.registered)),
            l.get("stage", "pl", "intake"),
            "bardzo wysokie".into(),
            String::new(),
            "tak".into(),
        ],
        "risk_level",
        "unknown_code",
    );
    {
        let mut wb = rust_xlsxwriter::Workbook::new();
        // A fixed creation time keeps the workbook byte-for-byte reproducible from the seed.
        let created = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 1, 1).map_err(io("xlsx"))?;
        wb.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
        let date_fmt = rust_xlsxwriter::Format::new().set_num_format("dd.mm.yyyy");
        let sheets: [(&str, &[&str], &Writer); 3] = [
            (
                "Sprawy",
                &[
                    "Nr sprawy",
                    "Imię",
                    "Nazwisko",
                    "Data urodzenia",
                    "Data rejestracji",
                    "Płeć",
                    "Obywatelstwo",
                    "Status",
                    "Zidentyfikowana przez",
                    "Forma wyzysku",
                    "Sposób werbunku",
                    "Metody kontroli",
                    "Kraj wyzysku",
                    "Województwo",
                    "Bez opieki",
                    "Status migracyjny",
                    "Zgoda",
                ],
                &pl_cases,
            ),
            (
                "Oceny ryzyka",
                &[
                    "Nr sprawy",
                    "Imię",
                    "Nazwisko",
                    "Data urodzenia",
                    "Data oceny",
                    "Etap",
                    "Poziom ryzyka",
                    "Wskaźniki",
                    "Zaangażowanie",
                ],
                &pl_out,
            ),
            (
                "Skierowania",
                &[
                    "Nr skierowania",
                    "Nr sprawy",
                    "Imię",
                    "Nazwisko",
                    "Data urodzenia",
                    "Rodzaj",
                    "Data wysłania",
                    "Do instytucji",
                    "Powód",
                    "Kanał",
                    "Status",
                    "Data odpowiedzi",
                ],
                &pl_refs,
            ),
        ];
        for (name, header, w) in sheets {
            let ws = wb.add_worksheet();
            ws.set_name(name).map_err(io("xlsx"))?;
            for (c, h) in header.iter().enumerate() {
                ws.write_string(0, c as u16, *h).map_err(io("xlsx"))?;
            }
            for (r, row) in w.rows.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    if v.is_empty() {
                        continue;
                    }
                    if let Some(d) = v.strip_prefix("D:") {
                        let nd = NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(io("date"))?;
                        let xd = rust_xlsxwriter::ExcelDateTime::from_ymd(
                            nd.year() as u16,
                            nd.month() as u8,
                            nd.day() as u8,
                        )
                        .map_err(io("xlsx"))?;
                        ws.write_datetime_with_format(r as u32 + 1, c as u16, &xd, &date_fmt)
                            .map_err(io("xlsx"))?;
                    } else {
                        ws.write_string(r as u32 + 1, c as u16, v)
                            .map_err(io("xlsx"))?;
                    }
                }
            }
        }
        wb.save(out.join("pl-child-protection/rejestr_2025.xlsx"))
            .map_err(io("xlsx"))?;
    }

    // --- Estonian service log and assessments: UTF-8 CSV ','.
    let mut ee_services = Writer::new("ee-services/teenused_2025.csv", "EE-SVC-01", "service", 2);
    let mut ee_out = Writer::new("ee-services/hindamised_2025.csv", "EE-SVC-01", "outcome", 2);
    let mut ee_no = 0;
    for (i, p) in people.iter().enumerate() {
        let served = p.citizenship == "EE"
            || p.exploitation_country == "EE"
            || (p.cyr.is_some() && rng.random_bool(0.25));
        if !served {
            continue;
        }
        ee_no += 1;
        let case = format!("EE-{ee_no:04}");
        let reg = p.registered;
        for _ in 0..rng.random_range(1..=5) {
            let v = variant(&mut rng, p, true);
            let (g, f) = render_name(p, v, &mut rng);
            let d = date_between(
                &mut rng,
                reg,
                (reg + chrono::Duration::days(120)).min(year_end()),
            );
            let st = pick_s(
                &mut rng,
                &[
                    "psychological",
                    "social",
                    "shelter",
                    "forensic_interview",
                    "legal",
                    "education",
                ],
            );
            ee_services.push(
                vec![
                    case.clone(),
                    g,
                    f,
                    dmy(p.birth),
                    dmy(d),
                    l.get("service_type", "et", st),
                    rng.random_range(1..=4).to_string(),
                    format!(
                        "{},{}",
                        rng.random_range(0..6),
                        [0, 5][rng.random_range(0..2)]
                    ),
                    l.get(
                        "recipient_role",
                        "et",
                        if rng.random_bool(0.9) {
                            "victim"
                        } else {
                            "witness"
                        },
                    ),
                ],
                Some((i, v)),
            );
        }
        if p.birth + chrono::Duration::days(365 * 18) > reg {
            let mut risk = "high";
            let mut d = reg;
            for stage in ["intake", "review", "follow_up"]
                .iter()
                .take(rng.random_range(1..=3))
            {
                let v = variant(&mut rng, p, true);
                let (g, f) = render_name(p, v, &mut rng);
                ee_out.push(
                    vec![
                        case.clone(),
                        g,
                        f,
                        dmy(p.birth),
                        dmy(d),
                        l.get("stage", "et", stage),
                        l.get("risk_level", "et", risk),
                        l.many(
                            "indicators",
                            "et",
                            &[pick_s(
                                &mut rng,
                                &[
                                    "missing_episodes",
                                    "online_risk",
                                    "self_harm",
                                    "homelessness",
                                ],
                            )],
                            ";",
                        ),
                        if rng.random_bool(0.85) { "jah" } else { "ei" }.into(),
                    ],
                    Some((i, v)),
                );
                risk = match risk {
                    "high" => "medium",
                    "medium" => pick_s(&mut rng, &["low", "medium"]),
                    _ => "low",
                };
                d = (d + chrono::Duration::days(rng.random_range(40..100))).min(year_end());
            }
        }
    }
    ee_services.push_bad(
        vec![
            "EE-0001".into(),
            p0.given.clone(),
            p0.family.clone(),
            dmy(p0.birth),
            dmy(p0.registered),
            l.get("service_type", "et", "social"),
            "1".into(),
            "pusteist".into(),
            l.get("recipient_role", "et", "victim"),
        ],
        "hours",
        "invalid_number",
    );
    write_csv(
        &out.join(&ee_services.truth.path),
        &[
            "juhtumi_nr",
            "eesnimi",
            "perekonnanimi",
            "sünniaeg",
            "kuupäev",
            "teenus",
            "kordi",
            "tunnid",
            "roll",
        ],
        &ee_services.rows,
        b',',
        false,
    )?;
    write_csv(
        &out.join(&ee_out.truth.path),
        &[
            "juhtumi_nr",
            "eesnimi",
            "perekonnanimi",
            "sünniaeg",
            "hindamise_kuupäev",
            "etapp",
            "riskitase",
            "näitajad",
            "kaasatud",
        ],
        &ee_out.rows,
        b',',
        false,
    )?;

    // --- Norwegian NGO: the HTCDS template, filled.
    let mut no_cases = Writer::new("no-ngo/htcds_cases_2025.xlsx", "NO-NGO-01", "case", 3);
    let htcds_gender = |g: &str| match g {
        "female" => "Feminine",
        "male" => "Masculine",
        _ => "NonSpecifiedUnknown",
    };
    let htcds_expl = |c: &str| match c {
        "sexual" | "online_sexual" => "Sexual exploitation",
        "labour" => "Forced labour",
        "begging" => "Forced begging",
        "forced_marriage" => "Forced marriage",
        "domestic_servitude" => "Servitude",
        _ => "Other",
    };
    let htcds_control = |c: &str| match c {
        "threats" => "Physical threats",
        "debt_bondage" => "Debt bondage ",
        "false_promises" => "False promises",
        "physical_abuse" => "Physical abuse",
        "psychological_abuse" => "Psychological abuse",
        "withholds_documents" => "Withholds documents",
        "substances" => "Psychoactive substance",
        "withholds_earnings" => "Takes earnings",
        _ => "Other",
    };
    let htcds_recr = |c: &str| match c {
        "online_social_network" => "Through online social networks",
        "online_advertisement" => "Through an online advertisement",
        "job_offer" => "At work",
        "family" => "Through family or family events",
        "friend_or_acquaintance" => "Through friends or social events",
        _ => "Other",
    };
    let mut htcds_rows: Vec<BTreeMap<String, String>> = Vec::new();
    for (i, p) in people.iter().enumerate() {
        if !reporters[i].contains(&"NO") {
            continue;
        }
        let v = variant(&mut rng, p, false);
        let (g, f) = render_name(p, v, &mut rng);
        let mut m = BTreeMap::new();
        m.insert("cas_CaseOwner".into(), "Case worker A".into());
        m.insert("prs_FirstName".into(), g);
        m.insert("prs_SecondName".into(), f);
        m.insert(
            "prs_Birthdate".into(),
            if rng.random_bool(0.5) {
                iso(p.birth)
            } else {
                format!(
                    "N:{}",
                    (p.birth - NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default())
                        .num_days()
                )
            },
        );
        m.insert("prs_Gender".into(), htcds_gender(p.gender).into());
        m.insert("prs_Citizenship".into(), p.citizenship.into());
        m.insert("prs_Email".into(), format!("person{i}@example.org"));
        m.insert(
            "prs_MobilePhone".into(),
            format!("+47 9{:07}", rng.random_range(0..10_000_000)),
        );
        m.insert(
            "prs_MailingStreet".into(),
            format!("Storgata {}", rng.random_range(1..200)),
        );
        m.insert("con_Consent".into(), "Yes".into());
        m.insert(
            "vic_TraffickingStatus".into(),
            if rng.random_bool(0.5) {
                "Actual victim of trafficking"
            } else {
                "Possible victim of trafficking"
            }
            .into(),
        );
        m.insert(
            "vic_TraffickinStatusDecisionMakingOrg".into(),
            (pick_s(&mut rng, &["Police", "NGO", "Court or prosecution"])).into(),
        );
        m.insert(
            "vic_MethodOfRecruitment".into(),
            htcds_recr(p.recruitment).into(),
        );
        m.insert(
            "vic_MethodsOfControl".into(),
            p.control
                .iter()
                .map(|c| htcds_control(c))
                .collect::<Vec<_>>()
                .join(";"),
        );
        m.insert(
            "vic_TypeOfExploitation".into(),
            p.exploitation
                .iter()
                .map(|c| htcds_expl(c))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(";"),
        );
        m.insert(
            "vic_LocationOfExploitation".into(),
            p.exploitation_country.into(),
        );
        m.insert(
            "cas_IncomingReferralDetails".into(),
            "Referred after an interview; see notes".into(),
        );
        htcds_rows.push(m);
        no_cases.push(vec![], Some((i, v)));
    }
    let xlsx = fill_htcds_template(HTCDS_TEMPLATE, &htcds_rows)?;
    std::fs::write(out.join(&no_cases.truth.path), xlsx).map_err(io("write"))?;

    let truth = Truth {
        seed,
        persons: n_persons,
        files: [
            lt_cases,
            lt_services,
            lv_cases,
            lv_refs,
            lv_events,
            pl_cases,
            pl_out,
            pl_refs,
            ee_services,
            ee_out,
            no_cases,
        ]
        .into_iter()
        .map(|w| w.truth)
        .collect(),
    };
    let mut f = std::fs::File::create(out.join("ground-truth.json")).map_err(io("write"))?;
    serde_json::to_writer_pretty(&mut f, &truth).map_err(io("json"))?;
    f.write_all(b"\n").map_err(io("write"))?;
    Ok(truth)
}

fn column_letters(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Fills rows 3, 4, ... of an HTCDS template's first sheet. Each row maps HTCDS field names to
/// values; a value `N:123` is written as a number (an Excel serial date), others as text.
/// Columns are found by the template's field-name row, as a partner's copy would have them.
pub fn fill_htcds_template(
    template: &[u8],
    rows: &[BTreeMap<String, String>],
) -> Result<Vec<u8>, GenerateError> {
    use calamine::Reader;
    let mut wb = calamine::Xlsx::new(std::io::Cursor::new(template)).map_err(io("template"))?;
    let first = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| GenerateError::Io("template has no sheet".into()))?;
    let range = wb.worksheet_range(&first).map_err(io("template"))?;
    let mut cols: BTreeMap<String, usize> = BTreeMap::new();
    for c in 0..=range.end().map(|e| e.1).unwrap_or(0) {
        if let Some(calamine::Data::String(s)) = range.get_value((0, c)) {
            cols.insert(s.clone(), c as usize);
        }
    }
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(template)).map_err(io("template"))?;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for k in 0..archive.len() {
        let mut entry = archive.by_index(k).map_err(io("template"))?;
        let name = entry.name().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).map_err(io("template"))?;
        if name == "xl/worksheets/sheet1.xml" {
            let mut xml = String::from_utf8(data).map_err(io("template"))?;
            for (n, row) in rows.iter().enumerate() {
                let r = n + 3;
                let mut cells: Vec<(usize, String)> =
                    vec![(0, format!("<c r=\"A{r}\"><v>{}</v></c>", n + 1))];
                for (field, value) in row {
                    let Some(&c) = cols.get(field) else { continue };
                    let at = format!("{}{r}", column_letters(c));
                    let cell = match value.strip_prefix("N:") {
                        Some(num) => format!("<c r=\"{at}\"><v>{num}</v></c>"),
                        None => format!(
                            "<c r=\"{at}\" t=\"inlineStr\"><is><t xml:space=\"preserve\">{}</t></is></c>",
                            xml_escape(value)
                        ),
                    };
                    cells.push((c, cell));
                }
                cells.sort_by_key(|(c, _)| *c);
                let new_row = format!(
                    "<row r=\"{r}\" spans=\"1:39\">{}</row>",
                    cells.into_iter().map(|(_, s)| s).collect::<String>()
                );
                let open = format!("<row r=\"{r}\" ");
                match xml.find(&open) {
                    Some(start) => {
                        let end = xml[start..]
                            .find("</row>")
                            .map(|e| start + e + 6)
                            .ok_or_else(|| GenerateError::Io("template row not closed".into()))?;
                        xml.replace_range(start..end, &new_row);
                    }
                    None => {
                        let end = xml
                            .find("</sheetData>")
                            .ok_or_else(|| GenerateError::Io("template has no sheetData".into()))?;
                        xml.insert_str(end, &new_row);
                    }
                }
            }
            data = xml.into_bytes();
        }
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default());
        out.start_file(name, opts).map_err(io("zip"))?;
        out.write_all(&data).map_err(io("zip"))?;
    }
    Ok(out.finish().map_err(io("zip"))?.into_inner())
}
