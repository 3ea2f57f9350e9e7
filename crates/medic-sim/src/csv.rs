//! Histories as CSV: `samples.csv` (one row per agent and step) and `labels.csv` (failures).
//!
//! ```text
//! agent,kind,timestamp_ms,cpu,rss_mb,latency_p50_ms,latency_p99_ms,error_rate,request_rate,queue_depth,open_fds,restarts
//! crewai-1,crewai,1767225600000,0.41,902.3,431.2,1503.8,0.0031,11.7,2,178,0
//! crewai-1,crewai,1767225660000,,,,,,,,,      <- the agent did not answer
//! ```
//! ```text
//! agent,timestamp_ms,kind,precursor_start_ms
//! crewai-1,1767300000000,memory_leak,1767294600000
//! ```
//! The same format is accepted by `medic train --from csv`, so a fleet's real history exported
//! this way trains the same models.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::time::Duration;

use medic_core::Timestamp;

use crate::agent::AgentKind;
use crate::fault::FaultKind;
use crate::history::{AgentHistory, FailureLabel, History};
use crate::metric::{Metric, N_METRICS};

/// Why a history file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// Reading or writing failed.
    #[error("i/o error")]
    Io(#[from] io::Error),
    /// A line is not what the format says.
    #[error("line {line}: {message}")]
    Format {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
}

fn format_err(line: usize, message: impl Into<String>) -> CsvError {
    CsvError::Format {
        line,
        message: message.into(),
    }
}

/// The header of `samples.csv`.
pub fn samples_header() -> String {
    let mut h = String::from("agent,kind,timestamp_ms");
    for m in Metric::ALL {
        h.push(',');
        h.push_str(m.name());
    }
    h
}

/// Writes the samples of `history`.
pub fn write_samples(history: &History, out: &mut impl Write) -> Result<(), CsvError> {
    writeln!(out, "{}", samples_header())?;
    for agent in &history.agents {
        for (step, row) in agent.rows.iter().enumerate() {
            write!(
                out,
                "{},{},{}",
                agent.name,
                agent.kind.name(),
                history.timestamp(step).as_millis()
            )?;
            for v in row {
                if v.is_nan() {
                    out.write_all(b",")?;
                } else {
                    write!(out, ",{v}")?;
                }
            }
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Writes the failure labels of `history`.
pub fn write_labels(history: &History, out: &mut impl Write) -> Result<(), CsvError> {
    writeln!(out, "agent,timestamp_ms,kind,precursor_start_ms")?;
    for f in &history.failures {
        writeln!(
            out,
            "{},{},{},{}",
            history.agents[f.agent].name,
            history.timestamp(f.at_step).as_millis(),
            f.kind.name(),
            history.timestamp(f.precursor_start).as_millis()
        )?;
    }
    Ok(())
}

/// Reads a history written by [`write_samples`] and [`write_labels`].
///
/// Rows of one agent must be at a fixed step, in time order, and every agent must start at the
/// same time; agents are kept in order of first appearance. Look-alike episodes are not part of
/// the format (a real fleet does not label them), so `episodes` is empty.
pub fn read(samples: impl BufRead, labels: impl BufRead) -> Result<History, CsvError> {
    let mut lines = samples.lines().enumerate();
    let (_, header) = lines
        .next()
        .ok_or_else(|| format_err(1, "empty samples file"))?;
    let header = header?;
    if header.trim_end() != samples_header() {
        return Err(format_err(
            1,
            format!("expected header `{}`", samples_header()),
        ));
    }
    let mut agents: Vec<AgentHistory> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut first_ts: Vec<u64> = Vec::new();
    let mut step_ms: Option<u64> = None;
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 3 + N_METRICS {
            return Err(format_err(
                line_no,
                format!("expected {} fields, found {}", 3 + N_METRICS, fields.len()),
            ));
        }
        let kind = AgentKind::parse(fields[1])
            .ok_or_else(|| format_err(line_no, format!("unknown agent kind `{}`", fields[1])))?;
        let ts: u64 = fields[2]
            .parse()
            .map_err(|_| format_err(line_no, format!("bad timestamp `{}`", fields[2])))?;
        let mut row = [f32::NAN; N_METRICS];
        for (slot, text) in row.iter_mut().zip(&fields[3..]) {
            if !text.is_empty() {
                *slot = text
                    .parse()
                    .map_err(|_| format_err(line_no, format!("bad number `{text}`")))?;
            }
        }
        let a = *index.entry(fields[0].to_owned()).or_insert_with(|| {
            agents.push(AgentHistory {
                name: fields[0].to_owned(),
                kind,
                rows: Vec::new(),
            });
            first_ts.push(ts);
            agents.len() - 1
        });
        let n = agents[a].rows.len() as u64;
        if n == 1 && step_ms.is_none() {
            let step = ts
                .checked_sub(first_ts[a])
                .filter(|s| *s > 0)
                .ok_or_else(|| format_err(line_no, "timestamps must increase"))?;
            step_ms = Some(step);
        }
        if let Some(step) = step_ms
            && n > 0
            && ts != first_ts[a] + n * step
        {
            return Err(format_err(
                line_no,
                format!(
                    "expected timestamp {} (fixed step of {step} ms)",
                    first_ts[a] + n * step
                ),
            ));
        }
        agents[a].rows.push(row);
    }
    let start = first_ts.first().copied().unwrap_or(0);
    if let Some(bad) = first_ts.iter().position(|t| *t != start) {
        return Err(format_err(
            0,
            format!(
                "agent `{}` starts at {} but the first starts at {start}",
                agents[bad].name, first_ts[bad]
            ),
        ));
    }
    let step_ms = step_ms.unwrap_or(60_000);
    let to_step = |ts: u64| ts.saturating_sub(start) / step_ms;

    let mut failures = Vec::new();
    let mut lines = labels.lines().enumerate();
    if let Some((_, header)) = lines.next() {
        let header = header?;
        if header.trim_end() != "agent,timestamp_ms,kind,precursor_start_ms" {
            return Err(format_err(
                1,
                "labels: expected header `agent,timestamp_ms,kind,precursor_start_ms`",
            ));
        }
    }
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 4 {
            return Err(format_err(
                line_no,
                format!("labels: expected 4 fields, found {}", f.len()),
            ));
        }
        let agent = *index
            .get(f[0])
            .ok_or_else(|| format_err(line_no, format!("labels: unknown agent `{}`", f[0])))?;
        let at: u64 = f[1]
            .parse()
            .map_err(|_| format_err(line_no, "labels: bad timestamp"))?;
        let kind = FaultKind::parse(f[2])
            .ok_or_else(|| format_err(line_no, format!("labels: unknown fault kind `{}`", f[2])))?;
        let pre: u64 = f[3]
            .parse()
            .map_err(|_| format_err(line_no, "labels: bad precursor timestamp"))?;
        failures.push(FailureLabel {
            agent,
            at_step: to_step(at) as usize,
            kind,
            precursor_start: to_step(pre) as usize,
        });
    }
    Ok(History {
        start: Timestamp::from_millis(start),
        step_s: Duration::from_millis(step_ms).as_secs().max(1),
        agents,
        failures,
        episodes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{HistoryConfig, generate};

    #[test]
    fn round_trip_keeps_values_and_labels() {
        let h = generate(&HistoryConfig::new(9, 5, 1.5));
        let (mut s, mut l) = (Vec::new(), Vec::new());
        write_samples(&h, &mut s).unwrap();
        write_labels(&h, &mut l).unwrap();
        let back = read(&s[..], &l[..]).unwrap();
        assert_eq!(back.agents.len(), h.agents.len());
        assert_eq!(back.failures, h.failures);
        for (a, b) in h.agents.iter().zip(&back.agents) {
            assert_eq!(a.name, b.name);
            for (ra, rb) in a.rows.iter().zip(&b.rows) {
                for (x, y) in ra.iter().zip(rb) {
                    assert!(x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
                }
            }
        }
    }

    #[test]
    fn bad_lines_name_their_line() {
        let header = samples_header();
        let text = format!(
            "{header}\ncrewai-1,crewai,1000,1,2,3,4,5,6,7,8,9\ncrewai-1,crewai,2000,1,2,x,4,5,6,7,8,9\n"
        );
        let err = read(text.as_bytes(), &b""[..]).unwrap_err();
        assert_eq!(err.to_string(), "line 3: bad number `x`");
        let text = format!("{header}\ncrewai-1,crewai,1000,1,2,3\n");
        assert_eq!(
            read(text.as_bytes(), &b""[..]).unwrap_err().to_string(),
            "line 2: expected 12 fields, found 6"
        );
    }
}
