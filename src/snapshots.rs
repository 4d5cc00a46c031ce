//! The snapshot store: `State` snapshots of one log, as files in `<data dir>/snapshots/`.
//!
//! A snapshot is a cache of the projection, never the truth: the file name carries the log id
//! and the next offset (`<log id hex>-<next offset>.snap`), a snapshot of another log is
//! ignored, and one that fails to decode is reported and skipped so start-up replays from the
//! log instead. Files are written to a temporary name, synced and renamed, and never changed
//! in place after: so a snapshot is read by mapping it ([`read`]), which spares start-up the
//! copy out of the page cache.

use std::path::{Path, PathBuf};

use relay_log::ImmutableFile;
use relay_replay::{State, snapshot_decode, snapshot_encode_checked};

/// Snapshots kept per data dir; older ones are deleted after a new one is written.
pub const SNAPSHOTS_KEPT: usize = 2;

/// A snapshot found on disk.
#[derive(Debug)]
pub struct LoadedSnapshot {
    /// Its file.
    pub path: PathBuf,
    /// The state it holds.
    pub state: State,
    /// The offset the log continues from.
    pub next_offset: u64,
}

/// The bytes of the snapshot file at `path`, mapped read-only: a snapshot is renamed into
/// place whole and never written again (a new one gets a new name), so it is an
/// [`ImmutableFile`]. An empty file is no bytes, which the decode refuses as truncated.
///
/// # Errors
/// The file cannot be opened or mapped.
pub fn read(path: &Path) -> std::io::Result<ImmutableFile> {
    ImmutableFile::open(path)
}

/// The snapshot directory of a data dir.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// Snapshot files of `log_id` in `dir`, newest (highest next offset) first.
pub fn list(dir: &Path, log_id: u128) -> Vec<(u64, PathBuf)> {
    let prefix = format!("{log_id:032x}-");
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let offset = name
                .strip_prefix(&prefix)?
                .strip_suffix(".snap")?
                .parse()
                .ok()?;
            Some((offset, entry.path()))
        })
        .collect();
    found.sort_by_key(|(offset, _)| std::cmp::Reverse(*offset));
    found
}

/// The newest snapshot of `log_id` that decodes and does not lie past `next_offset_max`.
pub fn load_newest(dir: &Path, log_id: u128, next_offset_max: u64) -> Option<LoadedSnapshot> {
    for (offset, path) in list(dir, log_id) {
        if offset > next_offset_max {
            tracing::warn!(offset, segment = %path.display(), "ignored snapshot past the end of the log");
            continue;
        }
        let decoded = read(&path)
            .map_err(|error| error.to_string())
            .and_then(|bytes| snapshot_decode(&bytes).map_err(|error| error.to_string()));
        match decoded {
            Ok((state, next_offset)) if next_offset == offset => {
                return Some(LoadedSnapshot {
                    path,
                    state,
                    next_offset,
                });
            }
            Ok(_) => tracing::warn!(offset, "ignored snapshot whose name and content disagree"),
            Err(error) => tracing::warn!(offset, %error, "ignored undecodable snapshot"),
        }
    }
    None
}

/// The oldest snapshot of `log_id` that decodes and starts at or after `first_offset`: what a
/// replay of a log whose older history was reclaimed starts from (the oldest, so that as much
/// of the retained log as possible is replayed and checked).
pub fn load_oldest_from(dir: &Path, log_id: u128, first_offset: u64) -> Option<LoadedSnapshot> {
    let mut found = list(dir, log_id);
    found.reverse();
    found
        .into_iter()
        .filter(|(offset, _)| *offset >= first_offset)
        .find_map(|(offset, path)| {
            let bytes = read(&path).ok()?;
            match snapshot_decode(&bytes) {
                Ok((state, next_offset)) if next_offset == offset => Some(LoadedSnapshot {
                    path,
                    state,
                    next_offset,
                }),
                _ => None,
            }
        })
}

/// Reads the snapshot at `path` back and checks that it decodes and holds the state before
/// `next_offset` (retention deletes the log below a snapshot only after this).
///
/// # Errors
/// The file cannot be read, does not decode, or is of another offset.
pub fn check(path: &Path, next_offset: u64) -> Result<(), String> {
    let bytes = read(path).map_err(|error| error.to_string())?;
    let (_, found) = snapshot_decode(&bytes).map_err(|error| error.to_string())?;
    if found != next_offset {
        return Err(format!("holds offset {found}, its name says {next_offset}"));
    }
    Ok(())
}

/// Writes a snapshot of `state` (next offset `next_offset`) and prunes older ones.
///
/// # Errors
/// File-system failures, or a state past the snapshot's bound (`InvalidData`, nothing
/// written); the previous snapshots are then untouched.
pub fn write(
    dir: &Path,
    log_id: u128,
    state: &State,
    next_offset: u64,
) -> std::io::Result<PathBuf> {
    let bytes = snapshot_encode_checked(state, next_offset).map_err(|refused| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, refused.to_string())
    })?;
    write_encoded(dir, log_id, next_offset, &bytes)
}

/// Writes snapshot bytes made by `snapshot_encode_checked` (so a caller can encode on its own thread
/// and leave the file work to another) and prunes older snapshots.
///
/// # Errors
/// File-system failures; the previous snapshots are then untouched.
pub fn write_encoded(
    dir: &Path,
    log_id: u128,
    next_offset: u64,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{log_id:032x}-{next_offset:020}.snap"));
    let temporary = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    for (_, old) in list(dir, log_id).into_iter().skip(SNAPSHOTS_KEPT) {
        let _ = std::fs::remove_file(old);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG_ID: u128 = 0x1234;

    #[test]
    fn an_empty_or_cut_newest_snapshot_is_skipped_for_the_one_before() {
        let dir = tempfile::tempdir().expect("a temp dir");
        write(dir.path(), LOG_ID, &State::new(), 5).expect("first snapshot");
        let newest = write(dir.path(), LOG_ID, &State::new(), 9).expect("second snapshot");
        let whole = std::fs::read(&newest).expect("read back");
        assert_eq!(&*read(&newest).expect("mapped"), &whole[..]);
        assert_eq!(
            load_newest(dir.path(), LOG_ID, 9).map(|s| s.next_offset),
            Some(9)
        );

        std::fs::write(&newest, &whole[..whole.len() / 2]).expect("cut");
        assert_eq!(
            load_newest(dir.path(), LOG_ID, 9).map(|s| s.next_offset),
            Some(5)
        );
        std::fs::write(&newest, b"").expect("emptied");
        assert!(read(&newest).expect("an empty map").is_empty());
        assert_eq!(
            load_newest(dir.path(), LOG_ID, 9).map(|s| s.next_offset),
            Some(5)
        );
        assert!(check(&newest, 9).is_err());
    }
}
