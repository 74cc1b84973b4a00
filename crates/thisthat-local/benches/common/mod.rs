//! What the benches share.

/// The process's resident set now and at its peak since the last reset, in KiB.
pub fn rss_kib() -> (u64, u64) {
    let m = memory_kib();
    (m.rss, m.peak)
}

/// The process's memory as `/proc/self/status` reports it, in KiB.
#[allow(dead_code)] // Not every bench that shares this module splits the resident set.
pub struct Memory {
    /// Resident now (VmRSS) and at its peak (VmHWM).
    pub rss: u64,
    pub peak: u64,
    /// Resident now: anonymous memory (the heap, stacks) and file pages (the binary's own,
    /// the embedded models among them).
    pub anon: u64,
    pub file: u64,
}

/// The process's memory now.
pub fn memory_kib() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}
