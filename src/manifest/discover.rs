//! Finds the task directories a pipeline's `[[tasks]]` sources select: local globs, and
//! git and dataset sources through `crate::dataset`; `include`, `exclude` and `limit`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glob::Pattern;

use super::document::Document;
use super::paths::clean;
use super::pipeline::TaskSource;
use super::sources::{Kind, SourceOptions, kind_of};
use crate::dataset::{Resolved, Spec};
use crate::diagnostic::{Code, Diagnostic};

/// A task directory chosen by a source, in the order the sources list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTask {
    pub name: String,
    pub dir: PathBuf,
    /// The index of the `[[tasks]]` entry that selected it.
    pub source: usize,
}

/// What the sources select: task directories, and the git and dataset sources resolved
/// on the way (with their `[[tasks]]` index).
pub(crate) struct Discovered {
    pub found: Vec<FoundTask>,
    pub resolved: Vec<(usize, Resolved)>,
}

pub(crate) fn discover(
    file: &Path,
    base: &Path,
    sources: &[TaskSource],
    doc: &Document,
    options: &SourceOptions<'_>,
) -> (Discovered, Vec<Diagnostic>) {
    let mut found: Vec<FoundTask> = Vec::new();
    let mut resolved = Vec::new();
    let mut origin: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let at = |field: &str| doc.value_span(&format!("/tasks/{i}/{field}"));
        let (dirs, what, place) = match kind_of(file, base, i, source, doc, &mut out) {
            None => continue,
            Some(Kind::Local(pattern)) => {
                match match_dirs(file, base, &pattern, at("path"), &mut out) {
                    Some(dirs) => (dirs, format!("`{pattern}`"), at("path")),
                    None => continue,
                }
            }
            Some(Kind::Remote(spec)) => {
                if let Spec::Git { path, .. } = &spec
                    && let Err(e) = Pattern::new(path)
                {
                    out.push(bad_glob(file, path, &e, at("path")));
                    continue;
                }
                match crate::dataset::resolve(&spec, &options.cache, options.progress) {
                    Ok(r) => {
                        let dirs = r.tasks.iter().map(|t| t.dir.clone()).collect();
                        let place = match spec {
                            Spec::Git { .. } => at("git"),
                            Spec::Dataset { .. } => at("dataset"),
                        };
                        let what = format!("`{}`", r.label);
                        resolved.push((i, r));
                        (dirs, what, place)
                    }
                    Err(e) => {
                        out.push(super::sources::diagnostic(file, doc, i, &spec, e));
                        continue;
                    }
                }
            }
        };
        let names: Vec<String> = dirs.iter().map(|d| dir_name(d)).collect();
        let include = compile_filters(
            file,
            doc,
            &format!("/tasks/{i}/include"),
            &source.include,
            &mut out,
        );
        let exclude = compile_filters(
            file,
            doc,
            &format!("/tasks/{i}/exclude"),
            &source.exclude,
            &mut out,
        );
        report_unmatched(
            file,
            doc,
            &format!("/tasks/{i}/include"),
            &include,
            &names,
            true,
            &mut out,
        );
        report_unmatched(
            file,
            doc,
            &format!("/tasks/{i}/exclude"),
            &exclude,
            &names,
            false,
            &mut out,
        );
        let mut kept: Vec<(PathBuf, String)> = dirs
            .into_iter()
            .zip(names)
            .filter(|(_, name)| {
                let included = include.is_empty() || include.iter().any(|(_, p)| p.matches(name));
                let excluded = exclude.iter().any(|(_, p)| p.matches(name));
                included && !excluded
            })
            .collect();
        if let Some(limit) = source.limit {
            kept = sample(kept, limit as usize, source.seed.unwrap_or(0));
        }
        if kept.is_empty() && !include.is_empty() {
            out.push(
                Diagnostic::error(
                    Code::NoMatch,
                    file,
                    format!("no task of {what} is left after `include` and `exclude`"),
                )
                .at(place.clone())
                .label("selects nothing"),
            );
        }
        for (dir, name) in kept {
            match origin.get(&name) {
                Some((seen, _)) if *seen == dir => continue,
                Some((seen, _)) => out.push(
                    Diagnostic::error(Code::Duplicate, file, format!("two tasks are named `{name}`"))
                        .at(place.clone())
                        .label(format!("selects {}", dir.display()))
                        .hint(format!(
                            "`{}` has the same name; task names must be unique in a pipeline (exclude one)",
                            seen.display()
                        )),
                ),
                None => {
                    origin.insert(name.clone(), (dir.clone(), i));
                    found.push(FoundTask {
                        name,
                        dir,
                        source: i,
                    });
                }
            }
        }
    }
    (Discovered { found, resolved }, out)
}

/// `limit` of `items`, drawn with a ChaCha8 generator seeded with `seed` (a partial
/// Fisher–Yates shuffle), kept in their original order: the same seed and the same
/// candidates give the same sample on every machine.
pub(crate) fn sample<T>(items: Vec<T>, limit: usize, seed: u64) -> Vec<T> {
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    let n = items.len();
    if limit >= n {
        return items;
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..limit {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut chosen = order[..limit].to_vec();
    chosen.sort_unstable();
    let mut chosen = chosen.into_iter().peekable();
    items
        .into_iter()
        .enumerate()
        .filter_map(|(index, item)| {
            (chosen.peek() == Some(&index)).then(|| {
                chosen.next();
                item
            })
        })
        .collect()
}

fn bad_glob(
    file: &Path,
    pattern: &str,
    e: &glob::PatternError,
    span: std::ops::Range<usize>,
) -> Diagnostic {
    Diagnostic::error(
        Code::InvalidValue,
        file,
        format!("`{pattern}` is not a valid glob: {}", e.msg),
    )
    .at(span)
    .label("bad glob")
    .hint("globs use `*`, `?`, `[abc]` and `**`")
}

/// Directories matching `pattern` (relative to `base`) that hold a `task.toml`.
fn match_dirs(
    file: &Path,
    base: &Path,
    pattern: &str,
    span: std::ops::Range<usize>,
    out: &mut Vec<Diagnostic>,
) -> Option<Vec<PathBuf>> {
    let full = if Path::new(pattern).is_absolute() {
        pattern.to_string()
    } else {
        format!("{}/{pattern}", Pattern::escape(&base.to_string_lossy()))
    };
    let entries = match glob::glob(&full) {
        Ok(entries) => entries,
        Err(e) => {
            out.push(bad_glob(file, pattern, &e, span));
            return None;
        }
    };
    let mut dirs_seen = 0;
    let mut tasks = Vec::new();
    for path in entries.flatten() {
        if path.is_dir() {
            dirs_seen += 1;
            if path.join("task.toml").is_file() {
                tasks.push(clean(&path));
            }
        }
    }
    if tasks.is_empty() {
        let why = if dirs_seen > 0 {
            format!(
                "{dirs_seen} director{} matched, none with a `task.toml`",
                if dirs_seen == 1 { "y" } else { "ies" }
            )
        } else {
            "nothing matched".to_string()
        };
        out.push(
            Diagnostic::error(Code::NoMatch, file, format!("`{pattern}` matches no task directory"))
                .at(span)
                .label(why)
                .hint(format!(
                    "paths are relative to the pipeline file's directory `{}`; a task directory holds a `task.toml`",
                    base.display()
                )),
        );
        return None;
    }
    Some(tasks)
}

fn dir_name(dir: &Path) -> String {
    dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

pub(crate) fn compile_filters(
    file: &Path,
    doc: &Document,
    base: &str,
    patterns: &[String],
    out: &mut Vec<Diagnostic>,
) -> Vec<(usize, Pattern)> {
    patterns
        .iter()
        .enumerate()
        .filter_map(|(j, text)| match Pattern::new(text) {
            Ok(p) => Some((j, p)),
            Err(e) => {
                out.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        file,
                        format!("`{text}` is not a valid glob: {}", e.msg),
                    )
                    .at(doc.value_span(&format!("{base}/{j}")))
                    .label("bad glob")
                    .hint("globs use `*`, `?` and `[abc]`"),
                );
                None
            }
        })
        .collect()
}

/// Filters that match no task: an error for `include` (the user expected tasks), a warning
/// for `exclude` (nothing is lost, but it is likely a typo).
pub(crate) fn report_unmatched(
    file: &Path,
    doc: &Document,
    base: &str,
    filters: &[(usize, Pattern)],
    names: &[String],
    is_error: bool,
    out: &mut Vec<Diagnostic>,
) {
    for (j, pattern) in filters {
        if names.iter().any(|n| pattern.matches(n)) {
            continue;
        }
        let message = format!("`{}` matches no task", pattern.as_str());
        let d = if is_error {
            Diagnostic::error(Code::NoMatch, file, message)
        } else {
            Diagnostic::warning(Code::NoMatch, file, message)
        };
        let closest = match crate::diagnostic::did_you_mean(
            pattern.as_str(),
            names.iter().map(String::as_str),
        ) {
            Some(name) => Some(format!("did you mean `{name}`?")),
            None if names.len() <= 12 => Some(format!(
                "the tasks here are {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => None,
        };
        out.push(
            d.at(doc.value_span(&format!("{base}/{j}")))
                .label("matches nothing")
                .maybe_hint(closest),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::sample;

    #[test]
    fn a_sample_depends_on_its_seed_only_and_keeps_the_original_order() {
        let items: Vec<u32> = (0..100).collect();
        let a = sample(items.clone(), 10, 7);
        assert_eq!(a.len(), 10);
        assert_eq!(a, sample(items.clone(), 10, 7));
        assert!(a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
        assert_ne!(a, sample(items.clone(), 10, 8));
        // A limit at or above the count keeps everything.
        assert_eq!(sample(items.clone(), 100, 1), items);
    }
}
