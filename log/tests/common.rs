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
