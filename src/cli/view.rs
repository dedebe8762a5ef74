//! `helios view [RESULTS_DIR]`: serves the web viewer over a results directory until Ctrl-C.

use std::net::IpAddr;
use std::path::PathBuf;

use super::{ExitStatus, failure};
use crate::view::{ViewError, ViewOptions, Viewer};

pub(super) struct ViewArgs {
    pub root: PathBuf,
    pub host: IpAddr,
    pub port: Option<u16>,
}

pub(super) async fn run(args: ViewArgs) -> ExitStatus {
    if !args.root.is_dir() {
        eprintln!(
            "error: `{}` is not a directory; give a run directory or a pipeline's output directory (default: `runs`)",
            args.root.display()
        );
        return ExitStatus::Invalid;
    }
    {
        let options = ViewOptions {
            root: args.root.clone(),
            host: args.host,
            port: args.port,
        };
        match Viewer::start(options).await {
            Ok(viewer) => {
                eprintln!(
                    "helios view: serving `{}` at {} (read-only; Ctrl-C to stop)",
                    args.root.display(),
                    viewer.url()
                );
                viewer.serve_until_interrupted().await;
                ExitStatus::Success
            }
            Err(error @ ViewError::Root { .. }) => {
                failure::print(&error);
                ExitStatus::Invalid
            }
            Err(error) => {
                failure::print(&error);
                ExitStatus::Infrastructure
            }
        }
    }
}
