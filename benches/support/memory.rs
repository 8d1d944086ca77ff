#![allow(dead_code)] // each benchmark uses part of it
//! The process's memory as the kernel counts it (`/proc/self/status`), for
//! the benchmarks that print it.

/// A `kB` line of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The peak resident memory since the process started or since
/// [`reset_peak`].
pub fn peak_mb() -> Option<f64> {
    status_mb("VmHWM:")
}

/// The resident memory now.
pub fn resident_mb() -> Option<f64> {
    status_mb("VmRSS:")
}

/// Starts a new peak at the current resident memory (Linux 4.0 and later),
/// so that what a step costs is not hidden by what came before it.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `12 MB`, or `unavailable` without `/proc`.
pub fn show(mb: Option<f64>) -> String {
    mb.map_or_else(
        || "unavailable (no /proc)".to_owned(),
        |mb| format!("{mb:.0} MB"),
    )
}
