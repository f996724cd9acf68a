//! The text summary of a [`Report`]: its `Display`, one figure per line.

use std::fmt;

use super::Mode;
use super::report::Report;

/// A rate per second for people: whole numbers from 100 up, three significant digits
/// below (a slow run's 0.13 is not "0").
pub fn rate_text(per_s: f64) -> String {
    match per_s {
        r if r >= 100.0 || r == 0.0 => format!("{r:.0}"),
        r if r >= 10.0 => format!("{r:.1}"),
        r if r >= 1.0 => format!("{r:.2}"),
        r => format!("{r:.3}"),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl fmt::Display for Report {
    /// The summary as `sockit bench` prints it: `target`, `requests`, `throughput`,
    /// `latency µs`, `errors`, `mismatches`, and the lines that apply (datagrams, lost
    /// and extra bytes, rate not reached, load CPU). Merged runs say what was summed.
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let merged = self.is_merged();
        let partial = match (self.partial, merged) {
            (true, false) => " [partial: stopped before its end]",
            (true, true) => " [partial: a merged run was stopped before its end]",
            _ => "",
        };
        let what = if merged {
            format!(
                "{} merged run{}: {}, {}, {} B, {}/{} connections",
                self.runs,
                plural(self.runs),
                self.transport,
                self.mode.as_str(),
                self.size,
                self.connected,
                self.connections,
            )
        } else {
            format!(
                "{}, {}, {} B, {}/{} connections on {} thread{}{}",
                self.transport,
                self.mode.as_str(),
                self.size,
                self.connected,
                self.connections,
                self.threads,
                plural(self.threads),
                self.rate.map_or(String::new(), |r| format!(", rate {r}/s"))
            )
        };
        writeln!(out, "target      {} ({what}){partial}", self.target)?;
        let unit = if self.mode == Mode::Stream {
            "chunks echoed"
        } else {
            "requests"
        };
        if merged {
            // The runs are taken as concurrent: their rates add up; no one duration fits.
            writeln!(
                out,
                "requests    {} {unit} from {} run{}; combined rate {} per second (sum of each run's rate)",
                self.requests,
                self.runs,
                plural(self.runs),
                rate_text(self.rps)
            )?;
            writeln!(
                out,
                "throughput  {:.2} MB/s echoed (sum of each run's; {} bytes sent, {} received)",
                self.mb_per_s, self.bytes_sent, self.bytes_received
            )?;
        } else {
            writeln!(
                out,
                "requests    {} {unit} in {:.2} s: {} per second",
                self.requests,
                self.elapsed.as_secs_f64(),
                rate_text(self.rps)
            )?;
            writeln!(
                out,
                "throughput  {:.2} MB/s echoed ({} bytes sent, {} received)",
                self.mb_per_s, self.bytes_sent, self.bytes_received
            )?;
        }
        if self.unsent > 0 {
            writeln!(
                out,
                "rate        target not reached: {} requests were due, {} sent ({} never sent)",
                self.sent + self.unsent,
                self.sent,
                self.unsent
            )?;
        }
        match &self.latency {
            Some(l) => writeln!(
                out,
                "latency µs  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1}, min {:.1})",
                l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.mean_us, l.min_us
            )?,
            None => writeln!(out, "latency µs  -")?,
        }
        write!(out, "errors      {}", self.errors)?;
        if !self.errors_by_kind.is_empty() {
            let kinds: Vec<String> = self
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            write!(out, " ({})", kinds.join(", "))?;
        }
        if let Some(e) = &self.first_error {
            write!(out, "; first: {}", e.message)?;
        }
        writeln!(out)?;
        writeln!(out, "mismatches  {}", self.mismatches)?;
        if self.transport.is_datagram() {
            writeln!(
                out,
                "datagrams   {} lost, {} truncated, {} late, {} duplicate",
                self.lost, self.truncated, self.late, self.duplicates
            )?;
        }
        if self.lost_bytes > 0 {
            writeln!(out, "lost bytes  {}", self.lost_bytes)?;
        }
        if self.extra_bytes > 0 {
            writeln!(
                out,
                "extra bytes {} (sent by the server beyond those written)",
                self.extra_bytes
            )?;
        }
        if let (Some(c), Some(w)) = (self.cpu_pct, self.cpu_wait_pct) {
            writeln!(
                out,
                "load CPU    {c:.0} % of a CPU; waited for a CPU {w:.1} % of the time{}",
                if w > 5.0 {
                    " (other processes disturbed this run)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_rate_is_not_shown_as_zero() {
        assert_eq!(rate_text(0.13), "0.130");
        assert_eq!(rate_text(2.5), "2.50");
        assert_eq!(rate_text(42.25), "42.2");
        assert_eq!(rate_text(133686.4), "133686");
        assert_eq!(rate_text(0.0), "0");
    }
}
