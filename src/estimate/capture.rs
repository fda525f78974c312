//! Capture histories from linked records: each person's set of lists (the partners, kinds of
//! agency or configured groupings that reported them in the period), counted per history and
//! per stratum. The histories are small-count tables: they stay on the hub.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{EstimateError, Histories, MAX_LISTS};

/// What an estimate can be split by. A person's value is taken over all their records in the
/// period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stratum {
    /// `minor` if any record has the person as a minor, `adult` if records say so and none
    /// says minor, otherwise `unknown`.
    Minor,
    /// The gender the records give; `unknown` when none does or they disagree.
    Sex,
    /// Each form of exploitation any record names: a person exploited in two ways is in two
    /// strata, so these strata overlap and do not add up to the whole.
    Exploitation,
}

impl Stratum {
    pub fn parse(s: &str) -> Option<Stratum> {
        match s {
            "minor" | "age" => Some(Stratum::Minor),
            "sex" | "gender" => Some(Stratum::Sex),
            "exploitation" => Some(Stratum::Exploitation),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stratum::Minor => "minor",
            Stratum::Sex => "sex",
            Stratum::Exploitation => "exploitation",
        }
    }
}

/// One record as the estimate sees it.
pub struct Record<'a> {
    pub person_id: Option<&'a str>,
    /// The list the record puts its person on; None when the record's partner is on no list.
    pub list: Option<&'a str>,
    pub minor: Option<bool>,
    pub sex: Option<&'a str>,
    pub exploitation: &'a [&'a str],
}

/// One person as gathered: bits of the lists, the genders and the forms of exploitation their
/// records name (each label once per capture, in [`Labels`]): 32 bytes a person beside the id.
#[derive(Default)]
struct Person {
    lists: u64,
    minor: Option<bool>,
    sexes: u64,
    exploitation: u64,
}

/// The labels of one kind (genders, forms of exploitation) a capture has seen, each a bit.
#[derive(Default)]
struct Labels {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Labels {
    /// The bit of `label`; labels past the 63rd share the last bit, read back as `unknown`
    /// (code lists have a dozen values: it never happens with validated data).
    fn bit(&mut self, label: &str) -> u64 {
        let i = match self.index.get(label) {
            Some(&i) => i,
            None if self.names.len() < 63 => {
                self.names.push(label.to_string());
                let i = self.names.len() as u32 - 1;
                self.index.insert(label.to_string(), i);
                i
            }
            None => 63,
        };
        1 << i
    }

    /// The labels of the bits set in `mask`.
    fn of(&self, mask: u64) -> Vec<String> {
        (0..64)
            .filter(|i| mask >> i & 1 == 1)
            .map(|i| {
                self.names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| "unknown".into())
            })
            .collect()
    }
}

/// Records gathered into capture histories.
#[derive(Default)]
pub struct Capture {
    names: Vec<String>,
    index: HashMap<String, usize>,
    people: HashMap<Box<str>, Person>,
    sexes: Labels,
    exploitation: Labels,
    /// Records read.
    pub records: u64,
    /// Records with no `person_id` (no name or birth date): they cannot be placed.
    pub unlinked: u64,
    /// Records of partners that no list takes.
    pub off_list: u64,
    /// More distinct lists than can be gathered: no histories.
    overflow: bool,
}

/// The most distinct lists gathered before refusing (the estimate takes at most [`MAX_LISTS`]).
const MAX_GATHERED: usize = 64;

impl Capture {
    pub fn add(&mut self, r: &Record) {
        self.records += 1;
        let Some(pid) = r.person_id.filter(|p| !p.is_empty()) else {
            self.unlinked += 1;
            return;
        };
        let Some(list) = r.list else {
            self.off_list += 1;
            return;
        };
        let k = match self.index.get(list) {
            Some(&k) => k,
            None => {
                if self.names.len() == MAX_GATHERED {
                    // Refused when the histories are asked for.
                    self.overflow = true;
                    return;
                }
                self.names.push(list.to_string());
                self.index.insert(list.to_string(), self.names.len() - 1);
                self.names.len() - 1
            }
        };
        let sex = r
            .sex
            .filter(|s| !s.is_empty() && *s != "unknown")
            .map_or(0, |s| self.sexes.bit(s));
        let exploitation = r
            .exploitation
            .iter()
            .fold(0, |m, e| m | self.exploitation.bit(e));
        let p = match self.people.get_mut(pid) {
            Some(p) => p,
            None => self.people.entry(pid.into()).or_default(),
        };
        p.lists |= 1 << k;
        p.minor = match (p.minor, r.minor) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), _) | (_, Some(false)) => Some(false),
            _ => None,
        };
        p.sexes |= sex;
        p.exploitation |= exploitation;
    }

    /// Distinct persons placed on a list.
    pub fn people(&self) -> usize {
        self.people.len()
    }

    /// Distinct persons placed on a list who were registered as minors.
    pub fn children(&self) -> usize {
        self.people
            .values()
            .filter(|p| p.minor == Some(true))
            .count()
    }

    /// The lists, sorted by name.
    pub fn lists(&self) -> Vec<String> {
        let mut v = self.names.clone();
        v.sort();
        v
    }

    /// The capture histories of each stratum (every combination of the values of `by` that
    /// someone has), keyed by the stratum's values in the order of `by`.
    pub fn histories(
        &self,
        by: &[Stratum],
    ) -> Result<BTreeMap<Vec<String>, Histories>, EstimateError> {
        let lists = self.lists();
        if self.overflow {
            return Err(too_many(MAX_GATHERED + 1));
        }
        if lists.len() > MAX_LISTS {
            return Err(too_many(lists.len()));
        }
        // Bit of each gathered list in the sorted order.
        let to_sorted: Vec<u32> = self
            .names
            .iter()
            .map(|n| 1 << lists.iter().position(|l| l == n).unwrap_or(0))
            .collect();
        let mut counts: BTreeMap<Vec<String>, BTreeMap<u32, u64>> = BTreeMap::new();
        for p in self.people.values() {
            let mask = (0..self.names.len())
                .filter(|k| p.lists >> k & 1 == 1)
                .fold(0u32, |m, k| m | to_sorted[k]);
            for key in self.strata_of(p, by) {
                *counts.entry(key).or_default().entry(mask).or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|(k, rows)| {
                let h = Histories {
                    lists: lists.clone(),
                    rows: rows.into_iter().collect(),
                };
                (k, h)
            })
            .collect())
    }
}

fn too_many(n: usize) -> EstimateError {
    let n = if n > MAX_GATHERED {
        format!("more than {MAX_GATHERED}")
    } else {
        n.to_string()
    };
    EstimateError::Model(format!(
        "{n} lists: an estimate takes at most {MAX_LISTS}; group the partners (--lists org_type, or a grouping under [estimate.lists] in the configuration)"
    ))
}

impl Capture {
    /// Every stratum key a person belongs to.
    fn strata_of(&self, p: &Person, by: &[Stratum]) -> Vec<Vec<String>> {
        let mut keys: Vec<Vec<String>> = vec![vec![]];
        for s in by {
            let values: Vec<String> = match s {
                Stratum::Minor => vec![
                    match p.minor {
                        Some(true) => "minor",
                        Some(false) => "adult",
                        None => "unknown",
                    }
                    .to_string(),
                ],
                Stratum::Sex => match self.sexes.of(p.sexes).as_slice() {
                    [one] => vec![one.clone()],
                    _ => vec!["unknown".to_string()],
                },
                Stratum::Exploitation if p.exploitation == 0 => vec!["unknown".to_string()],
                Stratum::Exploitation => {
                    let mut v = self.exploitation.of(p.exploitation);
                    v.sort();
                    v.dedup();
                    v
                }
            };
            keys = keys
                .into_iter()
                .flat_map(|k| {
                    values.iter().map(move |v| {
                        let mut k = k.clone();
                        k.push(v.clone());
                        k
                    })
                })
                .collect();
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(pid: &'a str, list: &'a str, minor: bool, ex: &'a [&'a str]) -> Record<'a> {
        Record {
            person_id: Some(pid),
            list: Some(list),
            minor: Some(minor),
            sex: Some("female"),
            exploitation: ex,
        }
    }

    #[test]
    fn persons_become_histories_and_strata() {
        let mut c = Capture::default();
        c.add(&rec("p1", "police", true, &["sexual"]));
        c.add(&rec("p1", "ngo", false, &["labour"]));
        c.add(&rec("p2", "ngo", false, &[]));
        c.add(&rec("p3", "police", false, &["labour"]));
        c.add(&Record {
            person_id: None,
            list: Some("ngo"),
            minor: None,
            sex: None,
            exploitation: &[],
        });
        assert_eq!((c.records, c.unlinked, c.people()), (5, 1, 3));
        let all = c.histories(&[]).unwrap();
        let h = &all[&Vec::<String>::new()];
        // Lists sorted: ngo = bit 0, police = bit 1.
        assert_eq!(h.lists, ["ngo", "police"]);
        assert_eq!(h.rows, [(0b01, 1), (0b10, 1), (0b11, 1)]);
        let by = c
            .histories(&[Stratum::Minor, Stratum::Exploitation])
            .unwrap();
        let keys: Vec<String> = by.keys().map(|k| k.join("/")).collect();
        assert_eq!(
            keys,
            [
                "adult/labour",
                "adult/unknown",
                "minor/labour",
                "minor/sexual"
            ]
        );
        assert_eq!(by[&vec!["minor".into(), "sexual".into()]].rows, [(0b11, 1)]);
    }

    #[test]
    fn more_lists_than_can_be_gathered_are_refused_not_wrapped() {
        let mut c = Capture::default();
        let names: Vec<String> = (0..70).map(|i| format!("org{i}")).collect();
        for n in &names {
            c.add(&rec("p1", n, true, &[]));
        }
        let err = c.histories(&[]).unwrap_err().to_string();
        assert!(err.contains("more than 64 lists"), "{err}");
    }
}
