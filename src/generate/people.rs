//! The synthetic persons: who they are, where they were exploited, which partners register
//! them, and how each report writes their name (letter case, accents, spacing, Cyrillic).

use std::collections::HashSet;

use chrono::NaiveDate;
use rand::RngExt;
use rand::rngs::ChaCha8Rng;

use crate::normalise;

/// One synthetic person (child or adult), as the partners' reports describe them.
#[derive(Debug, Clone)]
pub(super) struct Person {
    pub(super) given: String,
    pub(super) family: String,
    /// The same names in Cyrillic, for persons from Ukraine.
    pub(super) cyr: Option<(String, String)>,
    pub(super) birth: NaiveDate,
    pub(super) gender: &'static str,
    pub(super) citizenship: &'static str,
    pub(super) exploitation: Vec<&'static str>,
    pub(super) exploitation_country: &'static str,
    pub(super) recruitment: &'static str,
    pub(super) control: Vec<&'static str>,
    pub(super) registered: NaiveDate,
    pub(super) document: Option<String>,
}

impl Person {
    /// Whether the person was under 18 when registered.
    pub(super) fn minor_when_registered(&self) -> bool {
        self.birth + chrono::Duration::days(365 * 18) > self.registered
    }
}

/// Given and family names, and the Cyrillic originals for persons from Ukraine.
type Names = (String, String, Option<(String, String)>);
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

pub(super) fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// The last day of the sample year: no report is dated after it.
pub(super) fn year_end() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 12, 31).unwrap_or_default()
}

pub(super) fn pick_s<'a>(rng: &mut ChaCha8Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

pub(super) fn date_between(rng: &mut ChaCha8Rng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0);
    from + chrono::Duration::days(rng.random_range(0..=span))
}

/// Makes `n` persons. Two synthetic persons never share normalised names and birth date: the
/// ground truth says they are different children, so linkage must keep them apart.
pub(super) fn make_people(rng: &mut ChaCha8Rng, n: usize) -> Vec<Person> {
    let mut seen = HashSet::new();
    let mut people: Vec<Person> = Vec::with_capacity(n);
    for i in 0..n {
        let mut p = make_person(rng, i);
        while !seen.insert((
            normalise::name(&p.given),
            normalise::name(&p.family),
            p.birth,
        )) {
            p.birth -= chrono::Duration::days(1);
        }
        people.push(p);
    }
    people
}

/// The `i`-th synthetic person. The draws from `rng` happen in the order of the statements.
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
    let citizenship = pick_citizenship(rng);
    let (given, family, cyr) = pick_names(rng, citizenship, female);
    let birth = pick_birth(rng, registered);
    let exploitation = pick_exploitation(rng, female);
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
    let control = pick_control(rng);
    let document = pick_document(rng, i);
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

fn pick_citizenship(rng: &mut ChaCha8Rng) -> &'static str {
    let r: f64 = rng.random();
    match r {
        x if x < 0.28 => "LT",
        x if x < 0.46 => "LV",
        x if x < 0.60 => "PL",
        x if x < 0.70 => "EE",
        x if x < 0.88 => "UA",
        x if x < 0.93 => "NO",
        x if x < 0.96 => "VN",
        _ => "NG",
    }
}

/// Names from the lists of the person's country (given name first, then family name).
fn pick_names(rng: &mut ChaCha8Rng, citizenship: &str, female: bool) -> Names {
    let f = female;
    let g =
        |a: &[&str], b: &[&str], rng: &mut ChaCha8Rng| pick(rng, if f { a } else { b }).to_string();
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
}

/// A birth date that makes the person 8–17 (most) or 18–34 years old when registered.
fn pick_birth(rng: &mut ChaCha8Rng, registered: NaiveDate) -> NaiveDate {
    let minor = rng.random_bool(0.72);
    let age = if minor {
        rng.random_range(8..=17)
    } else {
        rng.random_range(18..=34)
    };
    date_between(
        rng,
        registered - chrono::Duration::days(365 * (age + 1) - 1),
        registered - chrono::Duration::days(365 * age + 1),
    )
}

/// Forms of exploitation: sexual ones more often for girls and women, sometimes a second form.
fn pick_exploitation(rng: &mut ChaCha8Rng, female: bool) -> Vec<&'static str> {
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
    exploitation
}

/// Means of control: one, sometimes two.
fn pick_control(rng: &mut ChaCha8Rng) -> Vec<&'static str> {
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
    control
}

/// An identity document number for four persons in ten.
fn pick_document(rng: &mut ChaCha8Rng, i: usize) -> Option<String> {
    rng.random_bool(0.4).then(|| {
        format!(
            "{}{:07}",
            ["AB", "KC", "PL", "EE", "NX"][i % 5],
            rng.random_range(0..10_000_000)
        )
    })
}

/// Who registers each person: a primary partner by where they were found (first in the list),
/// and sometimes more.
pub(super) fn assign_reporters(rng: &mut ChaCha8Rng, people: &[Person]) -> Vec<Vec<&'static str>> {
    let mut reporters: Vec<Vec<&'static str>> = Vec::new();
    for p in people {
        let primary = match p.exploitation_country {
            "LT" => "LT",
            "LV" => "LV",
            "PL" | "DE" => "PL",
            "NO" | "SE" | "GB" => "NO",
            _ => pick_s(rng, &["LT", "LV", "PL"]),
        };
        let mut r = vec![primary];
        for other in ["LT", "LV", "PL", "NO"] {
            if other != primary && rng.random_bool(0.12) {
                r.push(other);
            }
        }
        reporters.push(r);
    }
    reporters
}

/// How a person's name is written in one report.
#[derive(Debug, Clone, Copy)]
pub(super) enum Variant {
    Exact,
    Case,
    Accents,
    Spacing,
    Cyrillic,
}

impl Variant {
    pub(super) fn name(self) -> &'static str {
        match self {
            Variant::Exact => "exact",
            Variant::Case => "case",
            Variant::Accents => "accents",
            Variant::Spacing => "spacing",
            Variant::Cyrillic => "cyrillic",
        }
    }
}

/// How one report writes the person's name: Cyrillic (where `allow_cyr` and the person has
/// Cyrillic names) most of the time, otherwise exact twice as often as each distortion.
fn pick_variant(rng: &mut ChaCha8Rng, p: &Person, allow_cyr: bool) -> Variant {
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
}

/// The person's name as one report writes it: the variant, then (given, family).
pub(super) fn name_in_report(
    rng: &mut ChaCha8Rng,
    p: &Person,
    allow_cyr: bool,
) -> (Variant, String, String) {
    let v = pick_variant(rng, p, allow_cyr);
    let (g, f) = render_name(p, v, rng);
    (v, g, f)
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
