//! The embedded models' bytes, read through the executable's file rather than its memory.
//!
//! `include_bytes!` puts the models (21 MB) in the binary's read-only data. Parsing them from
//! there pages all of it into the process's resident set, where it stays: the pages are never
//! touched again, but nothing releases them short of `madvise`, which needs `unsafe` (the
//! workspace forbids it). Read from `/proc/self/exe` instead, the same bytes pass through the
//! kernel's page cache, which is not the process's memory, into the one buffer tract reads a
//! model into and frees once parsed: about 20 MiB less resident for as long as the server
//! runs (docs/performance.md, "Where the memory goes").
//!
//! Where that cannot be done (not Linux, `/proc` not mounted, an executable that cannot be
//! read, data that is not where the mapping says), the bytes are used where they are, as
//! before: slower to release, never wrong. The offset is trusted only when both ends of the
//! bytes read from the file equal the embedded ones. The mapping's device and inode are not
//! compared with the executable's: overlayfs (containers) and btrfs report different ones
//! for the same file.

use std::io::{Cursor, Read};

/// `bytes`, an `include_bytes!` of this binary, to be read once: from the executable's file
/// when that can be done and checked, else from `bytes` themselves.
pub(crate) fn embedded(bytes: &'static [u8]) -> Box<dyn Read> {
    match from_the_executable(bytes) {
        Some(file) => Box::new(file),
        None => {
            tracing::debug!(
                "model: reading the embedded model from memory; its pages stay resident (the executable's file could not be read at its offset)"
            );
            Box::new(Cursor::new(bytes))
        }
    }
}

/// How much of each end is compared with the mapping before the file is trusted: two pages
/// touched, so a wrong offset is caught here rather than by the model's parser.
#[cfg(target_os = "linux")]
const SAMPLE: usize = 4096;

/// The executable's file, positioned at `bytes` and limited to them.
#[cfg(target_os = "linux")]
fn from_the_executable(bytes: &'static [u8]) -> Option<std::io::Take<std::fs::File>> {
    use std::{
        io::{Seek, SeekFrom},
        os::unix::fs::FileExt,
    };

    if bytes.len() < 2 * SAMPLE {
        return None; // Too small to be worth it.
    }
    let start = bytes.as_ptr().addr();
    let end = start.checked_add(bytes.len())?;
    // /proc/self/exe is the file this process runs, even if its path was replaced since.
    let exe = std::fs::File::open("/proc/self/exe").ok()?;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    // The one file-backed mapping that holds all of the bytes (inode 0 is anonymous memory).
    let offset = maps.lines().find_map(|line| {
        let mapping = Mapping::parse(line)?;
        (mapping.low <= start && end <= mapping.high && mapping.inode != 0)
            .then(|| mapping.offset.checked_add(u64::try_from(start - mapping.low).ok()?))
            .flatten()
    })?;
    let length = u64::try_from(bytes.len()).ok()?;
    let tail = bytes.len() - SAMPLE;
    let mut sample = [0; SAMPLE];
    exe.read_exact_at(&mut sample, offset).ok()?;
    if sample[..] != bytes[..SAMPLE] {
        return None;
    }
    exe.read_exact_at(&mut sample, offset + length - SAMPLE as u64).ok()?;
    if sample[..] != bytes[tail..] {
        return None;
    }
    let mut exe = exe;
    exe.seek(SeekFrom::Start(offset)).ok()?;
    Some(exe.take(length))
}

#[cfg(not(target_os = "linux"))]
fn from_the_executable(_: &'static [u8]) -> Option<Cursor<&'static [u8]>> {
    None
}

/// One line of `/proc/self/maps`: `low-high perms offset major:minor inode path`.
#[cfg(target_os = "linux")]
struct Mapping {
    low: usize,
    high: usize,
    /// Where in the file `low` is.
    offset: u64,
    /// 0 for memory that no file backs.
    inode: u64,
}

#[cfg(target_os = "linux")]
impl Mapping {
    fn parse(line: &str) -> Option<Mapping> {
        let mut fields = line.split_ascii_whitespace();
        let (range, _perms, offset, _device, inode) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        let (low, high) = range.split_once('-')?;
        Some(Mapping {
            low: usize::from_str_radix(low, 16).ok()?,
            high: usize::from_str_radix(high, 16).ok()?,
            offset: u64::from_str_radix(offset, 16).ok()?,
            inode: inode.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    static EMBEDDED: &[u8] = include_bytes!("../model/efficientnet_lite0.onnx");

    #[test]
    #[cfg(target_os = "linux")]
    fn the_bytes_read_from_the_executable_are_the_embedded_bytes() {
        assert!(
            from_the_executable(EMBEDDED).is_some(),
            "on Linux the bytes are read from /proc/self/exe"
        );
        let mut read = Vec::new();
        embedded(EMBEDDED).read_to_end(&mut read).expect("read");
        assert!(read == EMBEDDED, "what was read differs from the embedded bytes");
    }

    #[test]
    fn bytes_too_small_to_be_worth_it_are_read_where_they_are() {
        static SMALL: &[u8] = b"not worth a read";
        assert!(from_the_executable(SMALL).is_none());
        let mut read = Vec::new();
        embedded(SMALL).read_to_end(&mut read).expect("read");
        assert_eq!(read, SMALL);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_maps_line_is_read_field_by_field() {
        let m = Mapping::parse("7f12a0000000-7f12a1000000 r--p 00a3c000 fd:01 1234567   /usr/bin/thisthat")
            .expect("a maps line");
        assert_eq!(
            (m.low, m.high, m.offset, m.inode),
            (0x7f12_a000_0000, 0x7f12_a100_0000, 0xa3_c000, 1_234_567)
        );
        let anonymous = Mapping::parse("7f12a1000000-7f12a2000000 rw-p 00000000 00:00 0").expect("a maps line");
        assert_eq!(anonymous.inode, 0);
        assert!(Mapping::parse("not a maps line").is_none());
    }
}
