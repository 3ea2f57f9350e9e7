//! Acknowledged writes survive SIGKILL.
//!
//! The test re-executes its own binary as a child that appends journal entries and sample
//! batches in a tight loop and prints each acknowledged write on stdout. The parent kills it
//! with SIGKILL while it writes, reopens the database and checks that every acknowledged entry
//! is there and the file is sound. Three rounds on the same file, so a later round also checks
//! what the earlier, killed rounds left behind.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};

use medic_core::{MetricSample, TargetId, Timestamp};
use medic_store::{JournalEntry, Store};
use serde_json::json;

const CHILD_DB: &str = "MEDIC_STORE_CRASH_CHILD_DB";
const CHILD_ROUND: &str = "MEDIC_STORE_CRASH_CHILD_ROUND";
const BATCH: u64 = 50;

/// Kills the child if the test fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's side: only does something when started by `acknowledged_writes_survive_sigkill`.
#[test]
#[ignore = "child process of acknowledged_writes_survive_sigkill"]
fn crash_child_writer() {
    let (Ok(path), Ok(round)) = (std::env::var(CHILD_DB), std::env::var(CHILD_ROUND)) else {
        return;
    };
    let round: u64 = round.parse().unwrap();
    let mut store = Store::open(&path).unwrap();
    let target = TargetId::new(format!("t{round}"));
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let seq = store
            .append_journal(&JournalEntry {
                at: Timestamp::from_millis(i),
                target: target.clone(),
                kind: "intent".to_owned(),
                idempotency_key: Some(format!("{round}/{i}")),
                payload: json!({ "round": round, "i": i }),
            })
            .unwrap();
        writeln!(out, "ack journal {seq} {round} {i}").unwrap();
        out.flush().unwrap();
        if i % 4 == 0 {
            let batch: Vec<MetricSample> = (0..BATCH)
                .map(|k| MetricSample {
                    target: target.clone(),
                    name: format!("m{}", k % 5),
                    labels: vec![("k".to_owned(), (k / 5).to_string())],
                    value: (i * 1000 + k) as f64,
                    at: Timestamp::from_millis(i),
                })
                .collect();
            store.insert_samples(&batch).unwrap();
            writeln!(out, "ack samples {round} {i}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[derive(Debug)]
struct Acks {
    journal: Vec<(u64, u64)>,
    sample_batches: Vec<u64>,
}

fn run_and_kill(path: &std::path::Path, round: u64, kill_after: usize) -> Acks {
    let exe = std::env::current_exe().unwrap();
    let child = Command::new(exe)
        .args([
            "crash_child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, path)
        .env(CHILD_ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut acks = Acks {
        journal: Vec::new(),
        sample_batches: Vec::new(),
    };
    let parse = |line: &str, acks: &mut Acks| {
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["ack", "journal", seq, r, i] => {
                assert_eq!(r.parse::<u64>().unwrap(), round);
                acks.journal
                    .push((seq.parse().unwrap(), i.parse().unwrap()));
            }
            ["ack", "samples", r, i] => {
                assert_eq!(r.parse::<u64>().unwrap(), round);
                acks.sample_batches.push(i.parse().unwrap());
            }
            _ => {} // libtest's own chatter
        }
    };
    while acks.journal.len() < kill_after {
        let line = lines
            .next()
            .expect("child stopped before being killed")
            .unwrap();
        parse(&line, &mut acks);
    }
    child.0.kill().unwrap(); // SIGKILL
    let status = child.0.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "child was not killed: {status}");
    // Acks printed before the kill are still in the pipe: they count too.
    for line in lines {
        parse(&line.unwrap(), &mut acks);
    }
    acks
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut all_acked: Vec<(u64, u64, u64)> = Vec::new(); // (seq, round, i)
    for round in 0..3u64 {
        let acks = run_and_kill(&path, round, 150 + 97 * round as usize);
        assert!(!acks.journal.is_empty() && !acks.sample_batches.is_empty());
        all_acked.extend(acks.journal.iter().map(|(seq, i)| (*seq, round, *i)));

        let store = Store::open(&path).expect("database must open cleanly after SIGKILL");
        store.check_integrity().unwrap();
        let journal = store.journal_all().unwrap();
        assert!(journal.windows(2).all(|w| w[0].seq < w[1].seq));
        for (seq, r, i) in &all_acked {
            let rec = journal
                .iter()
                .find(|rec| rec.seq == *seq)
                .unwrap_or_else(|| panic!("acknowledged journal entry {seq} lost"));
            assert_eq!(rec.entry.payload, json!({ "round": r, "i": i }));
            assert_eq!(
                rec.entry.idempotency_key.as_deref(),
                Some(&*format!("{r}/{i}"))
            );
        }
        for i in &acks.sample_batches {
            let at = Timestamp::from_millis(*i);
            let n: usize = (0..5)
                .map(|m| {
                    store
                        .samples(
                            &format!("t{round}"),
                            &format!("m{m}"),
                            at..Timestamp::from_millis(i + 1),
                        )
                        .unwrap()
                        .len()
                })
                .sum();
            assert_eq!(
                n as u64, BATCH,
                "acknowledged sample batch {i} of round {round} incomplete"
            );
        }
        eprintln!(
            "round {round}: {} journal entries and {} sample batches acknowledged before SIGKILL, all present ({} entries in the journal)",
            acks.journal.len(),
            acks.sample_batches.len(),
            journal.len()
        );
    }
}
