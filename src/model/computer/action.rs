//! Desktop actions in screen pixels, whatever provider asked for them, and key names of
//! every provider normalised to X keysyms: what a provider's computer tool call means,
//! before anything carries it out.

/// A mouse button, as xdotool numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Left = 1,
    Middle = 2,
    Right = 3,
    Back = 8,
    Forward = 9,
}

/// One thing to do on the desktop. Coordinates are screen pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Move the pointer (when `to` is given), then click `count` times with `modifiers`
    /// held (xdotool names, such as `shift`).
    Click {
        to: Option<(u32, u32)>,
        button: Button,
        count: u32,
        modifiers: Vec<String>,
    },
    Move {
        to: (u32, u32),
    },
    /// Press at the first point, move through the others, release at the last.
    Drag {
        path: Vec<(u32, u32)>,
    },
    MouseDown {
        to: Option<(u32, u32)>,
    },
    MouseUp {
        to: Option<(u32, u32)>,
    },
    /// Turn the wheel at `at`: positive `down` scrolls down, positive `right` right; in
    /// wheel clicks.
    Scroll {
        at: Option<(u32, u32)>,
        down: i32,
        right: i32,
        modifiers: Vec<String>,
    },
    Type {
        text: String,
    },
    /// Press key combinations one after the other (`ctrl+a`, `BackSpace`).
    Keys {
        combos: Vec<String>,
    },
    HoldKeys {
        keys: String,
        seconds: f64,
    },
    Wait {
        seconds: f64,
    },
    Screenshot,
    CursorPosition,
}

impl Action {
    /// Whether the action changes the screen, so that the model is sent a new screenshot.
    pub fn wants_screenshot(&self) -> bool {
        !matches!(self, Action::CursorPosition)
    }
}

/// One key name from any provider (`ENTER`, `Control`, `ArrowUp`, `cmd`, `a`) as an X
/// keysym that xdotool knows (`Return`, `ctrl`, `Up`, `super`, `a`).
pub fn keysym(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mapped = match lower.as_str() {
        "enter" | "return" => "Return",
        "esc" | "escape" => "Escape",
        "backspace" => "BackSpace",
        "delete" | "del" => "Delete",
        "tab" => "Tab",
        "space" | " " => "space",
        "up" | "arrowup" => "Up",
        "down" | "arrowdown" => "Down",
        "left" | "arrowleft" => "Left",
        "right" | "arrowright" => "Right",
        "pageup" | "page_up" | "pgup" | "prior" => "Page_Up",
        "pagedown" | "page_down" | "pgdn" | "next" => "Page_Down",
        "home" => "Home",
        "end" => "End",
        "insert" | "ins" => "Insert",
        "ctrl" | "control" => "ctrl",
        "alt" | "option" => "alt",
        "shift" => "shift",
        "cmd" | "command" | "meta" | "super" | "win" | "windows" => "super",
        "capslock" | "caps_lock" => "Caps_Lock",
        "/" => "slash",
        "\\" => "backslash",
        "-" => "minus",
        "=" => "equal",
        "," => "comma",
        "." => "period",
        ";" => "semicolon",
        "'" => "apostrophe",
        "`" => "grave",
        "[" => "bracketleft",
        "]" => "bracketright",
        _ => {
            if let Some(n) = lower.strip_prefix('f')
                && let Ok(n) = n.parse::<u8>()
                && (1..=24).contains(&n)
            {
                return format!("F{n}");
            }
            // A letter implies shift when upper case: combinations use lower case.
            if name.chars().count() == 1 {
                return lower;
            }
            return name.to_string();
        }
    };
    mapped.to_string()
}

/// Keys pressed together, from a list of names: `["CTRL", "A"]` → `ctrl+a`.
pub fn combo<S: AsRef<str>>(keys: &[S]) -> String {
    keys.iter()
        .map(|k| {
            let k = k.as_ref();
            // A lone space is the space key, not an empty name.
            keysym(if k.trim().is_empty() { k } else { k.trim() })
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// A combination written with `+` (`Control+A`, `ctrl+shift+t`) in keysyms.
pub fn combo_text(text: &str) -> String {
    // `+` separates keys, so a `+` key is written last, as in `ctrl++`.
    let (text, plus) = match text.strip_suffix("++") {
        Some(rest) => (rest, true),
        None if text == "+" => ("", true),
        None => (text, false),
    };
    let mut keys: Vec<&str> = text.split('+').filter(|k| !k.is_empty()).collect();
    if plus {
        keys.push("plus");
    }
    combo(&keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_of_every_provider_become_keysyms() {
        assert_eq!(combo(&["CTRL", "A"]), "ctrl+a");
        assert_eq!(combo(&["ENTER"]), "Return");
        assert_eq!(combo_text("Control+Shift+T"), "ctrl+shift+t");
        assert_eq!(combo_text("enter"), "Return");
        assert_eq!(combo_text("ArrowDown"), "Down");
        assert_eq!(combo_text("f5"), "F5");
        assert_eq!(combo_text("KP_0"), "KP_0");
        assert_eq!(combo_text("cmd+c"), "super+c");
        assert_eq!(combo_text("ctrl++"), "ctrl+plus");
        assert_eq!(combo_text("+"), "plus");
        assert_eq!(combo(&[" "]), "space");
    }
}
