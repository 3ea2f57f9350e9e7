//! [`Notifier`]: the deduper in front of one delivery worker per sink.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use medic_core::{TargetId, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Error;
use crate::config::NotifySettings;
use crate::dedup::{DedupStats, Deduper, IncidentKey, IncidentKind, Status, Verdict};
use crate::notification::Notification;
use crate::sink::{DeliveryError, DeliveryReport, Retry, Sink, deliver};

/// Notifications waiting per sink at most; beyond that new ones are dropped and reported.
pub const QUEUE_CAPACITY: usize = 256;

/// How often [`Notifier::tick`] posts the open incidents to Alertmanagers again.
///
/// Alertmanager resolves a firing alert by itself once its `resolve_timeout` (5 minutes by
/// default) passes without the alert being posted again, as Prometheus does every evaluation.
/// Posting the open incidents every minute keeps them firing there until medic resolves them;
/// Alertmanager deduplicates, so people are not told again. Webhooks get no refreshes.
pub const ALERTMANAGER_REFRESH: Duration = Duration::from_secs(60);

/// Called with every delivery result: from the sink's worker task, or from
/// [`Notifier::notify`] itself for a notification dropped on a full queue. It must not block.
pub type OnReport = Arc<dyn Fn(&DeliveryReport) + Send + Sync>;

/// Counters of a [`Notifier`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifierStats {
    /// The deduper's decisions.
    pub dedup: DedupStats,
    /// Deliveries that succeeded (one per notification and sink).
    pub delivered: u64,
    /// Deliveries that failed after their tries, or were dropped.
    pub failed: u64,
}

struct Worker {
    name: String,
    /// Gets the periodic refreshes of open incidents (Alertmanager sinks).
    refresh: bool,
    tx: mpsc::Sender<Arc<Notification>>,
    handle: JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
}

/// Deduplicates notifications ([`Deduper`]) and hands the ones to send to every sink.
///
/// [`Notifier::notify`] and the resolve methods are synchronous and never wait on the
/// network: each sink has its own worker task and bounded queue ([`QUEUE_CAPACITY`]), so a
/// slow, hanging or failing sink delays only its own queue, and a full queue drops (and
/// reports) rather than blocks. Within one sink, notifications are delivered in order.
///
/// Every delivery result is logged (`debug` when delivered, `warn` when failed) and passed to
/// the `on_report` callback, e.g. to count it in metrics. Logs name sinks by URL origin only.
///
/// Firing notifications of kinds that are resolved later are remembered while open, so that
/// [`Notifier::resolve_target`] can send their resolution with the same id and labels.
pub struct Notifier {
    dedup: Deduper,
    open: HashMap<IncidentKey, Notification>,
    workers: Vec<Worker>,
    counters: Arc<Counters>,
    on_report: OnReport,
    last_refresh: Option<Timestamp>,
}

impl Notifier {
    /// Starts one worker task per sink of `settings`.
    ///
    /// # Panics
    /// When called outside a tokio runtime (it spawns the workers).
    pub fn start(settings: NotifySettings, on_report: OnReport) -> Result<Self, Error> {
        let client = medic_collect::http::build(|| {
            medic_collect::http::client_builder().connect_timeout(settings.retry.timeout)
        })
        .map_err(Error::Client)?;
        let counters = Arc::new(Counters::default());
        let workers = settings
            .sinks
            .into_iter()
            .map(|sink| {
                spawn_worker(
                    sink,
                    client.clone(),
                    settings.retry,
                    Arc::clone(&counters),
                    Arc::clone(&on_report),
                )
            })
            .collect();
        Ok(Notifier {
            dedup: Deduper::new(settings.cooldown),
            open: HashMap::new(),
            workers,
            counters,
            on_report,
            last_refresh: None,
        })
    }

    /// Offers `n` at `now`: when the deduper says send, its id, start and suppressed count are
    /// set from the incident and it is queued for every sink. Returns the verdict.
    pub fn notify(&mut self, mut n: Notification, now: Timestamp) -> Verdict {
        let key = n.key();
        let verdict = self.dedup.offer(&key, n.status, now);
        if let Verdict::Send {
            started,
            suppressed,
            ..
        } = verdict
        {
            n.starts_at = started;
            n.id = key.incident_id(started);
            n.suppressed_repeats = suppressed;
            match n.status {
                Status::Firing if key.kind.expects_resolution() => {
                    self.open.insert(key, n.clone());
                }
                Status::Firing => {}
                Status::Resolved => {
                    self.open.remove(&key);
                }
            }
            self.dispatch(n, false);
        } else {
            tracing::debug!(incident = %key, ?verdict, "notification suppressed");
        }
        verdict
    }

    /// Resolves the open incident `key` at `now` (sends the resolution of its firing); a key
    /// with nothing open is counted and suppressed.
    pub fn resolve(&mut self, key: &IncidentKey, now: Timestamp) -> Verdict {
        match self.open.get(key) {
            Some(firing) => {
                let resolved = firing.resolved(now);
                self.notify(resolved, now)
            }
            None => self.dedup.offer(key, Status::Resolved, now),
        }
    }

    /// The target is healthy again: resolves its open escalation and degradation incidents
    /// (not its approval requests, which are resolved when decided). Returns how many
    /// resolutions were sent.
    pub fn resolve_target(&mut self, target: &TargetId, now: Timestamp) -> usize {
        let keys: Vec<IncidentKey> = self
            .dedup
            .open_for(target)
            .into_iter()
            .filter(|k| matches!(k.kind, IncidentKind::Escalation | IncidentKind::Degraded))
            .collect();
        keys.iter()
            .filter(|k| self.resolve(k, now).is_send())
            .count()
    }

    /// Housekeeping at `now`; call it at least every [`ALERTMANAGER_REFRESH`] (e.g. every
    /// 10 s). Forgets one-shot entries whose cooldown passed ([`Deduper::prune`]), and once per
    /// [`ALERTMANAGER_REFRESH`] (counted from the first tick) posts every open incident to the
    /// Alertmanager sinks again.
    /// Returns how many open incidents were refreshed.
    pub fn tick(&mut self, now: Timestamp) -> usize {
        self.dedup.prune(now);
        // The first tick starts the period; a clock step back restarts it.
        let due = match self.last_refresh {
            Some(last) if now >= last => now.since(last) >= ALERTMANAGER_REFRESH,
            _ => {
                self.last_refresh = Some(now);
                false
            }
        };
        if !due {
            return 0;
        }
        self.last_refresh = Some(now);
        let open: Vec<Notification> = self.open.values().cloned().collect();
        let n_open = open.len();
        for n in open {
            self.dispatch(n, true);
        }
        n_open
    }

    /// The open incidents (sent firings not yet resolved), in key order.
    pub fn open_incidents(&self) -> Vec<&Notification> {
        let mut v: Vec<&Notification> = self.open.values().collect();
        v.sort_by_key(|n| n.key());
        v
    }

    /// The counters so far.
    pub fn stats(&self) -> NotifierStats {
        NotifierStats {
            dedup: self.dedup.stats(),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting notifications and lets each sink's worker finish its queue for at most
    /// `grace`; workers still busy then are aborted (their queued notifications are lost and
    /// not reported). Returns how many workers were aborted.
    pub async fn shutdown(self, grace: Duration) -> usize {
        let handles: Vec<JoinHandle<()>> = self
            .workers
            .into_iter()
            .map(|w| {
                drop(w.tx);
                w.handle
            })
            .collect();
        let deadline = tokio::time::Instant::now() + grace;
        let mut aborted = 0;
        for mut h in handles {
            if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                h.abort();
                aborted += 1;
            }
        }
        aborted
    }

    /// Queues `n` for every sink, or with `refresh_only` for the Alertmanager sinks only.
    fn dispatch(&self, n: Notification, refresh_only: bool) {
        let n = Arc::new(n);
        for w in self.workers.iter().filter(|w| w.refresh || !refresh_only) {
            let error = match w.tx.try_send(Arc::clone(&n)) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => DeliveryError::QueueFull(QUEUE_CAPACITY),
                Err(mpsc::error::TrySendError::Closed(_)) => DeliveryError::Stopped,
            };
            let report = DeliveryReport {
                sink: w.name.clone(),
                id: n.id.clone(),
                status: n.status,
                tries: 0,
                result: Err(error),
            };
            record(&report, &self.counters, &self.on_report);
        }
    }
}

fn spawn_worker(
    sink: Sink,
    client: reqwest::Client,
    retry: Retry,
    counters: Arc<Counters>,
    on_report: OnReport,
) -> Worker {
    let (tx, mut rx) = mpsc::channel::<Arc<Notification>>(QUEUE_CAPACITY);
    let name = sink.name();
    let refresh = matches!(sink, Sink::Alertmanager(_));
    let handle = tokio::spawn(async move {
        while let Some(n) = rx.recv().await {
            let report = deliver(&sink, &client, &n, retry).await;
            record(&report, &counters, &on_report);
        }
    });
    Worker {
        name,
        refresh,
        tx,
        handle,
    }
}

fn record(report: &DeliveryReport, counters: &Counters, on_report: &OnReport) {
    match &report.result {
        Ok(()) => {
            counters.delivered.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(sink = %report.sink, id = %report.id, status = ?report.status, tries = report.tries, "notification delivered");
        }
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(sink = %report.sink, id = %report.id, status = ?report.status, tries = report.tries, error = %crate::error_chain(e), "notification not delivered");
        }
    }
    on_report(report);
}
