//! The HTML report of an extract: one self-contained file (inline CSS and SVG, no script, no
//! fonts or images from elsewhere) that a partner opens in any browser, offline. It shows only
//! protected numbers: the same labels as the CSV.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{grid, rules_text};
use crate::disclosure::Published;
use crate::extract::{Built, EstimateOut, ExtractDef, TableOut};
use crate::util::html::escape;
use crate::util::months::shift_month;

const PALETTE: &[&str] = &[
    "#1b6ca8", "#d1495b", "#2e933c", "#edae49", "#66418c", "#00798c", "#8d6a9f", "#5c5c5c",
];

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1rem;color:#222;line-height:1.4}\
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}\
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}td.k,th.k{text-align:left}\
tr.total td{font-weight:bold;background:#fafafa}.s{color:#a33}.scroll{overflow-x:auto}svg{max-width:100%;height:auto}\
.legend span{display:inline-block;margin-right:1rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}\
ul.rules li{margin:.3rem 0}";

/// The report for one month.
pub fn report(def: &ExtractDef, month: &str, built: &Built) -> String {
    let (rules, tables) = (&def.disclosure, &built.tables);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<p>Month reported: <strong>{}</strong>. Figures are protected: see <a href=\"#rules\">how</a>.</p>\n",
        escape(&def.title),
        escape(month),
        escape(&def.title),
        escape(month)
    );
    if built.key_epochs.len() > 1 {
        let _ = writeln!(
            h,
            "<p class=\"s\" id=\"key-epochs\">The figures span {} key epochs (the pseudonymisation key was changed on {}): a child reported both before and after a change has two pseudonyms and is counted twice.</p>",
            built.key_epochs.len(),
            built.key_epochs[1..]
                .iter()
                .map(|e| escape(e.started_at.get(..10).unwrap_or(&e.started_at)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let by_name: BTreeMap<&str, &TableOut> = tables.iter().map(|t| (t.name.as_str(), t)).collect();
    if let Some(t) = def.charts.trend.as_deref().and_then(|n| by_name.get(n)) {
        h.push_str("<h2 id=\"trend\">Trend over the last 12 months</h2>\n");
        h.push_str(&trend_chart(t, month, rules.threshold));
    }
    if let Some(t) = def.charts.flows.as_deref().and_then(|n| by_name.get(n)) {
        h.push_str("<h2 id=\"flows\">Information flows between countries</h2>\n");
        h.push_str(&flow_chart(t, rules));
    }
    for t in tables {
        let _ = write!(
            h,
            "<h2 id=\"{}\">{}</h2>\n<p>Count of {}.</p>\n<div class=\"scroll\"><table>\n",
            escape(&t.name),
            escape(&t.title),
            escape(&t.unit)
        );
        let g = grid(t, rules);
        let nkey = t.dimensions.len() - 1;
        for (r, line) in g.iter().enumerate() {
            let total = r == g.len() - 1 && r > 1 && nkey > 0;
            h.push_str(if total {
                "<tr class=\"total\">"
            } else {
                "<tr>"
            });
            for (c, cell) in line.iter().enumerate() {
                let tag = if r == 0 { "th" } else { "td" };
                let class = if c < nkey {
                    " class=\"k\""
                } else if cell == "x" || cell.starts_with('<') {
                    " class=\"s\""
                } else {
                    ""
                };
                let _ = write!(h, "<{tag}{class}>{}</{tag}>", escape(cell));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table></div>\n");
    }
    for e in &built.estimates {
        h.push_str(&estimate_section(e, rules));
    }
    h.push_str("<h2 id=\"rules\">How these figures are protected</h2>\n<ul class=\"rules\">\n");
    for line in rules_text(rules).iter().skip(1) {
        let _ = writeln!(h, "<li>{}</li>", escape(line));
    }
    h.push_str("</ul>\n</body>\n</html>\n");
    h
}

/// An estimate table, with what the numbers mean and rest on, in plain words.
fn estimate_section(e: &EstimateOut, rules: &crate::disclosure::Rules) -> String {
    let who = if e.children { "children" } else { "people" };
    let mut h = String::new();
    let _ = write!(
        h,
        "<h2 id=\"{}\">{}</h2>\n<p>The counts above are of {who} who were identified. Many are never identified by any agency. \
         Multiple systems estimation works out how many there probably are in all, identified or not, from how often the same {who} \
         (linked by pseudonym, never by name) were reported by several kinds of agency: the more often the lists overlap, the fewer are missed. \
         Each row is a reporting country, or the whole region (Total), and a calendar year (the current one up to the month reported).</p>\n<div class=\"scroll\"><table>\n",
        escape(&e.name),
        escape(&e.title)
    );
    for (r, line) in super::xlsx::estimate_grid(e, rules).iter().enumerate() {
        h.push_str("<tr>");
        for (c, cell) in line.iter().enumerate() {
            let tag = if r == 0 { "th" } else { "td" };
            let class = if !(3..=6).contains(&c) {
                " class=\"k\""
            } else if cell.starts_with('<') || cell == super::super::estimates::NOT_ESTIMATED {
                " class=\"s\""
            } else {
                ""
            };
            let _ = write!(h, "<{tag}{class}>{}</{tag}>", escape(cell));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table></div>\n<h3>How to read these estimates</h3>\n<ul class=\"rules\">\n");
    let reading = [
        format!("The 95% interval is where the true number probably lies: it comes from re-running the whole estimate on {} resamples of the identified {who} (BCa bootstrap, fixed seed {}, so the figures can be reproduced). The estimate is the most likely single figure, not an exact count.", e.bootstrap, e.seed),
        format!("Model: {}.", e.rule),
        "No estimate is published where too few linked people, too few lists or too little overlap between them would make a number misleading.".to_string(),
    ];
    for line in reading
        .iter()
        .map(String::as_str)
        .chain(crate::estimate::ASSUMPTIONS.iter().copied())
    {
        let _ = writeln!(h, "<li>{}</li>", escape(line));
    }
    h.push_str("</ul>\n");
    h
}

/// Lines by country over the months; a suppressed month is an open circle on the axis.
/// The geometry of the trend chart.
struct Plot {
    w: f64,
    hgt: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    max: f64,
}

impl Plot {
    fn x(&self, i: usize) -> f64 {
        self.left + (self.w - self.left - self.right) * i as f64 / 11.0
    }

    fn y(&self, v: f64) -> f64 {
        self.top + (self.hgt - self.top - self.bottom) * (1.0 - v / self.max)
    }

    /// Gridlines with their values, and the months along the bottom.
    fn axes(&self, s: &mut String, months: &[String]) {
        for k in 0..=4 {
            let v = self.max * k as f64 / 4.0;
            let y = self.y(v);
            let _ = writeln!(
                s,
                "<line x1=\"{}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
                self.left,
                self.w - self.right,
                self.left - 6.0,
                y + 4.0,
                v.round()
            );
        }
        for (i, m) in months.iter().enumerate() {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                self.x(i),
                self.hgt - self.bottom + 16.0,
                escape(&m[2..])
            );
        }
    }

    /// One country's line: broken where a month is suppressed.
    fn line(&self, s: &mut String, country: &str, vals: &[Option<Published>], color: &str) {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, v) in vals.iter().enumerate() {
            match v.and_then(|p| p.number()) {
                Some(x) => {
                    let pen = if pen_down { "L" } else { "M" };
                    let _ = write!(path, "{pen}{:.1},{:.1} ", self.x(i), self.y(x as f64));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = writeln!(
            s,
            "<path class=\"series\" data-country=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            escape(country),
            path.trim_end()
        );
    }

    /// A point per month: filled with its value, open on the axis where suppressed.
    fn points(&self, s: &mut String, line: &Series, months: &[String], threshold: u64) {
        let (country, color) = (escape(line.country), line.color);
        for (i, v) in line.values.iter().enumerate() {
            let month = escape(&months[i]);
            match v {
                Some(p) if p.suppressed() => {
                    let label = if *p == Published::Small {
                        format!("&lt;{threshold}")
                    } else {
                        "x".into()
                    };
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"white\" stroke=\"{color}\"><title>{country} {month}: {label}</title></circle>",
                        self.x(i),
                        self.y(0.0),
                    );
                }
                Some(p) => {
                    let x = p.number().unwrap_or(0);
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"><title>{country} {month}: {x}</title></circle>",
                        self.x(i),
                        self.y(x as f64),
                    );
                }
                None => {}
            }
        }
    }

    fn legend(&self, s: &mut String, n: usize, country: &str, color: &str) {
        let ly = self.top + 16.0 * n as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{ly:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            self.w - self.right + 15.0,
            self.w - self.right + 30.0,
            ly + 9.0,
            escape(country)
        );
    }
}

/// One country's published counts over the twelve months.
struct Series<'a> {
    country: &'a str,
    values: Vec<Option<Published>>,
    color: &'static str,
}

/// value[country][month] of a table with dimensions [month, country].
fn trend_series<'a>(t: &'a TableOut, months: &[String]) -> Vec<Series<'a>> {
    let mut by_country: BTreeMap<&str, Vec<Option<Published>>> = BTreeMap::new();
    for (c, country) in t.columns.iter().enumerate() {
        let mut v = vec![Some(Published::Zero); months.len()];
        for (r, key) in t.row_keys.iter().enumerate() {
            if let Some(m) = months.iter().position(|m| Some(m) == key.first()) {
                v[m] = Some(t.cells[r][c]);
            }
        }
        by_country.insert(country.as_str(), v);
    }
    by_country
        .into_iter()
        .enumerate()
        .map(|(n, (country, values))| Series {
            country,
            values,
            color: PALETTE[n % PALETTE.len()],
        })
        .collect()
}

fn trend_chart(t: &TableOut, month: &str, threshold: u64) -> String {
    let months: Vec<String> = (0..12)
        .rev()
        .filter_map(|i| shift_month(month, -i))
        .collect();
    let series = trend_series(t, &months);
    let max = series
        .iter()
        .flat_map(|l| l.values.iter())
        .filter_map(|p| p.and_then(|p| p.number()))
        .max()
        .unwrap_or(0)
        .max(threshold)
        .max(1) as f64;
    let plot = Plot {
        w: 760.0,
        hgt: 320.0,
        left: 50.0,
        right: 130.0,
        top: 20.0,
        bottom: 40.0,
        max,
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg id=\"trend-chart\" role=\"img\" aria-label=\"Line chart: children by month and country\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\">",
        w = plot.w,
        h = plot.hgt
    );
    plot.axes(&mut s, &months);
    for (n, line) in series.iter().enumerate() {
        plot.line(&mut s, line.country, &line.values, line.color);
        plot.points(&mut s, line, &months, threshold);
        plot.legend(&mut s, n, line.country, line.color);
    }
    s.push_str("</svg>\n<p>Open circles on the axis: months with fewer than the threshold, not shown.</p>\n");
    s
}

fn flow_chart(t: &TableOut, rules: &crate::disclosure::Rules) -> String {
    // Row keys start with (from, to); a two-dimensional table has the receiving country as
    // its column instead.
    let mut pairs: BTreeMap<(String, String), Published> = BTreeMap::new();
    if t.dimensions.len() >= 3 {
        for (r, key) in t.row_keys.iter().enumerate() {
            pairs.insert((key[0].clone(), key[1].clone()), t.row_totals[r]);
        }
    } else {
        for (r, key) in t.row_keys.iter().enumerate() {
            for (c, col) in t.columns.iter().enumerate() {
                if t.cells[r][c] != Published::Zero {
                    pairs.insert((key[0].clone(), col.clone()), t.cells[r][c]);
                }
            }
        }
    }
    let from: Vec<&String> = {
        let mut v: Vec<&String> = pairs.keys().map(|k| &k.0).collect();
        v.dedup();
        v
    };
    let to: Vec<&String> = {
        let mut v: Vec<&String> = pairs.keys().map(|k| &k.1).collect();
        v.sort();
        v.dedup();
        v
    };
    let rows = from.len().max(to.len()).max(1) as f64;
    let (w, hgt) = (760.0, 60.0 + 34.0 * rows);
    let y = |i: usize, n: usize| 40.0 + (hgt - 60.0) * (i as f64 + 0.5) / n as f64;
    let max = pairs
        .values()
        .filter_map(|p| p.number())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"flow-chart\" role=\"img\" aria-label=\"Flows between countries\" viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\" xmlns=\"http://www.w3.org/2000/svg\">\n<text x=\"160\" y=\"20\" font-size=\"12\" text-anchor=\"end\" font-weight=\"bold\">from</text><text x=\"600\" y=\"20\" font-size=\"12\" font-weight=\"bold\">to</text>\n"
    );
    for ((a, b), p) in &pairs {
        let ia = from.iter().position(|x| *x == a).unwrap_or(0);
        let ib = to.iter().position(|x| *x == b).unwrap_or(0);
        let (y1, y2) = (y(ia, from.len()), y(ib, to.len()));
        let (width, dash, color, label) = match p {
            Published::Value(v) => (1.5 + 14.0 * *v as f64 / max, "", "#1b6ca8", v.to_string()),
            Published::Zero => continue,
            other => (1.0, " stroke-dasharray=\"4 3\"", "#999", other.label(rules)),
        };
        let _ = writeln!(
            s,
            "<path class=\"flow\" d=\"M170,{y1:.1} C380,{y1:.1} 380,{y2:.1} 590,{y2:.1}\" fill=\"none\" stroke=\"{color}\" stroke-opacity=\"0.6\" stroke-width=\"{width:.1}\"{dash}><title>{} → {}: {}</title></path>",
            escape(a),
            escape(b),
            escape(&label)
        );
    }
    for (i, c) in from.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"160\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"end\">{}</text>",
            y(i, from.len()) + 4.0,
            escape(c)
        );
    }
    for (i, c) in to.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"600\" y=\"{:.1}\" font-size=\"13\">{}</text>",
            y(i, to.len()) + 4.0,
            escape(c)
        );
    }
    s.push_str("</svg>\n<p>Band width: persons referred (rounded). Dashed: fewer than the threshold or withheld.</p>\n");
    s
}
