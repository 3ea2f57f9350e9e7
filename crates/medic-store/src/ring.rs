//! Hot windows: one fixed-capacity ring buffer per (target, series) in memory.
//!
//! All series share two flat arenas (timestamps and values); series `i` owns the slots
//! `[i * capacity, (i + 1) * capacity)`. Registering a series may grow the arenas (amortised,
//! once per new series); pushing into an existing series writes two slots and never allocates.
//! [`Windows::reserve_series`] grows the arenas up front so that even new series do not
//! reallocate them.
//!
//! Capacity behaviour: each series keeps its `capacity` most recent samples. Once a series is
//! full, every push overwrites its oldest sample. A sample older than the newest sample of its
//! series is dropped and counted ([`PushOutcome::OutOfOrder`]), so windows are always sorted
//! by time; equal timestamps are kept in arrival order. The number of series is bounded by
//! `max_series`; registering one more fails with [`WindowsFull`] instead of growing without
//! limit. [`Windows::remove_target`] frees a target's series for reuse.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use medic_core::{TargetId, Timestamp};

/// A handle to one series of a [`Windows`]; cheap to copy and to look up with.
///
/// A handle outlives its series only as a stale value: once the series is removed, operations
/// on the handle report [`PushOutcome::UnknownSeries`] or return nothing, even if the slot was
/// reused by another series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesId {
    slot: u32,
    generation: u32,
}

/// What happened to a pushed sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored; the series still had room.
    Stored,
    /// Stored, overwriting the series' oldest sample.
    Overwrote,
    /// Dropped: older than the newest sample of the series.
    OutOfOrder,
    /// Dropped: the handle names a series that was removed.
    UnknownSeries,
}

/// Registering a new series failed because `max_series` series already exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ring buffers full: {max_series} series already registered")]
pub struct WindowsFull {
    /// The limit that was reached.
    pub max_series: usize,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    live: bool,
    /// Index (within the slot's range) the next sample is written to.
    head: usize,
    len: usize,
    target: TargetId,
    name: Box<str>,
}

/// Fixed-capacity ring buffers for the recent samples of every (target, series name).
///
/// A series name is whatever key the caller chooses: a bare metric name
/// (`process_resident_memory_bytes`) or a name with labels written by [`series_key`].
#[derive(Debug)]
pub struct Windows {
    capacity: usize,
    max_series: usize,
    index: HashMap<TargetId, HashMap<Box<str>, SeriesId>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    times: Vec<Timestamp>,
    values: Vec<f64>,
    n_out_of_order: u64,
}

impl Windows {
    /// Ring buffers holding the `capacity` most recent samples of each of at most `max_series`
    /// series. Nothing is allocated for samples until series are registered or reserved.
    pub fn new(capacity: NonZeroUsize, max_series: usize) -> Self {
        Windows {
            capacity: capacity.get(),
            max_series,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            times: Vec::new(),
            values: Vec::new(),
            n_out_of_order: 0,
        }
    }

    /// Grows the arenas so that `n_series` series fit without reallocating them (capped at
    /// `max_series`).
    pub fn reserve_series(&mut self, n_series: usize) {
        let n = n_series.min(self.max_series);
        let want = n.saturating_mul(self.capacity);
        self.times.reserve(want.saturating_sub(self.times.len()));
        self.values.reserve(want.saturating_sub(self.values.len()));
        self.slots.reserve(n.saturating_sub(self.slots.len()));
    }

    /// Samples kept per series.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The series limit.
    pub fn max_series(&self) -> usize {
        self.max_series
    }

    /// Number of live series.
    pub fn n_series(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Samples dropped so far because they were older than their series' newest sample.
    pub fn n_out_of_order(&self) -> u64 {
        self.n_out_of_order
    }

    /// The handle of an existing series, without registering anything.
    pub fn find(&self, target: &str, name: &str) -> Option<SeriesId> {
        self.index.get(target)?.get(name).copied()
    }

    /// The handle of a series, registering it (empty) if it does not exist yet.
    ///
    /// Allocates only when the series is new.
    pub fn series(&mut self, target: &TargetId, name: &str) -> Result<SeriesId, WindowsFull> {
        if let Some(id) = self.find(target.as_str(), name) {
            return Ok(id);
        }
        if self.n_series() >= self.max_series {
            return Err(WindowsFull {
                max_series: self.max_series,
            });
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                s.generation = s.generation.wrapping_add(1);
                s.live = true;
                s.head = 0;
                s.len = 0;
                s.target = target.clone();
                s.name = name.into();
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).map_err(|_| WindowsFull {
                    max_series: self.max_series,
                })?;
                self.slots.push(Slot {
                    generation: 0,
                    live: true,
                    head: 0,
                    len: 0,
                    target: target.clone(),
                    name: name.into(),
                });
                let new_len = self.slots.len() * self.capacity;
                self.times.resize(new_len, Timestamp::ZERO);
                self.values.resize(new_len, 0.0);
                slot
            }
        };
        let id = SeriesId {
            slot,
            generation: self.slots[slot as usize].generation,
        };
        self.index
            .entry(target.clone())
            .or_default()
            .insert(name.into(), id);
        Ok(id)
    }

    /// Pushes a sample into the series (target, name), registering the series if needed.
    ///
    /// Does not allocate when the series exists.
    pub fn push(
        &mut self,
        target: &TargetId,
        name: &str,
        at: Timestamp,
        value: f64,
    ) -> Result<PushOutcome, WindowsFull> {
        let id = self.series(target, name)?;
        Ok(self.push_to(id, at, value))
    }

    /// Pushes a sample into a series by handle. Never allocates.
    pub fn push_to(&mut self, id: SeriesId, at: Timestamp, value: f64) -> PushOutcome {
        let cap = self.capacity;
        let Some(slot) = self.live_slot(id) else {
            return PushOutcome::UnknownSeries;
        };
        let base = id.slot as usize * cap;
        let (head, len) = (slot.head, slot.len);
        if len > 0 {
            let newest = self.times[base + (head + cap - 1) % cap];
            if at < newest {
                self.n_out_of_order += 1;
                return PushOutcome::OutOfOrder;
            }
        }
        self.times[base + head] = at;
        self.values[base + head] = value;
        let slot = &mut self.slots[id.slot as usize];
        slot.head = (head + 1) % cap;
        if len < cap {
            slot.len = len + 1;
            PushOutcome::Stored
        } else {
            PushOutcome::Overwrote
        }
    }

    /// Number of samples currently held by the series (0 for a stale handle).
    pub fn len(&self, id: SeriesId) -> usize {
        self.live_slot(id).map_or(0, |s| s.len)
    }

    /// Whether the series holds no sample (true for a stale handle).
    pub fn is_empty(&self, id: SeriesId) -> bool {
        self.len(id) == 0
    }

    /// The newest sample of the series.
    pub fn latest(&self, id: SeriesId) -> Option<(Timestamp, f64)> {
        let slot = self.live_slot(id)?;
        if slot.len == 0 {
            return None;
        }
        let i = id.slot as usize * self.capacity + (slot.head + self.capacity - 1) % self.capacity;
        Some((self.times[i], self.values[i]))
    }

    /// The samples of the series, oldest to newest, without copying or allocating.
    pub fn iter(&self, id: SeriesId) -> impl Iterator<Item = (Timestamp, f64)> + '_ {
        let (base, start, len) = match self.live_slot(id) {
            Some(s) => (
                id.slot as usize * self.capacity,
                (s.head + self.capacity - s.len) % self.capacity,
                s.len,
            ),
            None => (0, 0, 0),
        };
        let cap = self.capacity;
        (0..len).map(move |k| {
            let i = base + (start + k) % cap;
            (self.times[i], self.values[i])
        })
    }

    /// Copies the whole window of the series into `times` and `values` (cleared first),
    /// oldest to newest. Allocates only if the buffers lack capacity; returns the count.
    pub fn read(&self, id: SeriesId, times: &mut Vec<Timestamp>, values: &mut Vec<f64>) -> usize {
        self.read_last(id, usize::MAX, times, values)
    }

    /// Like [`Windows::read`], but only the `n` newest samples.
    pub fn read_last(
        &self,
        id: SeriesId,
        n: usize,
        times: &mut Vec<Timestamp>,
        values: &mut Vec<f64>,
    ) -> usize {
        times.clear();
        values.clear();
        let len = self.len(id);
        let skip = len.saturating_sub(n);
        for (t, v) in self.iter(id).skip(skip) {
            times.push(t);
            values.push(v);
        }
        times.len()
    }

    /// Like [`Windows::read`], but only the samples at or after `since`.
    pub fn read_since(
        &self,
        id: SeriesId,
        since: Timestamp,
        times: &mut Vec<Timestamp>,
        values: &mut Vec<f64>,
    ) -> usize {
        times.clear();
        values.clear();
        for (t, v) in self.iter(id).filter(|(t, _)| *t >= since) {
            times.push(t);
            values.push(v);
        }
        times.len()
    }

    /// The series of a target: (name, handle), in no particular order.
    pub fn series_of<'a>(&'a self, target: &str) -> impl Iterator<Item = (&'a str, SeriesId)> {
        self.index
            .get(target)
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (&**k, *v)))
    }

    /// The targets that have at least one series.
    pub fn targets(&self) -> impl Iterator<Item = &TargetId> {
        self.index.keys()
    }

    /// Removes every series of `target`, freeing their slots for reuse; returns how many.
    pub fn remove_target(&mut self, target: &str) -> usize {
        let Some(series) = self.index.remove(target) else {
            return 0;
        };
        for id in series.values() {
            let slot = &mut self.slots[id.slot as usize];
            slot.live = false;
            slot.len = 0;
            slot.head = 0;
            self.free.push(id.slot);
        }
        series.len()
    }

    /// The (target, name) of a live series.
    pub fn key(&self, id: SeriesId) -> Option<(&TargetId, &str)> {
        self.live_slot(id).map(|s| (&s.target, &*s.name))
    }

    fn live_slot(&self, id: SeriesId) -> Option<&Slot> {
        self.slots
            .get(id.slot as usize)
            .filter(|s| s.live && s.generation == id.generation)
    }
}

/// Writes the canonical series key `name{k1="v1",k2="v2"}` into `out` (cleared first), or just
/// `name` when there are no labels. Labels are written in the order given and values escaped as
/// in the Prometheus text format; reuse `out` across calls to avoid allocating.
pub fn series_key(name: &str, labels: &[(String, String)], out: &mut String) {
    out.clear();
    out.push_str(name);
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(cap: usize, max: usize) -> Windows {
        Windows::new(NonZeroUsize::new(cap).unwrap(), max)
    }

    fn ts(s: u64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn keeps_newest_capacity_samples_oldest_first() {
        let mut win = w(3, 10);
        let t = TargetId::new("a");
        let mut outcomes = Vec::new();
        for i in 0..5 {
            outcomes.push(win.push(&t, "rss", ts(i), i as f64).unwrap());
        }
        assert_eq!(
            outcomes,
            [
                PushOutcome::Stored,
                PushOutcome::Stored,
                PushOutcome::Stored,
                PushOutcome::Overwrote,
                PushOutcome::Overwrote
            ]
        );
        let id = win.find("a", "rss").unwrap();
        let (mut times, mut values) = (Vec::new(), Vec::new());
        assert_eq!(win.read(id, &mut times, &mut values), 3);
        assert_eq!(times, [ts(2), ts(3), ts(4)]);
        assert_eq!(values, [2.0, 3.0, 4.0]);
        assert_eq!(win.latest(id), Some((ts(4), 4.0)));
        win.read_last(id, 2, &mut times, &mut values);
        assert_eq!(values, [3.0, 4.0]);
        win.read_since(id, ts(3), &mut times, &mut values);
        assert_eq!(times, [ts(3), ts(4)]);
    }

    #[test]
    fn out_of_order_sample_is_dropped_and_counted() {
        let mut win = w(4, 10);
        let t = TargetId::new("a");
        win.push(&t, "x", ts(5), 1.0).unwrap();
        assert_eq!(
            win.push(&t, "x", ts(4), 2.0).unwrap(),
            PushOutcome::OutOfOrder
        );
        assert_eq!(win.push(&t, "x", ts(5), 3.0).unwrap(), PushOutcome::Stored);
        assert_eq!(win.n_out_of_order(), 1);
        let id = win.find("a", "x").unwrap();
        assert_eq!(win.iter(id).map(|(_, v)| v).collect::<Vec<_>>(), [1.0, 3.0]);
    }

    #[test]
    fn series_limit_and_reuse_after_remove() {
        let mut win = w(2, 2);
        let (a, b) = (TargetId::new("a"), TargetId::new("b"));
        let old = win.series(&a, "x").unwrap();
        win.push_to(old, ts(1), 1.0);
        win.series(&a, "y").unwrap();
        assert_eq!(win.series(&b, "x"), Err(WindowsFull { max_series: 2 }));
        assert_eq!(win.remove_target("a"), 2);
        assert_eq!(win.n_series(), 0);
        let new = win.series(&b, "x").unwrap();
        assert_eq!(win.push_to(old, ts(2), 2.0), PushOutcome::UnknownSeries);
        assert!(win.is_empty(new));
        assert_eq!(win.key(new), Some((&b, "x")));
        assert_eq!(win.key(old), None);
        assert_eq!(win.iter(old).count(), 0);
    }

    #[test]
    fn series_key_escapes_values() {
        let mut out = String::new();
        series_key("m", &[], &mut out);
        assert_eq!(out, "m");
        let labels = vec![
            ("le".to_owned(), "0.5".to_owned()),
            ("path".to_owned(), "a\"b\\c\n".to_owned()),
        ];
        series_key("m_bucket", &labels, &mut out);
        assert_eq!(out, r#"m_bucket{le="0.5",path="a\"b\\c\n"}"#);
    }
}
