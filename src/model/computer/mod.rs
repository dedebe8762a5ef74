//! Each provider's computer tool: how it is declared, what size screenshots it is shown,
//! and how its tool calls become desktop actions ([`action`]) in screen pixels
//! ([`scale`]). The mappings are one module a provider: [`anthropic`], [`openai`],
//! [`gemini`]. Carrying the actions out is the desktop's, outside the model layer.

pub mod action;
mod anthropic;
mod gemini;
mod openai;
pub mod scale;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use action::{Action, Button};
pub use scale::{ScaleError, Scaling};

use super::ComputerTool;
use action::keysym;
use scale::RECOMMENDED;

/// What a computer-use agent does when the provider asks to confirm an action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SafetyChecks {
    /// Go ahead and tell the provider so; the check is recorded in the trajectory.
    #[default]
    Acknowledge,
    /// Do not act: the trial ends with the error kind `safety_refused`.
    Refuse,
}

/// The name agents give the policy: what a pending safety check or a safety decision gets.
pub use SafetyChecks as SafetyPolicy;

/// Why a tool call cannot be carried out. The model is told and may try again, except
/// for a refused safety check, which ends the run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Scale(#[from] ScaleError),
    #[error("a safety check asked for confirmation and the policy refuses: {0}")]
    Refused(String),
}

/// A tool call as desktop actions, with what the result must carry back.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mapped {
    pub actions: Vec<Action>,
    /// Provider fields of the result (acknowledged safety checks).
    pub extra: Option<Value>,
    /// A safety check that was acknowledged, for the trajectory.
    pub acknowledged: Option<String>,
}

/// The computer tool of one provider: named by the provider's API, each having one.
pub use super::provider::Api as Protocol;

/// Gemini's browser-only functions, excluded on a desktop.
pub const GEMINI_BROWSER_FUNCTIONS: [&str; 5] = [
    "open_web_browser",
    "search",
    "navigate",
    "go_back",
    "go_forward",
];

/// Pixels of scrolling per wheel click.
const PIXELS_PER_CLICK: f64 = 100.0;
/// Most wheel clicks one scroll may turn.
const MAX_SCROLL_CLICKS: i64 = 100;

impl Protocol {
    /// How screenshots of a `screen` are shown to the model.
    pub fn scaling(self, screen: (u32, u32)) -> Scaling {
        match self {
            Protocol::Anthropic | Protocol::OpenAi => Scaling::fit(screen, &RECOMMENDED),
            // Coordinates come on a 0-999 grid: the screenshot's size does not matter.
            Protocol::Gemini => Scaling::identity(screen),
        }
    }

    /// The tool declaration for a model shown screenshots of `scaling.model` size.
    pub fn tool(self, scaling: &Scaling) -> ComputerTool {
        ComputerTool {
            display_width: scaling.model.0,
            display_height: scaling.model.1,
            environment: "linux".into(),
            excluded_functions: match self {
                Protocol::Gemini => GEMINI_BROWSER_FUNCTIONS.map(String::from).to_vec(),
                _ => Vec::new(),
            },
        }
    }

    /// The actions of one tool call named `name` with `input`.
    pub fn map(
        self,
        name: &str,
        input: &Value,
        scaling: &Scaling,
        policy: SafetyPolicy,
    ) -> Result<Mapped, MapError> {
        match self {
            Protocol::Anthropic => anthropic::map(name, input, scaling),
            Protocol::OpenAi => openai::map(input, scaling, policy),
            Protocol::Gemini => gemini::map(name, input, scaling, policy),
        }
    }

    /// How the pointer's position is told to the model (Anthropic's `cursor_position`).
    pub fn cursor_text(self, scaling: &Scaling, (x, y): (u32, u32)) -> String {
        let (x, y) = scaling.to_model(x, y);
        format!("X={x},Y={y}")
    }
}

fn invalid(message: impl Into<String>) -> MapError {
    MapError::Invalid(message.into())
}

fn field<'a>(input: &'a Value, name: &str) -> Option<&'a Value> {
    input.get(name).filter(|v| !v.is_null())
}

fn text<'a>(input: &'a Value, name: &str) -> Result<&'a str, MapError> {
    field(input, name)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("`{name}` must be a string")))
}

fn number(input: &Value, name: &str) -> Result<i64, MapError> {
    field(input, name)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64)))
        .ok_or_else(|| invalid(format!("`{name}` must be a number")))
}

/// `[x, y]` in the model's size, on the screen.
fn pair(input: &Value, name: &str, scaling: &Scaling) -> Result<(u32, u32), MapError> {
    let Some(items) = field(input, name).and_then(Value::as_array) else {
        return Err(invalid(format!("`{name}` must be [x, y]")));
    };
    let coordinate = |i: usize| {
        items
            .get(i)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64)))
            .ok_or_else(|| invalid(format!("`{name}` must be [x, y]")))
    };
    Ok(scaling.to_screen(coordinate(0)?, coordinate(1)?)?)
}

fn optional_pair(
    input: &Value,
    name: &str,
    scaling: &Scaling,
) -> Result<Option<(u32, u32)>, MapError> {
    field(input, name)
        .map(|_| pair(input, name, scaling))
        .transpose()
}

/// Modifier keys written `shift` or `ctrl+shift`.
fn modifiers(input: &Value, name: &str) -> Vec<String> {
    field(input, name)
        .and_then(Value::as_str)
        .map(|keys| {
            keys.split(['+', ' '])
                .filter(|k| !k.is_empty())
                .map(keysym)
                .collect()
        })
        .unwrap_or_default()
}

fn seconds(input: &Value, name: &str, default: f64) -> f64 {
    field(input, name)
        .and_then(Value::as_f64)
        .unwrap_or(default)
}

fn one(action: Action) -> Result<Mapped, MapError> {
    Ok(Mapped {
        actions: vec![action],
        ..Mapped::default()
    })
}

/// Scroll pixels as wheel clicks: at least one when there is any distance, at most
/// [`MAX_SCROLL_CLICKS`].
fn clicks(pixels: f64) -> i32 {
    if pixels == 0.0 || !pixels.is_finite() {
        return 0;
    }
    let clicks = (pixels.abs() / PIXELS_PER_CLICK)
        .round()
        .clamp(1.0, MAX_SCROLL_CLICKS as f64) as i32;
    if pixels < 0.0 { -clicks } else { clicks }
}
