//! Helpers of the core's step-by-step tests.

use failgroup_model::*;

/// Answers every ask for rights in `out`, and every ask those answers make,
/// granting each right at `epoch` (a server asks for a batch at a time,
/// [`Timing::hand_over_batch`], the next on the answer to the last). Returns
/// how many asks it answered; what else the steps output is dropped.
pub fn grant_every_ask(server: &Server, st: &mut ServerState, out: &[ServerOutput], now: Time, epoch: Epoch) -> usize {
    let mut asks: Vec<(StoreTag, Vec<Slot>)> = acquires(out);
    let mut answered = 0;
    while let Some((tag, slots)) = asks.pop() {
        answered += 1;
        let granted = slots.into_iter().map(|s| (s, epoch)).collect();
        let mut next = Vec::new();
        server.step(
            st,
            now,
            ServerInput::Store { tag, reply: StoreReply::Acquired { granted, held: vec![] } },
            &mut next,
        );
        asks.extend(acquires(&next));
    }
    answered
}

fn acquires(out: &[ServerOutput]) -> Vec<(StoreTag, Vec<Slot>)> {
    out.iter()
        .filter_map(|o| match o {
            ServerOutput::Store { tag, op: StoreOp::Acquire { slots, .. } } => {
                Some((*tag, slots.iter().map(|(s, _)| *s).collect()))
            }
            _ => None,
        })
        .collect()
}

/// Runs every ask for rights in `out`, and every ask those answers make,
/// against `store` as `me`. Returns the slots asked for; what else the
/// steps output is dropped.
pub fn run_every_ask(
    server: &Server,
    st: &mut ServerState,
    store: &mut MemStore,
    me: Holder,
    out: &[ServerOutput],
    now: Time,
) -> Vec<Slot> {
    let ops = |out: &[ServerOutput]| -> Vec<(StoreTag, StoreOp)> {
        out.iter()
            .filter_map(|o| match o {
                ServerOutput::Store { tag, op: op @ StoreOp::Acquire { .. } } => Some((*tag, op.clone())),
                _ => None,
            })
            .collect()
    };
    let mut asks = ops(out);
    let mut asked = Vec::new();
    while let Some((tag, op)) = asks.pop() {
        if let StoreOp::Acquire { slots, .. } = &op {
            asked.extend(slots.iter().map(|(s, _)| *s));
        }
        let reply = store.execute(me, op, now);
        let mut next = Vec::new();
        server.step(st, now, ServerInput::Store { tag, reply }, &mut next);
        asks.extend(ops(&next));
    }
    asked
}
