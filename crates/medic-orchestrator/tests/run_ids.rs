//! Action ids of processes sharing one journal (the daemon and `medic heal`): each engine
//! numbers within its run's range, so no id is issued twice and recovery attributes every
//! entry to the right target.

mod common;

use std::collections::BTreeSet;

use common::*;
use medic_core::{Outcome, Strategy};
use medic_orchestrator::*;

/// One process: an engine recovered from the shared journal as it stood when it started.
struct Process {
    engine: Engine,
    written: Vec<JournalEntry>,
    acts: Vec<Act>,
}

impl Process {
    fn start(run: u64, journal: &[JournalEntry]) -> Process {
        let mut config = EngineConfig::standard(4);
        config.run = run;
        let engine = Engine::recover(
            vec![target("diag", "t"), target("leaky", "t")],
            tiers(vec![policy("t")]),
            config,
            journal.to_vec(),
        )
        .unwrap();
        Process {
            engine,
            written: vec![],
            acts: vec![],
        }
    }

    fn step(&mut self, t: u64, event: Event) {
        let mut out = Vec::new();
        self.engine.step(at(t), event, &mut out);
        for c in out {
            match c {
                Command::Journal(j) => self.written.push(j),
                Command::Act(a) => self.acts.push(a),
                _ => {}
            }
        }
    }

    /// A finding, then the tick that dispatches it.
    fn finding(&mut self, t: u64, name: &str) {
        self.step(t, Event::Finding(unhealthy(name, t)));
        self.step(t, Event::Tick);
    }
}

fn ids(journal: &[JournalEntry]) -> Vec<ActionId> {
    journal
        .iter()
        .filter_map(|e| match e {
            JournalEntry::Intent { action, .. } => Some(*action),
            _ => None,
        })
        .collect()
}

#[test]
fn two_processes_on_one_journal_never_reuse_an_id_and_recovery_attributes_each_action() {
    // Both start from the same (empty) journal, as a daemon and a `medic heal` run that
    // started before the daemon's first action: each would number from 1 on its own.
    let mut journal: Vec<JournalEntry> = Vec::new();
    let mut daemon = Process::start(1, &journal);
    let mut heal = Process::start(2, &journal);
    daemon.finding(10, "diag");
    heal.finding(11, "leaky");
    let (d, h) = (daemon.acts[0].clone(), heal.acts[0].clone());
    assert_eq!((d.target.as_str(), h.target.as_str()), ("diag", "leaky"));
    assert_ne!(d.action, h.action, "one id for two actions");
    assert_ne!(d.idempotency_key, h.idempotency_key);
    assert_eq!(d.action, ActionId(RUN_ID_SPAN + 1));
    assert_eq!(h.action, ActionId(2 * RUN_ID_SPAN + 1));
    // Both append to the one journal, interleaved.
    journal.append(&mut daemon.written);
    journal.append(&mut heal.written);
    daemon.step(
        12,
        Event::ActionOutcome {
            action: d.action,
            outcome: Outcome::Success,
        },
    );
    heal.step(
        13,
        Event::ActionOutcome {
            action: h.action,
            outcome: Outcome::Failure("exit code 1".into()),
        },
    );
    journal.append(&mut heal.written);
    journal.append(&mut daemon.written);

    // A restarted daemon (a new run) rebuilds each target's state from the right entries.
    let mut again = Process::start(3, &journal);
    assert_eq!(again.engine.stats().recovery_skipped, 0);
    let state = again.engine.durable_state();
    let (diag, leaky) = (&state.targets[0], &state.targets[1]);
    assert_eq!(
        diag.in_flight.map(|f| (f.0, f.1)),
        Some((d.action, ActKind::Heal(Strategy::Restart))),
        "the daemon's action is still being verified"
    );
    assert_eq!(
        leaky.in_flight, None,
        "the heal run's action ended (failed)"
    );
    assert_eq!(leaky.failures, 1, "its failure counts against leaky");
    assert_eq!(diag.failures, 0, "and not against diag");
    // It numbers its own actions in its own range, never reusing one from the journal.
    again.step(
        20,
        Event::VerifyResult {
            action: d.action,
            outcome: Outcome::Success,
        },
    );
    again.finding(400, "leaky");
    let mut all = ids(&journal);
    all.extend(ids(&again.written));
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>().len(),
        all.len(),
        "{all:?}"
    );
    assert_eq!(all[2], ActionId(3 * RUN_ID_SPAN + 1));
}

#[test]
fn a_recovered_engine_of_the_same_run_continues_after_its_own_ids_only() {
    // Run 0 (a single process, the default) after actions of run 5: its numbering is not
    // moved into run 5's range, and it continues after its own.
    let mut other = Process::start(5, &[]);
    other.finding(10, "diag");
    let mut first = Process::start(0, &other.written);
    first.finding(11, "leaky");
    assert_eq!(first.acts[0].action, ActionId(1));
    first.step(
        12,
        Event::ActionOutcome {
            action: ActionId(1),
            outcome: Outcome::Failure("no".into()),
        },
    );
    let mut journal = other.written.clone();
    journal.extend(first.written.clone());
    let mut again = Process::start(0, &journal);
    assert_eq!(again.engine.durable_state().next_action, 2);
    again.finding(400, "leaky");
    assert_eq!(again.acts.last().map(|a| a.action), Some(ActionId(2)));
}

#[test]
fn a_target_in_cooldown_says_so() {
    let mut p = Process::start(0, &[]);
    p.finding(10, "leaky");
    let a = p.acts[0].action;
    p.step(
        11,
        Event::ActionOutcome {
            action: a,
            outcome: Outcome::Success,
        },
    );
    p.step(16, Event::Tick);
    p.step(
        17,
        Event::VerifyResult {
            action: a,
            outcome: Outcome::Success,
        },
    );
    p.finding(20, "leaky");
    assert_eq!(p.acts.len(), 1);
    let view = p.engine.target_view("leaky").unwrap();
    assert_eq!(view.waiting, Some(Waiting::Cooldown(at(310))), "{view:?}");
    assert_eq!(p.engine.target_view("diag").unwrap().waiting, None);
}
