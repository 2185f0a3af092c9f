//! Reading a log back: every record, and what to do about a damaged or incomplete tail.
//!
//! A crash can leave the last record of a log half written (a torn tail); damage anywhere else
//! means bytes changed after they were acknowledged, and Strata never serves them. The two are
//! told apart by what follows: a tail is tolerated if no valid record starts at any later byte
//! offset, which also catches a damaged length field that makes a middle record look
//! incomplete (without this check, such a flip would silently cut off every later record).
//!
//! A log that ends in zeros ends where they start: a preallocated log (see
//! [`LogWriter::preallocated`](super::LogWriter::preallocated)) is zero-filled past its last
//! record, and record type 0 is never valid, so zeros cannot be mistaken for a record.
//!
//! One more case is a crash and not damage: a power cut may write a log's *unsynced* pages back
//! out of order, leaving garbage followed by valid records. Sync marks (see
//! [`TYPE_SYNC_MARK`]) say how far the log was fsynced; under
//! `DamagedTailOk`, damage at or past the largest offset any mark vouches for is such an
//! unsynced tail and is cut off (with the valid records after it, which were never durable
//! either), while damage before it is corruption.

use std::path::Path;

use super::format::{
    decode_header, known_record_type, CRC_COVERS_FROM, HEADER_LEN, MAX_PAYLOAD_LEN,
    TYPE_EARLIER_SEGMENTS_SYNCED, TYPE_PREVIOUS_SEGMENT, TYPE_SYNC_MARK,
};
use crate::error::{Error, Result};
use crate::fs::FileSystem;

/// What a reader accepts at the end of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailPolicy {
    /// Every byte must belong to a valid record: closed logs and anything already synced whole.
    Strict,
    /// A final record that runs past the end of the file is cut off; a complete record that
    /// fails its checks is corruption. Only right where a crash cannot zero-fill or garble a
    /// tail (the manifest used it until a power cut that zero-filled an append proved
    /// otherwise).
    TruncatedTailOk,
    /// A final record that is incomplete or fails its checks is cut off, provided no valid
    /// record starts at any later offset, or the damage lies past everything the log's sync
    /// marks vouch for (unsynced pages written back out of order). For the last write-ahead
    /// log segment and the manifest, whose tails a crash may leave torn or zero-filled.
    DamagedTailOk,
}

/// One record read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Offset of the record's header in the file.
    pub offset: u64,
    pub payload: Vec<u8>,
}

/// A tail the policy allowed to be cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailDamage {
    /// Offset of the first byte cut off (the start of the bad record).
    pub offset: u64,
    /// What was wrong with it, in a few words.
    pub reason: String,
}

/// Everything a log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogContents {
    /// The valid records, in file order.
    pub records: Vec<Record>,
    /// The end offset of the last valid record (0 if none): the length to truncate the file to
    /// before appending to it again.
    pub valid_len: u64,
    /// The cut-off tail, if any.
    pub tail: Option<TailDamage>,
    /// Whether a valid mark in the log (a sync mark, or [`TYPE_EARLIER_SEGMENTS_SYNCED`]) says
    /// that every earlier WAL segment was fsynced whole: a segment's first fsync waits for
    /// its predecessors' and is preceded by such a mark.
    pub vouches_for_earlier_segments: bool,
    /// The segment this one follows, from its [`TYPE_PREVIOUS_SEGMENT`] record, if any.
    pub previous_segment: Option<u64>,
}

/// Parse a whole log held in `data`; `path` names it in errors.
pub fn read_log(data: &[u8], path: &Path, policy: TailPolicy) -> Result<LogContents> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    // The largest offset a sync mark vouches for: bytes before it were fsynced.
    let mut synced_through = 0u64;
    let mut vouches = false;
    let mut previous_segment = None;
    while pos < data.len() {
        let (reason, tolerated) = match check_record(data, pos) {
            Check::Valid { kind, payload, end } => {
                if kind == TYPE_SYNC_MARK {
                    synced_through = synced_through.max(sync_claim(payload));
                    vouches = true;
                } else if kind == TYPE_EARLIER_SEGMENTS_SYNCED {
                    vouches = true;
                } else if kind == TYPE_PREVIOUS_SEGMENT {
                    previous_segment = previous_segment.or(Some(sync_claim(payload)));
                } else {
                    records.push(Record {
                        offset: pos as u64,
                        payload: payload.to_vec(),
                    });
                }
                pos = end;
                continue;
            }
            Check::Incomplete(reason) => (reason, policy != TailPolicy::Strict),
            Check::Damaged(reason) => (reason, policy == TailPolicy::DamagedTailOk),
        };
        if policy == TailPolicy::DamagedTailOk && data[pos..].iter().all(|&b| b == 0) {
            // Zeros to the end: the space a preallocated log had not filled yet (type 0 is
            // never a record), or a crash that extended the file but not its data. Either way
            // no record was written here, and the log ends cleanly.
            break;
        }
        if !tolerated {
            return Err(Error::corruption(path, pos as u64, reason));
        }
        if let Some(next) = find_valid_record(data, pos.saturating_add(1)) {
            // Valid records after the damage. If a sync mark anywhere vouches that the damaged
            // bytes were fsynced, this is corruption. If not, the damaged bytes were never
            // durable: a power cut wrote unsynced pages back out of order, and the log is cut
            // at the damage (a prefix of the writes, nothing synced lost).
            let claimed = synced_through.max(later_sync_claims(data, next));
            if policy != TailPolicy::DamagedTailOk || (pos as u64) < claimed {
                return Err(Error::corruption(
                    path,
                    pos as u64,
                    format!(
                        "{reason}; damage followed by valid records (the next at offset {next})"
                    ),
                ));
            }
            return Ok(LogContents {
                records,
                valid_len: pos as u64,
                tail: Some(TailDamage {
                    offset: pos as u64,
                    reason: format!(
                        "{reason}; the valid records after it (from offset {next}) were never \
                         synced and are dropped with it"
                    ),
                }),
                vouches_for_earlier_segments: vouches,
                previous_segment,
            });
        }
        return Ok(LogContents {
            records,
            valid_len: pos as u64,
            tail: Some(TailDamage {
                offset: pos as u64,
                reason,
            }),
            vouches_for_earlier_segments: vouches,
            previous_segment,
        });
    }
    Ok(LogContents {
        records,
        valid_len: pos as u64,
        tail: None,
        vouches_for_earlier_segments: vouches,
        previous_segment,
    })
}

/// [`read_log`] over the whole file at `path`.
pub fn read_log_file(fs: &dyn FileSystem, path: &Path, policy: TailPolicy) -> Result<LogContents> {
    let data = fs
        .read_all(path)
        .map_err(|e| Error::io(format!("reading the log {}", path.display()), e))?;
    read_log(&data, path, policy)
}

enum Check<'a> {
    Valid {
        kind: u8,
        payload: &'a [u8],
        end: usize,
    },
    /// The header or payload runs past the end of the data.
    Incomplete(String),
    /// A complete record that fails its checks.
    Damaged(String),
}

fn check_record(data: &[u8], pos: usize) -> Check<'_> {
    let Some(header) = decode_header(data, pos) else {
        let left = data.len().saturating_sub(pos);
        return Check::Incomplete(format!("a record header is cut short after {left} bytes"));
    };
    if !known_record_type(header.kind) {
        return Check::Damaged(format!("unknown record type {}", header.kind));
    }
    let length = header.length as usize;
    if length > MAX_PAYLOAD_LEN {
        return Check::Damaged(format!("record length {length} exceeds the 1 GiB maximum"));
    }
    let Some((covered, payload, end)) = record_bytes(data, pos, length) else {
        return Check::Incomplete(format!(
            "a record of {length} payload bytes runs past the end of the file"
        ));
    };
    if crc32fast::hash(covered) != header.crc {
        return Check::Damaged("record checksum mismatch".to_string());
    }
    if header.kind == TYPE_SYNC_MARK && payload.len() != 8 {
        return Check::Damaged(format!("a sync mark of {} bytes", payload.len()));
    }
    if header.kind == TYPE_PREVIOUS_SEGMENT && payload.len() != 8 {
        return Check::Damaged(format!(
            "a previous-segment record of {} bytes",
            payload.len()
        ));
    }
    if header.kind == TYPE_EARLIER_SEGMENTS_SYNCED && !payload.is_empty() {
        return Check::Damaged(format!(
            "an earlier-segments-synced mark of {} bytes",
            payload.len()
        ));
    }
    Check::Valid {
        kind: header.kind,
        payload,
        end,
    }
}

/// The `fixed64` payload (checked to be 8 bytes) of a sync mark (the offset it vouches for) or
/// of a previous-segment record (the segment's number).
fn sync_claim(payload: &[u8]) -> u64 {
    crate::coding::get_u64(payload, 0).unwrap_or(0)
}

/// The largest claim of the sync marks among the valid records from `from` (a valid record)
/// on. Records are walked one after another; after further damage the forward scan finds the
/// next valid record, so the walk stays linear unless the data is damaged over and over.
fn later_sync_claims(data: &[u8], from: usize) -> u64 {
    let mut claimed = 0;
    let mut pos = from;
    while pos < data.len() {
        match check_record(data, pos) {
            Check::Valid { kind, payload, end } => {
                if kind == TYPE_SYNC_MARK {
                    claimed = claimed.max(sync_claim(payload));
                }
                pos = end;
            }
            _ => match find_valid_record(data, pos.saturating_add(1)) {
                Some(next) => pos = next,
                None => break,
            },
        }
    }
    claimed
}

/// For a record at `pos` with `length` payload bytes: the bytes its crc covers, its payload and
/// its end offset; `None` if it runs past the end of `data`.
fn record_bytes(data: &[u8], pos: usize, length: usize) -> Option<(&[u8], &[u8], usize)> {
    let start = pos.checked_add(HEADER_LEN)?;
    let end = start.checked_add(length)?;
    let covered = data.get(pos.checked_add(CRC_COVERS_FROM)?..end)?;
    let payload = data.get(start..end)?;
    Some((covered, payload, end))
}

/// The first offset at or after `from` where a valid record starts, if any.
///
/// Every offset is a candidate. Most fail on the type byte or on a length past the end; the
/// rest need a crc over up to 1 GiB, which [`RangeCrc`] computes in bounded time, so the scan
/// stays linear in the file size even over data (a long run of 0x01 bytes) where every offset
/// looks like the header of a huge record.
fn find_valid_record(data: &[u8], from: usize) -> Option<usize> {
    let mut crcs = RangeCrc::new(data, from);
    let last_start = data.len().checked_sub(HEADER_LEN)?;
    (from..=last_start).find(|&q| {
        let Some(header) = decode_header(data, q) else {
            return false;
        };
        let length = header.length as usize;
        if !known_record_type(header.kind) || length > MAX_PAYLOAD_LEN {
            return false;
        }
        let Some(end) = q
            .checked_add(HEADER_LEN)
            .and_then(|s| s.checked_add(length))
        else {
            return false;
        };
        end <= data.len() && crcs.crc(q + CRC_COVERS_FROM, end) == Some(header.crc)
    })
}

/// Bytes between saved prefix checksums: the most hashed directly per range end.
const CRC_CHECKPOINT_INTERVAL: usize = 256;

/// Checksums of arbitrary ranges of `data[base..]` without hashing each range whole.
///
/// CRC-32 is linear: `crc(A ‖ B) = shift(crc(A), |B|) ^ crc(B)`, which is `combine`, so
/// `crc(B) = combine(crc(A), crc(A ‖ B), |B|)`. Prefix checksums saved every
/// [`CRC_CHECKPOINT_INTERVAL`] bytes (computed on first use, one pass) give the checksum of any
/// prefix with at most that many bytes hashed, and two prefixes give any range.
struct RangeCrc<'a> {
    data: &'a [u8],
    base: usize,
    /// `checkpoints[i]` = crc of `data[base .. base + i * CRC_CHECKPOINT_INTERVAL]`.
    checkpoints: Option<Vec<u32>>,
}

impl<'a> RangeCrc<'a> {
    fn new(data: &'a [u8], base: usize) -> Self {
        RangeCrc {
            data,
            base,
            checkpoints: None,
        }
    }

    /// The crc of `data[a..b]`; `None` if the range is out of bounds or starts before `base`.
    fn crc(&mut self, a: usize, b: usize) -> Option<u32> {
        if a < self.base || b < a {
            return None;
        }
        if b - a <= 2 * CRC_CHECKPOINT_INTERVAL {
            return Some(crc32fast::hash(self.data.get(a..b)?));
        }
        let crc_a = self.prefix_crc(a)?;
        let crc_b = self.prefix_crc(b)?;
        let mut hasher = crc32fast::Hasher::new_with_initial_len(crc_a, 0);
        hasher.combine(&crc32fast::Hasher::new_with_initial_len(
            crc_b,
            (b - a) as u64,
        ));
        Some(hasher.finalize())
    }

    /// The crc of `data[base..end]`.
    fn prefix_crc(&mut self, end: usize) -> Option<u32> {
        let (data, base) = (self.data, self.base);
        let checkpoints = self.checkpoints.get_or_insert_with(|| {
            let mut hasher = crc32fast::Hasher::new();
            let mut saved = vec![hasher.clone().finalize()];
            for chunk in data
                .get(base..)
                .unwrap_or_default()
                .chunks(CRC_CHECKPOINT_INTERVAL)
            {
                hasher.update(chunk);
                saved.push(hasher.clone().finalize());
            }
            saved
        });
        let index = end.checked_sub(base)? / CRC_CHECKPOINT_INTERVAL;
        let start = base + index * CRC_CHECKPOINT_INTERVAL;
        let mut hasher = crc32fast::Hasher::new_with_initial(*checkpoints.get(index)?);
        hasher.update(data.get(start..end)?);
        Some(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{FileSystem, RealFs};
    use crate::wal::format::{record_header, TYPE_FULL};
    use crate::wal::LogWriter;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use std::path::PathBuf;

    const POLICIES: [TailPolicy; 3] = [
        TailPolicy::Strict,
        TailPolicy::TruncatedTailOk,
        TailPolicy::DamagedTailOk,
    ];

    fn path() -> PathBuf {
        PathBuf::from("/db/000001.log")
    }

    fn encode(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
        let mut data = Vec::new();
        let mut starts = Vec::new();
        for p in payloads {
            starts.push(data.len());
            data.extend_from_slice(&record_header(p).unwrap());
            data.extend_from_slice(p);
        }
        (data, starts)
    }

    fn random_payloads(seed: u64, n: usize) -> Vec<Vec<u8>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                // Include empty and larger-than-header payloads.
                let len = if i == 1 { 0 } else { rng.random_range(0..200) };
                (0..len).map(|_| rng.random()).collect()
            })
            .collect()
    }

    fn payloads_of(contents: &LogContents) -> Vec<Vec<u8>> {
        contents.records.iter().map(|r| r.payload.clone()).collect()
    }

    #[test]
    fn records_read_back_with_their_offsets() {
        let payloads = random_payloads(1, 20);
        let (data, starts) = encode(&payloads);
        for policy in POLICIES {
            let contents = read_log(&data, &path(), policy).unwrap();
            assert_eq!(payloads_of(&contents), payloads);
            let offsets: Vec<u64> = contents.records.iter().map(|r| r.offset).collect();
            assert_eq!(
                offsets,
                starts.iter().map(|&s| s as u64).collect::<Vec<_>>()
            );
            assert_eq!(contents.valid_len, data.len() as u64);
            assert_eq!(contents.tail, None);
        }
    }

    /// Found by the `wal_read` fuzz target: marks are not records, so a log may end with
    /// marks after its last record (or hold nothing else), and the valid prefix covers them.
    #[test]
    fn marks_after_the_last_record_belong_to_the_valid_prefix() {
        use crate::wal::format::{typed_record_header, TYPE_EARLIER_SEGMENTS_SYNCED};
        let mut data = typed_record_header(&[], TYPE_EARLIER_SEGMENTS_SYNCED)
            .unwrap()
            .to_vec();
        for policy in POLICIES {
            let contents = read_log(&data, &path(), policy).unwrap();
            assert!(contents.records.is_empty());
            assert_eq!(contents.valid_len, 9);
            assert!(contents.vouches_for_earlier_segments);
        }
        // The fuzzer's input: the mark, then one stray byte (a torn tail).
        data.push(0xff);
        let contents = read_log(&data, &path(), TailPolicy::DamagedTailOk).unwrap();
        assert_eq!(
            (contents.valid_len, contents.tail.map(|t| t.offset)),
            (9, Some(9))
        );
    }

    #[test]
    fn an_empty_log_has_no_records() {
        for policy in POLICIES {
            let contents = read_log(&[], &path(), policy).unwrap();
            assert_eq!(
                contents,
                LogContents {
                    records: vec![],
                    valid_len: 0,
                    tail: None,
                    vouches_for_earlier_segments: false,
                    previous_segment: None,
                }
            );
        }
    }

    #[test]
    fn truncation_at_every_offset_keeps_exactly_the_whole_records_before_the_cut() {
        let payloads = random_payloads(2, 12);
        let (data, starts) = encode(&payloads);
        let mut boundaries = starts.clone();
        boundaries.push(data.len());
        for cut in 0..=data.len() {
            let whole = boundaries.iter().filter(|&&b| b <= cut).count() - 1;
            let valid_len = boundaries[whole];
            for policy in [TailPolicy::TruncatedTailOk, TailPolicy::DamagedTailOk] {
                let contents = read_log(&data[..cut], &path(), policy)
                    .unwrap_or_else(|e| panic!("cut at {cut} with {policy:?}: {e}"));
                assert_eq!(payloads_of(&contents), payloads[..whole], "cut at {cut}");
                assert_eq!(contents.valid_len, valid_len as u64);
                let at_boundary = cut == valid_len;
                assert_eq!(contents.tail.is_none(), at_boundary, "cut at {cut}");
                if let Some(tail) = &contents.tail {
                    assert_eq!(tail.offset, valid_len as u64);
                }
            }
            let strict = read_log(&data[..cut], &path(), TailPolicy::Strict);
            if boundaries.contains(&cut) {
                assert_eq!(payloads_of(&strict.unwrap()), payloads[..whole]);
            } else {
                let err = strict.unwrap_err();
                assert!(
                    matches!(err, Error::Corruption { offset, .. } if offset == valid_len as u64),
                    "cut at {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn any_flipped_byte_in_a_middle_record_is_corruption_under_every_policy() {
        let payloads = random_payloads(3, 5);
        let (mut data, starts) = encode(&payloads);
        // A sync mark vouches that all five records were fsynced.
        let claim = (data.len() as u64).to_le_bytes();
        data.extend_from_slice(
            &crate::wal::format::typed_record_header(&claim, TYPE_SYNC_MARK).unwrap(),
        );
        data.extend_from_slice(&claim);
        let victim = 2;
        for i in starts[victim]..starts[victim + 1] {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut damaged = data.clone();
                damaged[i] ^= bit;
                for policy in POLICIES {
                    let err = read_log(&damaged, &path(), policy).unwrap_err();
                    let at = starts[victim] as u64;
                    assert!(
                        matches!(err, Error::Corruption { offset, .. } if offset == at),
                        "byte {i} ^ {bit:#x}, {policy:?}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn damage_past_every_sync_mark_is_an_unsynced_tail_even_with_valid_records_after_it() {
        // Two records synced (vouched for by a mark written with the next sync), then three
        // unsynced ones of which a power cut garbled the first.
        let payloads = random_payloads(9, 5);
        let (records, starts) = encode(&payloads);
        let synced = starts[2];
        let claim = (synced as u64).to_le_bytes();
        let mut data = records[..synced].to_vec();
        data.extend_from_slice(
            &crate::wal::format::typed_record_header(&claim, TYPE_SYNC_MARK).unwrap(),
        );
        data.extend_from_slice(&claim);
        let damaged_at = data.len();
        data.extend_from_slice(&records[synced..]);
        data[damaged_at + 2] ^= 0xff; // the crc of the first unsynced record
        let contents = read_log(&data, &path(), TailPolicy::DamagedTailOk).unwrap();
        assert_eq!(payloads_of(&contents), payloads[..2].to_vec());
        assert_eq!(
            contents.tail.as_ref().map(|t| t.offset),
            Some(damaged_at as u64)
        );
        for policy in [TailPolicy::Strict, TailPolicy::TruncatedTailOk] {
            assert!(read_log(&data, &path(), policy)
                .unwrap_err()
                .is_corruption());
        }
        // Damage inside the vouched-for prefix is corruption, whatever follows.
        let mut early = data.clone();
        early[starts[1] + 2] ^= 0xff; // the crc of the second synced record
        assert!(read_log(&early, &path(), TailPolicy::DamagedTailOk)
            .unwrap_err()
            .is_corruption());
    }

    #[test]
    fn the_writer_vouches_for_each_completed_sync_and_readers_skip_the_marks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000001.log");
        let file = crate::fs::FileSystem::create(&crate::fs::RealFs, &path).unwrap();
        let mut w = crate::wal::LogWriter::new(file, path.clone());
        w.add_record(b"one").unwrap();
        w.sync().unwrap();
        w.add_record(b"two").unwrap();
        w.sync().unwrap(); // "three" will be preceded by marks vouching for "one" and "two"
        w.add_record(b"three").unwrap();
        w.flush().unwrap();
        let data = std::fs::read(&path).unwrap();
        let contents = read_log(&data, &path, TailPolicy::Strict).unwrap();
        assert_eq!(
            payloads_of(&contents),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
        // "one" is vouched for: damaging it is corruption even though records follow.
        let mut damaged = data.clone();
        damaged[HEADER_LEN] ^= 0xff;
        assert!(read_log(&damaged, &path, TailPolicy::DamagedTailOk)
            .unwrap_err()
            .is_corruption());
        // "three" was never synced: damaging it is a tail.
        let mut tail = data.clone();
        let last = tail.len() - 1;
        tail[last] ^= 0xff;
        let contents = read_log(&tail, &path, TailPolicy::DamagedTailOk).unwrap();
        assert_eq!(contents.records.len(), 2);
    }

    #[test]
    fn a_flipped_byte_in_the_last_record_is_a_tolerated_tail_only_for_damaged_tail_ok() {
        let payloads = random_payloads(4, 5);
        let (data, starts) = encode(&payloads);
        let last = starts[4];
        for i in last..data.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut damaged = data.clone();
                damaged[i] ^= bit;
                let contents = read_log(&damaged, &path(), TailPolicy::DamagedTailOk).unwrap();
                assert_eq!(payloads_of(&contents), payloads[..4], "byte {i}");
                assert_eq!(contents.valid_len, last as u64);
                assert_eq!(contents.tail.as_ref().map(|t| t.offset), Some(last as u64));

                assert!(read_log(&damaged, &path(), TailPolicy::Strict)
                    .unwrap_err()
                    .is_corruption());
                // A length grown past the end of the file is indistinguishable from a torn
                // write, so TruncatedTailOk cuts it off; every other flip is corruption.
                let header = decode_header(&damaged, last).unwrap();
                let overruns = header.kind == TYPE_FULL
                    && (header.length as usize) <= MAX_PAYLOAD_LEN
                    && last + HEADER_LEN + header.length as usize > damaged.len();
                let truncated_ok = read_log(&damaged, &path(), TailPolicy::TruncatedTailOk);
                if overruns {
                    assert_eq!(payloads_of(&truncated_ok.unwrap()), payloads[..4]);
                } else {
                    assert!(
                        truncated_ok.unwrap_err().is_corruption(),
                        "byte {i} ^ {bit:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_zero_filled_tail_is_a_clean_end_only_under_damaged_tail_ok() {
        let payloads = random_payloads(5, 4);
        let (mut data, _) = encode(&payloads);
        let end = data.len();
        data.resize(end + 4096, 0);
        let contents = read_log(&data, &path(), TailPolicy::DamagedTailOk).unwrap();
        assert_eq!(payloads_of(&contents), payloads);
        assert_eq!(contents.valid_len, end as u64);
        assert_eq!(contents.tail, None, "preallocated space is not damage");
        for policy in [TailPolicy::Strict, TailPolicy::TruncatedTailOk] {
            let err = read_log(&data, &path(), policy).unwrap_err();
            assert!(matches!(err, Error::Corruption { offset, .. } if offset == end as u64));
        }
    }

    #[test]
    fn a_torn_record_followed_by_zeros_is_a_damaged_tail_not_a_clean_end() {
        let payloads = random_payloads(7, 3);
        let (mut data, starts) = encode(&payloads);
        // The last record's first bytes reached the disk, the rest of the preallocated space
        // is still zeros.
        data.truncate(starts[2] + 5);
        data.resize(starts[2] + 4096, 0);
        let contents = read_log(&data, &path(), TailPolicy::DamagedTailOk).unwrap();
        assert_eq!(payloads_of(&contents), payloads[..2]);
        assert_eq!(contents.valid_len, starts[2] as u64);
        assert_eq!(contents.tail.map(|t| t.offset), Some(starts[2] as u64));
    }

    #[test]
    fn a_damaged_length_that_overruns_the_file_is_caught_when_records_follow() {
        let payloads = random_payloads(6, 4);
        let (mut data, starts) = encode(&payloads);
        // A sync mark vouches for all four records: damage among them is corruption.
        let claim = (data.len() as u64).to_le_bytes();
        data.extend_from_slice(
            &crate::wal::format::typed_record_header(&claim, TYPE_SYNC_MARK).unwrap(),
        );
        data.extend_from_slice(&claim);
        data[starts[1] + 6] = 0x10; // length grows by about 1 MiB, past the end of the file
        for policy in POLICIES {
            let err = read_log(&data, &path(), policy).unwrap_err();
            let Error::Corruption { offset, reason, .. } = &err else {
                panic!("{err}")
            };
            assert_eq!(*offset, starts[1] as u64);
            if policy != TailPolicy::Strict {
                assert!(
                    reason.contains("followed by valid records"),
                    "{policy:?}: {err}"
                );
            }
        }
    }

    #[test]
    fn an_oversized_length_or_unknown_type_is_damage() {
        let mut data = record_header(b"x").unwrap().to_vec();
        data.push(b'x');
        let mut too_long = data.clone();
        too_long[4..8].copy_from_slice(&(MAX_PAYLOAD_LEN as u32 + 1).to_le_bytes());
        let mut bad_type = data.clone();
        bad_type[8] = 7;
        for (bytes, needle) in [(too_long, "exceeds"), (bad_type, "type 7")] {
            let contents = read_log(&bytes, &path(), TailPolicy::DamagedTailOk).unwrap();
            assert!(contents.tail.unwrap().reason.contains(needle));
            let err = read_log(&bytes, &path(), TailPolicy::TruncatedTailOk).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn range_crc_matches_direct_hashing() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let data: Vec<u8> = (0..5000).map(|_| rng.random()).collect();
        let base = 13;
        let mut crcs = RangeCrc::new(&data, base);
        for _ in 0..2000 {
            let a = rng.random_range(base..data.len());
            let b = rng.random_range(a..=data.len());
            assert_eq!(
                crcs.crc(a, b),
                Some(crc32fast::hash(&data[a..b])),
                "{a}..{b}"
            );
        }
        assert_eq!(crcs.crc(base - 1, base + 1), None);
        assert_eq!(crcs.crc(10, data.len() + 1), None);
    }

    #[test]
    fn the_forward_scan_stays_fast_when_every_offset_looks_like_a_huge_record() {
        // 0x01 bytes read as type FULL with length 0x01010101 (about 16 MiB): every offset in
        // the first megabyte is a candidate whose payload fits.
        let mut data = record_header(b"ok").unwrap().to_vec();
        data.extend_from_slice(b"ok");
        let damaged_at = data.len();
        data.resize(damaged_at + 0x0101_0101 + HEADER_LEN + (1 << 20), 0x01);
        let started = std::time::Instant::now();
        let contents = read_log(&data, &path(), TailPolicy::DamagedTailOk).unwrap();
        assert_eq!(contents.records.len(), 1);
        assert_eq!(contents.valid_len, damaged_at as u64);
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn writer_output_reads_back_from_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = crate::filenames::wal_path(dir.path(), 3);
        let fs = RealFs;
        let mut writer = LogWriter::new(fs.create(&log).unwrap(), log.clone());
        let payloads = random_payloads(8, 30);
        for p in &payloads {
            writer.add_record(p).unwrap();
        }
        writer.sync().unwrap();
        let (expected, _) = encode(&payloads);
        assert_eq!(writer.size(), expected.len() as u64);
        assert_eq!(writer.path(), log.as_path());
        let contents = read_log_file(&fs, &log, TailPolicy::Strict).unwrap();
        assert_eq!(payloads_of(&contents), payloads);
        let missing = read_log_file(&fs, &dir.path().join("000099.log"), TailPolicy::Strict);
        assert!(matches!(missing, Err(Error::Io { .. })));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            for policy in POLICIES {
                if let Ok(contents) = read_log(&data, &path(), policy) {
                    prop_assert!(contents.valid_len <= data.len() as u64);
                }
            }
        }

        #[test]
        fn garbage_after_valid_records_never_panics(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6),
            garbage in proptest::collection::vec(any::<u8>(), 0..60),
        ) {
            let (mut data, _) = encode(&payloads);
            let end = data.len();
            data.extend_from_slice(&garbage);
            for policy in POLICIES {
                if let Ok(contents) = read_log(&data, &path(), policy) {
                    prop_assert!(contents.valid_len >= end as u64);
                    prop_assert!(contents.records.len() >= payloads.len());
                    prop_assert_eq!(&payloads_of(&contents)[..payloads.len()], &payloads[..]);
                }
            }
        }
    }
}
