//! The HTML report of an extract: one self-contained file (inline CSS and SVG, no script, no
//! fonts or images from elsewhere) that a partner opens in any browser, offline. It shows only
//! protected numbers: the same labels as the CSV.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::disclosure::Published;
use crate::extract::{ExtractDef, TableOut, grid, rules_text};

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

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
pub fn html(def: &ExtractDef, month: &str, tables: &[TableOut]) -> String {
    let rules = &def.disclosure;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} — {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n<p>Month reported: <strong>{}</strong>. Figures are protected: see <a href=\"#rules\">how</a>.</p>\n",
        escape(&def.title),
        escape(month),
        escape(&def.title),
        escape(month)
    );
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
    h.push_str("<h2 id=\"rules\">How these figures are protected</h2>\n<ul class=\"rules\">\n");
    for line in rules_text(rules).iter().skip(1) {
        let _ = writeln!(h, "<li>{}</li>", escape(line));
    }
    h.push_str("</ul>\n</body>\n</html>\n");
    h
}

/// Lines by country over the months; a suppressed month is an open circle on the axis.
fn trend_chart(t: &TableOut, month: &str, threshold: u64) -> String {
    let (w, hgt, left, right, top, bottom) = (760.0, 320.0, 50.0, 130.0, 20.0, 40.0);
    let months: Vec<String> = (0..12)
        .rev()
        .filter_map(|i| crate::extract::shift_month(month, -i))
        .collect();
    // value[country][month]
    let mut series: BTreeMap<&str, Vec<Option<Published>>> = BTreeMap::new();
    for (c, country) in t.columns.iter().enumerate() {
        let mut v = vec![Some(Published::Zero); months.len()];
        for (r, key) in t.row_keys.iter().enumerate() {
            if let Some(m) = months.iter().position(|m| Some(m) == key.first()) {
                v[m] = Some(t.cells[r][c]);
            }
        }
        series.insert(country.as_str(), v);
    }
    let max = series
        .values()
        .flatten()
        .filter_map(|p| p.and_then(|p| p.number()))
        .max()
        .unwrap_or(0)
        .max(threshold)
        .max(1) as f64;
    let px = |i: usize| left + (w - left - right) * i as f64 / 11.0;
    let py = |v: f64| top + (hgt - top - bottom) * (1.0 - v / max);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg id=\"trend-chart\" role=\"img\" aria-label=\"Line chart: children by month and country\" viewBox=\"0 0 {w} {hgt}\" width=\"{w}\" height=\"{hgt}\" xmlns=\"http://www.w3.org/2000/svg\">\n"
    );
    // Axes and gridlines.
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = py(v);
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e4\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            y + 4.0,
            v.round()
        );
    }
    for (i, m) in months.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            px(i),
            hgt - bottom + 16.0,
            escape(&m[2..])
        );
    }
    for (n, (country, vals)) in series.iter().enumerate() {
        let color = PALETTE[n % PALETTE.len()];
        let mut path = String::new();
        let mut pen_down = false;
        for (i, v) in vals.iter().enumerate() {
            match v.and_then(|p| p.number()) {
                Some(x) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        px(i),
                        py(x as f64)
                    );
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
        for (i, v) in vals.iter().enumerate() {
            match v {
                Some(p) if p.suppressed() => {
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"white\" stroke=\"{color}\"><title>{} {}: {}</title></circle>",
                        px(i),
                        py(0.0),
                        escape(country),
                        escape(&months[i]),
                        if *p == Published::Small {
                            format!("&lt;{threshold}")
                        } else {
                            "x".into()
                        }
                    );
                }
                Some(p) => {
                    let x = p.number().unwrap_or(0);
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{color}\"><title>{} {}: {x}</title></circle>",
                        px(i),
                        py(x as f64),
                        escape(country),
                        escape(&months[i])
                    );
                }
                None => {}
            }
        }
        let ly = top + 16.0 * n as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{ly:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            w - right + 15.0,
            w - right + 30.0,
            ly + 9.0,
            escape(country)
        );
    }
    s.push_str("</svg>\n<p>Open circles on the axis: months with fewer than the threshold, not shown.</p>\n");
    s
}

/// Sending countries on the left, receiving countries on the right; a band per pair as wide as
/// its published total; withheld pairs dashed.
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
