//! What the benchmarks read of a process from `/proc`: its CPU and its children's, and its
//! resident memory.

use std::time::Duration;

/// CPU and memory of one process at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessUsage {
    /// User + system CPU of the process itself (`utime` + `stime`).
    pub cpu: Duration,
    /// User + system CPU of the children it has waited for (`cutime` + `cstime`): subprocesses
    /// such as helm, counted once they have exited.
    pub children_cpu: Duration,
    /// Resident set size (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub peak_rss_kib: u64,
}

impl ProcessUsage {
    /// The process `pid`.
    pub fn of(pid: u32) -> std::io::Result<ProcessUsage> {
        Self::read(&format!("/proc/{pid}"))
    }

    /// The calling process.
    pub fn of_self() -> std::io::Result<ProcessUsage> {
        Self::read("/proc/self")
    }

    fn read(dir: &str) -> std::io::Result<ProcessUsage> {
        let status = std::fs::read_to_string(format!("{dir}/status"))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // utime, stime, cutime, cstime: fields 14 to 17 of stat, 12 to 15 after the name.
        let ticks = |i: usize| fields.get(i).copied().unwrap_or(0);
        let per_second = clock_ticks();
        let cpu = |t: u64| Duration::from_secs_f64(t as f64 / per_second);
        Ok(ProcessUsage {
            cpu: cpu(ticks(11) + ticks(12)),
            children_cpu: cpu(ticks(13) + ticks(14)),
            rss_kib: field("VmRSS:"),
            peak_rss_kib: field("VmHWM:"),
        })
    }
}

/// Clock ticks per second (`getconf CLK_TCK`), the unit of `/proc/*/stat` times; read once.
pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_cpu_and_holds_memory() {
        let busy = std::time::Instant::now();
        let mut x = 0u64;
        while busy.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let usage = ProcessUsage::of_self().unwrap();
        assert!(usage.cpu > Duration::ZERO, "{usage:?} ({x})");
        assert!(
            usage.rss_kib > 0 && usage.peak_rss_kib >= usage.rss_kib,
            "{usage:?}"
        );
    }
}
