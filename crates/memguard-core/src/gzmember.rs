//! gzip members made with one deflate state per thread, reset between
//! members. The recorder finishes a member every second; a new encoder each
//! time allocated and freed the deflate state (~270 KB at level 3) every
//! second, and under load that churn left the recorder thread's glibc arena
//! growing ~4 MiB a minute with nothing held growing (`bench:soak-rss`).

use std::cell::RefCell;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// gzip level 3, as for snapshots: measured at ~3,000 GC records/s, the
/// recorder thread spends a third less CPU time than at level 6 for a file
/// ~10 % larger (level 1: 60 % larger for little more saved).
const LEVEL: u32 = 3;

/// RFC 1952 header: deflate, no flags, no mtime, default extra flags,
/// OS unknown (as flate2's own `GzEncoder` writes it).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

thread_local! {
    static DEFLATE: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// `plain` as one whole gzip member (header, raw deflate, CRC-32, length).
pub fn member(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() / 6 + 64);
    DEFLATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        let deflate = cell.get_or_insert_with(|| Compress::new(Compression::new(LEVEL), false));
        deflate.reset();
        out.extend_from_slice(&HEADER);
        loop {
            out.reserve(plain.len() / 8 + 64);
            let consumed = deflate.total_in() as usize;
            match deflate.compress_vec(&plain[consumed..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => continue, // out of room: reserve more
                // Only on a misused stream; a fresh one next time.
                Err(_) => {
                    *cell = None;
                    out.clear();
                    return;
                }
            }
        }
        let mut crc = Crc::new();
        crc.update(plain);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        MultiGzDecoder::new(bytes).read_to_end(&mut plain).unwrap();
        plain
    }

    #[test]
    fn members_from_one_reused_state_concatenate_into_one_stream() {
        // Large enough to need more output room than first reserved, and
        // barely compressible so the loop runs more than once.
        let noisy: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let parts: [&[u8]; 4] = [b"{\"type\":\"gc\"}\n", b"", &noisy, b"{\"type\":\"sample\"}\n"];
        let file: Vec<u8> = parts.iter().flat_map(|p| member(p)).collect();
        assert_eq!(gunzip(&file), parts.concat());
    }

    #[test]
    fn each_member_decodes_alone_like_flate2s_own() {
        let plain = b"{\"type\":\"gc\",\"t\":1.5}\n".repeat(500);
        let ours = member(&plain);
        assert_eq!(gunzip(&ours), plain);
        let mut theirs = flate2::write::GzEncoder::new(Vec::new(), Compression::new(LEVEL));
        std::io::Write::write_all(&mut theirs, &plain).unwrap();
        assert_eq!(ours, theirs.finish().unwrap(), "same bytes as a GzEncoder at the same level");
    }
}
