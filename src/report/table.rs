//! The table at the end of `apply` and of `helios report`: per stage × agent × model ×
//! parameters, trials, passed, mean reward with its 95% interval, pass rate, pass@k, cost
//! (when any model has a price) and errors by kind; then the expectations.

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};

use crate::store::summary::{GroupStats, Summary, SummaryRow};

/// `0.600 [0.420, 0.780]`, or `-`.
pub(crate) fn estimate_cell(estimate: Option<crate::stats::Estimate>) -> String {
    match estimate {
        Some(e) => match e.ci95 {
            Some([low, high]) => format!("{:.3} [{low:.3}, {high:.3}]", e.mean),
            None => format!("{:.3}", e.mean),
        },
        None => "-".into(),
    }
}

/// `1: 0.400 · 2: 0.700`, or `-`.
pub(crate) fn pass_at_k_cell(stats: Option<&GroupStats>) -> String {
    let cells: Vec<String> = stats
        .map(|s| {
            s.pass_at_k
                .iter()
                .map(|p| format!("{}: {:.3}", p.k, p.value))
                .collect()
        })
        .unwrap_or_default();
    if cells.is_empty() {
        "-".into()
    } else {
        cells.join(" · ")
    }
}

pub(crate) fn errors_cell(row: &SummaryRow) -> String {
    let errors = row
        .errors
        .iter()
        .map(|(kind, n)| format!("{kind} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    if errors.is_empty() {
        "-".into()
    } else {
        errors
    }
}

pub(crate) fn model_cell(row: &SummaryRow) -> String {
    let mut model = row.model.clone().unwrap_or_else(|| "-".into());
    if !row.params.is_empty() {
        model.push(' ');
        model.push_str(&serde_json::to_string(&row.params).unwrap_or_default());
    }
    model
}

pub fn render(summary: &Summary) -> String {
    let with_cost = summary.cost_usd.is_some();
    let mut table = Table::new();
    table.load_preset(NOTHING);
    let mut header = vec![
        "stage",
        "agent",
        "model",
        "trials",
        "passed",
        "mean reward [95% CI]",
        "pass rate [95% CI]",
        "pass@k",
    ];
    if with_cost {
        header.push("cost (USD)");
    }
    header.push("errors");
    table.set_header(header);
    for row in &summary.rows {
        let stats = row.stats.as_ref();
        let mut cells = vec![
            row.stage.clone(),
            row.agent.clone(),
            model_cell(row),
            row.trials.to_string(),
            row.passed.to_string(),
            estimate_cell(stats.and_then(|s| s.mean_reward)),
            estimate_cell(stats.and_then(|s| s.pass_rate)),
            pass_at_k_cell(stats),
        ];
        if with_cost {
            cells.push(
                row.cost_usd
                    .map_or_else(|| "-".into(), |c| format!("{c:.4}")),
            );
        }
        cells.push(errors_cell(row));
        table.add_row(cells);
    }
    let numeric = if with_cost { 3..9 } else { 3..8 };
    for column in numeric {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = table.to_string();
    out.push_str(&footer(summary));
    out
}

/// Honest denominators and expectations, under a table.
pub(crate) fn footer(summary: &Summary) -> String {
    let mut out = String::new();
    if summary.infrastructure_errors > 0 {
        out.push_str(&format!(
            "\n{} of {} trial(s) are left out of the statistics: infrastructure errors or cancels",
            summary.infrastructure_errors, summary.trials
        ));
    }
    for check in &summary.expectations {
        out.push('\n');
        out.push_str(&check.describe());
    }
    out
}
