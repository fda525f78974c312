//! Multiple systems estimation reproduces the published analyses: the same models and point
//! estimates as the SparseMSE R package (Chan, Silverman & Vincent 2019) on ten published
//! datasets, R's BCa limits from R's own bootstrap estimates, an interval of the same size from
//! tip's own bootstrap, and `tip estimate` on the command line. Data: tests/fixtures/mse.

use std::path::{Path, PathBuf};

use tip::estimate::{self, Histories, Options};

use crate::common::{Env, repo, stderr, stdout};

fn fixture(name: &str) -> PathBuf {
    repo()
        .join("tests/fixtures/mse")
        .join(format!("{name}.csv"))
}

fn histories(name: &str) -> Histories {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    Histories::from_csv(name, &text).unwrap()
}

fn no_bootstrap() -> Options {
    Options {
        bootstrap: 0,
        ..Options::default()
    }
}

/// SparseMSE 2.0.1 `estimatepopulation.0` (stepwise, pthresh 0.02): estimate and terms in the
/// order they entered ("-" marks none).
const REFERENCE: &[(&str, f64, &str)] = &[
    ("Artificial_3", 539.0939, "-"),
    ("Korea", 268.7778, "b:c"),
    ("Western", 2483.3839, "A:E"),
    ("NewOrl", 1183.6923, "D:E"),
    ("NewOrl_5", 1034.1511, "-"),
    (
        "UKdat",
        11417.9911,
        "PF:NCA LA:NG NG:GP LA:PF PF:GP GO:GP NG:GO",
    ),
    (
        "UKdat_5",
        11312.9903,
        "LA:NG NG:GP PFNCA:GP LA:PFNCA GO:GP NG:GO",
    ),
    ("Ned", 111139.3712, "O:Z P:Z I:Z P:R O:P K:R I:K K:O"),
    ("Ned_5", 121521.6137, "IO:Z P:Z P:R IO:P K:R IO:K"),
    (
        "Kosovo",
        14341.6638,
        "ABA:OSCE OSCE:HRW EXH:OSCE EXH:ABA EXH:HRW",
    ),
];

#[test]
fn the_published_models_and_estimates_are_reproduced() {
    for &(name, expected, terms) in REFERENCE {
        let e = estimate::estimate(&histories(name), &no_bootstrap()).unwrap();
        let terms: Vec<&str> = terms.split(' ').filter(|t| *t != "-").collect();
        assert_eq!(e.terms, terms, "{name}");
        assert!(
            (e.estimate - expected).abs() < 5e-4,
            "{name}: {} against {expected}",
            e.estimate
        );
        assert!(e.checks_passed, "{name}");
        assert!(
            (e.estimate - e.observed as f64 - e.unobserved).abs() < 1e-6,
            "{name}"
        );
    }
    // The Netherlands' model has two pairs that never overlap, at minus infinity.
    let ned = estimate::estimate(&histories("Ned"), &no_bootstrap()).unwrap();
    assert_eq!(ned.never_overlapping_terms, vec!["K:R", "I:K"]);
}

/// R's bootstrap estimates (nboot 1000, iseed 1234) with tip's jackknife acceleration and BCa
/// give R's limits. Where one of R's resamples reproduced the estimate itself (a tie, Western),
/// R's strict count lets rounding decide it and tip counts it half: the limits then differ by
/// less than half a percent (Western, Artificial_3: one tie each; R counted Western's below and
/// Artificial_3's above). The published Western interval is (1293, 3670).
#[test]
fn bca_limits_from_rs_bootstrap_are_rs() {
    // dataset, R's estimate, R's acceleration, R's 95% and 80% limits, relative tolerance
    let cases = [
        (
            "Western",
            2483.3839,
            -0.095010,
            [1293.21, 3672.04, 1343.29, 2998.54],
            0.005,
        ),
        (
            "Artificial_3",
            539.0939,
            -0.061031,
            [280.92, 1484.18, 335.28, 808.17],
            0.002,
        ),
    ];
    for (name, point, a_r, limits, tolerance) in cases {
        let text = std::fs::read_to_string(fixture(&format!("r_bootreps_{name}"))).unwrap();
        let mut boots: Vec<f64> = text.lines().skip(1).map(|l| l.parse().unwrap()).collect();
        assert_eq!(boots.len(), 1000);
        let h = histories(name);
        // R's estimate to full precision (the replicates equal to it decide z0).
        let point_here = estimate::estimate(&h, &no_bootstrap()).unwrap().estimate;
        assert!((point_here - point).abs() < 5e-4);
        let point = point_here;
        let a = estimate::jackknife_acceleration(&h, &Options::default());
        assert!(
            (a - a_r).abs() < 1e-5,
            "{name}: acceleration {a} against R's {a_r}"
        );
        let (_, intervals) = estimate::bca(point, &mut boots, a, &[0.95, 0.80]).unwrap();
        let got = [
            intervals[0].lower,
            intervals[0].upper,
            intervals[1].lower,
            intervals[1].upper,
        ];
        for (g, r) in got.iter().zip(limits) {
            assert!(
                (g - r).abs() <= tolerance * r,
                "{name}: {got:?} against R's {limits:?}"
            );
        }
    }
}

/// tip's own bootstrap cannot draw R's random numbers, but its interval must be the same
/// interval up to resampling noise, and the same seed must give the same interval.
#[test]
fn tips_own_bootstrap_agrees_with_r_and_is_reproducible() {
    let h = histories("Western");
    let o = Options::default();
    let e = estimate::estimate(&h, &o).unwrap();
    let ci = &e.intervals[0];
    assert_eq!(ci.level, 0.95);
    assert!(ci.lower < e.estimate && e.estimate < ci.upper, "{ci:?}");
    // R: (1293.21, 3672.04); numpy's bootstrap gave (1183, 3646).
    assert!((1050.0..1550.0).contains(&ci.lower), "{ci:?}");
    assert!((3200.0..4200.0).contains(&ci.upper), "{ci:?}");
    let again = estimate::estimate(&h, &o).unwrap();
    assert_eq!(again.intervals[0].lower, ci.lower);
    assert_eq!(again.intervals[0].upper, ci.upper);
    let other = estimate::estimate(&h, &Options { seed: 7, ..o }).unwrap();
    assert_ne!(other.intervals[0].lower, ci.lower);
}

#[test]
fn tip_estimate_on_the_command_line() {
    let env = Env::new();
    let file = fixture("Korea");
    let o = env.tip(&[
        "estimate",
        "--histories",
        file.to_str().unwrap(),
        "--format",
        "json",
        "--bootstrap",
        "200",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        (v["estimate"].as_f64().unwrap() - 268.7778).abs() < 1e-3,
        "{v}"
    );
    assert_eq!(v["observed"], 123);
    assert_eq!(v["terms"], serde_json::json!(["b:c"]));
    assert_eq!(v["intervals"].as_array().unwrap().len(), 2);
    assert!(v["assumptions"].as_array().unwrap().len() >= 3);
    let o = env.tip(&[
        "estimate",
        "--histories",
        file.to_str().unwrap(),
        "--bootstrap",
        "0",
    ]);
    let table = stdout(&o);
    assert!(
        table.contains("estimate: 269 people (123 observed"),
        "{table}"
    );
    assert!(table.contains("two-list terms: b:c"), "{table}");
    assert!(table.contains("assumptions:"), "{table}");

    // Two lists with no one in common say nothing about who is on neither: no number.
    let apart = env.path("apart.csv");
    std::fs::write(&apart, "police,ngo,count\n1,0,40\n0,1,25\n").unwrap();
    let o = env.tip(&["estimate", "--histories", apart.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("no estimate exists"), "{}", stderr(&o));
    // Counts past the bound are refused, not summed past u64 or drawn for ever.
    let huge = env.path("huge.csv");
    std::fs::write(&huge, "A,B,count\n1,0,18446744073709551615\n1,1,5\n0,1,3\n").unwrap();
    let o = env.tip(&["estimate", "--histories", huge.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("more than 1000000000 people"),
        "{}",
        stderr(&o)
    );

    // A malformed file is refused naming the file, line and column.
    let bad = env.path("bad.csv");
    std::fs::write(&bad, "A,B,count\n1,0,5\n1,2,3\n").unwrap();
    let o = env.tip(&["estimate", "--histories", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad.csv: line 3, column B: expected 0 or 1"),
        "{err}"
    );
}

/// Korea's 123 people (three lists b, c, d) as children reported in 2024 by three Lithuanian
/// agencies: b the NGO, c the police, d child protection. Each agency writes its own case
/// numbers, and the police write family names in capitals: only the pseudonym links them.
/// Around them: a case with no birth date (cannot be linked), a case assessed as not a victim,
/// an adult, a child from 2023, and a Latvian case, none of which may count.
fn korea_lake(env: &Env) -> (PathBuf, Histories) {
    let h = histories("Korea");
    let partners = ["LT-NGO-01", "LT-POL-01", "LT-CP-01"];
    let header =
        "case_number,given_name,family_name,birth_date,registered_on,gender,status,exploitation\n";
    let mut files: Vec<String> = vec![header.to_string(); 3];
    let mut person = 0;
    for &(mask, n) in &h.rows {
        for _ in 0..n {
            person += 1;
            let sex = if person % 2 == 0 { "female" } else { "male" };
            for (k, file) in files.iter_mut().enumerate() {
                if mask >> k & 1 == 1 {
                    let family = format!("Pavardenis{person}");
                    let family = if k == 1 {
                        family.to_uppercase()
                    } else {
                        family
                    };
                    file.push_str(&format!(
                        "{k}-{person},Vaikas{person},{family},2010-{:02}-{:02},2024-{:02}-15,{sex},identified,sexual\n",
                        person % 12 + 1,
                        person % 28 + 1,
                        (person + k) % 12 + 1
                    ));
                }
            }
        }
    }
    files[0].push_str("X-1,Nameless,,,2024-05-05,female,identified,labour\n");
    files[1].push_str("X-2,Not,Victim,2011-02-02,2024-05-05,male,not_victim,\n");
    files[0].push_str("X-3,Adult,Person,1990-02-02,2024-05-05,female,identified,labour\n");
    files[1].push_str("X-4,Adult,Person,1990-02-02,2024-06-05,female,identified,labour\n");
    files[2].push_str("X-5,Vaikas1,Pavardenis1,2010-02-02,2023-03-15,male,identified,sexual\n");
    for (p, text) in partners.iter().zip(&files) {
        let f = env.path(&format!("{p}.csv"));
        std::fs::write(&f, text).unwrap();
        let o = env.load_on(&env.lake, p, "case", &f);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let lv = env.path("lv.csv");
    std::fs::write(
        &lv,
        format!("{header}L-1,Vaikas2,Pavardenis2,2010-03-03,2024-04-04,female,identified,sexual\n"),
    )
    .unwrap();
    assert!(
        env.load_on(&env.lake, "LV-POL-01", "case", &lv)
            .status
            .success()
    );
    // The same histories with the lists named as the lake names them, in the order it sorts
    // them (LT-CP-01 = d, LT-NGO-01 = b, LT-POL-01 = c), rows by history.
    let mut rows: Vec<(u32, u64)> = h
        .rows
        .iter()
        .map(|&(m, n)| (((m >> 2) & 1) | ((m & 1) << 1) | (((m >> 1) & 1) << 2), n))
        .collect();
    rows.sort();
    let mut csv = "LT-CP-01,LT-NGO-01,LT-POL-01,count\n".to_string();
    for (m, n) in &rows {
        csv.push_str(&format!("{},{},{},{n}\n", m & 1, m >> 1 & 1, m >> 2 & 1));
    }
    let file = env.path("korea-by-partner.csv");
    std::fs::write(&file, csv).unwrap();
    (file, h)
}

fn json_of(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap()
}

#[test]
fn estimates_from_the_lake_are_those_of_its_capture_histories() {
    let env = Env::new();
    let (file, h) = korea_lake(&env);
    let table = json_of(&env.tip(&[
        "estimate",
        "--capture-histories",
        file.to_str().unwrap(),
        "--format",
        "json",
        "--bootstrap",
        "200",
    ]));
    let lake_args = |lists: &str| -> Vec<String> {
        [
            "estimate",
            "--lists",
            lists,
            "--year",
            "2024",
            "--country",
            "LT",
            "--children",
            "--format",
            "json",
            "--bootstrap",
            "200",
        ]
        .map(str::to_string)
        .to_vec()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        json_of(&env.tip(&a))
    };
    let lake = run(lake_args("partner"));
    assert_eq!(lake["strata"].as_array().unwrap().len(), 1, "{lake}");
    let e = &lake["strata"][0]["estimate"];
    assert_eq!(e["observed"], h.observed(), "{lake}");
    for k in [
        "estimate",
        "unobserved",
        "intervals",
        "terms",
        "lists",
        "aic",
    ] {
        assert_eq!(e[k], table[k], "{k}: lake {lake} table {table}");
    }
    assert!((e["estimate"].as_f64().unwrap() - 268.7778).abs() < 1e-3);
    // What was left out is counted: the nameless case, the non-victim; the adult is not a
    // child; 2023 and Latvia are outside the selection.
    assert!(
        lake["table_versions"]["cases"].as_i64().unwrap() >= 0,
        "{lake}"
    );
    assert_eq!(lake["records_without_person_id"], 1, "{lake}");
    assert_eq!(lake["records_not_victim"], 1, "{lake}");
    let rows: u64 = h.rows.iter().map(|&(m, n)| m.count_ones() as u64 * n).sum();
    assert_eq!(lake["records"], rows + 4, "{lake}");
    assert_eq!(rows + 3, 210);
    let warnings = lake["warnings"].to_string();
    assert!(warnings.contains("1 of 210 case records"), "{warnings}");
    assert!(warnings.contains("no person_id"), "{warnings}");

    // Lists by kind of agency: the same three lists under other names, the same estimate.
    let by_type = run(lake_args("org_type"));
    let t = &by_type["strata"][0]["estimate"];
    assert_eq!(
        t["lists"],
        serde_json::json!(["child_protection", "ngo", "police"])
    );
    assert_eq!(t["estimate"], e["estimate"]);
    assert_eq!(t["intervals"], e["intervals"]);

    // Without --children the adult (on two lists) counts; with --by sex the strata split the
    // children and add up to them.
    let mut all = lake_args("partner");
    all.retain(|a| a != "--children");
    let all = run(all);
    assert_eq!(all["strata"][0]["people"], h.observed() + 1, "{all}");
    let mut by = lake_args("partner");
    by.extend(["--by".to_string(), "sex".to_string()]);
    let by = run(by);
    let strata = by["strata"].as_array().unwrap();
    let sexes: Vec<&str> = strata
        .iter()
        .map(|s| s["stratum"]["sex"].as_str().unwrap())
        .collect();
    assert_eq!(sexes, ["female", "male"], "{by}");
    let people: u64 = strata.iter().map(|s| s["people"].as_u64().unwrap()).sum();
    assert_eq!(people, h.observed());
    assert!(
        strata
            .iter()
            .all(|s| s["estimate"]["estimate"].as_f64().is_some()),
        "{by}"
    );

    // The table form says what was left out and the assumptions.
    let mut text = lake_args("partner");
    text.retain(|a| a != "json" && a != "--format");
    let o = env.tip(&text.iter().map(String::as_str).collect::<Vec<_>>());
    let out = stdout(&o);
    assert!(out.contains("children in LT, 2024"), "{out}");
    assert!(out.contains("1 without person_id, 1 not a victim"), "{out}");
    assert!(out.contains("estimate: 269 people (123 observed"), "{out}");
    assert!(out.contains("assumptions:"), "{out}");
}

#[test]
fn degenerate_selections_are_refused_or_warned_never_a_bare_number() {
    let env = Env::new();
    korea_lake(&env);
    let refused = |args: &[&str], says: &str| {
        let o = env.tip(args);
        assert!(!o.status.success(), "{args:?}: {}", stdout(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    };
    // An empty period.
    refused(
        &["estimate", "--year", "2019", "--bootstrap", "0"],
        "no linked person in 2019-01..2019-12",
    );
    // Latvia has one list: nothing links anyone.
    refused(
        &[
            "estimate",
            "--year",
            "2024",
            "--country",
            "LV",
            "--bootstrap",
            "0",
        ],
        "fewer than two lists",
    );
    refused(&["estimate", "--lists", "nope"], "--lists \"nope\"");
    refused(&["estimate", "--country", "Atlantis"], "not a country");
    refused(&["estimate", "--by", "shoe-size"], "--by \"shoe-size\"");
    refused(&["estimate", "--rule", "vibes"], "--rule \"vibes\"");

    // Two lists (a grouping of the configuration): an estimate, with the caveat next to it.
    let cfg = env.path("tip.toml");
    let mut text = std::fs::read_to_string(repo().join("pipelines/tip.toml")).unwrap();
    text.push_str(
        "\n[estimate.lists.two]\nenforcement = [\"police\"]\nsupport = [\"ngo\", \"LT-CP-01\"]\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = env.tip(&["--config", cfg, "check"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v = json_of(&env.tip(&[
        "--config",
        cfg,
        "estimate",
        "--lists",
        "two",
        "--year",
        "2024",
        "--country",
        "LT",
        "--children",
        "--format",
        "json",
        "--bootstrap",
        "0",
    ]));
    let e = &v["strata"][0]["estimate"];
    assert_eq!(
        e["lists"],
        serde_json::json!(["enforcement", "support"]),
        "{v}"
    );
    assert!(e["warnings"].to_string().contains("only two lists"), "{v}");
    // A grouping that puts one organisation on two lists fails `tip check`.
    let bad = env.path("bad.toml");
    let mut text = std::fs::read_to_string(repo().join("pipelines/tip.toml")).unwrap();
    text.push_str(
        "\n[estimate.lists.twice]\na = [\"police\"]\nb = [\"police\"]\nc = [\"no_such_type\"]\n",
    );
    std::fs::write(&bad, text).unwrap();
    let o = env.tip(&["--config", bad.to_str().unwrap(), "check"]);
    assert!(!o.status.success());
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("is on more than one list"), "{all}");
    assert!(all.contains("\"no_such_type\" is neither"), "{all}");
}

/// AIC and BIC: forward selection stops where no further term improves the criterion, and
/// the criterion is the one statsmodels reports for the same model.
#[test]
fn aic_and_bic_choose_a_local_optimum() {
    for name in ["Korea", "Western", "Kosovo"] {
        let h = histories(name);
        for rule in [estimate::Rule::Aic, estimate::Rule::Bic] {
            let o = Options {
                rule,
                ..no_bootstrap()
            };
            let e = estimate::estimate(&h, &o).unwrap();
            assert!(e.checks_passed, "{name} {rule:?}");
            assert!(e.estimate > e.observed as f64, "{name} {rule:?}");
            let fit = check_with_statsmodels(name, &e.terms);
            assert!(
                ((fit["aic"].as_f64().unwrap() - e.aic) / e.aic).abs() < 1e-6,
                "{name} {rule:?}: tip {} statsmodels {fit}",
                e.aic
            );
            assert!(e.rule.contains(if rule == estimate::Rule::Aic {
                "AIC"
            } else {
                "BIC"
            }));
        }
        // AIC charges less per term than BIC (log n > 2 here): it never takes fewer terms.
        let terms = |rule| {
            let o = Options {
                rule,
                ..no_bootstrap()
            };
            estimate::estimate(&h, &o).unwrap().terms.len()
        };
        assert!(
            terms(estimate::Rule::Aic) >= terms(estimate::Rule::Bic),
            "{name}"
        );
    }
}

/// Runs the independent check (statsmodels' Poisson GLM) on a dataset and model.
fn check_with_statsmodels(name: &str, terms: &[String]) -> serde_json::Value {
    let o = std::process::Command::new("python3")
        .arg(repo().join("tests/python/mse_glm_check.py"))
        .arg(fixture(name))
        .arg(serde_json::to_string(terms).unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Every published model, fitted by statsmodels' Poisson GLM: the same estimate and standard
/// error of the intercept as tip's own IRLS.
#[test]
fn statsmodels_fits_the_same_models() {
    for &(name, _, _) in REFERENCE {
        let e = estimate::estimate(&histories(name), &no_bootstrap()).unwrap();
        // `terms` holds every term in the order it entered, the never-overlapping ones too.
        let fit = check_with_statsmodels(name, &e.terms);
        let sm = fit["estimate"].as_f64().unwrap();
        assert!(
            (sm - e.estimate).abs() / e.estimate < 1e-6,
            "{name}: tip {} statsmodels {sm}",
            e.estimate
        );
        assert!(
            ((fit["aic"].as_f64().unwrap() - e.aic) / e.aic).abs() < 1e-6,
            "{name}: {fit} {}",
            e.aic
        );
        // The model interval rests on the intercept's standard error.
        let m = &e.model_interval;
        let se = ((m.upper - e.observed as f64).ln() - (m.lower - e.observed as f64).ln())
            / (2.0 * 1.959_963_984_540_054);
        let sm_se = fit["intercept_se"].as_f64().unwrap();
        assert!(
            (se - sm_se).abs() / sm_se < 1e-4,
            "{name}: tip se {se} statsmodels {sm_se}"
        );
    }
}

/// The regional extract publishes the estimate per country and year: the number identified
/// protected like every count, the estimate and its interval rounded, and no estimate where
/// there is too little to go on; the same figures as `tip estimate` gives.
#[test]
fn the_extract_publishes_estimates_per_country_and_year() {
    let env = Env::new();
    korea_lake(&env);
    let out = env.path("extract");
    let o = env.tip(&[
        "extract",
        "--month",
        "2024-12",
        "--name",
        "regional-monthly",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(out.join("regional-monthly-2024-12.csv")).unwrap();
    let value = |country: &str, year: &str, measure: &str| -> String {
        let prefix = format!("estimated_children,year,{year},country,{country},measure,{measure},");
        csv.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {csv}"))
            .to_string()
    };
    let cli = json_of(&env.tip(&[
        "estimate",
        "--year",
        "2024",
        "--country",
        "LT",
        "--children",
        "--format",
        "json",
    ]));
    let e = &cli["strata"][0]["estimate"];
    let round5 =
        |v: &serde_json::Value| ((v.as_f64().unwrap().round() as u64 + 2) / 5 * 5).to_string();
    // The number identified: for the region and a whole year only (Korea's 123 children and
    // the Latvian child), protected like every count.
    assert_eq!(value("LT", "2024", "identified"), "x");
    assert_eq!(value("Total", "2024", "identified"), "125");
    assert_eq!(value("LT", "2024", "estimate"), round5(&e["estimate"]));
    assert_eq!(
        value("LT", "2024", "lower_95"),
        round5(&e["intervals"][0]["lower"])
    );
    assert_eq!(
        value("LT", "2024", "upper_95"),
        round5(&e["intervals"][0]["upper"])
    );
    // Latvia: one child, one list: nothing is estimated, and the note says why.
    assert_eq!(value("LV", "2024", "identified"), "x");
    assert_eq!(value("LV", "2024", "estimate"), "not estimated");
    assert_eq!(
        value("LV", "2024", "note"),
        "fewer than 50 linked people: not estimated"
    );
    assert_eq!(value("Total", "2023", "identified"), "<11");
    // The year before (2023, one child): no estimate.
    assert_eq!(value("Total", "2023", "estimate"), "not estimated");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["estimates"][0]["name"], "estimated_children");
    assert_eq!(manifest["estimates"][0]["seed"], 1234);
    let html = std::fs::read_to_string(out.join("regional-monthly-2024-12.html")).unwrap();
    assert!(html.contains("How to read these estimates"));
    assert!(html.contains("The population is closed over the period"));
    // Reproduced byte for byte: the bootstrap's seed is fixed.
    let again = env.path("again");
    let o = env.tip(&[
        "extract",
        "--month",
        "2024-12",
        "--name",
        "regional-monthly",
        "--out",
        again.to_str().unwrap(),
        "--reproduce",
        out.join("manifest.json").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    same_file(&out, &again, "regional-monthly-2024-12.csv");
}

fn same_file(a: &Path, b: &Path, name: &str) {
    assert_eq!(
        std::fs::read(a.join(name)).unwrap(),
        std::fs::read(b.join(name)).unwrap(),
        "{name}"
    );
}

/// The Dutch lists: two pairs never overlap and five share fewer than five people; the
/// estimate comes with both caveats.
#[test]
fn sparse_and_missing_overlaps_are_warned() {
    let e = estimate::estimate(&histories("Ned"), &no_bootstrap()).unwrap();
    let w = e.warnings.join("\n");
    assert!(
        w.contains("2 of 15 pairs of lists have no one in common"),
        "{w}"
    );
    assert!(
        w.contains("5 of 15 pairs of lists share fewer than 5 people"),
        "{w}"
    );
    let e = estimate::estimate(&histories("Kosovo"), &no_bootstrap()).unwrap();
    assert!(
        !e.warnings.iter().any(|w| w.contains("pairs of lists")),
        "{:?}",
        e.warnings
    );
}
