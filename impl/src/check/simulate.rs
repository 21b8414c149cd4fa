//! Seeded random walks over the model, for configurations too big to
//! exhaust. A walk is a pure function of its seed: the seed printed with a
//! failure replays it exactly.

use super::config::CheckConfig;
use super::model::ClusterModel;
use super::world::{Action, ClusterState};
use super::{trace, Outcome, Progress, Report, RunOptions, Verdict};
use stateright::{Expectation, Model};
use std::time::Instant;

/// splitmix64: small, fast and fully determined by its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// How a walk ended.
pub enum WalkEnd {
    /// Reached a terminal state (or the step limit).
    Done { steps: usize, reached: Vec<&'static str>, path: Vec<(ClusterState, Option<Action>)> },
    /// A property failed: its name and the path to the failure.
    Failed { property: &'static str, path: Vec<(ClusterState, Option<Action>)> },
}

/// One random walk from the initial state, checking every `always`
/// property at each state and every `eventually` property at the end.
pub fn walk(model: &ClusterModel, seed: u64, max_steps: usize) -> WalkEnd {
    let mut rng = Rng::new(seed);
    let props = model.properties();
    let mut state = model.init_states().remove(0);
    let mut path: Vec<(ClusterState, Option<Action>)> = Vec::new();
    let mut eventually_met = vec![false; props.len()];
    let mut reached = Vec::new();
    let mut actions = Vec::new();
    for steps in 0..=max_steps {
        for (i, p) in props.iter().enumerate() {
            let holds = (p.condition)(model, &state);
            match p.expectation {
                Expectation::Always if !holds => {
                    path.push((state, None));
                    return WalkEnd::Failed { property: p.name, path };
                }
                Expectation::Eventually if holds => eventually_met[i] = true,
                Expectation::Sometimes if holds && !reached.contains(&p.name) => reached.push(p.name),
                _ => {}
            }
        }
        actions.clear();
        model.actions(&state, &mut actions);
        if actions.is_empty() || steps == max_steps {
            if actions.is_empty() {
                let missed = props
                    .iter()
                    .enumerate()
                    .find(|(i, p)| p.expectation == Expectation::Eventually && !eventually_met[*i]);
                if let Some((_, p)) = missed {
                    path.push((state, None));
                    return WalkEnd::Failed { property: p.name, path };
                }
            }
            path.push((state, None));
            return WalkEnd::Done { steps, reached, path };
        }
        let action = actions.swap_remove(rng.below(actions.len()));
        let next = model.next_state(&state, action.clone()).expect("enabled action");
        path.push((state, Some(action)));
        state = next;
    }
    unreachable!()
}

pub fn run(cfg: CheckConfig, opts: &RunOptions, mut progress: impl FnMut(&Progress)) -> Report {
    let model = cfg.into_model();
    let start = Instant::now();
    let (mut steps_total, mut deepest) = (0usize, 0usize);
    let mut reached: Vec<&'static str> = Vec::new();
    let mut failure = None;
    let mut last = Instant::now();
    for w in 0..opts.walks {
        if opts.timeout.is_some_and(|t| start.elapsed() >= t) {
            break;
        }
        let seed = opts.seed.wrapping_add(w);
        match walk(&model, seed, opts.depth.unwrap_or(100_000)) {
            WalkEnd::Done { steps, reached: r, .. } => {
                steps_total += steps;
                deepest = deepest.max(steps);
                for n in r {
                    if !reached.contains(&n) {
                        reached.push(n);
                    }
                }
            }
            WalkEnd::Failed { property, path } => {
                steps_total += path.len();
                failure = Some((seed, property, trace::render(&model, &path)));
                break;
            }
        }
        if last.elapsed().as_secs() >= 1 {
            last = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            progress(&Progress { states: steps_total, unique: steps_total, depth: deepest, secs });
        }
    }
    let verdicts = model
        .properties()
        .into_iter()
        .map(|p| {
            let outcome = match (&failure, &p.expectation) {
                (Some((_, name, t)), _) if *name == p.name => Outcome::Violated(t.clone()),
                (_, &Expectation::Sometimes) if reached.contains(&p.name) => Outcome::Reached,
                (_, &Expectation::Sometimes) => Outcome::NotReached,
                _ => Outcome::Holds,
            };
            Verdict { name: p.name, expectation: p.expectation, outcome }
        })
        .collect();
    Report {
        states: steps_total,
        unique: steps_total,
        depth: deepest,
        secs: start.elapsed().as_secs_f64(),
        complete: false,
        verdicts,
        failing_seed: failure.map(|f| f.0),
    }
}
