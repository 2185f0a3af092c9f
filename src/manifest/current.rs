//! CURRENT: the file that names the live manifest.
//!
//! ```text
//! CURRENT := manifest_name "\n" "crc32:" hex8 "\n"
//! ```
//!
//! `manifest_name` is [`filenames::manifest_name`] (`MANIFEST-000007`); `hex8` is 8 lowercase
//! hex digits of the CRC-32 (crc32fast) of the first line including its newline. The checksum
//! catches a damaged CURRENT, which would otherwise name a wrong or missing manifest.
//!
//! CURRENT is replaced, never edited: the new content is written to a temporary file, synced,
//! renamed over CURRENT, and the directory synced, so a crash leaves either the old or the new
//! CURRENT whole.

use std::path::Path;

use crate::error::{Error, Result};
use crate::filenames::{self, FileKind};
use crate::fs::FileSystem;

const CRC_PREFIX: &[u8] = b"crc32:";
/// `crc32:` + 8 hex digits + newline.
const CRC_LINE_LEN: usize = CRC_PREFIX.len() + 8 + 1;

/// The manifest number CURRENT names; `Ok(None)` if there is no CURRENT in `dir`.
pub fn read_current(fs: &dyn FileSystem, dir: &Path) -> Result<Option<u64>> {
    let path = filenames::current_path(dir);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let data = fs
        .read_all(&path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    decode_current(&data, &path).map(Some)
}

/// Make CURRENT name manifest `manifest_number`, durably and atomically.
///
/// If this fails after the rename (the directory sync failed), CURRENT may name either manifest
/// after a crash: the caller must keep both manifests until a later sync succeeds.
pub fn write_current(fs: &dyn FileSystem, dir: &Path, manifest_number: u64) -> Result<()> {
    let tmp = filenames::temp_path(dir, manifest_number);
    let current = filenames::current_path(dir);
    let contents = encode_current(manifest_number);
    let replaced = (|| {
        let context = |doing: &str| format!("{doing} {} (the new CURRENT)", tmp.display());
        let mut file = fs
            .create(&tmp)
            .map_err(|e| Error::io(context("creating"), e))?;
        file.append(&contents)
            .map_err(|e| Error::io(context("writing"), e))?;
        file.sync().map_err(|e| Error::io(context("syncing"), e))?;
        drop(file);
        fs.rename(&tmp, &current).map_err(|e| {
            Error::io(
                format!("renaming {} to {}", tmp.display(), current.display()),
                e,
            )
        })
    })();
    if replaced.is_err() {
        // Best effort: a leftover temporary file is harmless and deleted at the next open.
        let _ = fs.remove_file(&tmp);
    }
    replaced?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io(format!("syncing the directory {}", dir.display()), e))
}

fn encode_current(manifest_number: u64) -> Vec<u8> {
    let mut out = filenames::manifest_name(manifest_number).into_bytes();
    out.push(b'\n');
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(format!("crc32:{crc:08x}\n").as_bytes());
    out
}

fn decode_current(data: &[u8], path: &Path) -> Result<u64> {
    let bad = |offset: usize, reason: &str| Error::corruption(path, offset as u64, reason);
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return Err(bad(0, "CURRENT has no complete first line"));
    };
    let (first, crc_line) = data.split_at(newline + 1);
    let hex = crc_line
        .strip_prefix(CRC_PREFIX)
        .and_then(|rest| rest.strip_suffix(b"\n"))
        .filter(|_| crc_line.len() == CRC_LINE_LEN);
    let Some(stored) = hex.and_then(parse_lower_hex_u32) else {
        return Err(bad(
            first.len(),
            "CURRENT's second line is not crc32:<8 lowercase hex digits>",
        ));
    };
    if crc32fast::hash(first) != stored {
        return Err(bad(0, "CURRENT's checksum does not match its first line"));
    }
    // The checksum matched, so the line is what a writer wrote; still parse it strictly.
    let name = std::str::from_utf8(first.strip_suffix(b"\n").unwrap_or(first)).ok();
    match name.map(|n| (n, filenames::parse_file_name(n))) {
        Some((name, Some(FileKind::Manifest(number))))
            if filenames::manifest_name(number) == name =>
        {
            Ok(number)
        }
        _ => Err(bad(0, "CURRENT does not name a manifest")),
    }
}

fn parse_lower_hex_u32(hex: &[u8]) -> Option<u32> {
    if hex.len() != 8 || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    #[test]
    fn current_round_trips_and_is_absent_at_first() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_current(&RealFs, dir.path()).unwrap(), None);
        write_current(&RealFs, dir.path(), 7).unwrap();
        assert_eq!(read_current(&RealFs, dir.path()).unwrap(), Some(7));
        write_current(&RealFs, dir.path(), 1_234_567).unwrap();
        assert_eq!(read_current(&RealFs, dir.path()).unwrap(), Some(1_234_567));
        // Only CURRENT remains: the temporary file was renamed over it.
        assert_eq!(
            RealFs.list_dir(dir.path()).unwrap(),
            vec!["CURRENT".to_string()]
        );
    }

    #[test]
    fn the_content_is_the_manifest_name_and_its_checksum() {
        let bytes = encode_current(7);
        let crc = crc32fast::hash(b"MANIFEST-000007\n");
        assert_eq!(
            bytes,
            format!("MANIFEST-000007\ncrc32:{crc:08x}\n").into_bytes()
        );
        assert_eq!(decode_current(&bytes, Path::new("CURRENT")).unwrap(), 7);
    }

    #[test]
    fn any_flipped_bit_or_truncation_of_current_is_corruption() {
        let path = Path::new("/db/CURRENT");
        let bytes = encode_current(42);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[i] ^= 1 << bit;
                let err = decode_current(&damaged, path).unwrap_err();
                assert!(err.is_corruption(), "byte {i} bit {bit}: {err}");
            }
        }
        for cut in 0..bytes.len() {
            assert!(decode_current(&bytes[..cut], path)
                .unwrap_err()
                .is_corruption());
        }
        let mut longer = bytes.clone();
        longer.push(b'\n');
        assert!(decode_current(&longer, path).unwrap_err().is_corruption());
    }

    #[test]
    fn a_well_checksummed_line_that_is_not_a_manifest_name_is_corruption() {
        for line in ["MANIFEST-7\n", "000007.log\n", "MANIFEST-\n", "\n"] {
            let mut bytes = line.as_bytes().to_vec();
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(format!("crc32:{crc:08x}\n").as_bytes());
            let err = decode_current(&bytes, Path::new("CURRENT")).unwrap_err();
            assert!(
                err.to_string().contains("does not name a manifest"),
                "{line:?}: {err}"
            );
        }
        // Uppercase hex digits are rejected (checked on a name whose crc has letters in it).
        let first = (1..100u64)
            .map(|n| format!("MANIFEST-{n:06}\n"))
            .find(|line| {
                format!("{:08x}", crc32fast::hash(line.as_bytes())).contains(char::is_alphabetic)
            })
            .unwrap();
        let upper = format!("{first}crc32:{:08X}\n", crc32fast::hash(first.as_bytes()));
        assert!(decode_current(upper.as_bytes(), Path::new("CURRENT"))
            .unwrap_err()
            .is_corruption());
    }

    #[test]
    fn a_damaged_current_on_disk_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::filenames::current_path(dir.path());
        std::fs::write(&path, b"MANIFEST-000003\ncrc32:00000000\n").unwrap();
        let err = read_current(&RealFs, dir.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption { file, .. } if *file == path),
            "{err}"
        );
    }
}
