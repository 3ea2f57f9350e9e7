//! A real API server on 127.0.0.1:0 over a demo-like fleet view, and a task standing in for
//! the daemon's side of the request channel (it answers like the daemon would and keeps what
//! it was asked, so tests can check what reached it).

#![allow(dead_code)] // each test binary uses a different part

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use medic_api::{
    ActionView, ApiRequest, ApiState, ApprovalView, FindingSummary, FleetView, IncidentStatus,
    IncidentView, MaintenanceView, Rejection, Secret, TargetView,
};
use medic_core::{HealthState, Severity, Strategy, TargetId, Timestamp};
use medic_orchestrator::{ActionId, ApprovalId, MaintenanceScope};
use medic_strategy::AttemptResult;
use tokio::sync::{mpsc, oneshot};

/// The six targets of the demo fleet, two tiers.
pub const TARGETS: [(&str, &str); 6] = [
    ("api-gateway", "critical"),
    ("orders", "critical"),
    ("payments", "critical"),
    ("search", "standard"),
    ("mailer", "standard"),
    ("thumbnailer", "standard"),
];

pub struct Server {
    pub base: String,
    pub state: ApiState,
    /// Requests that reached the "daemon", as debug text.
    pub seen: Arc<Mutex<Vec<String>>>,
    pub alerts: Arc<Mutex<Vec<medic_api::ExternalAlert>>>,
    /// Signalled (one stored permit) each time alerts reach the "daemon".
    pub alerts_arrived: Arc<tokio::sync::Notify>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the server stops after its shutdown signal")
                .expect("the server task ends without panicking");
        }
    }
}

pub fn demo_view() -> FleetView {
    let now = Timestamp::from_secs(1_790_000_000);
    let mut v = FleetView {
        now,
        ..FleetView::default()
    };
    for (i, (name, tier)) in TARGETS.iter().enumerate() {
        let mut t = TargetView::new(TargetId::new(name), *tier);
        t.state = match i {
            1 => HealthState::Unhealthy,
            3 => HealthState::Degraded,
            _ => HealthState::Healthy,
        };
        t.pid = Some(4000 + i as u32);
        for k in 0..120u64 {
            let x = k as f64 / 10.0;
            let bump = if i == 3 {
                (k as f64 / 120.0).powi(3)
            } else {
                0.0
            };
            t.anomaly.push(
                now - Duration::from_secs(120 - k),
                0.35 + 0.05 * (x + i as f64).sin() + 0.5 * bump,
            );
            t.probability
                .push(now - Duration::from_secs(120 - k), 0.02 + 0.8 * bump);
        }
        if i == 1 {
            t.last_finding = Some(FindingSummary {
                at: now - Duration::from_secs(4),
                severity: Severity::Critical,
                summary: "liveness failing: connection refused".into(),
            });
        }
        if i == 3 {
            t.last_finding = Some(FindingSummary {
                at: now - Duration::from_secs(30),
                severity: Severity::Warning,
                summary: "memory leak predicted: p=0.81 within 10 min".into(),
            });
        }
        v.targets.push(t);
    }
    v.incidents.push(IncidentView {
        id: 12,
        target: TargetId::new("orders"),
        opened_at: now - Duration::from_secs(4),
        severity: Severity::Critical,
        summary: "liveness failing: connection refused".into(),
        status: IncidentStatus::Healing,
        attempts: 1,
        diagnosis: None,
    });
    for (id, target, outcome, dur) in [
        (1, "payments", AttemptResult::Success, Some(640)),
        (2, "search", AttemptResult::Failure, Some(5200)),
        (3, "orders", AttemptResult::Pending, None),
    ] {
        v.actions.push(ActionView {
            id: ActionId(id),
            target: TargetId::new(target),
            strategy: Some(Strategy::Restart),
            outcome,
            started_at: now - Duration::from_secs(100 - id * 20),
            duration_ms: dur,
            reason: "liveness failing 3 times".into(),
            dry_run: false,
            output: if id == 2 {
                vec![
                    "stopping search".into(),
                    "search: <b>still bound</b>".into(),
                ]
            } else {
                Vec::new()
            },
        });
    }
    v.mttr_seconds = Some(0.64);
    v.healed = 1;
    v.maintenance.push(MaintenanceView {
        id: 5,
        scope: MaintenanceScope::Tier("standard".into()),
        until: now + Duration::from_secs(600),
        reason: "deploy".into(),
    });
    v.approvals.push(ApprovalView {
        id: ApprovalId(3),
        target: TargetId::new("payments"),
        strategy: Strategy::Rollback,
        reason: "high risk: rollback needs approval".into(),
        deadline: now + Duration::from_secs(300),
    });
    v.learned = medic_api::LearnedView {
        source: "journal only".into(),
        observed: 4,
        rates: vec![medic_api::LearnedRow {
            key: "sig:-|-|-|liveness|standard".into(),
            strategy: Strategy::Restart,
            successes: 1,
            attempts: 4,
        }],
    };
    v
}

pub async fn start(token: Option<&str>) -> Server {
    let metrics = medic_api::install_metrics();
    let view = Arc::new(RwLock::new(demo_view()));
    let (tx, mut rx) = mpsc::channel::<ApiRequest>(16);
    let state = ApiState::new(view.clone(), tx, token.map(Secret::new), metrics);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let alerts_arrived = Arc::new(tokio::sync::Notify::new());
    {
        let seen = seen.clone();
        let alerts = alerts.clone();
        let alerts_arrived = alerts_arrived.clone();
        let view = view.clone();
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                seen.lock().unwrap().push(format!("{req:?}"));
                match req {
                    ApiRequest::Maintenance { scope, reply, .. } => {
                        let known = match &scope {
                            MaintenanceScope::Target(t) => {
                                view.read().unwrap().target(t.as_str()).is_some()
                            }
                            MaintenanceScope::Tier(t) => {
                                view.read().unwrap().targets.iter().any(|x| &x.tier == t)
                            }
                        };
                        let _ = reply.send(if known {
                            Ok(7)
                        } else {
                            Err(Rejection::NotFound(format!("unknown scope {scope:?}")))
                        });
                    }
                    ApiRequest::EndMaintenance { id, reply } => {
                        let _ = reply.send(if id == 5 {
                            Ok(())
                        } else {
                            Err(Rejection::NotFound(format!("no maintenance window {id}")))
                        });
                    }
                    ApiRequest::Approval { id, reply, .. } => {
                        let _ = reply.send(match id.0 {
                            3 => Ok(()),
                            4 => Err(Rejection::Conflict("already decided".into())),
                            _ => Err(Rejection::NotFound(format!("no approval {id}"))),
                        });
                    }
                    ApiRequest::Alerts { alerts: a, reply } => {
                        let v = view.read().unwrap();
                        let matched = a
                            .iter()
                            .filter(|x| v.target(x.target.as_str()).is_some())
                            .count();
                        drop(v);
                        alerts.lock().unwrap().extend(a);
                        alerts_arrived.notify_one();
                        let _ = reply.send(Ok(matched));
                    }
                }
            }
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let state = state.clone();
        async move {
            medic_api::serve(listener, state, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        }
    });
    Server {
        base: format!("http://{addr}"),
        state,
        seen,
        alerts,
        alerts_arrived,
        shutdown: Some(stop_tx),
        task: Some(task),
    }
}
