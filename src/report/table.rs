//! The table at the end of `apply`: per stage × agent × model, trials, passed, mean reward,
//! cost (when any model has a price) and errors by kind.

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, Table};

use crate::store::summary::Summary;

pub fn render(summary: &Summary) -> String {
    let with_cost = summary.cost_usd.is_some();
    let mut table = Table::new();
    table.load_preset(NOTHING);
    let mut header = vec!["stage", "agent", "model", "trials", "passed", "mean reward"];
    if with_cost {
        header.push("cost (USD)");
    }
    header.push("errors");
    table.set_header(header);
    for row in &summary.rows {
        let errors = row
            .errors
            .iter()
            .map(|(kind, n)| format!("{kind} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut cells = vec![
            row.stage.clone(),
            row.agent.clone(),
            row.model.clone().unwrap_or_else(|| "-".into()),
            row.trials.to_string(),
            row.passed.to_string(),
            row.mean_reward
                .map_or_else(|| "-".into(), |m| format!("{m:.3}")),
        ];
        if with_cost {
            cells.push(
                row.cost_usd
                    .map_or_else(|| "-".into(), |c| format!("{c:.4}")),
            );
        }
        cells.push(if errors.is_empty() {
            "-".into()
        } else {
            errors
        });
        table.add_row(cells);
    }
    let numeric = if with_cost { 3..7 } else { 3..6 };
    for column in numeric {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table.to_string()
}
