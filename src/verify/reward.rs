//! Reading what a verifier wrote: `reward.json` (a flat map of finite numbers, which wins)
//! or `reward.txt` (one number, stored as `{"reward": v}`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::events::ErrorKind;

/// The rewards of one verification step, by name.
pub type Rewards = BTreeMap<String, f64>;

/// Why no reward could be read. Each is its own outcome: a missing reward is never a zero.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RewardError {
    #[error("the verifier wrote neither reward.json nor reward.txt in {dir}")]
    Missing { dir: String },
    #[error("{file} is empty")]
    Empty { file: String },
    #[error("{file} is not a reward: {reason}")]
    Invalid { file: String, reason: String },
}

impl RewardError {
    /// The error kind recorded in `result.json`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RewardError::Missing { .. } => ErrorKind::RewardMissing,
            RewardError::Empty { .. } => ErrorKind::RewardEmpty,
            RewardError::Invalid { .. } => ErrorKind::RewardInvalid,
        }
    }
}

/// Reads the rewards a verifier left in `dir` (a copy of its `/logs/verifier`).
pub fn read(dir: &Path, shown_as: &str) -> Result<Rewards, RewardError> {
    let json = dir.join("reward.json");
    if let Ok(text) = std::fs::read_to_string(&json) {
        return parse_json(&text, &format!("{shown_as}/reward.json"));
    }
    let txt = dir.join("reward.txt");
    if let Ok(text) = std::fs::read_to_string(&txt) {
        return parse_txt(&text, &format!("{shown_as}/reward.txt"));
    }
    Err(RewardError::Missing {
        dir: shown_as.to_string(),
    })
}

pub fn parse_txt(text: &str, file: &str) -> Result<Rewards, RewardError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(RewardError::Empty {
            file: file.to_string(),
        });
    }
    let value: f64 = trimmed.parse().map_err(|_| RewardError::Invalid {
        file: file.to_string(),
        reason: format!("`{}` is not a number", shorten(trimmed)),
    })?;
    if !value.is_finite() {
        return Err(RewardError::Invalid {
            file: file.to_string(),
            reason: format!("`{trimmed}` is not a finite number"),
        });
    }
    Ok(BTreeMap::from([("reward".to_string(), value)]))
}

pub fn parse_json(text: &str, file: &str) -> Result<Rewards, RewardError> {
    if text.trim().is_empty() {
        return Err(RewardError::Empty {
            file: file.to_string(),
        });
    }
    let invalid = |reason: String| RewardError::Invalid {
        file: file.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let map = value
        .as_object()
        .ok_or_else(|| invalid("expected a JSON object of names to numbers".to_string()))?;
    if map.is_empty() {
        return Err(RewardError::Empty {
            file: file.to_string(),
        });
    }
    let mut rewards = BTreeMap::new();
    for (name, value) in map {
        let number = value
            .as_f64()
            .filter(|n| n.is_finite())
            .ok_or_else(|| invalid(format!("`{name}` is {value}, not a finite number")))?;
        rewards.insert(name.clone(), number);
    }
    Ok(rewards)
}

/// The one number that stands for a trial: `reward` if present, else the only value.
pub fn primary(rewards: &Rewards) -> Option<f64> {
    rewards
        .get("reward")
        .copied()
        .or_else(|| (rewards.len() == 1).then(|| *rewards.values().next().expect("one value")))
}

fn shorten(text: &str) -> String {
    let cut: String = text.chars().take(40).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_holds_one_finite_number() {
        assert_eq!(parse_txt("1\n", "r").unwrap()["reward"], 1.0);
        assert_eq!(parse_txt(" 0.25 ", "r").unwrap()["reward"], 0.25);
        assert_eq!(
            parse_txt("\n", "r"),
            Err(RewardError::Empty { file: "r".into() })
        );
        assert_eq!(
            parse_txt("pass", "r").unwrap_err().kind(),
            ErrorKind::RewardInvalid
        );
        assert_eq!(
            parse_txt("inf", "r").unwrap_err().kind(),
            ErrorKind::RewardInvalid
        );
        assert_eq!(
            parse_txt("NaN", "r").unwrap_err().kind(),
            ErrorKind::RewardInvalid
        );
    }

    #[test]
    fn json_is_a_flat_map_of_finite_numbers() {
        let r = parse_json(r#"{"reward": 0.5, "tests_passed": 3}"#, "r").unwrap();
        assert_eq!(r["tests_passed"], 3.0);
        assert_eq!(primary(&r), Some(0.5));
        assert_eq!(
            parse_json("{}", "r").unwrap_err().kind(),
            ErrorKind::RewardEmpty
        );
        assert_eq!(
            parse_json("[1]", "r").unwrap_err().kind(),
            ErrorKind::RewardInvalid
        );
        assert_eq!(
            parse_json(r#"{"a": "1"}"#, "r").unwrap_err().kind(),
            ErrorKind::RewardInvalid
        );
        assert_eq!(
            parse_json(r#"{"a": {"b": 1}}"#, "r").unwrap_err().kind(),
            ErrorKind::RewardInvalid
        );
    }

    #[test]
    fn json_wins_over_txt_and_missing_is_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read(dir.path(), "v").unwrap_err().kind(),
            ErrorKind::RewardMissing
        );
        std::fs::write(dir.path().join("reward.txt"), "0").unwrap();
        assert_eq!(read(dir.path(), "v").unwrap()["reward"], 0.0);
        std::fs::write(dir.path().join("reward.json"), r#"{"reward": 1}"#).unwrap();
        assert_eq!(read(dir.path(), "v").unwrap()["reward"], 1.0);
    }

    #[test]
    fn primary_is_reward_or_the_only_value() {
        assert_eq!(primary(&BTreeMap::from([("score".into(), 0.7)])), Some(0.7));
        assert_eq!(
            primary(&BTreeMap::from([("a".into(), 1.0), ("b".into(), 0.0)])),
            None
        );
    }
}
