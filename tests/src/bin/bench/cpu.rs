//! Where the machine's cores go during a figure: the CPU time each process
//! of the system (and the bench's own) spent, read from `/proc` before and
//! after, per operation. It shows what bounds a figure on 2 cores.

use std::time::Instant;

use crate::system::BenchSystem;

/// `/proc/<pid>/stat` counts in clock ticks of 1/100 s on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds spent so far by each part of the system, and by the machine.
pub struct CpuClock {
    at: Instant,
    parts: Vec<(String, f64)>,
    machine_busy: f64,
}

/// What a figure cost in CPU.
pub struct CpuUse {
    /// CPU seconds per part, largest first.
    pub parts: Vec<(String, f64)>,
    /// Cores busy on average over the figure, everything on the machine counted.
    pub cores_busy: f64,
}

impl CpuClock {
    pub fn start(system: &BenchSystem) -> Self {
        Self {
            at: Instant::now(),
            parts: read_parts(system),
            machine_busy: machine_busy_seconds(),
        }
    }

    pub fn stop(self, system: &BenchSystem) -> CpuUse {
        let wall = self.at.elapsed().as_secs_f64();
        let mut parts: Vec<(String, f64)> = read_parts(system)
            .into_iter()
            .map(|(name, now)| {
                let before = self
                    .parts
                    .iter()
                    .find(|(part, _)| *part == name)
                    .map_or(0.0, |(_, seconds)| *seconds);
                (name, (now - before).max(0.0))
            })
            .collect();
        let busy = machine_busy_seconds() - self.machine_busy;
        let attributed: f64 = parts.iter().map(|(_, seconds)| seconds).sum();
        parts.push(("everything else".into(), (busy - attributed).max(0.0)));
        parts.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuUse {
            parts,
            cores_busy: busy / wall,
        }
    }
}

impl CpuUse {
    /// Milliseconds of CPU per operation: the total, then by part.
    pub fn by_part(&self, operations: usize) -> String {
        let per = |seconds: f64| seconds * 1000.0 / operations.max(1) as f64;
        let total: f64 = self.parts.iter().map(|(_, seconds)| per(*seconds)).sum();
        let parts: Vec<String> = self
            .parts
            .iter()
            .filter(|(_, seconds)| per(*seconds) >= 0.005)
            .map(|(name, seconds)| format!("{name} {:.2}", per(*seconds)))
            .collect();
        format!("{total:.2}: {}", parts.join(", "))
    }
}

/// The service processes, nats-server, Postgres (every backend together)
/// and the bench.
fn read_parts(system: &BenchSystem) -> Vec<(String, f64)> {
    let mut parts: Vec<(String, f64)> = system
        .processes()
        .into_iter()
        .filter_map(|(name, pid)| Some((name, process_seconds(&pid.to_string())?)))
        .collect();
    parts.push(("postgres".into(), postgres_seconds()));
    parts.push(("bench".into(), process_seconds("self").unwrap_or(0.0)));
    parts
}

/// User and system CPU seconds of every thread of a process.
fn process_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index)?.parse::<u64>().ok();
    // utime and stime are the 14th and 15th fields, the 12th and 13th after the name.
    Some((ticks(11)? + ticks(12)?) as f64 / TICKS_PER_SECOND)
}

/// Every Postgres process on the machine: the server's backends serve
/// the whole system.
fn postgres_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            pid.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "postgres").then_some(())?;
            process_seconds(&pid)
        })
        .sum()
}

/// Seconds the machine's cores were busy since boot (all but idle and iowait).
fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    total.saturating_sub(idle) as f64 / TICKS_PER_SECOND
}
