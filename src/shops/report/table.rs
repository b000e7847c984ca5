//! The report as the plain-text table `tagbeez experiment-report` prints.

use std::collections::BTreeSet;

use super::{Estimate, Report};

/// The report as a plain-text table (what `tagbeez experiment-report` prints): one row per
/// variant with n, tags per conversation, conversion %, revenue per conversation per
/// currency, and the differences against the control, each with its 95% interval.
pub fn render_table(report: &Report) -> String {
    let currencies: BTreeSet<&str> = report
        .variants
        .iter()
        .flat_map(|v| v.revenue_per_conversation.keys().map(String::as_str))
        .collect();

    let mut header = vec![
        "variant".to_owned(),
        "n".to_owned(),
        "tags/conv".to_owned(),
        "conversion %".to_owned(),
    ];
    header.extend(currencies.iter().map(|c| format!("revenue/conv {c}")));
    header.push("Δ conversion pp".to_owned());
    header.push("Δ tags/conv".to_owned());
    header.extend(currencies.iter().map(|c| format!("Δ revenue/conv {c}")));

    let mut rows = vec![header];
    for v in &report.variants {
        let mut row = vec![
            v.name.clone(),
            v.conversations.to_string(),
            show(&v.tags_per_conversation, 1.0, 2, false),
            show(&v.conversion_rate, 100.0, 1, false),
        ];
        let missing = Estimate::default();
        for c in &currencies {
            let e = v.revenue_per_conversation.get(*c).unwrap_or(&missing);
            row.push(show(e, 1.0, 2, false));
        }
        match &v.vs_control {
            None => row.extend((0..2 + currencies.len()).map(|_| "-".to_owned())),
            Some(d) => {
                row.push(show(&d.conversion_rate, 100.0, 1, true));
                row.push(show(&d.tags_per_conversation, 1.0, 2, true));
                for c in &currencies {
                    let e = d.revenue_per_conversation.get(*c).unwrap_or(&missing);
                    row.push(show(e, 1.0, 2, true));
                }
            }
        }
        rows.push(row);
    }

    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "experiment {} (control: {}); 95% intervals in brackets\n",
        report.name, report.control
    );
    for (k, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, &w))| {
                let pad = " ".repeat(w - cell.chars().count());
                if i == 0 {
                    format!("{cell}{pad}")
                } else {
                    format!("{pad}{cell}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if k == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    if report.unattributed > 0 {
        out.push_str(&format!(
            "unattributed records (no variant of this experiment): {}\n",
            report.unattributed
        ));
    }
    if report.skipped > 0 {
        out.push_str(&format!(
            "purchase values skipped (negative, NaN or infinite): {}\n",
            report.skipped
        ));
    }
    if report.duplicates > 0 {
        out.push_str(&format!(
            "duplicate outcome ids (counted once): {}\n",
            report.duplicates
        ));
    }
    out.push_str(&report.note);
    out.push('\n');
    out
}

/// `value [low, high]` scaled by `scale` with `decimals`; `n/a` when undefined, no
/// brackets when the interval is.
fn show(e: &Estimate, scale: f64, decimals: usize, signed: bool) -> String {
    let number = |x: f64| {
        if signed {
            format!("{:+.*}", decimals, x * scale)
        } else {
            format!("{:.*}", decimals, x * scale)
        }
    };
    match (e.value, e.low, e.high) {
        (None, _, _) => "n/a".to_owned(),
        (Some(v), Some(l), Some(h)) => format!("{} [{}, {}]", number(v), number(l), number(h)),
        (Some(v), _, _) => number(v),
    }
}
