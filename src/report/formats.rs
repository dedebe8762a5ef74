//! `helios report`'s other formats: Markdown (for `$GITHUB_STEP_SUMMARY`), CSV, JUnit XML
//! (one test case per trial, for CI test reporters), and comparisons of two runs.

use std::fmt::Write as _;

use comfy_table::Table;
use comfy_table::presets::NOTHING;

use super::table::{errors_cell, estimate_cell, model_cell, pass_at_k_cell};
use crate::store::compare::Comparison;
use crate::store::summary::{Summary, is_scored};
use crate::store::trial::TrialResult;

/// A cell of a Markdown table: pipes escaped, no line breaks.
fn md(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(summary: &Summary) -> String {
    let mut out = format!("## helios: `{}`\n\n", md(&summary.pipeline));
    let _ = writeln!(
        out,
        "{} trial(s), {} scored, {} passed, {} error(s); {} left out of the statistics (infrastructure errors or cancels).\n",
        summary.trials,
        summary.scored,
        summary.passed,
        summary.errors,
        summary.infrastructure_errors
    );
    out.push_str("| stage | agent | model | trials | scored | passed | mean reward [95% CI] | pass rate [95% CI] | pass@k | errors |\n");
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|--:|---|\n");
    for row in &summary.rows {
        let stats = row.stats.as_ref();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            md(&row.stage),
            md(&row.agent),
            md(&model_cell(row)),
            row.trials,
            stats.map_or(0, |s| s.scored),
            row.passed,
            estimate_cell(stats.and_then(|s| s.mean_reward)),
            estimate_cell(stats.and_then(|s| s.pass_rate)),
            pass_at_k_cell(stats),
            md(&errors_cell(row)),
        );
    }
    if stats_clustered(summary) {
        out.push_str("\nIntervals are 95% t intervals; standard errors are clustered by task where tasks have several attempts.\n");
    } else {
        out.push_str("\nIntervals are 95% t intervals.\n");
    }
    if !summary.expectations.is_empty() {
        out.push_str("\n### Expectations\n\n");
        for check in &summary.expectations {
            let mark = if check.met { "✅" } else { "❌" };
            let _ = writeln!(out, "- {mark} {}", md(&check.describe()));
        }
    }
    out
}

fn stats_clustered(summary: &Summary) -> bool {
    summary
        .rows
        .iter()
        .any(|r| r.stats.as_ref().is_some_and(|s| s.clustered))
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn num(value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| format!("{v}"))
}

/// One line per group; pass@k columns up to the most attempts of any group.
pub fn csv(summary: &Summary) -> String {
    let max_k = summary
        .rows
        .iter()
        .filter_map(|r| r.stats.as_ref())
        .map(|s| s.pass_at_k.len())
        .max()
        .unwrap_or(0);
    let mut header = vec![
        "stage",
        "agent",
        "model",
        "params",
        "trials",
        "scored",
        "infrastructure_errors",
        "passed",
        "mean_reward",
        "mean_reward_se",
        "mean_reward_ci_low",
        "mean_reward_ci_high",
        "pass_rate",
        "pass_rate_se",
        "pass_rate_ci_low",
        "pass_rate_ci_high",
        "error_rate",
        "cost_usd",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    header.extend((1..=max_k).map(|k| format!("pass_at_{k}")));
    let mut out = header.join(",");
    out.push('\n');
    for row in &summary.rows {
        let stats = row.stats.as_ref();
        let mean = stats.and_then(|s| s.mean_reward);
        let rate = stats.and_then(|s| s.pass_rate);
        let mut fields = vec![
            csv_field(&row.stage),
            csv_field(&row.agent),
            csv_field(row.model.as_deref().unwrap_or("")),
            csv_field(&if row.params.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&row.params).unwrap_or_default()
            }),
            row.trials.to_string(),
            stats.map_or(String::new(), |s| s.scored.to_string()),
            stats.map_or(String::new(), |s| s.infrastructure_errors.to_string()),
            row.passed.to_string(),
            num(mean.map(|e| e.mean)),
            num(mean.and_then(|e| e.std_error)),
            num(mean.and_then(|e| e.ci95).map(|c| c[0])),
            num(mean.and_then(|e| e.ci95).map(|c| c[1])),
            num(rate.map(|e| e.mean)),
            num(rate.and_then(|e| e.std_error)),
            num(rate.and_then(|e| e.ci95).map(|c| c[0])),
            num(rate.and_then(|e| e.ci95).map(|c| c[1])),
            num(stats.and_then(|s| s.error_rate)),
            num(row.cost_usd),
        ];
        for k in 1..=max_k {
            fields.push(num(stats
                .and_then(|s| s.pass_at_k.iter().find(|p| p.k == k))
                .map(|p| p.value)));
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Text for XML attributes and content: the five special characters escaped, and
/// characters XML 1.0 cannot carry at all dropped.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: a `<testsuite>` per group, a `<testcase>` per trial. A trial that passed is a
/// passing test; one that was scored and did not pass is a `<failure>`; an agent or
/// verifier error is an `<error>`; an infrastructure error or a cancel is `<skipped>` (it
/// says nothing about the agent). When the pipeline has expectations they decide, as they
/// decide `apply`'s exit code: a trial below reward 1 is a `<failure>` only in a group with
/// an expectation it did not meet (a `nop` baseline no expectation asks to pass is not).
pub fn junit(summary: &Summary, results: &[TrialResult]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let judged = |label: &str| {
        summary.expectations.is_empty()
            || summary
                .expectations
                .iter()
                .any(|c| !c.met && c.group.as_deref() == Some(label))
    };
    let label_of = |r: &TrialResult| {
        summary
            .rows
            .iter()
            .find(|row| {
                r.stage == row.stage
                    && r.agent == row.agent
                    && r.model == row.model
                    && r.params == row.params
            })
            .map(|row| row.label())
            .unwrap_or_default()
    };
    let failed =
        |r: &TrialResult, judged: bool| judged && is_scored(r) && r.error.is_none() && !r.passed();
    let total_failures = results
        .iter()
        .filter(|r| failed(r, judged(&label_of(r))))
        .count();
    let total_errors = results
        .iter()
        .filter(|r| is_scored(r) && r.error.is_some())
        .count();
    let total_time: f64 = results.iter().map(seconds).sum();
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{total_failures}\" errors=\"{total_errors}\" time=\"{total_time:.3}\">",
        xml(&summary.pipeline),
        results.len()
    );
    for (id, row) in summary.rows.iter().enumerate() {
        let members: Vec<&TrialResult> = results
            .iter()
            .filter(|r| {
                r.stage == row.stage
                    && r.agent == row.agent
                    && r.model == row.model
                    && r.params == row.params
            })
            .collect();
        let judged = judged(&row.label());
        let failures = members.iter().filter(|r| failed(r, judged)).count();
        let errors = members
            .iter()
            .filter(|r| is_scored(r) && r.error.is_some())
            .count();
        let skipped = members.iter().filter(|r| !is_scored(r)).count();
        let time: f64 = members.iter().map(|r| seconds(r)).sum();
        let _ = writeln!(
            out,
            "  <testsuite id=\"{id}\" name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            xml(&row.label()),
            members.len()
        );
        if let Some(stats) = &row.stats {
            out.push_str("    <properties>\n");
            let mut property = |name: &str, value: String| {
                let _ = writeln!(
                    out,
                    "      <property name=\"{}\" value=\"{}\"/>",
                    xml(name),
                    xml(&value)
                );
            };
            if let Some(mean) = stats.mean_reward {
                property("mean_reward", format!("{}", mean.mean));
                if let Some([low, high]) = mean.ci95 {
                    property("mean_reward_ci95", format!("{low} {high}"));
                }
            }
            for p in &stats.pass_at_k {
                property(&format!("pass_at_{}", p.k), format!("{}", p.value));
            }
            out.push_str("    </properties>\n");
        }
        let classname = xml(&row.label().replace(" / ", "."));
        for r in members {
            let _ = write!(
                out,
                "    <testcase name=\"{} [attempt {}]\" classname=\"{classname}\" time=\"{:.3}\"",
                xml(&r.task),
                r.attempt,
                seconds(r)
            );
            let reward = r
                .reward
                .map_or_else(|| "no reward".to_string(), |v| format!("reward {v}"));
            if !is_scored(r) {
                let message = r.error.as_ref().map_or_else(
                    || r.status.as_str().to_string(),
                    |e| format!("{}: {}", e.kind, e.message),
                );
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml(&message)
                );
            } else if let Some(error) = &r.error {
                let _ = writeln!(
                    out,
                    ">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>",
                    xml(&format!("{} ({reward})", error.kind)),
                    xml(error.kind.as_str()),
                    xml(&error.message)
                );
            } else if !r.passed() && !judged {
                let _ = writeln!(
                    out,
                    ">\n      <system-out>{} (the pipeline's expectations decide, and they ask nothing of this group or it met them)</system-out>\n    </testcase>",
                    xml(&reward)
                );
            } else if !r.passed() {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\" type=\"reward\">the primary reward is below 1{}</failure>\n    </testcase>",
                    xml(&reward),
                    xml(&steps_note(r))
                );
            } else {
                out.push_str("/>\n");
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A multi-step trial's steps as they ended (`; steps: a 1, b 0 (min_reward not
/// reached)`), for a failure's text; empty for a trial of one step.
fn steps_note(result: &TrialResult) -> String {
    if result.steps.is_empty() {
        return String::new();
    }
    let steps: Vec<String> = result
        .steps
        .iter()
        .map(|s| {
            let reward = s
                .reward
                .map_or_else(|| "no reward".to_string(), |r| r.to_string());
            let gate = if s.gate_passed == Some(false) {
                " (min_reward not reached)"
            } else {
                ""
            };
            format!("{} {reward}{gate}", s.name)
        })
        .collect();
    format!("; steps: {}", steps.join(", "))
}

fn seconds(result: &TrialResult) -> f64 {
    result.timings.iter().map(|t| t.seconds).sum()
}

fn fmt_opt(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:+.3}"))
}

fn interval(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(|| "-".into(), |[l, h]| format!("[{l:+.3}, {h:+.3}]"))
}

/// A comparison for the terminal, or as Markdown.
pub fn comparison(comparison: &Comparison, markdown: bool) -> String {
    let header = [
        "group",
        "A mean",
        "B mean",
        "B − A [95% CI]",
        "shared tasks",
        "paired B − A [95% CI]",
        "paired p",
        "McNemar p",
        "pass → fail",
        "fail → pass",
    ];
    let rows: Vec<Vec<String>> = comparison
        .groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                g.a.map_or_else(|| "-".into(), |e| format!("{:.3}", e.mean)),
                g.b.map_or_else(|| "-".into(), |e| format!("{:.3}", e.mean)),
                format!("{} {}", fmt_opt(g.difference), interval(g.ci95)),
                g.shared_tasks.to_string(),
                g.paired.map_or_else(
                    || "-".into(),
                    |p| format!("{:+.3} {}", p.mean_difference, interval(Some(p.ci95))),
                ),
                g.paired
                    .map_or_else(|| "-".into(), |p| format!("{:.4}", p.p_value)),
                g.mcnemar_p_value
                    .map_or_else(|| "-".into(), |p| format!("{p:.4}")),
                g.pass_to_fail.len().to_string(),
                g.fail_to_pass.len().to_string(),
            ]
        })
        .collect();
    let mut out = String::new();
    if markdown {
        let _ = writeln!(
            out,
            "## helios: `{}` (B) against `{}` (A)\n",
            md(&comparison.b),
            md(&comparison.a)
        );
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|---|{}", "--:|".repeat(header.len() - 1));
        for row in &rows {
            let cells: Vec<String> = row.iter().map(|c| md(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    } else {
        let _ = writeln!(out, "B = {}\nA = {}\n", comparison.b, comparison.a);
        let mut table = Table::new();
        table.load_preset(NOTHING);
        table.set_header(header.to_vec());
        for row in rows {
            table.add_row(row);
        }
        out.push_str(&table.to_string());
        out.push_str("\n\n");
    }
    let _ = writeln!(
        out,
        "B − A interval: {}. Paired test: {}. Also {}.",
        comparison.difference_interval, comparison.paired_test, comparison.mcnemar_test
    );
    for g in &comparison.groups {
        if g.pass_to_fail.is_empty() && g.fail_to_pass.is_empty() {
            continue;
        }
        let bullet = if markdown { "- " } else { "  " };
        let _ = writeln!(
            out,
            "\n{}:",
            if markdown {
                format!("**{}**", md(&g.group))
            } else {
                g.group.clone()
            }
        );
        if !g.pass_to_fail.is_empty() {
            let _ = writeln!(out, "{bullet}pass → fail: {}", g.pass_to_fail.join(", "));
        }
        if !g.fail_to_pass.is_empty() {
            let _ = writeln!(out, "{bullet}fail → pass: {}", g.fail_to_pass.join(", "));
        }
    }
    out
}
