//! The checkpoint: an offset below which every record is known to be durable.
//!
//! The file holds two 48-byte slots written alternately, each with its own CRC, so a torn
//! checkpoint write leaves the previous slot intact. The newer valid slot (higher generation)
//! wins. The checkpoint is written with `pwrite` + `fdatasync` and only ever claims offsets
//! whose records were synced before.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::format::{CHECKPOINT_MAGIC, CHECKPOINT_SLOT_BYTES, read_u32, read_u64, read_u128};
use crate::storage::Storage;

/// File name of the checkpoint inside the log directory.
pub const CHECKPOINT_FILE_NAME: &str = "checkpoint";

/// The content of a valid checkpoint slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Increases by one per write; picks the newer slot.
    pub generation: u64,
    /// Every record with a smaller offset is durable.
    pub durable_offset: u64,
    /// The log this checkpoint belongs to.
    pub log_id: u128,
}

impl Checkpoint {
    pub(crate) fn encode(&self) -> [u8; CHECKPOINT_SLOT_BYTES] {
        let mut bytes = [0u8; CHECKPOINT_SLOT_BYTES];
        bytes[4..8].copy_from_slice(&CHECKPOINT_MAGIC);
        bytes[8..16].copy_from_slice(&self.generation.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.durable_offset.to_le_bytes());
        bytes[24..40].copy_from_slice(&self.log_id.to_le_bytes());
        let crc = crc32fast::hash(&bytes[4..]);
        bytes[0..4].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        let bytes = bytes.get(..CHECKPOINT_SLOT_BYTES)?;
        if bytes[4..8] != CHECKPOINT_MAGIC || crc32fast::hash(&bytes[4..]) != read_u32(bytes, 0) {
            return None;
        }
        Some(Checkpoint {
            generation: read_u64(bytes, 8),
            durable_offset: read_u64(bytes, 16),
            log_id: read_u128(bytes, 24),
        })
    }
}

/// Reads the newest valid slot of the checkpoint file in `bytes`.
pub fn decode_checkpoint_file(bytes: &[u8]) -> Option<Checkpoint> {
    let first = Checkpoint::decode(bytes);
    let second = bytes
        .get(CHECKPOINT_SLOT_BYTES..)
        .and_then(Checkpoint::decode);
    match (first, second) {
        (Some(a), Some(b)) => Some(if b.generation > a.generation { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The writer's handle on the checkpoint file.
#[derive(Debug)]
pub(crate) struct CheckpointFile {
    pub(crate) path: PathBuf,
    file: File,
    pub(crate) current: Checkpoint,
}

impl CheckpointFile {
    /// Opens the checkpoint file of `dir` for writing, creating it if `create` is given.
    pub(crate) fn open(
        dir: &Path,
        create: Option<Checkpoint>,
        storage: &dyn Storage,
    ) -> std::io::Result<Option<Self>> {
        let path = dir.join(CHECKPOINT_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create.is_some())
            .open(&path);
        let file = match file {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        if let Some(checkpoint) = create {
            let mut handle = CheckpointFile {
                path,
                file,
                current: checkpoint,
            };
            handle.write_slot(checkpoint, storage)?;
            return Ok(Some(handle));
        }
        let bytes = std::fs::read(&path)?;
        Ok(
            decode_checkpoint_file(&bytes).map(|current| CheckpointFile {
                path,
                file,
                current,
            }),
        )
    }

    /// Durably records that every offset below `durable_offset` is on disk.
    ///
    /// The generation comes from disk: one at `u64::MAX` cannot grow, which is an error rather
    /// than a wrap that would make the older slot win.
    pub(crate) fn advance(
        &mut self,
        durable_offset: u64,
        storage: &dyn Storage,
    ) -> std::io::Result<()> {
        let generation = self
            .current
            .generation
            .checked_add(1)
            .ok_or_else(|| std::io::Error::other("checkpoint generation exhausted"))?;
        let next = Checkpoint {
            generation,
            durable_offset,
            log_id: self.current.log_id,
        };
        self.write_slot(next, storage)
    }

    fn write_slot(&mut self, checkpoint: Checkpoint, storage: &dyn Storage) -> std::io::Result<()> {
        let slot = (checkpoint.generation % 2) * CHECKPOINT_SLOT_BYTES as u64;
        storage.write_checkpoint(&self.file, &self.path, &checkpoint.encode(), slot)?;
        self.current = checkpoint;
        Ok(())
    }
}

/// Reads the checkpoint of `dir` without opening it for writing.
pub(crate) fn read_checkpoint(dir: &Path) -> std::io::Result<Option<Checkpoint>> {
    match std::fs::read(dir.join(CHECKPOINT_FILE_NAME)) {
        Ok(bytes) => Ok(decode_checkpoint_file(&bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_valid_slot_wins_and_a_torn_slot_falls_back_to_the_other() {
        let older = Checkpoint {
            generation: 4,
            durable_offset: 10,
            log_id: 9,
        };
        let newer = Checkpoint {
            generation: 5,
            durable_offset: 20,
            log_id: 9,
        };
        let mut file = [older.encode(), newer.encode()].concat();
        assert_eq!(decode_checkpoint_file(&file), Some(newer));
        file[CHECKPOINT_SLOT_BYTES + 17] ^= 0x40;
        assert_eq!(decode_checkpoint_file(&file), Some(older));
        file[3] ^= 1;
        assert_eq!(decode_checkpoint_file(&file), None);
    }
}
