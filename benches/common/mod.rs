//! What the benchmarks share: command-line numbers, medians and the peak resident set.
// Each benchmark is its own crate and uses part of this.
#![allow(dead_code)]

/// The number after `name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The peak resident set of this process, from /proc (KiB; 0 where there is none).
pub fn peak_rss_kib() -> u64 {
    status_kib("self", "VmHWM:")
}

/// A KiB figure (`VmRSS:`, `VmHWM:`) of process `pid` (or `self`), from /proc; 0 where there
/// is none.
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
