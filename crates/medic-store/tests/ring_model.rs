//! `Windows` against a model: a `VecDeque` per series that keeps the newest `capacity`
//! in-order samples, under random pushes, removals and reads.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;

use medic_core::{TargetId, Timestamp};
use medic_store::{PushOutcome, Windows};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Push {
        target: u8,
        series: u8,
        dt: i8,
        value: i16,
    },
    RemoveTarget(u8),
    ReadLast {
        target: u8,
        series: u8,
        n: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3u8, 0..3u8, -3..20i8, any::<i16>())
            .prop_map(|(target, series, dt, value)| Op::Push { target, series, dt, value }),
        1 => (0..3u8).prop_map(Op::RemoveTarget),
        2 => (0..3u8, 0..3u8, 0..10u8).prop_map(|(target, series, n)| Op::ReadLast { target, series, n }),
    ]
}

proptest! {
    #[test]
    fn windows_match_the_model(cap in 1..8usize, max_series in 1..10usize, ops in prop::collection::vec(op(), 1..300)) {
        let mut win = Windows::new(NonZeroUsize::new(cap).unwrap(), max_series);
        let mut model: HashMap<(u8, u8), VecDeque<(Timestamp, f64)>> = HashMap::new();
        let mut clock: HashMap<(u8, u8), i64> = HashMap::new();
        let mut n_out_of_order = 0u64;
        let (mut times, mut values) = (Vec::new(), Vec::new());
        for op in ops {
            match op {
                Op::Push { target, series, dt, value } => {
                    let key = (target, series);
                    let t = clock.entry(key).or_insert(100);
                    *t += i64::from(dt);
                    let at = Timestamp::from_millis(*t as u64);
                    let exists = model.contains_key(&key);
                    let res = win.push(&TargetId::new(format!("t{target}")), &format!("s{series}"), at, f64::from(value));
                    if !exists && model.len() >= max_series {
                        prop_assert!(res.is_err());
                        continue;
                    }
                    let q = model.entry(key).or_default();
                    let expected = match q.back() {
                        Some((newest, _)) if at < *newest => { n_out_of_order += 1; PushOutcome::OutOfOrder }
                        _ if q.len() == cap => { q.pop_front(); q.push_back((at, f64::from(value))); PushOutcome::Overwrote }
                        _ => { q.push_back((at, f64::from(value))); PushOutcome::Stored }
                    };
                    prop_assert_eq!(res.unwrap(), expected);
                }
                Op::RemoveTarget(target) => {
                    let before = model.len();
                    model.retain(|(t, _), _| *t != target);
                    clock.retain(|(t, _), _| *t != target);
                    prop_assert_eq!(win.remove_target(&format!("t{target}")), before - model.len());
                }
                Op::ReadLast { target, series, n } => {
                    let id = win.find(&format!("t{target}"), &format!("s{series}"));
                    match model.get(&(target, series)) {
                        None => prop_assert!(id.is_none()),
                        Some(q) => {
                            let id = id.unwrap();
                            win.read_last(id, usize::from(n), &mut times, &mut values);
                            let skip = q.len().saturating_sub(usize::from(n));
                            let want: Vec<_> = q.iter().skip(skip).copied().collect();
                            let got: Vec<_> = times.iter().copied().zip(values.iter().copied()).collect();
                            prop_assert_eq!(got, want);
                            prop_assert_eq!(win.latest(id), q.back().copied());
                            prop_assert_eq!(win.len(id), q.len());
                        }
                    }
                }
            }
            prop_assert_eq!(win.n_series(), model.len());
            prop_assert_eq!(win.n_out_of_order(), n_out_of_order);
        }
    }
}
