//! Protocol version negotiation: each side speaks a range of versions and `hello` picks the
//! highest version both speak.
//!
//! Versions are whole numbers starting at 1; a range is never empty. A new version is added
//! when the wire changes incompatibly (a method or field removed or changing meaning); adding
//! an optional param, a result member or an error code does not need one. This file decides
//! nothing about sockets or sessions: the hub calls [`negotiate`] when `hello` arrives.

use serde::{Deserialize, Serialize};
use serde_json::json;
use thiserror::Error;

use super::error_code::ErrorCode;
use super::jsonrpc::RpcError;

/// Oldest protocol version this build speaks.
pub const PROTOCOL_VERSION_MIN: u32 = 1;

/// Newest protocol version this build speaks.
pub const PROTOCOL_VERSION_MAX: u32 = 1;

const _: () = assert!(PROTOCOL_VERSION_MIN >= 1 && PROTOCOL_VERSION_MIN <= PROTOCOL_VERSION_MAX);

/// An inclusive, non-empty range of protocol versions: `{"min": 1, "max": 2}` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawVersionRange")]
pub struct VersionRange {
    /// Invariant: `1 <= min <= max`.
    min: u32,
    max: u32,
}

/// The two sides share no version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error(
    "no common protocol version: the client speaks {}..={}, the hub speaks {}..={}; upgrade the {}",
    .client.min, .client.max, .hub.min, .hub.max, self.upgrade()
)]
pub struct VersionMismatch {
    /// What the hub speaks.
    pub hub: VersionRange,
    /// What the client said it speaks.
    pub client: VersionRange,
}

/// A range the wire said was a version range but is not (empty, or starting at 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("versions must satisfy 1 <= min <= max, got min {min}, max {max}")]
pub struct InvalidVersionRange {
    /// The `min` sent.
    pub min: u32,
    /// The `max` sent.
    pub max: u32,
}

/// The highest version both this hub ([`VersionRange::HUB`]) and `client` speak.
///
/// # Errors
/// [`VersionMismatch`] when the ranges do not overlap; it becomes `protocol_mismatch`.
pub fn negotiate(client: VersionRange) -> Result<u32, VersionMismatch> {
    negotiate_between(VersionRange::HUB, client)
}

/// The highest version both `hub` and `client` speak (clients use it too, to check a hub's
/// `hello` result against their own range).
///
/// # Errors
/// [`VersionMismatch`] when the ranges do not overlap.
pub fn negotiate_between(hub: VersionRange, client: VersionRange) -> Result<u32, VersionMismatch> {
    let highest = hub.max.min(client.max);
    if highest >= hub.min.max(client.min) {
        Ok(highest)
    } else {
        Err(VersionMismatch { hub, client })
    }
}

impl VersionRange {
    /// What this build speaks: `PROTOCOL_VERSION_MIN..=PROTOCOL_VERSION_MAX`.
    pub const HUB: VersionRange = VersionRange {
        min: PROTOCOL_VERSION_MIN,
        max: PROTOCOL_VERSION_MAX,
    };

    /// A range `min..=max`.
    ///
    /// # Errors
    /// [`InvalidVersionRange`] when `min` is 0 or greater than `max`.
    pub fn new(min: u32, max: u32) -> Result<Self, InvalidVersionRange> {
        if min >= 1 && min <= max {
            Ok(Self { min, max })
        } else {
            Err(InvalidVersionRange { min, max })
        }
    }

    /// The oldest version in the range.
    pub fn min(self) -> u32 {
        self.min
    }

    /// The newest version in the range.
    pub fn max(self) -> u32 {
        self.max
    }

    /// Whether `version` lies in the range.
    pub fn contains(self, version: u32) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

impl VersionMismatch {
    /// Which side is behind: `"hub"` when the client only speaks newer versions.
    pub fn upgrade(&self) -> &'static str {
        if self.client.min > self.hub.max {
            "hub"
        } else {
            "client"
        }
    }
}

impl From<VersionMismatch> for RpcError {
    fn from(mismatch: VersionMismatch) -> Self {
        let range = |range: VersionRange| json!({"min": range.min, "max": range.max});
        RpcError::new(ErrorCode::ProtocolMismatch, mismatch.to_string())
            .with_detail("hub_versions", range(mismatch.hub))
            .with_detail("client_versions", range(mismatch.client))
    }
}

/// The wire form before its invariant is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersionRange {
    min: u32,
    max: u32,
}

impl TryFrom<RawVersionRange> for VersionRange {
    type Error = InvalidVersionRange;

    fn try_from(raw: RawVersionRange) -> Result<Self, Self::Error> {
        VersionRange::new(raw.min, raw.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: u32, max: u32) -> VersionRange {
        VersionRange::new(min, max).expect("valid range")
    }

    #[test]
    fn overlapping_ranges_agree_on_the_highest_common_version() {
        assert_eq!(negotiate_between(range(1, 3), range(2, 5)), Ok(3));
        assert_eq!(negotiate_between(range(2, 5), range(1, 3)), Ok(3));
        assert_eq!(negotiate_between(range(1, 1), range(1, 1)), Ok(1));
        assert_eq!(negotiate(VersionRange::HUB), Ok(PROTOCOL_VERSION_MAX));
    }

    #[test]
    fn a_newer_client_and_an_older_hub_agree_when_the_client_still_speaks_the_old_version() {
        assert_eq!(negotiate_between(range(1, 1), range(1, 4)), Ok(1));
    }

    #[test]
    fn a_client_newer_than_the_hub_is_told_to_upgrade_the_hub() {
        let mismatch = negotiate_between(range(1, 1), range(2, 3)).expect_err("no overlap");
        assert_eq!(mismatch.upgrade(), "hub");
        let message = mismatch.to_string();
        assert!(message.contains("client speaks 2..=3"), "{message}");
        assert!(message.contains("hub speaks 1..=1"), "{message}");
    }

    #[test]
    fn a_client_older_than_the_hub_is_told_to_upgrade_the_client() {
        let mismatch = negotiate_between(range(3, 4), range(1, 2)).expect_err("no overlap");
        assert_eq!(mismatch.upgrade(), "client");
        let error = RpcError::from(mismatch);
        assert_eq!(error.code, ErrorCode::ProtocolMismatch);
        assert_eq!(error.details["hub_versions"], json!({"min": 3, "max": 4}));
    }

    #[test]
    fn empty_or_zero_ranges_are_rejected() {
        assert_eq!(
            VersionRange::new(0, 1),
            Err(InvalidVersionRange { min: 0, max: 1 })
        );
        assert!(VersionRange::new(3, 2).is_err());
        assert!(serde_json::from_str::<VersionRange>(r#"{"min":2,"max":1}"#).is_err());
        assert!(serde_json::from_str::<VersionRange>(r#"{"min":1,"max":1,"x":0}"#).is_err());
        let parsed: VersionRange = serde_json::from_str(r#"{"min":1,"max":2}"#).expect("valid");
        assert_eq!(parsed, range(1, 2));
    }
}
