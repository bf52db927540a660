//! `EventWriter`: TensorBoard scalar summaries, written next to the CSV log so `tensorboard
//! --logdir runs/` shows every training column without Python on the training machine.
//!
//! There is no well-kept Rust crate for this (the ones on crates.io pin protobuf 2 and image 0.23,
//! or serve a single project), and scalars need only a few protobuf fields, so the format is
//! written here:
//! - the file is a TFRecord stream: per record, the payload length (u64 LE), its masked CRC-32C
//!   (u32 LE), the payload, and the payload's masked CRC-32C, where
//!   masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (TensorFlow's `crc32c::Mask`);
//! - each payload is a `tensorflow.Event` message: `wall_time` (field 1, double), `step`
//!   (field 2, int64), then either `file_version` (field 3, "brain.Event:2", the first record) or
//!   `summary` (field 5) holding repeated `Summary.Value { tag: 1, simple_value: 2 (float) }`.
//!
//! Records are flushed after every call, so a killed run keeps all epochs written so far.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// CRC-32C (Castagnoli), the checksum TFRecord uses.
const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// TensorFlow's masked CRC: rotate right by 15 and add a constant, so that CRCs of data that
/// itself contains CRCs stay well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = CRC32C.checksum(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Protobuf base-128 varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The `Event` payload: wall time and step, plus `file_version` or a scalar `summary`.
fn event(wall_time: f64, step: i64, file_version: Option<&str>, scalars: &[(&str, f32)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.push(1 << 3 | 1); // wall_time: fixed64
    out.extend_from_slice(&wall_time.to_le_bytes());
    out.push(2 << 3); // step: varint (two's complement for negatives, as protobuf int64)
    put_varint(&mut out, step as u64);
    if let Some(v) = file_version {
        put_bytes(&mut out, 3, v.as_bytes());
    }
    if !scalars.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in scalars {
            let mut v = Vec::new();
            put_bytes(&mut v, 1, tag.as_bytes());
            v.push(2 << 3 | 5); // simple_value: fixed32
            v.extend_from_slice(&value.to_le_bytes());
            put_bytes(&mut summary, 1, &v);
        }
        put_bytes(&mut out, 5, &summary);
    }
    out
}

/// One TFRecord: length, masked CRC of the length, payload, masked CRC of the payload.
fn record(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
    out
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// An open `events.out.tfevents.*` file.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: std::fs::File,
}

impl EventWriter {
    /// Creates a new event file in `dir` (a resumed run adds a second file; TensorBoard merges
    /// the files of a directory). The name carries the time and the process id, so two writers
    /// never share a file.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let t = now();
        let path = dir.join(format!("events.out.tfevents.{}.diffsim.{}", t as u64, std::process::id()));
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&record(&event(t, 0, Some("brain.Event:2"), &[])))?;
        file.flush()?;
        Ok(Self { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event with `scalars` (tag, value) at `step`; non-finite values are kept (as
    /// TensorBoard shows them), absent ones are simply left out by the caller.
    pub fn scalars(&mut self, step: i64, scalars: &[(&str, f64)]) -> std::io::Result<()> {
        let values: Vec<(&str, f32)> = scalars.iter().map(|&(t, v)| (t, v as f32)).collect();
        self.file.write_all(&record(&event(now(), step, None, &values)))?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf reader for the test: (field, wire type, varint or bytes) triples.
    fn fields(mut b: &[u8]) -> Vec<(u32, u8, u64, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
            match wire {
                0 => out.push((field, wire, varint(&mut b), Vec::new())),
                1 => {
                    out.push((field, wire, 0, b[..8].to_vec()));
                    b = &b[8..];
                }
                2 => {
                    let n = varint(&mut b) as usize;
                    out.push((field, wire, 0, b[..n].to_vec()));
                    b = &b[n..];
                }
                5 => {
                    out.push((field, wire, 0, b[..4].to_vec()));
                    b = &b[4..];
                }
                w => panic!("wire type {w}"),
            }
        }
        out
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of "123456789" (RFC 3720 B.4 / the CRC catalogue).
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
        // ((c >> 15) | (c << 17)) + 0xa282ead8 mod 2³², worked out by hand from the check value.
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn varints_encode_as_protobuf() {
        let enc = |v| {
            let mut o = Vec::new();
            put_varint(&mut o, v);
            o
        };
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
    }

    #[test]
    fn written_records_frame_checksum_and_decode() {
        let dir = std::env::temp_dir().join(format!("diffsim-tb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = EventWriter::create(&dir).unwrap();
        w.scalars(4096, &[("episode_return", 12.5), ("alpha", 0.25)]).unwrap();
        w.scalars(8192, &[("episode_return", -3.0)]).unwrap();
        let bytes = std::fs::read(w.path()).unwrap();
        let mut rest = &bytes[..];
        let mut events = Vec::new();
        while !rest.is_empty() {
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(rest[8..12].try_into().unwrap()), masked_crc32c(&rest[..8]));
            let payload = &rest[12..12 + len];
            let crc = u32::from_le_bytes(rest[12 + len..16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc32c(payload));
            events.push(fields(payload));
            rest = &rest[16 + len..];
        }
        assert_eq!(events.len(), 3);
        assert_eq!(events[0][2], (3, 2, 0, b"brain.Event:2".to_vec()));
        let (_, _, step, _) = &events[1][1];
        assert_eq!(*step, 4096);
        let summary = fields(&events[1][2].3);
        assert_eq!(summary.len(), 2);
        let value = fields(&summary[0].3);
        assert_eq!(value[0].3, b"episode_return");
        assert_eq!(f32::from_le_bytes(value[1].3[..].try_into().unwrap()), 12.5);
        let value = fields(&fields(&events[2][2].3)[0].3);
        assert_eq!(f32::from_le_bytes(value[1].3[..].try_into().unwrap()), -3.0);
        std::fs::remove_dir_all(&dir).ok();
    }
}
