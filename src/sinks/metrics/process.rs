//! The standard process series (`process_*`), with CPU time in fractions of a second.
//!
//! The prometheus crate's process collector counts CPU in whole seconds, so a daemon that uses
//! a few milliseconds per cycle showed `process_cpu_seconds_total 0` for its first minutes and
//! graphed nothing. This collector passes the crate's other families through and writes CPU
//! from `/proc/self/stat` in clock ticks divided by the tick rate.

use prometheus::core::{Collector, Desc};
use prometheus::proto;

/// The process families, CPU in fractions of a second.
pub struct Process {
    inner: prometheus::process_collector::ProcessCollector,
}

impl Process {
    /// The collector for this process.
    pub fn new() -> Self {
        Process {
            inner: prometheus::process_collector::ProcessCollector::for_self(),
        }
    }
}

impl Default for Process {
    fn default() -> Self {
        Self::new()
    }
}

/// User plus system CPU time of this process, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

impl Collector for Process {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let mut families = self.inner.collect();
        if let Some(cpu) = cpu_seconds() {
            for f in families
                .iter_mut()
                .filter(|f| f.name() == "process_cpu_seconds_total")
            {
                for m in f.mut_metric().iter_mut() {
                    let mut c = proto::Counter::default();
                    c.set_value(cpu);
                    m.set_counter(c);
                }
            }
        }
        families
    }
}

/// Written through the generic conversion (no histograms).
impl super::protobuf::Exposable for Process {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_has_fractions_of_a_second() {
        // Burn a little CPU so the figure is above zero even in a fresh process.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let families = Process::new().collect();
        let cpu = families
            .iter()
            .find(|f| f.name() == "process_cpu_seconds_total")
            .map(|f| f.get_metric()[0].get_counter().get_value())
            .expect("process_cpu_seconds_total");
        // Well under a second in this process: whole seconds would read 0.
        assert!(cpu > 0.0, "{cpu}");
    }
}
