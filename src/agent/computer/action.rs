//! The xdotool commands that perform desktop actions (the actions themselves are the model
//! layer's: [`crate::model::computer::action`]).

use std::fmt::Write as _;

use crate::env::shell_quote as quote;
pub(crate) use crate::model::computer::action::Action;

/// Longest wait or key hold an action may ask for, in seconds.
pub const MAX_WAIT: f64 = 30.0;
/// Characters typed by one xdotool call.
const TYPE_CHUNK: usize = 50;

impl Action {
    /// The shell command (run with `bash -c`, `DISPLAY` set) that performs the action.
    /// `Screenshot` and `CursorPosition` are answered by the desktop itself.
    pub fn command(&self) -> Option<String> {
        let mut out = String::from("xdotool");
        match self {
            Action::Click {
                to,
                button,
                count,
                modifiers,
            } => {
                move_to(&mut out, *to);
                for key in modifiers {
                    let _ = write!(out, " keydown {}", quote(key));
                }
                let _ = write!(
                    out,
                    " click --repeat {} --delay 80 {}",
                    count.max(&1),
                    *button as u8
                );
                for key in modifiers.iter().rev() {
                    let _ = write!(out, " keyup {}", quote(key));
                }
            }
            Action::Move { to } => move_to(&mut out, Some(*to)),
            Action::Drag { path } => {
                let mut points = path.iter();
                let first = points.next()?;
                move_to(&mut out, Some(*first));
                out.push_str(" mousedown 1");
                for point in points {
                    move_to(&mut out, Some(*point));
                }
                out.push_str(" mouseup 1");
            }
            Action::MouseDown { to } => {
                move_to(&mut out, *to);
                out.push_str(" mousedown 1");
            }
            Action::MouseUp { to } => {
                move_to(&mut out, *to);
                out.push_str(" mouseup 1");
            }
            Action::Scroll {
                at,
                down,
                right,
                modifiers,
            } => {
                move_to(&mut out, *at);
                for key in modifiers {
                    let _ = write!(out, " keydown {}", quote(key));
                }
                for (amount, positive, negative) in [(*down, 5, 4), (*right, 7, 6)] {
                    if amount != 0 {
                        let button = if amount > 0 { positive } else { negative };
                        let _ = write!(
                            out,
                            " click --repeat {} --delay 30 {button}",
                            amount.unsigned_abs()
                        );
                    }
                }
                for key in modifiers.iter().rev() {
                    let _ = write!(out, " keyup {}", quote(key));
                }
            }
            Action::Type { text } => {
                // Chunks, so one long text does not become one very long command line.
                let chars: Vec<char> = text.chars().collect();
                let commands: Vec<String> = chars
                    .chunks(TYPE_CHUNK)
                    .map(|chunk| {
                        let chunk: String = chunk.iter().collect();
                        format!("xdotool type --delay 12 -- {}", quote(&chunk))
                    })
                    .collect();
                return Some(if commands.is_empty() {
                    "true".into()
                } else {
                    commands.join(" && ")
                });
            }
            Action::Keys { combos } => {
                out.push_str(" key --clearmodifiers --delay 30");
                for combo in combos {
                    let _ = write!(out, " {}", quote(combo));
                }
            }
            Action::HoldKeys { keys, seconds } => {
                return Some(format!(
                    "xdotool keydown {k} && sleep {s} && xdotool keyup {k}",
                    k = quote(keys),
                    s = seconds.clamp(0.0, MAX_WAIT)
                ));
            }
            Action::Wait { seconds } => {
                return Some(format!("sleep {}", seconds.clamp(0.0, MAX_WAIT)));
            }
            Action::Screenshot | Action::CursorPosition => return None,
        }
        Some(out)
    }
}

fn move_to(out: &mut String, to: Option<(u32, u32)>) {
    if let Some((x, y)) = to {
        let _ = write!(out, " mousemove --sync {x} {y}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::computer::action::Button;

    #[test]
    fn actions_become_xdotool_commands() {
        let click = Action::Click {
            to: Some((400, 118)),
            button: Button::Left,
            count: 2,
            modifiers: vec!["shift".into()],
        };
        assert_eq!(
            click.command().unwrap(),
            "xdotool mousemove --sync 400 118 keydown 'shift' click --repeat 2 --delay 80 1 keyup 'shift'"
        );
        let drag = Action::Drag {
            path: vec![(1, 2), (3, 4), (5, 6)],
        };
        assert_eq!(
            drag.command().unwrap(),
            "xdotool mousemove --sync 1 2 mousedown 1 mousemove --sync 3 4 mousemove --sync 5 6 mouseup 1"
        );
        let scroll = Action::Scroll {
            at: Some((10, 20)),
            down: -3,
            right: 2,
            modifiers: vec![],
        };
        assert_eq!(
            scroll.command().unwrap(),
            "xdotool mousemove --sync 10 20 click --repeat 3 --delay 30 4 click --repeat 2 --delay 30 7"
        );
        assert_eq!(
            Action::Type {
                text: "it's".into()
            }
            .command()
            .unwrap(),
            r"xdotool type --delay 12 -- 'it'\''s'"
        );
        assert_eq!(
            Action::Keys {
                combos: vec!["ctrl+a".into(), "BackSpace".into()]
            }
            .command()
            .unwrap(),
            "xdotool key --clearmodifiers --delay 30 'ctrl+a' 'BackSpace'"
        );
        assert_eq!(
            Action::Wait { seconds: 99.0 }.command().unwrap(),
            "sleep 30"
        );
        assert_eq!(Action::Screenshot.command(), None);
    }

    #[test]
    fn long_text_is_typed_in_chunks() {
        let text = "x".repeat(120);
        let command = Action::Type { text }.command().unwrap();
        assert_eq!(command.matches("xdotool type").count(), 3);
    }
}
