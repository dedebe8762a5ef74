//! The run page's rows in a compact form: each row an array of its fields in a fixed order,
//! and the strings that repeat from row to row (stage, task, agent, ...) given once and
//! referred to by index. A hundred thousand rows are a third of the size of the objects.

use std::collections::HashMap;

use serde::Serialize;

use super::catalog::TrialRow;

/// The fields of a compact row, in order. Those in [`INDEXED`] are indexes into
/// [`CompactRows::strings`] (or null); `key` and `error` are strings, `attempt` and
/// `reward` numbers.
pub(super) const FIELDS: [&str; 12] = [
    "key",
    "stage",
    "task",
    "agent",
    "model",
    "params",
    "attempt",
    "status",
    "phase",
    "reward",
    "error_kind",
    "error",
];

/// The fields given as an index into the strings.
pub(super) const INDEXED: [&str; 8] = [
    "stage",
    "task",
    "agent",
    "model",
    "params",
    "status",
    "phase",
    "error_kind",
];

/// One row: the fields of [`FIELDS`] (serialized as a JSON array).
type Row = (
    String,
    u32,
    u32,
    u32,
    Option<u32>,
    u32,
    u32,
    u32,
    Option<u32>,
    Option<f64>,
    Option<u32>,
    Option<String>,
);

/// Rows as arrays of fields; see [`FIELDS`].
#[derive(Debug, Serialize)]
pub(super) struct CompactRows {
    /// The names of a row's fields, in order.
    pub fields: &'static [&'static str],
    /// The names of the fields that are indexes into `strings`.
    pub indexed: &'static [&'static str],
    /// Every distinct value of the indexed fields.
    pub strings: Vec<String>,
    rows: Vec<Row>,
}

impl CompactRows {
    pub(super) fn of(rows: Vec<TrialRow>) -> CompactRows {
        let mut strings = Strings::default();
        let rows = rows
            .into_iter()
            .map(|row| {
                (
                    row.key,
                    strings.index(row.stage),
                    strings.index(row.task),
                    strings.index(row.agent),
                    row.model.map(|m| strings.index(m)),
                    strings.index(row.params),
                    row.attempt,
                    strings.index(row.status),
                    row.phase.map(|p| strings.index(p)),
                    row.reward,
                    row.error_kind.map(|k| strings.index(k)),
                    row.error,
                )
            })
            .collect();
        CompactRows {
            fields: &FIELDS,
            indexed: &INDEXED,
            strings: strings.all,
            rows,
        }
    }
}

/// Each distinct string once, in the order first seen.
#[derive(Default)]
struct Strings {
    all: Vec<String>,
    places: HashMap<String, u32>,
}

impl Strings {
    fn index(&mut self, text: String) -> u32 {
        if let Some(place) = self.places.get(&text) {
            return *place;
        }
        let place = self.all.len() as u32;
        self.all.push(text.clone());
        self.places.insert(text, place);
        place
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, task: &str, status: &str, error: Option<(&str, &str)>) -> TrialRow {
        TrialRow {
            key: key.into(),
            stage: "s".into(),
            task: task.into(),
            agent: "oracle".into(),
            model: None,
            params: String::new(),
            attempt: 1,
            status: status.into(),
            phase: None,
            reward: error.is_none().then_some(1.0),
            error_kind: error.map(|(kind, _)| kind.to_string()),
            error: error.map(|(_, message)| message.to_string()),
            cost_usd: Some(0.5),
            tokens: Some(10),
            seconds: Some(1.0),
        }
    }

    /// Decodes a compact row back into the fields of a row, as the page does.
    fn decode(compact: &serde_json::Value) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let fields = compact["fields"].as_array().unwrap();
        let indexed: Vec<&str> = compact["indexed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        let strings = compact["strings"].as_array().unwrap();
        compact["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|values| {
                fields
                    .iter()
                    .zip(values.as_array().unwrap())
                    .map(|(field, value)| {
                        let field = field.as_str().unwrap();
                        let value = match value.as_u64() {
                            Some(i) if indexed.contains(&field) => strings[i as usize].clone(),
                            _ => value.clone(),
                        };
                        (field.to_string(), value)
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn compact_rows_decode_to_the_rows_without_their_totals() {
        let rows = vec![
            row("s/a__1", "a", "completed", None),
            row("s/b__1", "b", "failed", Some(("agent_timeout", "too slow"))),
            row("s/a__2", "a", "completed", None),
        ];
        let compact = serde_json::to_value(CompactRows::of(rows.clone())).unwrap();
        // Repeated strings are given once.
        let strings = compact["strings"].as_array().unwrap();
        assert_eq!(strings.iter().filter(|s| *s == "a").count(), 1);
        let decoded = decode(&compact);
        for (row, decoded) in rows.iter().zip(&decoded) {
            let mut full = serde_json::to_value(row).unwrap();
            let full = full.as_object_mut().unwrap();
            // What the run page does not show is left out.
            for left_out in ["cost_usd", "tokens", "seconds"] {
                full.remove(left_out);
            }
            assert_eq!(full, decoded);
        }
    }
}
