//! A filled copy of each IOM HTCDS v2.0 template loads with `--format htcds-v2`, its picklist
//! labels mapped to canonical codes, without any per-partner mapping.

use std::collections::BTreeMap;

use crate::common::{Env, repo, stderr, stdout};

fn row(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn filled_htcds_templates_load_with_the_preset() {
    let templates = [
        repo().join("pipelines/presets/htcds-v2-template.xlsx"),
        repo().join("tests/fixtures/htcds/htcds-v2-single-select-template.xlsx"),
    ];
    for (k, template) in templates.iter().enumerate() {
        let env = Env::new();
        let rows = vec![
            row(&[
                ("cas_CaseOwner", "Caseworker Name"),
                ("prs_FirstName", "Olena"),
                ("prs_SecondName", "Shevchenko"),
                ("prs_Birthdate", "2010-04-05"),
                ("prs_Gender", "Feminine"),
                ("prs_Citizenship", "UA"),
                ("prs_Email", "olena@example.org"),
                ("prs_MailingStreet", "Storgata 1"),
                ("con_Consent", "Yes"),
                ("vic_TraffickingStatus", "Possible victim of trafficking"),
                // The template's own misspelt field name.
                (
                    "vic_TraffickinStatusDecisionMakingOrg",
                    "Court or prosecution",
                ),
                ("vic_MethodOfRecruitment", "Through online social networks"),
                ("vic_MethodsOfControl", "Debt bondage ;Psychological abuse"),
                ("vic_TypeOfExploitation", "Sexual exploitation"),
                ("vic_LocationOfExploitation", "Norway"),
                ("cas_IncomingReferralDetails", "Free text about the child"),
            ]),
            row(&[
                ("prs_FirstName", "Jonas"),
                ("prs_SecondName", "Kazlauskas"),
                // A real Excel date (serial number) rather than text.
                ("prs_Birthdate", "N:40000"),
                ("prs_Gender", "Masculine"),
                ("prs_Citizenship", "Lithuania"),
                ("vic_TraffickingStatus", "Actual victim of trafficking"),
                ("vic_MethodsOfControl", "Withholds documents"),
                ("vic_TypeOfExploitation", "Forced begging;Forced labour"),
            ]),
        ];
        let bytes =
            tip::generate::fill_htcds_template(&std::fs::read(template).unwrap(), &rows).unwrap();
        let file = env.path(&format!("htcds-{k}.xlsx"));
        std::fs::write(&file, bytes).unwrap();
        let out = env.tip(&[
            "load",
            "--partner",
            "NO-NGO-01",
            "--type",
            "case",
            "--format",
            "htcds-v2",
            file.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("2 accepted, 0 quarantined"),
            "{}",
            stdout(&out)
        );
        assert!(
            stdout(&out).contains("registered_on filled in from the submission date"),
            "{}",
            stdout(&out)
        );
        let q = env.tip(&[
            "query",
            "--format",
            "json",
            "SELECT gender, citizenship, status, identified_by, recruitment, means_of_control, exploitation, \
             exploitation_country, consent, age, is_minor, imputed_fields, registered_on = current_date() AS today, \
             person_id IS NOT NULL AS linked FROM cases ORDER BY gender",
        ]);
        assert!(q.status.success(), "{}", stderr(&q));
        let v: serde_json::Value = serde_json::from_str(&stdout(&q)).unwrap();
        let a = &v[0];
        assert_eq!(a["gender"], "female");
        assert_eq!(a["citizenship"], "UA");
        assert_eq!(a["status"], "presumed");
        assert_eq!(a["identified_by"], "prosecution");
        assert_eq!(
            a["recruitment"],
            serde_json::json!(["online_social_network"])
        );
        assert_eq!(
            a["means_of_control"],
            serde_json::json!(["debt_bondage", "psychological_abuse"])
        );
        assert_eq!(a["exploitation"], serde_json::json!(["sexual"]));
        assert_eq!(a["exploitation_country"], "NO");
        assert_eq!(a["consent"], true);
        assert_eq!(a["is_minor"], true);
        assert_eq!(a["imputed_fields"], "registered_on");
        assert_eq!(a["today"], true);
        assert_eq!(a["linked"], true);
        let b = &v[1];
        assert_eq!(b["gender"], "male");
        assert_eq!(b["citizenship"], "LT");
        assert_eq!(b["status"], "identified");
        assert_eq!(b["exploitation"], serde_json::json!(["begging", "labour"]));
        // Excel serial 40000 is 2009-07-06.
        let age = b["age"].as_i64().unwrap();
        let today = chrono::Utc::now().date_naive();
        let birth = chrono::NaiveDate::from_ymd_opt(2009, 7, 6).unwrap();
        assert_eq!(age, today.years_since(birth).unwrap() as i64);
        // Nothing of the free text, e-mail, address or case worker reached the lake.
        for f in crate::common::all_files(&env.lake) {
            let bytes = std::fs::read(&f).unwrap();
            for needle in [
                "Caseworker",
                "olena@",
                "Storgata",
                "Free text",
                "Olena",
                "Shevchenko",
                "2010-04-05",
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle} in {}",
                    f.display()
                );
            }
        }
    }
}
