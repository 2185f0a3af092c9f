//! Little helpers for the byte formats: varints and fixed-width little-endian integers.
//!
//! Conventions for every on-disk format (see DESIGN.md): integers are little-endian; varints are
//! LEB128 (7 bits per byte, low group first, at most 10 bytes for a u64). Decoders never trust a
//! length: every read is bounds-checked and returns `None` on short or malformed input, which the
//! caller turns into a `Corruption` error naming its file and offset.

/// Append `v` as a LEB128 varint.
pub fn put_varint(dst: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        dst.push((v as u8) | 0x80);
        v >>= 7;
    }
    dst.push(v as u8);
}

/// Append a varint length followed by the bytes.
pub fn put_length_prefixed(dst: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(dst, bytes.len() as u64);
    dst.extend_from_slice(bytes);
}

/// A bounds-checked reader over a byte slice.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn varint(&mut self) -> Option<u64> {
        let mut result: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos)?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return None; // overflows u64
            }
            result |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(result);
            }
        }
        None
    }

    /// A varint that must fit in `usize` and be at most `max`.
    pub fn varint_len(&mut self, max: usize) -> Option<usize> {
        let v = self.varint()?;
        usize::try_from(v).ok().filter(|&n| n <= max)
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub fn length_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = self.varint_len(self.remaining())?;
        self.bytes(n)
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }
}

/// Read a little-endian u32 at `pos`, if in bounds.
pub fn get_u32(buf: &[u8], pos: usize) -> Option<u32> {
    let bytes = buf.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Read a little-endian u64 at `pos`, if in bounds.
pub fn get_u64(buf: &[u8], pos: usize) -> Option<u64> {
    let bytes = buf.get(pos..pos.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_width() {
        let values = [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ];
        for &v in &values {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            let mut d = Decoder::new(&buf);
            assert_eq!(d.varint(), Some(v));
            assert!(d.is_empty());
        }
    }

    #[test]
    fn truncated_or_overlong_varints_are_rejected() {
        assert_eq!(Decoder::new(&[0x80]).varint(), None);
        assert_eq!(Decoder::new(&[0xff; 11]).varint(), None);
        // 10th byte may only carry the top bit of a u64.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert_eq!(Decoder::new(&over).varint(), None);
    }

    #[test]
    fn length_prefixed_rejects_lengths_past_the_end() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 10);
        buf.extend_from_slice(b"short");
        assert_eq!(Decoder::new(&buf).length_prefixed(), None);
    }
}
