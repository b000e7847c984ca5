//! One field of a Linux process's `/proc/<pid>/status`, in MB: shared by the memory tests.

/// `field` (e.g. `"VmHWM"`, `"RssAnon"`) of `/proc/<pid>/status` (`pid` "self" for this
/// process), converted from the kernel's kB to MB. Panics with the field's name when absent:
/// these tests run on Linux only.
pub fn status_mb(pid: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let prefix = format!("{field}:");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kb / 1024.0
}
