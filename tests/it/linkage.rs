//! Linkage quality of `person_id`, measured against the generator's ground truth: precision
//! over all pairs of records that share a pseudonym, recall per variant class (letter case,
//! accents, spacing and hyphens, date formats, Cyrillic vs Latin script).

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::{Array, Int64Array, StringArray};

use crate::common::{Env, repo};

#[tokio::test(flavor = "multi_thread")]
async fn person_id_linkage_precision_and_recall() {
    let env = Env::new();
    let ctx = env.ctx().await;
    ctx.run_pipelines(&[]).await.unwrap();
    let truth: tip::generate::Truth = serde_json::from_str(
        &std::fs::read_to_string(repo().join("sample-data/ground-truth.json")).unwrap(),
    )
    .unwrap();
    let mut who: HashMap<(String, String, i64), (usize, String)> = HashMap::new();
    for f in &truth.files {
        for (row, person, variant) in &f.row_persons {
            who.insert(
                (f.partner.clone(), f.record_type.clone(), *row as i64),
                (*person, variant.clone()),
            );
        }
    }
    // How each partner writes dates (the "date formats" class compares records across these).
    let date_style = |partner: &str| match partner {
        "LT-NGO-01" | "EE-SVC-01" => "dd.mm.yyyy",
        "LV-POL-01" => "iso",
        "PL-CP-01" => "excel",
        _ => "iso-or-serial",
    };

    let session = tip::query::Session::open(&ctx.lake, &ctx.catalog, &ctx.registry, None)
        .await
        .unwrap();
    // (person_id, truth person, variant, partner)
    let mut records: Vec<(String, usize, String, String)> = Vec::new();
    for (t, table) in [
        ("case", "cases"),
        ("service", "services"),
        ("referral", "referrals"),
        ("outcome", "outcomes"),
    ] {
        let b = session
            .run(&format!(
                "SELECT partner, CAST(source_row AS BIGINT), person_id FROM {table}"
            ))
            .await
            .unwrap();
        for batch in b {
            let cast = |i: usize| {
                datafusion::arrow::compute::cast(
                    batch.column(i),
                    &datafusion::arrow::datatypes::DataType::Utf8,
                )
                .unwrap()
            };
            let (p, pid) = (cast(0), cast(2));
            let p = p.as_any().downcast_ref::<StringArray>().unwrap();
            let pid = pid.as_any().downcast_ref::<StringArray>().unwrap();
            let row = batch
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for i in 0..batch.num_rows() {
                let key = (p.value(i).to_string(), t.to_string(), row.value(i));
                let (person, variant) = who
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| panic!("row not in truth: {key:?}"));
                assert!(
                    pid.is_valid(i),
                    "every sample record has names and a birth date"
                );
                records.push((pid.value(i).to_string(), person, variant, key.0));
            }
        }
    }
    assert!(records.len() > 2000, "{}", records.len());

    // Pairs of records: true link = same synthetic person; predicted link = same person_id.
    let mut by_person: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut by_pid: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        by_person.entry(r.1).or_default().push(i);
        by_pid.entry(r.0.as_str()).or_default().push(i);
    }
    let (mut predicted, mut correct) = (0u64, 0u64);
    for ids in by_pid.values() {
        for a in 0..ids.len() {
            for b in a + 1..ids.len() {
                predicted += 1;
                if records[ids[a]].1 == records[ids[b]].1 {
                    correct += 1;
                }
            }
        }
    }
    let mut classes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for ids in by_person.values() {
        for a in 0..ids.len() {
            for b in a + 1..ids.len() {
                let (x, y) = (&records[ids[a]], &records[ids[b]]);
                let linked = x.0 == y.0;
                let mut mark = |class: &str| {
                    let e = classes.entry(class.to_string()).or_default();
                    e.0 += 1;
                    if linked {
                        e.1 += 1;
                    }
                };
                for v in [&x.2, &y.2] {
                    if v != "exact" {
                        mark(v);
                    }
                }
                if x.2 == "exact" && y.2 == "exact" {
                    mark("exact");
                }
                if date_style(&x.3) != date_style(&y.3) {
                    mark("date_formats");
                }
            }
        }
    }
    let precision = correct as f64 / predicted as f64;
    println!(
        "linkage: {} records of {} persons; precision {:.4} over {predicted} linked pairs",
        records.len(),
        by_person.len(),
        precision
    );
    for (class, (pairs, linked)) in &classes {
        println!(
            "linkage: class {class:<13} recall {:.4} ({linked}/{pairs} pairs)",
            *linked as f64 / *pairs as f64
        );
    }
    assert_eq!(correct, predicted, "precision must be 100%");
    for class in [
        "exact",
        "case",
        "accents",
        "spacing",
        "cyrillic",
        "date_formats",
    ] {
        let (pairs, linked) = classes.get(class).copied().unwrap_or_default();
        assert!(
            pairs >= 50,
            "class {class} has too few pairs to measure ({pairs})"
        );
        let recall = linked as f64 / pairs as f64;
        assert!(recall >= 0.99, "recall of class {class} is {recall:.4}");
    }
}
