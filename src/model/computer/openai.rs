//! OpenAI's `computer_use_preview` calls: each `computer_call` action on the desktop, and
//! its pending safety checks.

use serde_json::{Value, json};

use super::action::{Action, Button, combo, keysym};
use super::scale::Scaling;
use super::{MapError, Mapped, SafetyPolicy, clicks, field, invalid, number, text};

/// OpenAI's `computer_call`: `input.action` (or a batch in `input.actions`) and the
/// call's `pending_safety_checks`.
pub(super) fn map(
    input: &Value,
    scaling: &Scaling,
    policy: SafetyPolicy,
) -> Result<Mapped, MapError> {
    let checks: Vec<Value> = field(input, "pending_safety_checks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut mapped = Mapped::default();
    if !checks.is_empty() {
        let described = checks
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c.get("code").and_then(Value::as_str).unwrap_or("check"),
                    c.get("message").and_then(Value::as_str).unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        if policy == SafetyPolicy::Refuse {
            return Err(MapError::Refused(described));
        }
        mapped.acknowledged = Some(described);
    }
    mapped.extra = Some(json!({ "acknowledged_safety_checks": checks }));
    let actions: Vec<&Value> = match (field(input, "action"), field(input, "actions")) {
        (Some(action), _) => vec![action],
        (None, Some(Value::Array(batch))) => batch.iter().collect(),
        _ => return Err(invalid("a computer call needs an `action`")),
    };
    for action in actions {
        mapped.actions.push(openai_action(action, scaling)?);
    }
    Ok(mapped)
}

fn openai_action(action: &Value, scaling: &Scaling) -> Result<Action, MapError> {
    let point = |action: &Value| -> Result<(u32, u32), MapError> {
        Ok(scaling.to_screen(number(action, "x")?, number(action, "y")?)?)
    };
    let held = |action: &Value| -> Vec<String> {
        field(action, "keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).map(keysym).collect())
            .unwrap_or_default()
    };
    Ok(match text(action, "type")? {
        "click" => Action::Click {
            to: Some(point(action)?),
            button: match field(action, "button")
                .and_then(Value::as_str)
                .unwrap_or("left")
            {
                "left" => Button::Left,
                "right" => Button::Right,
                "wheel" | "middle" => Button::Middle,
                "back" => Button::Back,
                "forward" => Button::Forward,
                other => return Err(invalid(format!("unknown button `{other}`"))),
            },
            count: 1,
            modifiers: held(action),
        },
        "double_click" => Action::Click {
            to: Some(point(action)?),
            button: Button::Left,
            count: 2,
            modifiers: held(action),
        },
        "move" => Action::Move { to: point(action)? },
        "drag" => {
            let Some(path) = field(action, "path").and_then(Value::as_array) else {
                return Err(invalid("`drag` needs a `path` of points"));
            };
            let path = path.iter().map(point).collect::<Result<Vec<_>, _>>()?;
            if path.len() < 2 {
                return Err(invalid("`drag` needs at least two points"));
            }
            Action::Drag { path }
        }
        "scroll" => Action::Scroll {
            at: Some(point(action)?),
            down: clicks(
                field(action, "scroll_y")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
            ),
            right: clicks(
                field(action, "scroll_x")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0),
            ),
            modifiers: held(action),
        },
        "keypress" => {
            let keys: Vec<&str> = field(action, "keys")
                .and_then(Value::as_array)
                .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if keys.is_empty() {
                return Err(invalid("`keypress` needs `keys`"));
            }
            Action::Keys {
                combos: vec![combo(&keys)],
            }
        }
        "type" => Action::Type {
            text: text(action, "text")?.to_string(),
        },
        "wait" => Action::Wait { seconds: 2.0 },
        "screenshot" => Action::Screenshot,
        other => return Err(invalid(format!("unknown action type `{other}`"))),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::*;

    const SCREEN: (u32, u32) = (1024, 768);

    #[test]
    fn openai_actions_and_safety_checks() {
        let s = Protocol::OpenAi.scaling(SCREEN);
        let input = json!({
            "action": {"type": "keypress", "keys": ["CTRL", "A"]},
            "pending_safety_checks": [{"id": "cu_sc_1", "code": "irrelevant_domain", "message": "odd"}]
        });
        let mapped = Protocol::OpenAi
            .map("computer", &input, &s, SafetyPolicy::Acknowledge)
            .unwrap();
        assert_eq!(
            mapped.actions,
            [Action::Keys {
                combos: vec!["ctrl+a".into()]
            }]
        );
        assert_eq!(
            mapped.extra.unwrap()["acknowledged_safety_checks"][0]["id"],
            "cu_sc_1"
        );
        assert!(matches!(
            Protocol::OpenAi.map("computer", &input, &s, SafetyPolicy::Refuse),
            Err(MapError::Refused(_))
        ));
        let scroll = json!({"action": {"type": "scroll", "x": 10, "y": 20, "scroll_x": 0, "scroll_y": -250}});
        assert_eq!(
            Protocol::OpenAi
                .map("computer", &scroll, &s, SafetyPolicy::Acknowledge)
                .unwrap()
                .actions,
            [Action::Scroll {
                at: Some((10, 20)),
                down: -3,
                right: 0,
                modifiers: vec![]
            }]
        );
        let drag =
            json!({"action": {"type": "drag", "path": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}});
        assert_eq!(
            Protocol::OpenAi
                .map("computer", &drag, &s, SafetyPolicy::Acknowledge)
                .unwrap()
                .actions,
            [Action::Drag {
                path: vec![(1, 2), (3, 4)]
            }]
        );
        let batch = json!({"actions": [{"type": "click", "x": 5, "y": 6, "button": "right"}, {"type": "type", "text": "hi"}]});
        assert_eq!(
            Protocol::OpenAi
                .map("computer", &batch, &s, SafetyPolicy::Acknowledge)
                .unwrap()
                .actions
                .len(),
            2
        );
    }
}
