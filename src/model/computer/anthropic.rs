//! Anthropic's `computer` tool (`computer_20250124`): its actions on the desktop.

use serde_json::Value;

use super::action::{Action, Button, combo_text};
use super::scale::Scaling;
use super::{
    MAX_SCROLL_CLICKS, MapError, Mapped, field, invalid, modifiers, one, optional_pair, pair,
    seconds, text,
};

/// Anthropic's `computer` tool (`computer_20250124`): `input.action` and its fields.
pub(super) fn map(name: &str, input: &Value, scaling: &Scaling) -> Result<Mapped, MapError> {
    if name != "computer" {
        return Err(invalid(format!(
            "unknown tool `{name}`; the tool is `computer`"
        )));
    }
    let action = text(input, "action")?;
    let click = |button, count| -> Result<Mapped, MapError> {
        // The demo's `key` and the documented `text` both name held modifiers.
        let mut held = modifiers(input, "text");
        held.extend(modifiers(input, "key"));
        one(Action::Click {
            to: optional_pair(input, "coordinate", scaling)?,
            button,
            count,
            modifiers: held,
        })
    };
    match action {
        "screenshot" => one(Action::Screenshot),
        "cursor_position" => one(Action::CursorPosition),
        "mouse_move" => one(Action::Move {
            to: pair(input, "coordinate", scaling)?,
        }),
        "left_click" => click(Button::Left, 1),
        "right_click" => click(Button::Right, 1),
        "middle_click" => click(Button::Middle, 1),
        "double_click" => click(Button::Left, 2),
        "triple_click" => click(Button::Left, 3),
        "left_click_drag" => {
            let end = pair(input, "coordinate", scaling)?;
            match optional_pair(input, "start_coordinate", scaling)? {
                Some(start) => one(Action::Drag {
                    path: vec![start, end],
                }),
                // From wherever the pointer is.
                None => Ok(Mapped {
                    actions: vec![
                        Action::MouseDown { to: None },
                        Action::Move { to: end },
                        Action::MouseUp { to: None },
                    ],
                    ..Mapped::default()
                }),
            }
        }
        "left_mouse_down" => one(Action::MouseDown {
            to: optional_pair(input, "coordinate", scaling)?,
        }),
        "left_mouse_up" => one(Action::MouseUp {
            to: optional_pair(input, "coordinate", scaling)?,
        }),
        "scroll" => {
            let amount = field(input, "scroll_amount")
                .and_then(Value::as_i64)
                .unwrap_or(3)
                .clamp(0, MAX_SCROLL_CLICKS) as i32;
            let (down, right) = match text(input, "scroll_direction")? {
                "down" => (amount, 0),
                "up" => (-amount, 0),
                "right" => (0, amount),
                "left" => (0, -amount),
                other => {
                    return Err(invalid(format!(
                        "`scroll_direction` is up, down, left or right, not `{other}`"
                    )));
                }
            };
            one(Action::Scroll {
                at: optional_pair(input, "coordinate", scaling)?,
                down,
                right,
                modifiers: modifiers(input, "text"),
            })
        }
        "key" => one(Action::Keys {
            combos: text(input, "text")?
                .split_whitespace()
                .map(combo_text)
                .collect(),
        }),
        "type" => one(Action::Type {
            text: text(input, "text")?.to_string(),
        }),
        "hold_key" => one(Action::HoldKeys {
            keys: combo_text(text(input, "text")?),
            seconds: seconds(input, "duration", 1.0),
        }),
        "wait" => one(Action::Wait {
            seconds: seconds(input, "duration", 1.0),
        }),
        other => Err(invalid(format!("unknown action `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::*;
    use crate::model::computer::action::Button;

    const SCREEN: (u32, u32) = (1024, 768);

    #[test]
    fn anthropic_actions_map_to_the_desktop() {
        let s = Protocol::Anthropic.scaling(SCREEN);
        let map = |input: Value| {
            Protocol::Anthropic.map("computer", &input, &s, SafetyPolicy::Acknowledge)
        };
        assert_eq!(
            map(json!({"action": "left_click", "coordinate": [400, 118]}))
                .unwrap()
                .actions,
            [Action::Click {
                to: Some((400, 118)),
                button: Button::Left,
                count: 1,
                modifiers: vec![]
            }]
        );
        assert_eq!(
            map(json!({"action": "triple_click", "coordinate": [1, 2], "text": "shift"}))
                .unwrap()
                .actions,
            [Action::Click {
                to: Some((1, 2)),
                button: Button::Left,
                count: 3,
                modifiers: vec!["shift".into()]
            }]
        );
        assert_eq!(
            map(json!({"action": "key", "text": "ctrl+s Enter"}))
                .unwrap()
                .actions,
            [Action::Keys {
                combos: vec!["ctrl+s".into(), "Return".into()]
            }]
        );
        assert_eq!(
            map(json!({"action": "scroll", "coordinate": [5, 5], "scroll_direction": "up", "scroll_amount": 2})).unwrap().actions,
            [Action::Scroll { at: Some((5, 5)), down: -2, right: 0, modifiers: vec![] }]
        );
        assert_eq!(
            map(json!({"action": "left_click_drag", "start_coordinate": [1, 1], "coordinate": [9, 9]})).unwrap().actions,
            [Action::Drag { path: vec![(1, 1), (9, 9)] }]
        );
        assert!(matches!(
            map(json!({"action": "left_click", "coordinate": [2000, 1]})),
            Err(MapError::Scale(_))
        ));
        assert!(matches!(
            map(json!({"action": "fly"})),
            Err(MapError::Invalid(_))
        ));
    }

    #[test]
    fn anthropic_coordinates_scale_back_from_the_recommended_size() {
        let s = Protocol::Anthropic.scaling((1920, 1080));
        assert_eq!(Protocol::Anthropic.tool(&s).display_width, 1366);
        let mapped = Protocol::Anthropic
            .map(
                "computer",
                &json!({"action": "mouse_move", "coordinate": [683, 384]}),
                &s,
                SafetyPolicy::Acknowledge,
            )
            .unwrap();
        assert_eq!(mapped.actions, [Action::Move { to: (960, 540) }]);
        assert_eq!(
            Protocol::Anthropic.cursor_text(&s, (960, 540)),
            "X=683,Y=384"
        );
    }
}
