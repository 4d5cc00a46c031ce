//! Helpers shared by the log's integration tests: deterministic payloads and a tiny
//! independent parser of the on-disk layout (so the tests do not trust the code under test).

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use relay_log::{LogConfig, NewRecord};

/// The payload of the record at `offset` in tests: its length and bytes depend on the offset
/// and the `seed`, so any mix-up of records shows.
pub fn payload_for(offset: u64, seed: u64) -> Vec<u8> {
    let len = ((offset.wrapping_mul(2654435761) ^ seed) % 300) as usize;
    (0..len)
        .map(|index| (offset as usize * 31 + index * 7 + seed as usize) as u8)
        .collect()
}

pub fn record(payload: &[u8]) -> NewRecord<'_> {
    NewRecord {
        timestamp_us: 1_700_000_000_000_000,
        kind: 3,
        schema_version: 1,
        origin_hub: 42,
        payload,
    }
}

pub fn small_config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

/// Segment files of `dir` as (base offset, name), sorted.
pub fn segment_names(dir: &Path) -> Vec<(u64, String)> {
    let mut names: Vec<(u64, String)> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let base = name.strip_suffix(".seg")?.parse().ok()?;
            Some((base, name))
        })
        .collect();
    names.sort();
    names
}

/// Walks record headers (by their length field) from byte 64 until a zero header; returns
/// (start position, record end position) per record.
pub fn record_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut position = 64;
    while position + 48 <= bytes.len() && bytes[position..position + 48].iter().any(|&b| b != 0) {
        let len = u32::from_le_bytes(
            bytes[position + 4..position + 8]
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        let end = position + 48 + len.div_ceil(16) * 16;
        if end > bytes.len() {
            break;
        }
        spans.push((position, end));
        position = end;
    }
    spans
}

/// A model of what the disk holds, fed by the writer's storage calls: the bytes of each
/// synced range, whole files on `fdatasync` and checkpoint writes, and the names a directory
/// sync made durable. [`DiskModel::power_cut_image`] is what a power cut right now leaves
/// when the kernel wrote back nothing on its own (the harshest case): durable names only,
/// with their synced bytes and zeros elsewhere. It survives a process crash: pass the same
/// model to the next writer session.
#[derive(Debug, Default)]
pub struct DiskModel {
    state: std::sync::Mutex<DiskState>,
}

#[derive(Debug, Default)]
struct DiskState {
    files: std::collections::BTreeMap<String, Vec<u8>>,
    names: std::collections::BTreeSet<String>,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

impl DiskState {
    fn write(&mut self, path: &Path, position: usize, bytes: &[u8]) {
        let file = self.files.entry(file_name(path)).or_default();
        if file.len() < position + bytes.len() {
            file.resize(position + bytes.len(), 0);
        }
        file[position..position + bytes.len()].copy_from_slice(bytes);
    }
}

impl DiskModel {
    /// The files a power cut would leave, by name.
    pub fn power_cut_image(&self, dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
        let state = self.state.lock().expect("lock");
        let mut image = std::collections::BTreeMap::new();
        for name in &state.names {
            let current = std::fs::metadata(dir.join(name)).map_or(0, |meta| meta.len() as usize);
            let mut bytes = state.files.get(name).cloned().unwrap_or_default();
            if bytes.len() < current {
                bytes.resize(current, 0);
            }
            image.insert(name.clone(), bytes);
        }
        image
    }
}

impl relay_log::storage::Storage for DiskModel {
    fn sync_range(&self, range: relay_log::storage::SyncRange<'_>) -> std::io::Result<()> {
        let mut state = self.state.lock().expect("lock");
        state.write(range.path(), range.position(), range.bytes());
        drop(state);
        range.sync()
    }

    fn sync_file(&self, file: &std::fs::File, path: &Path) -> std::io::Result<()> {
        let bytes = std::fs::read(path)?;
        self.state.lock().expect("lock").write(path, 0, &bytes);
        file.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        let names = std::fs::read_dir(dir)?
            .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
            .collect::<std::io::Result<_>>()?;
        let mut state = self.state.lock().expect("lock");
        let DiskState {
            files,
            names: durable,
        } = &mut *state;
        *durable = names;
        files.retain(|name, _| durable.contains(name));
        drop(state);
        std::fs::File::open(dir)?.sync_all()
    }

    fn write_checkpoint(
        &self,
        file: &std::fs::File,
        path: &Path,
        slot: &[u8],
        position: u64,
    ) -> std::io::Result<()> {
        relay_log::storage::RealStorage.write_checkpoint(file, path, slot, position)?;
        let bytes = std::fs::read(path)?;
        self.state.lock().expect("lock").write(path, 0, &bytes);
        Ok(())
    }
}
