//! Computer use on a desktop: the xdotool commands behind desktop actions ([`action`]),
//! screenshots resized to what a model sees ([`scale`]), and the desktop of a task
//! container ([`desktop`]). The actions, the scaling and each provider's computer tool are
//! the model layer's ([`crate::model::computer`]).

pub mod action;
pub mod desktop;
pub mod scale;

pub use desktop::{ContainerDesktop, Desktop};
