//! Version edits: the records of the manifest.
//!
//! ```text
//! edit  := field*
//! field := 1 log_number: varint
//!        | 2 next_file_number: varint
//!        | 3 last_sequence: varint
//!        | 4 deleted_file: level varint, number varint
//!        | 5 new_file: level varint, number varint, size varint, min_seq varint,
//!                      max_seq varint, num_entries varint, num_deletions varint,
//!                      smallest length-prefixed, largest length-prefixed
//!        | 6 new_range_del: seq varint, start length-prefixed, end length-prefixed
//!                      (end empty = unbounded; start non-empty and below a non-empty end)
//!        | 7 deleted_range_del: seq varint
//!        | 8 position: manifest number varint, index varint
//! ```
//!
//! `position` says where the edit belongs: the manifest it was appended to and how many edits
//! precede it there. [`ManifestWriter`](super::ManifestWriter) sets it on every edit after the
//! snapshot (index 0, at offset 0, has none) and replay checks it, so an edit copied over
//! another one, or into another manifest, is caught although its own checksum is right.
//!
//! Each field starts with its tag as a varint. The encoder writes fields in tag order and each
//! of tags 1-3 and 8 at most once; the decoder accepts any order but rejects a repeated tag
//! 1-3 or 8, an unknown tag (no silent skipping: an edit the reader does not understand could
//! change which files are live) and a level of [`NUM_LEVELS`] or more. The edit carries no length or end
//! marker of its own: the record framing's length and crc already detect a cut.
//!
//! Deliberately not checked here: that `smallest <= largest` or that keys parse as internal
//! keys; the version set validates what the edit means, this module only its bytes.

use std::path::Path;

use super::NUM_LEVELS;
use crate::coding::{put_length_prefixed, put_varint, Decoder};
use crate::error::{Error, Result};
use crate::range_del::RangeTombstone;

// Field tags, written to disk, never renumber.
const TAG_LOG_NUMBER: u64 = 1;
const TAG_NEXT_FILE_NUMBER: u64 = 2;
const TAG_LAST_SEQUENCE: u64 = 3;
const TAG_DELETED_FILE: u64 = 4;
const TAG_NEW_FILE: u64 = 5;
const TAG_NEW_RANGE_DEL: u64 = 6;
const TAG_DELETED_RANGE_DEL: u64 = 7;
const TAG_POSITION: u64 = 8;

/// Where an edit belongs (tag 8): the manifest it was appended to, and how many edits were
/// appended to that manifest before it (the snapshot is index 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EditPosition {
    pub manifest: u64,
    pub index: u64,
}

/// What the manifest records about one SSTable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The file number: the table lives in `filenames::table_path(dir, number)`.
    pub number: u64,
    /// File size in bytes.
    pub size: u64,
    /// The smallest encoded internal key in the table.
    pub smallest: Vec<u8>,
    /// The largest encoded internal key in the table.
    pub largest: Vec<u8>,
    /// The smallest sequence number of any entry.
    pub min_seq: u64,
    /// The largest sequence number of any entry.
    pub max_seq: u64,
    pub num_entries: u64,
    pub num_deletions: u64,
}

/// A change to the set of live files and counters, as one manifest record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VersionEdit {
    /// Write-ahead log segments numbered `>= log_number` may hold data not yet in any SSTable;
    /// older segments are obsolete.
    pub log_number: Option<u64>,
    /// The next unused file number.
    pub next_file_number: Option<u64>,
    /// The largest sequence number used so far.
    pub last_sequence: Option<u64>,
    /// `(level, file number)` of tables removed from the version.
    pub deleted_files: Vec<(u32, u64)>,
    /// `(level, table)` of tables added to the version.
    pub new_files: Vec<(u32, FileMeta)>,
    /// Range tombstones added to the version (at a flush).
    pub new_range_dels: Vec<RangeTombstone>,
    /// Sequence numbers of range tombstones retired from the version.
    pub deleted_range_dels: Vec<u64>,
    /// Where the edit was appended; set by the manifest writer on every edit after the
    /// snapshot, checked and cleared by replay.
    pub position: Option<EditPosition>,
}

impl VersionEdit {
    /// The edit's bytes, a manifest record payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let singles = [
            (TAG_LOG_NUMBER, self.log_number),
            (TAG_NEXT_FILE_NUMBER, self.next_file_number),
            (TAG_LAST_SEQUENCE, self.last_sequence),
        ];
        for (tag, value) in singles {
            if let Some(v) = value {
                put_varint(&mut out, tag);
                put_varint(&mut out, v);
            }
        }
        for &(level, number) in &self.deleted_files {
            put_varint(&mut out, TAG_DELETED_FILE);
            put_varint(&mut out, u64::from(level));
            put_varint(&mut out, number);
        }
        for (level, f) in &self.new_files {
            put_varint(&mut out, TAG_NEW_FILE);
            put_varint(&mut out, u64::from(*level));
            for v in [
                f.number,
                f.size,
                f.min_seq,
                f.max_seq,
                f.num_entries,
                f.num_deletions,
            ] {
                put_varint(&mut out, v);
            }
            put_length_prefixed(&mut out, &f.smallest);
            put_length_prefixed(&mut out, &f.largest);
        }
        for t in &self.new_range_dels {
            put_varint(&mut out, TAG_NEW_RANGE_DEL);
            put_varint(&mut out, t.seq);
            put_length_prefixed(&mut out, &t.start);
            put_length_prefixed(&mut out, &t.end);
        }
        for &seq in &self.deleted_range_dels {
            put_varint(&mut out, TAG_DELETED_RANGE_DEL);
            put_varint(&mut out, seq);
        }
        if let Some(p) = self.position {
            put_varint(&mut out, TAG_POSITION);
            put_varint(&mut out, p.manifest);
            put_varint(&mut out, p.index);
        }
        out
    }

    /// Decode an edit from a manifest record; `path` and `offset` (the record's offset) name
    /// the record in a `Corruption` error.
    pub fn decode(payload: &[u8], path: &Path, offset: u64) -> Result<VersionEdit> {
        let mut d = Decoder::new(payload);
        let mut edit = VersionEdit::default();
        while !d.is_empty() {
            let at = d.position();
            let bad = |what: &str| {
                Error::corruption(
                    path,
                    offset,
                    format!("{what} at byte {at} of a version edit"),
                )
            };
            let tag = d.varint().ok_or_else(|| bad("a malformed field tag"))?;
            match tag {
                TAG_LOG_NUMBER | TAG_NEXT_FILE_NUMBER | TAG_LAST_SEQUENCE => {
                    let (slot, name) = match tag {
                        TAG_LOG_NUMBER => (&mut edit.log_number, "log number"),
                        TAG_NEXT_FILE_NUMBER => (&mut edit.next_file_number, "next file number"),
                        _ => (&mut edit.last_sequence, "last sequence"),
                    };
                    let value = d
                        .varint()
                        .ok_or_else(|| bad(&format!("a malformed {name}")))?;
                    if slot.replace(value).is_some() {
                        return Err(bad(&format!("a repeated {name}")));
                    }
                }
                TAG_DELETED_FILE => {
                    let level =
                        level(&mut d).ok_or_else(|| bad("a bad level of a deleted file"))?;
                    let number = d
                        .varint()
                        .ok_or_else(|| bad("a malformed deleted file number"))?;
                    edit.deleted_files.push((level, number));
                }
                TAG_NEW_FILE => {
                    let level = level(&mut d).ok_or_else(|| bad("a bad level of a new file"))?;
                    let meta = file_meta(&mut d).ok_or_else(|| bad("a malformed new file"))?;
                    edit.new_files.push((level, meta));
                }
                TAG_NEW_RANGE_DEL => {
                    let t = range_del(&mut d).ok_or_else(|| bad("a malformed range tombstone"))?;
                    edit.new_range_dels.push(t);
                }
                TAG_DELETED_RANGE_DEL => {
                    let seq = d
                        .varint()
                        .ok_or_else(|| bad("a malformed retired range tombstone"))?;
                    edit.deleted_range_dels.push(seq);
                }
                TAG_POSITION => {
                    let position = d
                        .varint()
                        .zip(d.varint())
                        .map(|(manifest, index)| EditPosition { manifest, index })
                        .ok_or_else(|| bad("a malformed position"))?;
                    if edit.position.replace(position).is_some() {
                        return Err(bad("a repeated position"));
                    }
                }
                _ => return Err(bad(&format!("an unknown field tag {tag}"))),
            }
        }
        Ok(edit)
    }
}

/// A level varint, `None` if malformed or not below [`NUM_LEVELS`].
fn level(d: &mut Decoder<'_>) -> Option<u32> {
    let level = d.varint()?;
    if level >= NUM_LEVELS as u64 {
        return None;
    }
    u32::try_from(level).ok()
}

/// A range tombstone; `None` if malformed or empty (`start` must be non-empty and below a
/// non-empty `end`).
fn range_del(d: &mut Decoder<'_>) -> Option<RangeTombstone> {
    let seq = d.varint()?;
    let start = d.length_prefixed()?;
    let end = d.length_prefixed()?;
    if start.is_empty() || (!end.is_empty() && start >= end) {
        return None;
    }
    Some(RangeTombstone {
        start: bytes::Bytes::copy_from_slice(start),
        end: bytes::Bytes::copy_from_slice(end),
        seq,
    })
}

fn file_meta(d: &mut Decoder<'_>) -> Option<FileMeta> {
    Some(FileMeta {
        number: d.varint()?,
        size: d.varint()?,
        min_seq: d.varint()?,
        max_seq: d.varint()?,
        num_entries: d.varint()?,
        num_deletions: d.varint()?,
        smallest: d.length_prefixed()?.to_vec(),
        largest: d.length_prefixed()?.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::internal_key;
    use proptest::prelude::*;
    use std::path::PathBuf;

    fn path() -> PathBuf {
        PathBuf::from("/db/MANIFEST-000001")
    }

    fn sample() -> VersionEdit {
        VersionEdit {
            log_number: Some(12),
            next_file_number: Some(40),
            last_sequence: Some(1 << 40),
            deleted_files: vec![(0, 7), (3, 9)],
            new_files: vec![(
                1,
                FileMeta {
                    number: 39,
                    size: 4 << 20,
                    smallest: internal_key(b"apple", 5, 1),
                    largest: internal_key(b"pear", 900, 0),
                    min_seq: 5,
                    max_seq: 900,
                    num_entries: 1000,
                    num_deletions: 3,
                },
            )],
            new_range_dels: vec![
                RangeTombstone {
                    start: "t:1:".into(),
                    end: "t:1;".into(),
                    seq: 77,
                },
                RangeTombstone {
                    start: "z".into(),
                    end: bytes::Bytes::new(),
                    seq: 78,
                },
            ],
            deleted_range_dels: vec![12, 13],
            position: Some(EditPosition {
                manifest: 41,
                index: 300,
            }),
        }
    }

    #[test]
    fn an_edit_round_trips() {
        let edit = sample();
        assert_eq!(
            VersionEdit::decode(&edit.encode(), &path(), 0).unwrap(),
            edit
        );
        let empty = VersionEdit::default();
        assert!(empty.encode().is_empty());
        assert_eq!(VersionEdit::decode(&[], &path(), 0).unwrap(), empty);
    }

    #[test]
    fn the_encoding_is_tagged_fields_in_tag_order() {
        let edit = VersionEdit {
            log_number: Some(3),
            last_sequence: Some(300),
            ..Default::default()
        };
        assert_eq!(edit.encode(), vec![1, 3, 3, 0xac, 0x02]);
        let deleted = VersionEdit {
            deleted_files: vec![(6, 2)],
            ..Default::default()
        };
        assert_eq!(deleted.encode(), vec![4, 6, 2]);
    }

    #[test]
    fn every_truncation_is_corruption_naming_the_record() {
        let full = sample();
        // The edits whose encodings end at each field boundary of `full`'s encoding.
        let mut prefixes = vec![VersionEdit::default()];
        let mut e = VersionEdit {
            log_number: full.log_number,
            ..Default::default()
        };
        prefixes.push(e.clone());
        e.next_file_number = full.next_file_number;
        prefixes.push(e.clone());
        e.last_sequence = full.last_sequence;
        prefixes.push(e.clone());
        for &d in &full.deleted_files {
            e.deleted_files.push(d);
            prefixes.push(e.clone());
        }
        for f in &full.new_files {
            e.new_files.push(f.clone());
            prefixes.push(e.clone());
        }
        for t in &full.new_range_dels {
            e.new_range_dels.push(t.clone());
            prefixes.push(e.clone());
        }
        for &seq in &full.deleted_range_dels {
            e.deleted_range_dels.push(seq);
            prefixes.push(e.clone());
        }
        e.position = full.position;
        prefixes.push(e.clone());
        let bytes = full.encode();
        for cut in 0..bytes.len() {
            match prefixes.iter().find(|p| p.encode().len() == cut) {
                // A cut between whole fields decodes to the smaller edit.
                Some(prefix) => assert_eq!(
                    &VersionEdit::decode(&bytes[..cut], &path(), 77).unwrap(),
                    prefix
                ),
                None => {
                    let err = VersionEdit::decode(&bytes[..cut], &path(), 77).unwrap_err();
                    let named = matches!(&err, Error::Corruption { file, .. } if *file == path());
                    assert!(
                        named && matches!(err, Error::Corruption { offset: 77, .. }),
                        "cut at {cut}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_tags_bad_levels_and_repeats_are_corruption() {
        let cases: [(&[u8], &str); 7] = [
            (&[10, 1], "unknown field tag 10"),
            (&[8, 1], "malformed position"),
            (&[8, 1, 2, 8, 1, 2], "repeated position"),
            (&[0], "unknown field tag 0"),
            (&[4, 7, 1], "level"),
            (&[1, 1, 1, 2], "repeated log number"),
            (&[3, 0xff], "malformed last sequence"),
        ];
        for (bytes, needle) in cases {
            let err = VersionEdit::decode(bytes, &path(), 5).unwrap_err();
            assert!(
                err.is_corruption() && err.to_string().contains(needle),
                "{err}"
            );
        }
    }

    fn arb_meta() -> impl Strategy<Value = FileMeta> {
        let keys = (
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..40),
        );
        (any::<[u64; 6]>(), keys).prop_map(|(n, (smallest, largest))| FileMeta {
            number: n[0],
            size: n[1],
            smallest,
            largest,
            min_seq: n[2],
            max_seq: n[3],
            num_entries: n[4],
            num_deletions: n[5],
        })
    }

    fn arb_edit() -> impl Strategy<Value = VersionEdit> {
        let level = 0..NUM_LEVELS as u32;
        (
            any::<[Option<u64>; 3]>(),
            proptest::collection::vec((level.clone(), any::<u64>()), 0..5),
            proptest::collection::vec((level, arb_meta()), 0..5),
            proptest::collection::vec(
                (
                    any::<u64>(),
                    proptest::collection::vec(any::<u8>(), 1..8),
                    proptest::collection::vec(any::<u8>(), 0..8),
                ),
                0..4,
            ),
            proptest::collection::vec(any::<u64>(), 0..4),
            any::<Option<(u64, u64)>>(),
        )
            .prop_map(
                |(singles, deleted_files, new_files, ranges, deleted_range_dels, position)| {
                    VersionEdit {
                        log_number: singles[0],
                        next_file_number: singles[1],
                        last_sequence: singles[2],
                        deleted_files,
                        new_files,
                        new_range_dels: ranges
                            .into_iter()
                            .filter(|(_, s, e)| e.is_empty() || s < e)
                            .map(|(seq, s, e)| RangeTombstone {
                                start: s.into(),
                                end: e.into(),
                                seq,
                            })
                            .collect(),
                        deleted_range_dels,
                        position: position
                            .map(|(manifest, index)| EditPosition { manifest, index }),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn random_edits_round_trip(edit in arb_edit()) {
            prop_assert_eq!(VersionEdit::decode(&edit.encode(), &path(), 0).unwrap(), edit);
        }

        #[test]
        fn truncated_edits_never_panic(edit in arb_edit(), cut in any::<prop::sample::Index>()) {
            let bytes = edit.encode();
            if !bytes.is_empty() {
                let cut = cut.index(bytes.len());
                if let Ok(shorter) = VersionEdit::decode(&bytes[..cut], &path(), 0) {
                    prop_assert!(shorter != edit);
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Err(err) = VersionEdit::decode(&bytes, &path(), 9) {
                prop_assert!(err.is_corruption());
            }
        }
    }
}
