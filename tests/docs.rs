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

/// docs/testing.md's fast tier is written twice in `.config/nextest.toml`: as the `fast`
/// profile's filter, and as the filter of the setup script that gives the fast tests no
/// Docker engine to reach (nextest has no named filters). The two must stay one.
#[test]
fn the_fast_tier_is_the_same_set_where_the_nextest_config_repeats_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".config/nextest.toml");
    let config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let words = |filter: &toml::Value| -> Vec<String> {
        filter
            .as_str()
            .expect("a filter is a string")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let fast = words(&config["profile"]["fast"]["default-filter"]);
    let scripts = config["profile"]["default"]["scripts"]
        .as_array()
        .expect("[[profile.default.scripts]]");
    let no_docker = scripts
        .iter()
        .find(|s| s["setup"].as_str() == Some("no-docker"))
        .expect("the no-docker script's filter");
    assert_eq!(
        words(&no_docker["filter"]),
        fast,
        "`.config/nextest.toml`: the `fast` profile's `default-filter` and the `no-docker` \
         script's `filter` must name the same tests"
    );
}
