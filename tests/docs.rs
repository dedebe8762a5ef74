//! The commands the README and the docs show, with their output, run against the binary
//! (trycmd): a `console` block's `$ helios ...` lines run in a copy of this repository's
//! `tasks/` and `pipelines/` (so runs of your own do not change what `plan` says), and
//! what follows each must be what helios prints. `[..]` in a sample stands for what
//! differs between machines (CPUs, memory), `...` for lines left out. After a change to
//! the output, `TRYCMD=overwrite cargo test --test docs` rewrites the samples; review the
//! diff. Blocks marked `text` are not run (they need Docker or are illustrations).

mod common;

use std::path::Path;

/// The documents whose `console` blocks are checked.
const DOCUMENTS: [&str; 2] = ["README.md", "docs/plan.md"];

#[test]
fn the_commands_and_outputs_the_docs_show_are_what_helios_does() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap();
    for dir in ["tasks", "pipelines"] {
        common::project::copy_tree(repo.join(dir), copy.path());
    }
    // Commands run where the case file's directory is not; the copy is the current one.
    std::env::set_current_dir(copy.path()).unwrap();
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("helios", Path::new(common::project::BINARY))
        .env(
            "HELIOS_CACHE",
            copy.path().join("cache").display().to_string(),
        );
    for document in DOCUMENTS {
        cases.case(repo.join(document));
    }
    cases.run();
}
