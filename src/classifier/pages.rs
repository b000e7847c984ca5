//! Giving back the resident pages of bytes compiled into the binary once they have been read.
//!
//! The embedded ONNX file (20 MB) is read exactly once, when the engine decodes it; after that
//! its pages stay mapped into the process and count in its resident set for the life of the
//! instance, although nothing reads them again. `release` unmaps them from the process with
//! `madvise(MADV_DONTNEED)`. That is safe only for a read-only private mapping of a file whose
//! resident pages are all the file's own (no copy-on-write page written since): such a page
//! comes back from the file, unchanged, if it is ever read again. On anything else (heap
//! memory, a writable or anonymous mapping, a RELRO page the loader wrote) the call would lose
//! data, so `release` checks `/proc/self/smaps` first and refuses.

use thiserror::Error;

/// Why the pages were not released. None of these is fatal: the bytes stay resident.
#[derive(Debug, Error)]
pub enum ReleaseError {
    /// `/proc/self/smaps` could not be read (no procfs, say).
    #[error("reading /proc/self/smaps: {0}")]
    Smaps(#[from] std::io::Error),
    /// The bytes are not inside one read-only, private, file-backed mapping with no anonymous
    /// pages, so dropping their pages could lose data.
    #[error("the bytes are not in one read-only mapping of a file: {0}")]
    NotFileBacked(String),
    /// The kernel refused the `madvise` call.
    #[error("madvise(MADV_DONTNEED): {0}")]
    Madvise(std::io::Error),
}

/// Unmap the whole pages inside `bytes` from this process; returns how many bytes that was
/// (0 where the slice holds no whole page, and on systems other than Linux). The bytes stay
/// readable: a later read faults their pages back in from the file.
pub fn release(bytes: &'static [u8]) -> Result<usize, ReleaseError> {
    #[cfg(target_os = "linux")]
    {
        linux::release(bytes)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
        Ok(0)
    }
}

/// Hand the heap's free memory back to the system (glibc's `malloc_trim`); elsewhere a no-op.
/// Meant for once, right after the plan is optimised: the load frees some 30 MB (the parsed
/// graph's f32 weights, once packed into the plan) that glibc would otherwise keep for the life
/// of the instance. It lowers the resident set from then on, not its peak.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::ReleaseError;

    pub fn release(bytes: &'static [u8]) -> Result<usize, ReleaseError> {
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let start = (bytes.as_ptr() as usize).div_ceil(page) * page;
        let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
        if end <= start {
            return Ok(0);
        }
        let smaps = std::fs::read_to_string("/proc/self/smaps")?;
        check_file_backed(&smaps, start, end).map_err(ReleaseError::NotFileBacked)?;
        // SAFETY: [start, end) is page-aligned and lies inside `bytes`, which is 'static, so
        // nothing frees or remaps it. `check_file_backed` found it in one read-only private
        // file mapping holding no anonymous page: every page dropped here is the file's own,
        // and the kernel faults it back in from the file on the next read, unchanged. No
        // reference into it is invalidated; only residency changes.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(ReleaseError::Madvise(std::io::Error::last_os_error()));
        }
        Ok(end - start)
    }

    /// Ok if `[start, end)` lies inside one mapping of `smaps` (the text of /proc/self/smaps)
    /// that is read-only, private, backed by a file and holds no anonymous page.
    pub fn check_file_backed(smaps: &str, start: usize, end: usize) -> Result<(), String> {
        let mut lines = smaps.lines();
        while let Some(line) = lines.next() {
            let Some((from, to, header)) = mapping_header(line) else {
                continue;
            };
            if !(from <= start && end <= to) {
                continue;
            }
            let fields: Vec<&str> = header.split_whitespace().collect();
            let (perms, inode) = (fields.first().copied(), fields.get(3).copied());
            let read_only_private =
                perms.is_some_and(|p| p.len() == 4 && &p[1..2] == "-" && p.ends_with('p'));
            if !read_only_private || inode.is_none_or(|i| i == "0") {
                return Err(format!(
                    "mapping {line:?} is not a read-only private file mapping"
                ));
            }
            let anonymous = lines
                .by_ref()
                .take_while(|l| mapping_header(l).is_none())
                .find_map(|l| l.strip_prefix("Anonymous:"))
                .map(|kb| kb.trim().trim_end_matches("kB").trim().to_owned());
            return match anonymous.as_deref() {
                Some("0") => Ok(()),
                Some(kb) => Err(format!("mapping {line:?} holds {kb} kB of anonymous pages")),
                None => Err(format!("mapping {line:?} has no Anonymous field")),
            };
        }
        Err(format!("no single mapping holds {start:#x}-{end:#x}"))
    }

    /// `(start, end, the rest)` of a mapping's first line (`7f..-7f.. r--p 0 fd:01 123 /path`);
    /// None for the `Key: value` lines under it.
    fn mapping_header(line: &str) -> Option<(usize, usize, &str)> {
        let (range, rest) = line.split_once(' ')?;
        let (from, to) = range.split_once('-')?;
        Some((
            usize::from_str_radix(from, 16).ok()?,
            usize::from_str_radix(to, 16).ok()?,
            rest,
        ))
    }

    #[cfg(test)]
    mod tests {
        use super::check_file_backed;

        const SMAPS: &str = "\
1000-5000 r--p 00000000 fd:01 42 /var/task/bootstrap
Size:                 16 kB
Anonymous:             0 kB
5000-6000 r--p 00004000 fd:01 42 /var/task/bootstrap
Anonymous:             4 kB
6000-8000 rw-p 00005000 fd:01 42 /var/task/bootstrap
Anonymous:             0 kB
8000-9000 r--p 00000000 00:00 0 
Anonymous:             0 kB
";

        #[test]
        fn only_clean_read_only_file_mappings_are_released() {
            let cases = [
                (0x1000, 0x5000, Ok(())),
                (0x2000, 0x3000, Ok(())),
                (0x5000, 0x6000, Err("4 kB of anonymous pages")),
                (0x6000, 0x7000, Err("not a read-only private file mapping")),
                (0x8000, 0x9000, Err("not a read-only private file mapping")),
                (0x4000, 0x6000, Err("no single mapping")),
                (0xa000, 0xb000, Err("no single mapping")),
            ];
            for (start, end, expected) in cases {
                let got = check_file_backed(SMAPS, start, end);
                match expected {
                    Ok(()) => assert_eq!(got, Ok(()), "{start:#x}-{end:#x}"),
                    Err(part) => {
                        let err = got.expect_err(&format!("{start:#x}-{end:#x} passed"));
                        assert!(err.contains(part), "{start:#x}-{end:#x}: {err}");
                    }
                }
            }
        }
    }
}
