//! Carrying out the engine's acts: strategy → the target's configured action (or its
//! supervisor), then the action's post-condition.
//!
//! An act is resolved in this order:
//! 1. the target's `actions:` entry for the strategy: exec, http, or `supervisor: true` (the
//!    supervisor's own restart / reset / recreate / scale; validation gives every
//!    `supervise:` target supervisor restart and reset unless configured otherwise);
//! 2. otherwise the act fails with "no … action configured", which the engine treats as a
//!    failed attempt (it never plans such options, so this is a guard).
//!
//! A configured action that reports success is then checked against its `post_condition`
//! (if any). A post-condition that fails turns the success into a failure whose reason
//! starts with `shadow error:` — the action said it worked but did not do its job.
//!
//! Circuits: the `circuit_break` act runs the target's `actions.circuit_break` (which stops
//! work going to it); when the engine closes the circuit, the driver runs that action's
//! `close` ([`Dispatcher::close_circuit`]), an exec or http action like any other (same
//! placeholders, timeout, output capture and post-condition), to let work flow again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medic_core::{Outcome, Strategy};
use medic_orchestrator::{Act, ActKind};
use medic_policy::{ActionKind, ActionSpec, Check, Target};

use crate::exec::{self, ExecLimits, Vars};
use crate::http::{self, HttpRequest};
use crate::supervise::{Supervisor, outcome_of};

/// How an act ended, with what it printed (kept for diagnosis).
#[derive(Clone, Debug, PartialEq)]
pub struct ActReport {
    /// The outcome to hand to the engine.
    pub outcome: Outcome,
    /// The last lines the action printed (stdout then stderr), at most a few KiB.
    pub output: Vec<String>,
    /// Which actuator ran it, e.g. `exec`, `http`, `supervisor`, `none`.
    pub via: &'static str,
}

impl ActReport {
    fn failed(reason: impl Into<String>) -> ActReport {
        ActReport {
            outcome: Outcome::Failure(reason.into()),
            output: Vec::new(),
            via: "none",
        }
    }
}

/// The actuators the daemon dispatches to.
#[derive(Clone)]
pub struct Dispatcher {
    client: reqwest::Client,
    prober: medic_collect::probe::Prober,
    supervisor: Option<Supervisor>,
    seen: Arc<Mutex<HashSet<String>>>,
}

impl Dispatcher {
    /// Dispatches with `client` for http actions, `prober` for post-conditions, and
    /// `supervisor` for supervised targets.
    pub fn new(
        client: reqwest::Client,
        prober: medic_collect::probe::Prober,
        supervisor: Option<Supervisor>,
    ) -> Dispatcher {
        Dispatcher {
            client,
            prober,
            supervisor,
            seen: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// Carries out `act` on `target`. Never panics and never returns an error: every problem
    /// is a failed outcome with its reason. An idempotency key seen before is not run again
    /// (the outcome is `Skipped`).
    pub async fn carry_out(&self, act: &Act, target: &Target) -> ActReport {
        if act.dry_run {
            return ActReport {
                outcome: Outcome::Skipped("dry run".into()),
                output: Vec::new(),
                via: "none",
            };
        }
        let fresh = self
            .seen
            .lock()
            .map(|mut s| s.insert(act.idempotency_key.clone()))
            .unwrap_or(true);
        if !fresh {
            return ActReport {
                outcome: Outcome::Skipped(format!("{} already carried out", act.idempotency_key)),
                output: Vec::new(),
                via: "none",
            };
        }
        let (spec, strategy_name) = match act.kind {
            ActKind::Fallback => (target.fallback.as_ref(), "fallback"),
            ActKind::Heal(strategy) => (target.actions.get(&strategy), strategy.as_str()),
        };
        let vars = Vars {
            target: target.name.as_str().to_owned(),
            replicas: act.replicas,
            strategy: strategy_name.to_owned(),
            action_id: act.action.to_string(),
        };
        let Some(spec) = spec else {
            return ActReport::failed(format!(
                "no {strategy_name} action configured for {}",
                target.name
            ));
        };
        let report = match (&spec.kind, act.kind) {
            (ActionKind::Supervisor, ActKind::Heal(strategy)) => {
                self.supervise(strategy, act.replicas, target).await
            }
            (ActionKind::Supervisor, ActKind::Fallback) => {
                ActReport::failed("the supervisor has no fallback; configure an exec or http one")
            }
            _ => self.run_spec(spec, &vars).await,
        };
        self.post_condition(report, spec, target, strategy_name)
            .await
    }

    /// Runs the `close` of the target's `circuit_break` action: lets work flow to it again
    /// once its circuit closed. `None` when none is configured.
    pub async fn close_circuit(&self, target: &Target) -> Option<ActReport> {
        let spec = target
            .actions
            .get(&Strategy::CircuitBreak)?
            .close
            .as_deref()?;
        let vars = Vars {
            target: target.name.as_str().to_owned(),
            replicas: None,
            strategy: "circuit_close".to_owned(),
            action_id: String::new(),
        };
        let report = match spec.kind {
            // Refused by validation; kept as a clear failure rather than a panic.
            ActionKind::Supervisor => {
                ActReport::failed("the supervisor cannot close a circuit; configure exec or http")
            }
            _ => self.run_spec(spec, &vars).await,
        };
        Some(
            self.post_condition(report, spec, target, "circuit close")
                .await,
        )
    }

    /// A success whose post-condition fails becomes a shadow error.
    async fn post_condition(
        &self,
        mut report: ActReport,
        spec: &ActionSpec,
        target: &Target,
        what: &str,
    ) -> ActReport {
        if report.outcome == Outcome::Success
            && let Some(check) = &spec.post_condition
        {
            let (outcome, _) = self
                .prober
                .run_check(
                    &target.name,
                    check,
                    spec.timeout.min(Duration::from_secs(30)),
                )
                .await;
            if let Some(why) = outcome.error() {
                report.outcome = Outcome::Failure(format!(
                    "shadow error: the {what} action reported success but its post-condition failed: {why}"
                ));
            }
        }
        report
    }

    /// The supervisor's own restart / reset / recreate / scale.
    async fn supervise(
        &self,
        strategy: Strategy,
        replicas: Option<u32>,
        target: &Target,
    ) -> ActReport {
        let Some(supervisor) = &self.supervisor else {
            return ActReport::failed("no supervisor runs in this process");
        };
        let name = &target.name;
        let outcome = match strategy {
            Strategy::Restart => outcome_of(&supervisor.restart(name).await),
            Strategy::Reset => outcome_of(&supervisor.reset(name).await),
            Strategy::Recreate => outcome_of(&supervisor.recreate(name).await),
            Strategy::Scale => match replicas {
                Some(n) => outcome_of(&supervisor.scale(name, n).await),
                None => Outcome::Failure("scale without a replica count".into()),
            },
            other => Outcome::Failure(format!(
                "the supervisor does restart, reset, recreate and scale, not {}",
                other.as_str()
            )),
        };
        ActReport {
            outcome,
            output: supervisor
                .output_tail(name)
                .into_iter()
                .rev()
                .take(20)
                .rev()
                .collect(),
            via: "supervisor",
        }
    }

    async fn run_spec(&self, spec: &ActionSpec, vars: &Vars) -> ActReport {
        match &spec.kind {
            ActionKind::Exec { argv, shell } => {
                let r = exec::run(argv, *shell, vars, ExecLimits::with_timeout(spec.timeout)).await;
                let mut output = tail_lines(&r.stdout.text(), 20);
                output.extend(tail_lines(&r.stderr.text(), 20));
                ActReport {
                    outcome: r.outcome,
                    output,
                    via: "exec",
                }
            }
            ActionKind::Supervisor => {
                ActReport::failed("a supervisor action reached the exec path")
            }
            ActionKind::Http {
                method,
                url,
                body,
                expect_status,
            } => {
                let req = HttpRequest {
                    method,
                    url,
                    body: body.as_deref(),
                    expect_status: *expect_status,
                };
                let r = http::run(&self.client, req, spec.timeout, http::DEFAULT_BODY_CAP).await;
                ActReport {
                    outcome: r.outcome,
                    output: tail_lines(&String::from_utf8_lossy(&r.body), 20),
                    via: "http",
                }
            }
        }
    }
}

/// How a supervised target's instances look after an action (see [`check_instances`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstancesCheck {
    /// Every instance runs (and is ready, where that can be checked).
    Ok,
    /// An instance runs but is not ready yet: worth checking again until the deadline.
    NotReady(String),
    /// An instance is not running: the supervisor does not restart on its own, so it will
    /// not come back before the deadline.
    Down(String),
}

/// Checks every instance the supervisor keeps for `target` — one per slot, so after a scale
/// the wanted number — for a running process; then, for instances with ports of their own,
/// the target's readiness probes that aim at slot 0's port (an `http` URL or `tcp` address
/// with that port), on each instance's port instead. Slot 0 itself is what the target's
/// probes check, so it is left to them.
pub async fn check_instances(
    supervisor: &Supervisor,
    prober: &medic_collect::probe::Prober,
    target: &Target,
) -> InstancesCheck {
    let Some(status) = supervisor.status(&target.name) else {
        return InstancesCheck::Down("the target is not supervised".into());
    };
    if status.instances.is_empty() {
        return InstancesCheck::Down("the supervised process is not running".into());
    }
    for i in &status.instances {
        if i.pid.is_none() {
            let exit = i.last_exit.map_or_else(String::new, |e| format!(": {e}"));
            let port = i.port.map_or_else(String::new, |p| format!(", port {p}"));
            return InstancesCheck::Down(format!(
                "supervised instance {} (slot {} of {}{port}) is not running{exit}",
                i.instance,
                i.slot,
                status.instances.len()
            ));
        }
    }
    let Some(base) = status.instances[0].port else {
        return InstancesCheck::Ok;
    };
    for p in &target.probes {
        if p.level != medic_core::ProbeLevel::Readiness {
            continue;
        }
        for i in &status.instances[1..] {
            let Some(check) = i.port.and_then(|port| check_on_port(&p.check, base, port)) else {
                continue;
            };
            let (outcome, _) = prober.run_check(&target.name, &check, p.timeout).await;
            if let Some(e) = outcome.error() {
                return InstancesCheck::NotReady(format!(
                    "readiness of supervised instance {} (slot {}, port {}): {e}",
                    i.instance,
                    i.slot,
                    i.port.unwrap_or(0)
                ));
            }
        }
    }
    InstancesCheck::Ok
}

/// `check` aimed at `port` instead of `base`; `None` when it does not aim at `base`.
fn check_on_port(check: &Check, base: u16, port: u16) -> Option<Check> {
    match check {
        Check::Http { url, .. } => {
            let mut parsed = reqwest::Url::parse(url).ok()?;
            if parsed.port_or_known_default() != Some(base) || parsed.set_port(Some(port)).is_err()
            {
                return None;
            }
            let mut moved = check.clone();
            if let Check::Http { url, .. } = &mut moved {
                *url = parsed.to_string();
            }
            Some(moved)
        }
        Check::Tcp { addr } => {
            let (host, p) = addr.rsplit_once(':')?;
            (p.parse::<u16>().ok()? == base).then(|| Check::Tcp {
                addr: format!("{host}:{port}"),
            })
        }
        Check::Process { .. } | Check::Exec { .. } => None,
    }
}

fn tail_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| (*l).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> Check {
        Check::Http {
            url: url.to_owned(),
            status_min: 200,
            status_max: 399,
            body_contains: None,
            max_latency: None,
        }
    }

    #[test]
    fn readiness_checks_move_to_an_instance_port_only_when_aimed_at_the_base_port() {
        assert_eq!(
            check_on_port(&http("http://127.0.0.1:8100/ready"), 8100, 8102),
            Some(http("http://127.0.0.1:8102/ready"))
        );
        assert_eq!(
            check_on_port(&http("http://127.0.0.1:9000/ready"), 8100, 8102),
            None
        );
        assert_eq!(check_on_port(&http("not a url"), 8100, 8102), None);
        assert_eq!(
            check_on_port(
                &Check::Tcp {
                    addr: "127.0.0.1:8100".into()
                },
                8100,
                8101
            ),
            Some(Check::Tcp {
                addr: "127.0.0.1:8101".into()
            })
        );
        assert_eq!(
            check_on_port(
                &Check::Exec {
                    argv: vec!["true".into()]
                },
                8100,
                8101
            ),
            None
        );
    }
}
