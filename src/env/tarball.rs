//! Tar archives for moving files in and out of containers.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// A tar archive of `dir`'s contents under `prefix` (`tests/...`), permissions kept.
pub fn pack_dir(dir: &Path, prefix: &str) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(prefix, dir)?;
    builder.into_inner()
}

/// A tar archive holding one file.
pub fn pack_file(path_in_archive: &str, bytes: &[u8], mode: u32) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    builder.append_data(&mut header, path_in_archive, bytes)?;
    builder.into_inner()
}

/// The two zero blocks that end a tar archive.
const ARCHIVE_END: usize = 1024;

/// Tar headers of directories (absolute paths, owned by root, with `mode`), without the
/// archive's end: put before another archive, they make one archive of both.
pub(crate) fn dir_headers(dirs: &[&str], mode: u32) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for dir in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_size(0);
        builder.append_data(&mut header, dir.trim_start_matches('/'), std::io::empty())?;
    }
    let mut archive = builder.into_inner()?;
    archive.truncate(archive.len() - ARCHIVE_END);
    Ok(archive)
}

/// Entries made by [`dir_headers`], ended as an archive.
pub(crate) fn with_end(mut entries: Vec<u8>) -> Vec<u8> {
    entries.resize(entries.len() + ARCHIVE_END, 0);
    entries
}

/// The most bytes of files collected from a trial's `/logs` into its results directory;
/// what is past it is cut and said in the result (`logs_cut` in `result.json`).
pub const LOGS_CAP: u64 = 512 << 20;

/// Files collected whatever the cap (up to [`KEPT_FILE_LIMIT`] each): the rewards, which
/// the trial's result is read from, must not be crowded out by large artifacts.
const ALWAYS_KEPT: [&str; 2] = ["verifier/reward.txt", "verifier/reward.json"];

/// The most bytes kept of each [`ALWAYS_KEPT`] file.
const KEPT_FILE_LIMIT: u64 = 1 << 20;

/// How many cut files are named in [`UnpackStats::cut_paths`]; the rest are counted.
pub const CUT_PATHS_SHOWN: usize = 20;

/// Unpacks `archive` into `dest`, dropping its first path component (the directory that
/// was downloaded, `logs/`). Only regular files and directories are written, and only
/// inside `dest`: links and paths with `..` are skipped and counted. At most `cap` bytes
/// of files are written: the file that crosses it keeps its first bytes, later files are
/// left out, and both are counted as cut (the archive is still read to its end, so every
/// cut file is counted). The verifier's reward files are kept whatever the cap.
pub fn unpack_stripped(archive: impl Read, dest: &Path, cap: u64) -> std::io::Result<UnpackStats> {
    let mut stats = UnpackStats {
        cap,
        ..UnpackStats::default()
    };
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(relative) = strip_first(&path) else {
            continue;
        };
        let kind = entry.header().entry_type();
        let target = dest.join(&relative);
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if kind.is_file() {
            let size = entry.size();
            let room = if ALWAYS_KEPT.iter().any(|kept| relative == Path::new(kept)) {
                KEPT_FILE_LIMIT
            } else {
                cap.saturating_sub(stats.bytes)
            };
            if size > room {
                stats.cut(&relative, size - room);
                if room == 0 {
                    continue;
                }
            }
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Written beside its place, then renamed: no half-written file under its name.
            let mut temp = tempfile::NamedTempFile::new_in(target.parent().unwrap_or(dest))?;
            stats.bytes += std::io::copy(&mut (&mut entry).take(room), &mut temp)?;
            temp.persist(&target).map_err(|e| e.error)?;
            stats.files += 1;
        } else {
            stats.skipped += 1;
        }
    }
    Ok(stats)
}

/// What [`unpack_stripped`] wrote, and what it cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
    /// The cap on bytes of files it was given.
    pub cap: u64,
    /// Files cut short or left out by the cap.
    pub cut_files: u64,
    /// Bytes of files not written because of the cap.
    pub cut_bytes: u64,
    /// The first [`CUT_PATHS_SHOWN`] cut files, relative to the destination.
    pub cut_paths: Vec<String>,
}

impl UnpackStats {
    pub(crate) fn cut(&mut self, relative: &Path, bytes: u64) {
        self.cut_files += 1;
        self.cut_bytes += bytes;
        if self.cut_paths.len() < CUT_PATHS_SHOWN {
            self.cut_paths.push(relative.to_string_lossy().into_owned());
        }
    }
}

/// Why [`unpack_stream`] failed: the source of the chunks, or unpacking them.
#[derive(Debug)]
pub(crate) enum StreamError<E> {
    Source(E),
    Unpack(std::io::Error),
}

/// Chunks in flight between the download and the unpacker: what bounds the memory a
/// download uses, whatever the archive's size.
const CHANNEL_CHUNKS: usize = 16;

/// Unpacks an archive that arrives as a stream of chunks (as [`unpack_stripped`] does),
/// without holding it: chunks go through a bounded channel to a blocking task that
/// unpacks them as they come.
pub(crate) async fn unpack_stream<E>(
    chunks: impl futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    dest: &Path,
    cap: u64,
) -> Result<UnpackStats, StreamError<E>> {
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    let dest = dest.to_path_buf();
    let unpacker = tokio::task::spawn_blocking(move || {
        let reader = ChunkReader {
            chunks: rx,
            current: bytes::Bytes::new(),
        };
        unpack_stripped(reader, &dest, cap)
    });
    let mut chunks = std::pin::pin!(chunks);
    let mut source_error = None;
    while let Some(chunk) = chunks.next().await {
        match chunk {
            // A closed channel: the unpacker stopped, and says why below.
            Ok(chunk) => {
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                source_error = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let unpacked = unpacker
        .await
        .map_err(|e| StreamError::Unpack(std::io::Error::other(e)))?;
    if let Some(e) = source_error {
        return Err(StreamError::Source(e));
    }
    unpacked.map_err(StreamError::Unpack)
}

/// The blocking side of [`unpack_stream`]: reads the chunks the channel brings.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

fn strip_first(path: &Path) -> Option<PathBuf> {
    let mut components = path.components();
    components.next()?;
    let rest: PathBuf = components.collect();
    let safe = rest.components().all(|c| matches!(c, Component::Normal(_)));
    (safe && !rest.as_os_str().is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks_a_directory() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/a.txt"), "alpha").unwrap();
        let archive = pack_dir(src.path(), "logs").unwrap();
        let dest = tempfile::tempdir().unwrap();
        let stats = unpack_stripped(archive.as_slice(), dest.path(), LOGS_CAP).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("sub/a.txt")).unwrap(),
            "alpha"
        );
        assert_eq!(stats.files, 1);
    }

    /// An archive of three files in this order (a directory's order is the filesystem's).
    fn three_files() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, text) in [("a.txt", "aaaa"), ("b.txt", "bbbbbb"), ("c.txt", "cc")] {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("logs/{name}"), text.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn logs_past_the_cap_are_cut_and_counted() {
        let dest = tempfile::tempdir().unwrap();
        let stats = unpack_stripped(three_files().as_slice(), dest.path(), 7).unwrap();
        // a.txt whole (4), b.txt cut to 3 of 6, c.txt left out.
        assert_eq!(
            std::fs::read_to_string(dest.path().join("a.txt")).unwrap(),
            "aaaa"
        );
        assert_eq!(
            std::fs::read_to_string(dest.path().join("b.txt")).unwrap(),
            "bbb"
        );
        assert!(!dest.path().join("c.txt").exists());
        assert_eq!((stats.bytes, stats.cut_files, stats.cut_bytes), (7, 2, 5));
        assert_eq!(stats.cut_paths, ["b.txt", "c.txt"]);
    }

    #[test]
    fn rewards_are_collected_past_the_cap() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("artifacts")).unwrap();
        std::fs::create_dir_all(src.path().join("verifier")).unwrap();
        std::fs::write(src.path().join("artifacts/big.bin"), vec![7u8; 4096]).unwrap();
        std::fs::write(src.path().join("verifier/reward.txt"), "1").unwrap();
        let archive = pack_dir(src.path(), "logs").unwrap();
        let dest = tempfile::tempdir().unwrap();
        let stats = unpack_stripped(archive.as_slice(), dest.path(), 100).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("verifier/reward.txt")).unwrap(),
            "1"
        );
        assert_eq!(stats.cut_paths, ["artifacts/big.bin"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_archive_unpacks_chunk_by_chunk() {
        let archive = three_files();
        // Chunks smaller than a tar block, as a network would cut them.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = archive
            .chunks(100)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let dest = tempfile::tempdir().unwrap();
        let stats = unpack_stream(futures_util::stream::iter(chunks), dest.path(), LOGS_CAP)
            .await
            .unwrap();
        assert_eq!((stats.files, stats.bytes, stats.cut_files), (3, 12, 0));
        assert_eq!(
            std::fs::read_to_string(dest.path().join("b.txt")).unwrap(),
            "bbbbbb"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_stream_is_the_error_not_a_short_archive() {
        let archive = three_files();
        let chunks = vec![
            Ok(bytes::Bytes::copy_from_slice(&archive[..600])),
            Err("connection reset"),
        ];
        let dest = tempfile::tempdir().unwrap();
        let error = unpack_stream(futures_util::stream::iter(chunks), dest.path(), LOGS_CAP)
            .await
            .unwrap_err();
        assert!(
            matches!(error, StreamError::Source("connection reset")),
            "{error:?}"
        );
    }

    #[test]
    fn refuses_to_write_outside_the_destination() {
        assert_eq!(strip_first(Path::new("logs/../../etc/passwd")), None);
        assert_eq!(strip_first(Path::new("logs")), None);
        assert_eq!(
            strip_first(Path::new("logs/agent/x")),
            Some(PathBuf::from("agent/x"))
        );
    }

    #[test]
    fn single_files_keep_their_mode() {
        let archive = pack_file("bin/run.sh", b"echo hi", 0o755).unwrap();
        let mut archive = tar::Archive::new(archive.as_slice());
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.header().mode().unwrap(), 0o755);
    }
}
