//! CPU time and resident memory of a process, read from `/proc/<pid>/stat` and
//! `/proc/<pid>/status` (Linux).

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// When it was read.
    pub at: Instant,
    /// User + system CPU time so far, seconds.
    pub cpu_secs: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Threads.
    pub threads: u64,
}

impl ProcSample {
    /// Reads process `pid` (`None`: this process); `None` when it is gone or not Linux.
    pub fn read(pid: Option<u32>) -> Option<ProcSample> {
        let base = pid.map_or_else(|| "/proc/self".to_owned(), |pid| format!("/proc/{pid}"));
        let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
        let status = std::fs::read_to_string(format!("{base}/status")).ok()?;
        let (cpu_secs, threads) = parse_stat(&stat)?;
        Some(ProcSample {
            at: Instant::now(),
            cpu_secs,
            rss_kib: parse_rss_kib(&status)?,
            threads,
        })
    }

    /// CPU used between `earlier` and this sample, in cores (1.0 = one core busy).
    pub fn cores_since(&self, earlier: &ProcSample) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        (self.cpu_secs - earlier.cpu_secs).max(0.0) / wall
    }
}

/// (utime + stime in seconds, threads) from a `stat` line. The command name may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(f64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) ... num_threads(17).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let threads: u64 = fields.get(17)?.parse().ok()?;
    Some(((utime + stime) as f64 / TICKS_PER_SEC, threads))
}

/// `VmRSS` of a `status` file, KiB.
fn parse_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 7 0 12345 1000 300 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((3.0, 7)));
    }

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\tswitchboard\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(12345));
    }

    #[test]
    fn this_process_can_be_read() {
        let sample = ProcSample::read(None).expect("/proc/self is readable");
        assert!(sample.rss_kib > 0 && sample.threads >= 1);
    }
}
