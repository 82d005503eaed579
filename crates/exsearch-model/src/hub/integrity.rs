//! Checking downloaded bytes against what the hub announced: sha256 for LFS
//! files, git blob sha1 for small files, the size for anything else.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use sha1::Digest as _;

use super::download::Check;

/// Hashes the bytes already in a partial file (at most `limit`).
pub(super) fn hash_prefix(
    file: &mut File,
    hasher: &mut Hasher,
    limit: u64,
) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len > limit {
        file.set_len(0)?;
        return Ok(0);
    }
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
    }
    Ok(done)
}

/// The checksum a hub etag stands for.
pub(super) enum Hasher {
    Sha256(sha2::Sha256, String, u64, u64),
    GitSha1(sha1::Sha1, String, u64, u64),
    Size(u64, u64),
}

impl Hasher {
    pub(super) fn for_etag(etag: &str, size: u64) -> Self {
        let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
        match etag.len() {
            64 if hex => Self::Sha256(sha2::Sha256::new(), etag.to_ascii_lowercase(), size, 0),
            40 if hex => {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                Self::GitSha1(h, etag.to_ascii_lowercase(), size, 0)
            }
            _ => Self::Size(size, 0),
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h, _, _, n) => {
                h.update(data);
                *n += data.len() as u64;
            }
            Self::GitSha1(h, _, _, n) => {
                h.update(data);
                *n += data.len() as u64;
            }
            Self::Size(_, n) => *n += data.len() as u64,
        }
    }

    pub(super) fn verify(self) -> std::result::Result<Check, String> {
        let size_check = |want: u64, got: u64| {
            if want == got {
                Ok(())
            } else {
                Err(format!("size {got} bytes, the hub announced {want}"))
            }
        };
        match self {
            Self::Sha256(h, want, size, n) => {
                size_check(size, n)?;
                let got = hex::encode(h.finalize());
                if got == want {
                    Ok(Check::Sha256)
                } else {
                    Err(format!("sha256 {got}, the hub announced {want}"))
                }
            }
            Self::GitSha1(h, want, size, n) => {
                size_check(size, n)?;
                let got = hex::encode(h.finalize());
                if got == want {
                    Ok(Check::GitSha1)
                } else {
                    Err(format!("git sha1 {got}, the hub announced {want}"))
                }
            }
            Self::Size(size, n) => size_check(size, n).map(|()| Check::Size),
        }
    }
}
