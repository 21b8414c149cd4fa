//! The model checker: exhaustive search (stateright's BFS or DFS) and seeded
//! random walks over the same model, with verdicts per property.

mod actions;
mod apply;
mod clocks;
pub mod config;
pub mod linearizer;
pub mod model;
pub mod mutants;
pub mod narrate;
mod properties;
mod roles;
pub mod simulate;
pub mod spec;
pub mod trace;
pub mod world;

pub use config::CheckConfig;
pub use model::ClusterModel;
pub use world::{Action, ClusterState};

/// What `failgroup check` runs without flags: the default bounds with two
/// servers, which exhaust in seconds.
pub fn default_config() -> CheckConfig {
    CheckConfig { servers: 2, ..CheckConfig::default() }
}

use stateright::{Checker, Expectation, HasDiscoveries, Model};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Bfs,
    Dfs,
    Simulate,
}

impl std::str::FromStr for Strategy {
    type Err = spec::UnknownName;
    fn from_str(s: &str) -> Result<Strategy, spec::UnknownName> {
        match s {
            "bfs" => Ok(Strategy::Bfs),
            "dfs" => Ok(Strategy::Dfs),
            "simulate" => Ok(Strategy::Simulate),
            _ => Err(spec::UnknownName { what: "strategy", name: s.into(), known: vec!["bfs", "dfs", "simulate"] }),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub strategy: Strategy,
    pub threads: usize,
    /// Stop exploring below this depth (exhaustive strategies).
    pub depth: Option<usize>,
    pub seed: u64,
    /// Random walks (simulate).
    pub walks: u64,
    /// Stop at the first failure: with BFS that is a shortest trace.
    pub stop_at_first_failure: bool,
    pub timeout: Option<Duration>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            strategy: Strategy::Bfs,
            threads: 1,
            depth: None,
            seed: 1,
            walks: 1_000,
            stop_at_first_failure: true,
            timeout: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Holds,
    /// A counterexample: the rendered trace.
    Violated(String),
    Reached,
    NotReached,
}

#[derive(Clone, Debug)]
pub struct Verdict {
    pub name: &'static str,
    pub expectation: Expectation,
    pub outcome: Outcome,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub states: usize,
    pub unique: usize,
    pub depth: usize,
    pub secs: f64,
    /// Whether every reachable state (within the bounds) was visited.
    pub complete: bool,
    pub verdicts: Vec<Verdict>,
    /// Seed of the failing walk (simulate).
    pub failing_seed: Option<u64>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.iter().filter(|v| matches!(v.outcome, Outcome::Violated(_)))
    }

    pub fn violated(&self, name: &str) -> bool {
        self.failures().any(|v| v.name == name)
    }

    pub fn trace(&self, name: &str) -> Option<&str> {
        self.verdicts.iter().find_map(|v| match &v.outcome {
            Outcome::Violated(t) if v.name == name => Some(t.as_str()),
            _ => None,
        })
    }

    /// The last line `failgroup check` prints.
    pub fn summary(&self) -> String {
        let head = format!("unique states {}, depth {}, {:.1}s: ", self.unique, self.depth, self.secs);
        if let Some(v) = self.failures().next() {
            return format!("{head}counterexample: {}", v.name);
        }
        let unreached: Vec<&str> =
            self.verdicts.iter().filter(|v| v.outcome == Outcome::NotReached).map(|v| v.name).collect();
        if !unreached.is_empty() && self.complete {
            return format!("{head}not reached: {}", unreached.join(", "));
        }
        format!("{head}all properties hold{}", if self.complete { "" } else { " (search incomplete)" })
    }

    /// 0 when all hold, 1 on a counterexample or a vacuous property.
    pub fn exit_code(&self) -> i32 {
        let vacuous = self.complete && self.verdicts.iter().any(|v| v.outcome == Outcome::NotReached);
        if self.failures().next().is_some() || vacuous {
            1
        } else {
            0
        }
    }
}

/// Progress while a search runs.
pub struct Progress {
    pub states: usize,
    pub unique: usize,
    pub depth: usize,
    pub secs: f64,
}

/// Runs the checker on `cfg`, calling `progress` about once a second.
pub fn run(cfg: CheckConfig, opts: &RunOptions, mut progress: impl FnMut(&Progress)) -> Report {
    if opts.strategy == Strategy::Simulate {
        return simulate::run(cfg, opts, progress);
    }
    let model = cfg.into_model();
    let start = Instant::now();
    let mut builder = model.checker().threads(opts.threads.max(1));
    if let Some(d) = opts.depth {
        builder = builder.target_max_depth(d);
    }
    if let Some(t) = opts.timeout {
        builder = builder.timeout(t);
    }
    if opts.stop_at_first_failure {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    let checker: Box<dyn Checker<ClusterModel>> = match opts.strategy {
        Strategy::Dfs => Box::new(builder.spawn_dfs()),
        _ => Box::new(builder.spawn_bfs()),
    };
    let mut last = Instant::now();
    while !checker.is_done() {
        std::thread::sleep(Duration::from_millis(20));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            progress(&Progress {
                states: checker.state_count(),
                unique: checker.unique_state_count(),
                depth: checker.max_depth(),
                secs: start.elapsed().as_secs_f64(),
            });
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let model = checker.model();
    let discoveries = checker.discoveries();
    // A search cut short by a bound, the timeout or the first failure has
    // not seen every state.
    let timed_out = opts.timeout.is_some_and(|t| start.elapsed() >= t);
    let stopped_early = opts.stop_at_first_failure && has_failure(model, &discoveries);
    let complete = !timed_out && opts.depth.is_none() && !stopped_early;
    let verdicts = model
        .properties()
        .into_iter()
        .map(|p| {
            let found = discoveries.get(p.name);
            let outcome = match (&p.expectation, found) {
                (&Expectation::Sometimes, Some(_)) => Outcome::Reached,
                (&Expectation::Sometimes, None) => Outcome::NotReached,
                (_, Some(path)) => Outcome::Violated(trace::render(model, &path.clone().into_vec())),
                (_, None) => Outcome::Holds,
            };
            Verdict { name: p.name, expectation: p.expectation, outcome }
        })
        .collect();
    Report {
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        depth: checker.max_depth(),
        secs,
        complete,
        verdicts,
        failing_seed: None,
    }
}

fn has_failure<P>(model: &ClusterModel, d: &std::collections::HashMap<&'static str, P>) -> bool {
    model.properties().iter().any(|p| p.expectation != Expectation::Sometimes && d.contains_key(p.name))
}
