//! Helpers shared by the integration tests. Each test crate uses part of them.
#![allow(dead_code)]

pub(crate) mod browser;
pub(crate) mod daytona;
pub(crate) mod git;
pub(crate) mod http;
pub(crate) mod project;
