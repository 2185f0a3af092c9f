//! The byte format of the record log: the write-ahead log and the manifest share it.
//!
//! ```text
//! log    := record*
//! record := crc: fixed32 | length: fixed32 | type: u8 | payload: [u8; length]
//! ```
//!
//! - Integers are little-endian; the header is [`HEADER_LEN`] = 9 bytes.
//! - `crc` is CRC-32 (crc32fast) over the length bytes, the type byte and the payload, in that
//!   order, so a damaged length or type is caught as surely as a damaged payload.
//! - `type` is [`TYPE_FULL`]: the record holds one whole payload; or one of the marks
//!   [`TYPE_SYNC_MARK`], [`TYPE_EARLIER_SEGMENTS_SYNCED`] and [`TYPE_PREVIOUS_SEGMENT`]. 0 is
//!   never valid, so space the
//!   file system zero-filled (preallocation, or a crash that extended the file but not its data)
//!   reads as damage, never as an empty record.
//! - `length` is at most [`MAX_PAYLOAD_LEN`]; a larger length is damage.
//!
//! Invariants the writer keeps: records are back to back from offset 0 with no padding; every
//! record is appended with one `append` call, so a torn write damages at most the last record.
//!
//! Deliberately not done: no fragmentation into fixed-size blocks (LevelDB's 32 KiB blocks let
//! a reader resynchronise after damage; Strata refuses damage anywhere but at the tail, so it
//! needs no resynchronisation points); no compression; no per-file format version (a new layout
//! would take a new record type).

/// Bytes before the payload: crc (4), length (4), type (1).
pub const HEADER_LEN: usize = 9;

// Record types, written to disk, never renumber.
/// A record holding one whole payload.
pub const TYPE_FULL: u8 = 1;
/// A sync mark: payload `fixed64 offset`, a promise that every byte of the file before
/// `offset` was made durable by a completed fsync. Written ahead of the first record after
/// each completed fsync, claiming that fsync's range, so a mark never claims more than is
/// true and a log always ends with a data record.
/// Readers use marks to tell damage in the synced part of a log (corruption) from unsynced
/// pages a power cut wrote back out of order (a tolerable tail).
pub const TYPE_SYNC_MARK: u8 = 2;
/// A promise, with an empty payload, that every earlier WAL segment was made durable whole by a
/// completed fsync. The write-ahead log writes one ahead of the first record of each segment
/// that a sync write commits, after fsyncing the segments a memtable switch closed (their fsync
/// runs off the write path). Recovery uses it to tell a closed segment whose unsynced tail a
/// crash tore (the later segments then hold nothing durable and are dropped with it) from
/// damage to a segment that was synced whole (corruption).
pub const TYPE_EARLIER_SEGMENTS_SYNCED: u8 = 3;
/// The number of the WAL segment this one follows (payload `fixed64`), written first into a
/// segment when a memtable switch starts it. Recovery checks that the segment it names is
/// still there, so a lost middle segment is corruption rather than a silent gap.
pub const TYPE_PREVIOUS_SEGMENT: u8 = 4;

/// Whether `kind` is a record type this version writes.
pub(crate) fn known_record_type(kind: u8) -> bool {
    matches!(
        kind,
        TYPE_FULL | TYPE_SYNC_MARK | TYPE_EARLIER_SEGMENTS_SYNCED | TYPE_PREVIOUS_SEGMENT
    )
}

/// The largest payload a record may carry (1 GiB). Written to disk, never lower it: a reader
/// treats a larger length as damage.
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

/// Offset of the bytes the crc covers, relative to the start of a record.
pub(crate) const CRC_COVERS_FROM: usize = 4;

/// A decoded record header; nothing in it is validated yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub crc: u32,
    pub length: u32,
    pub kind: u8,
}

/// The header of a record carrying `payload`; `None` if the payload exceeds
/// [`MAX_PAYLOAD_LEN`].
pub fn record_header(payload: &[u8]) -> Option<[u8; HEADER_LEN]> {
    typed_record_header(payload, TYPE_FULL)
}

/// The header of a record of type `kind` carrying `payload`.
pub fn typed_record_header(payload: &[u8], kind: u8) -> Option<[u8; HEADER_LEN]> {
    if payload.len() > MAX_PAYLOAD_LEN {
        return None;
    }
    let length = u32::try_from(payload.len()).ok()?;
    let mut header = [0u8; HEADER_LEN];
    header[4..8].copy_from_slice(&length.to_le_bytes());
    header[8] = kind;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[CRC_COVERS_FROM..]);
    hasher.update(payload);
    header[..4].copy_from_slice(&hasher.finalize().to_le_bytes());
    Some(header)
}

/// Decode the header at `pos`; `None` if fewer than [`HEADER_LEN`] bytes remain.
pub fn decode_header(data: &[u8], pos: usize) -> Option<Header> {
    let bytes = data.get(pos..pos.checked_add(HEADER_LEN)?)?;
    Some(Header {
        crc: crate::coding::get_u32(bytes, 0)?,
        length: crate::coding::get_u32(bytes, 4)?,
        kind: *bytes.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_crc_then_length_then_type() {
        let header = record_header(b"abc").unwrap();
        assert_eq!(&header[4..8], &3u32.to_le_bytes());
        assert_eq!(header[8], TYPE_FULL);
        let mut covered = header[4..].to_vec();
        covered.extend_from_slice(b"abc");
        assert_eq!(&header[..4], &crc32fast::hash(&covered).to_le_bytes());
        let decoded = decode_header(&header, 0).unwrap();
        assert_eq!(
            decoded,
            Header {
                crc: crc32fast::hash(&covered),
                length: 3,
                kind: TYPE_FULL
            }
        );
    }

    #[test]
    fn short_input_has_no_header() {
        assert_eq!(decode_header(&[0u8; 8], 0), None);
        assert_eq!(decode_header(&[0u8; 9], 1), None);
        assert_eq!(decode_header(&[0u8; 9], usize::MAX), None);
    }
}
