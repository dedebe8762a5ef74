//! Gemini's computer-use functions on the desktop, with coordinates on the 0-999 grid,
//! and their safety decisions.

use serde_json::{Value, json};

use super::action::{Action, Button, combo_text};
use super::scale::Scaling;
use super::{
    GEMINI_BROWSER_FUNCTIONS, MapError, Mapped, SafetyPolicy, clicks, field, invalid, number, text,
};

/// Gemini's computer-use functions, with coordinates on the 0-999 grid.
pub(super) fn map(
    name: &str,
    args: &Value,
    scaling: &Scaling,
    policy: SafetyPolicy,
) -> Result<Mapped, MapError> {
    let mut mapped = Mapped::default();
    if let Some(decision) = field(args, "safety_decision")
        && decision.get("decision").and_then(Value::as_str) == Some("require_confirmation")
    {
        let explanation = decision
            .get("explanation")
            .and_then(Value::as_str)
            .unwrap_or("confirmation required")
            .to_string();
        if policy == SafetyPolicy::Refuse {
            return Err(MapError::Refused(explanation));
        }
        mapped.acknowledged = Some(explanation);
        mapped.extra = Some(json!({ "safety_acknowledgement": "true" }));
    }
    let at = |x: &str, y: &str| -> Result<(u32, u32), MapError> {
        Ok(scaling.from_grid(number(args, x)?, number(args, y)?)?)
    };
    let flag = |name: &str| field(args, name).and_then(Value::as_bool).unwrap_or(true);
    let click = |to| Action::Click {
        to: Some(to),
        button: Button::Left,
        count: 1,
        modifiers: Vec::new(),
    };
    let actions = match name {
        "click_at" => vec![click(at("x", "y")?)],
        "hover_at" => vec![Action::Move { to: at("x", "y")? }],
        "type_text_at" => {
            let mut actions = vec![click(at("x", "y")?)];
            if flag("clear_before_typing") {
                // `ctrl+a` is "line start" in Tk; this clears a single-line field
                // everywhere.
                actions.push(Action::Keys {
                    combos: vec!["End".into(), "shift+Home".into(), "BackSpace".into()],
                });
            }
            actions.push(Action::Type {
                text: text(args, "text")?.to_string(),
            });
            if flag("press_enter") {
                actions.push(Action::Keys {
                    combos: vec!["Return".into()],
                });
            }
            actions
        }
        "key_combination" => vec![Action::Keys {
            combos: vec![combo_text(text(args, "keys")?)],
        }],
        "scroll_document" => vec![match text(args, "direction")? {
            "down" => Action::Keys {
                combos: vec!["Page_Down".into()],
            },
            "up" => Action::Keys {
                combos: vec!["Page_Up".into()],
            },
            "left" | "right" => Action::Scroll {
                at: None,
                down: 0,
                right: if text(args, "direction")? == "right" {
                    5
                } else {
                    -5
                },
                modifiers: Vec::new(),
            },
            other => return Err(invalid(format!("unknown direction `{other}`"))),
        }],
        "scroll_at" => {
            let to = at("x", "y")?;
            let magnitude = field(args, "magnitude")
                .and_then(Value::as_f64)
                .unwrap_or(800.0)
                .clamp(0.0, 999.0);
            let direction = text(args, "direction")?;
            let span = match direction {
                "up" | "down" => scaling.screen.1,
                _ => scaling.screen.0,
            } as f64;
            let amount = clicks(magnitude / 1000.0 * span);
            let (down, right) = match direction {
                "down" => (amount, 0),
                "up" => (-amount, 0),
                "right" => (0, amount),
                "left" => (0, -amount),
                other => return Err(invalid(format!("unknown direction `{other}`"))),
            };
            vec![Action::Scroll {
                at: Some(to),
                down,
                right,
                modifiers: Vec::new(),
            }]
        }
        "drag_and_drop" => vec![Action::Drag {
            path: vec![at("x", "y")?, at("destination_x", "destination_y")?],
        }],
        "wait_5_seconds" => vec![Action::Wait { seconds: 5.0 }],
        browser if GEMINI_BROWSER_FUNCTIONS.contains(&browser) => {
            return Err(invalid(format!(
                "`{browser}` is for web browsers; this is a desktop: use click_at, type_text_at, key_combination"
            )));
        }
        other => return Err(invalid(format!("unknown function `{other}`"))),
    };
    mapped.actions = actions;
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::*;
    use crate::model::computer::action::Button;

    const SCREEN: (u32, u32) = (1024, 768);

    #[test]
    fn gemini_functions_use_the_normalised_grid() {
        let s = Protocol::Gemini.scaling(SCREEN);
        let tool = Protocol::Gemini.tool(&s);
        assert!(tool.excluded_functions.contains(&"navigate".to_string()));
        let typed = Protocol::Gemini
            .map(
                "type_text_at",
                &json!({"x": 391, "y": 154, "text": "Ada", "press_enter": false}),
                &s,
                SafetyPolicy::Acknowledge,
            )
            .unwrap();
        assert_eq!(
            typed.actions[0],
            Action::Click {
                to: Some((400, 118)),
                button: Button::Left,
                count: 1,
                modifiers: vec![]
            }
        );
        assert_eq!(typed.actions[2], Action::Type { text: "Ada".into() });
        assert_eq!(typed.actions.len(), 3, "cleared, typed, no Enter");
        let combo = Protocol::Gemini
            .map(
                "key_combination",
                &json!({"keys": "Control+A"}),
                &s,
                SafetyPolicy::Acknowledge,
            )
            .unwrap();
        assert_eq!(
            combo.actions,
            [Action::Keys {
                combos: vec!["ctrl+a".into()]
            }]
        );
        let risky = json!({"x": 1, "y": 1, "safety_decision": {"decision": "require_confirmation", "explanation": "buys"}});
        let acknowledged = Protocol::Gemini
            .map("click_at", &risky, &s, SafetyPolicy::Acknowledge)
            .unwrap();
        assert_eq!(
            acknowledged.extra.unwrap()["safety_acknowledgement"],
            "true"
        );
        assert!(matches!(
            Protocol::Gemini.map("click_at", &risky, &s, SafetyPolicy::Refuse),
            Err(MapError::Refused(_))
        ));
        assert!(matches!(
            Protocol::Gemini.map(
                "navigate",
                &json!({"url": "x"}),
                &s,
                SafetyPolicy::Acknowledge
            ),
            Err(MapError::Invalid(_))
        ));
        let scroll = Protocol::Gemini
            .map(
                "scroll_at",
                &json!({"x": 500, "y": 500, "direction": "down", "magnitude": 500}),
                &s,
                SafetyPolicy::Acknowledge,
            )
            .unwrap();
        assert_eq!(
            scroll.actions,
            [Action::Scroll {
                at: Some((512, 384)),
                down: 4,
                right: 0,
                modifiers: vec![]
            }]
        );
    }
}
