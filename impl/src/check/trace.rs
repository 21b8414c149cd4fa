//! Counterexamples in the protocol's words: who sent what, and what each
//! node then believed.

use super::model::ClusterModel;
use super::narrate::{beliefs, describe, op};
use super::world::{Action, ClusterState};
use std::fmt::Write as _;

/// A numbered trace: each step, then the beliefs that changed.
pub fn render(model: &ClusterModel, path: &[(ClusterState, Option<Action>)]) -> String {
    let mut s = String::new();
    let mut prev = path.first().map(|(st, _)| beliefs(st)).unwrap_or_default();
    for (n, pair) in path.windows(2).enumerate() {
        let (before, action) = (&pair[0].0, pair[0].1.as_ref().expect("action"));
        let after = &pair[1].0;
        let text = match action {
            Action::Invoke(c) => {
                let i = after.clients[*c as usize].invoked - 1;
                format!("client{c} invokes {}", op(&model.script(*c, i)))
            }
            a => describe(Some(before), a),
        };
        writeln!(s, "{:>3}. [t={}] {}", n + 1, before.now, text).unwrap();
        let now = beliefs(after);
        for ((who, b), (_, old)) in now.iter().zip(prev.iter()) {
            if b != old {
                writeln!(s, "       {who}: {b}").unwrap();
            }
        }
        prev = now;
    }
    s
}
