//! A sequence model's reasons: the steps of a window its attention head weighs most, each
//! named by the flows it covers (row numbers and `order_by` cells), as a tabular row's reasons
//! name its columns.

use anyhow::Result;

use crate::bail_input;
use crate::score::{Flows, Reason, Scorer};

/// One flow of a window: its row number (from 1 over the input) and its `order_by` cell.
pub type Flow = (usize, String);

/// Whether `scorer` can name the steps its windows' scores rest on (exit 2 if not).
pub fn check(scorer: &Scorer) -> Result<()> {
    let width = scorer.pre.n_features() * scorer.sequence.as_ref().map_or(1, |s| s.length);
    if scorer.step_weights(&vec![0.0; width])?.is_none() {
        bail_input!(
            "--explain: this sequence model reads its LSTM's last step (model.cnn_lstm.head: \
             last or mean), so no step carries its score; train it with head: attention to \
             name the flows a window's score rests on"
        );
    }
    Ok(())
}

/// Each window of `x` that scores at least the threshold (`scores`): its `k` most-weighted
/// steps, heaviest first (ties: earlier step first), with `flows[i]` window `i`'s flows.
pub fn reasons(
    scorer: &Scorer,
    (x, scores): (&[f32], &[f32]),
    flows: &[Vec<Flow>],
    k: usize,
) -> Result<Vec<Option<Vec<Reason>>>> {
    let width = x.len() / scores.len().max(1);
    let flagged: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i] >= scorer.threshold)
        .collect();
    let mut out = vec![None; scores.len()];
    if flagged.is_empty() {
        return Ok(out);
    }
    let picked: Vec<f32> = flagged
        .iter()
        .flat_map(|&i| &x[i * width..(i + 1) * width])
        .copied()
        .collect();
    let Some(attention) = scorer.step_weights(&picked)? else {
        return Ok(out);
    };
    let steps = attention.flows.len();
    for (&i, weights) in flagged.iter().zip(attention.weights.chunks_exact(steps)) {
        let mut order: Vec<usize> = (0..steps).collect();
        order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
        order.truncate(k);
        let window = &flows[i];
        let reason = |u: usize| {
            let span = &attention.flows[u];
            let (first, last) = (&window[span.start], &window[span.end - 1]);
            Reason {
                feature: format!("step {} of {steps}", u + 1),
                value: format!("flows {}-{} of {}", span.start + 1, span.end, window.len()),
                typical: String::new(),
                percentile: None,
                share: None,
                effect: weights[u],
                part: None,
                flows: Some(Flows {
                    rows: [first.0, last.0],
                    from: first.1.clone(),
                    to: last.1.clone(),
                }),
            }
        };
        out[i] = Some(order.into_iter().map(reason).collect());
    }
    Ok(out)
}
