//! The LSTM's recurrence as one fused operation on the CPU, forward and backward, the way
//! PyTorch's own CPU kernel runs it: per step one product of the hidden state with `W_hh`
//! and one pass computing the four gates' activations and the cell update, and the backward
//! pass through time by hand. burn runs each step as a dozen separate tensor ops (each a
//! fresh buffer, a pass over memory and an autodiff node); here a layer is one node.
//!
//! The gates' `exp` is [`super::gates::exp`], not the platform's: a polynomial of plain f32
//! arithmetic, so the same bits on every CPU and every thread count, and vectorised by the
//! compiler. Elsewhere (on a GPU, or the ndarray backend) the layer runs as burn's ops.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, Flex, backend_extension};
use burn::tensor::{Tensor, TensorData};

use super::gates::{cell_update, tanh, with_avx2};

/// The fused recurrence, for the backends that have it.
#[backend_extension(Flex, Autodiff)]
pub trait FusedLstm: burn::backend::Backend {
    /// `pre`: every step's input projection plus both biases, time-major `[steps · batch,
    /// 4·hidden]` (gates in PyTorch's order: input, forget, cell, output); `w_hh`: `[hidden,
    /// 4·hidden]`. Returns every step's hidden state, time-major `[steps · batch, hidden]`,
    /// the recurrence running from the last step to the first when `reverse`.
    fn lstm_states(
        pre: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        steps: usize,
        reverse: bool,
    ) -> FloatTensor<Self>;
}

/// [`FusedLstm::lstm_states`] on burn tensors (a CPU device with the flex backend only).
pub fn states(pre: Tensor<2>, w_hh: Tensor<2>, steps: usize, reverse: bool) -> Tensor<2> {
    let out = <Dispatch as FusedLstm>::lstm_states(
        pre.into_dispatch(),
        w_hh.into_dispatch(),
        steps,
        reverse,
    );
    Tensor::from_dispatch(out)
}

impl FusedLstm for Flex {
    fn lstm_states(pre: FlexTensor, w_hh: FlexTensor, steps: usize, reverse: bool) -> FlexTensor {
        let shape = Shape::of(&pre, &w_hh, steps);
        let run = forward(&host(pre), &host(w_hh), shape, reverse, false);
        flex(run.states, [steps * shape.batch, shape.hidden])
    }
}

impl<C: CheckpointStrategy> FusedLstm for Autodiff<Flex, C> {
    fn lstm_states(
        pre: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        steps: usize,
        reverse: bool,
    ) -> FloatTensor<Self> {
        let shape = Shape::of(pre.primitive(), w_hh.primitive(), steps);
        let nodes = [pre.node(), w_hh.node()];
        let (pre, w_hh) = (host(pre.into_primitive()), host(w_hh.into_primitive()));
        let out = [steps * shape.batch, shape.hidden];
        match Recurrence.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let run = forward(&pre, &w_hh, shape, reverse, true);
                let states = flex(run.states.clone(), out);
                let saved = Saved {
                    run: Arc::new(run),
                    w_hh: Arc::new(w_hh),
                    shape,
                    reverse,
                };
                prep.finish(saved, states)
            }
            OpsKind::UnTracked(prep) => {
                let run = forward(&pre, &w_hh, shape, reverse, false);
                prep.finish(flex(run.states, out))
            }
        }
    }
}

/// The recurrence's backward step.
#[derive(Debug)]
struct Recurrence;

/// What the backward pass reads of the forward one.
#[derive(Debug, Clone)]
struct Saved {
    run: Arc<Run>,
    w_hh: Arc<Vec<f32>>,
    shape: Shape,
    reverse: bool,
}

impl Backward<Flex, 2> for Recurrence {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [pre_node, w_node] = ops.parents;
        let grad = host(grads.consume::<Flex>(&ops.node));
        let Saved {
            run,
            w_hh,
            shape,
            reverse,
        } = ops.state;
        let (d_pre, d_w) = backward(&run, &w_hh, &grad, shape, reverse);
        let (n, gates) = (shape.steps * shape.batch, 4 * shape.hidden);
        if let Some(node) = pre_node {
            grads.register::<Flex>(node.id, flex(d_pre, [n, gates]));
        }
        if let Some(node) = w_node {
            grads.register::<Flex>(node.id, flex(d_w, [shape.hidden, gates]));
        }
    }
}

/// The sizes of one recurrence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub steps: usize,
    pub batch: usize,
    pub hidden: usize,
}

impl Shape {
    fn of(pre: &FlexTensor, w_hh: &FlexTensor, steps: usize) -> Shape {
        let rows = pre.layout().shape()[0];
        Shape {
            steps,
            batch: rows / steps,
            hidden: w_hh.layout().shape()[0],
        }
    }
}

/// A flex tensor's values, row-major.
pub(crate) fn host(t: FlexTensor) -> Vec<f32> {
    t.into_data()
        .try_into_vec::<f32>()
        .expect("the LSTM runs on f32 tensors")
}

/// Row-major values as a flex tensor.
pub(crate) fn flex<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A forward pass: every step's hidden state, and for the backward pass the gates'
/// activations and the cell states (time-major, as `pre`).
#[derive(Debug, Default)]
pub struct Run {
    pub states: Vec<f32>,
    /// `[steps · batch, 4·hidden]`: input, forget, cell and output gates after their
    /// activations.
    gates: Vec<f32>,
    /// `[steps · batch, hidden]`.
    cells: Vec<f32>,
}

/// The step at position `i` of the recurrence's order.
fn step(i: usize, steps: usize, reverse: bool) -> usize {
    if reverse { steps - 1 - i } else { i }
}

/// The recurrence over `pre` (see [`FusedLstm::lstm_states`]); `keep`: also the gates and
/// cells the backward pass needs.
pub fn forward(pre: &[f32], w_hh: &[f32], shape: Shape, reverse: bool, keep: bool) -> Run {
    let Shape {
        steps,
        batch,
        hidden: h,
    } = shape;
    let (block, gate_block) = (batch * h, batch * 4 * h);
    let mut states = vec![0.0f32; steps * block];
    let mut cells = vec![0.0f32; if keep { steps * block } else { 0 }];
    let mut acts = vec![0.0f32; if keep { steps * gate_block } else { gate_block }];
    let mut c = vec![0.0f32; block];
    let mut z = vec![0.0f32; gate_block];
    for i in 0..steps {
        let t = step(i, steps, reverse);
        z.copy_from_slice(&pre[t * gate_block..][..gate_block]);
        if i > 0 {
            let prev = step(i - 1, steps, reverse);
            let h_prev = &states[prev * block..][..block];
            matmul(h_prev, w_hh, &mut z, (batch, h, 4 * h), Layout::Plain, true);
        }
        let a = if keep {
            &mut acts[t * gate_block..][..gate_block]
        } else {
            &mut acts[..]
        };
        let out = &mut states[t * block..][..block];
        for r in 0..batch {
            let zr = &z[r * 4 * h..][..4 * h];
            let ar = &mut a[r * 4 * h..][..4 * h];
            cell_update(zr, ar, &mut c[r * h..][..h], &mut out[r * h..][..h]);
        }
        if keep {
            cells[t * block..][..block].copy_from_slice(&c);
        }
    }
    Run {
        states,
        gates: if keep { acts } else { Vec::new() },
        cells,
    }
}

/// Back through time: the gradients of `pre` and of `w_hh` from those of every step's
/// hidden state (`grad`, as [`Run::states`]).
pub fn backward(
    run: &Run,
    w_hh: &[f32],
    grad: &[f32],
    shape: Shape,
    reverse: bool,
) -> (Vec<f32>, Vec<f32>) {
    let Shape {
        steps,
        batch,
        hidden: h,
    } = shape;
    let (block, gate_block) = (batch * h, batch * 4 * h);
    let mut d_pre = vec![0.0f32; steps * gate_block];
    let mut d_w = vec![0.0f32; h * 4 * h];
    // The gradient reaching a step's hidden and cell states from the step after it.
    let mut dh_next = vec![0.0f32; block];
    let mut dc = vec![0.0f32; block];
    let zeros = vec![0.0f32; block];
    for i in (0..steps).rev() {
        let t = step(i, steps, reverse);
        let prev = (i > 0).then(|| step(i - 1, steps, reverse));
        let c_prev = prev.map_or(&zeros[..], |p| &run.cells[p * block..][..block]);
        let dz = &mut d_pre[t * gate_block..][..gate_block];
        for r in 0..batch {
            let row = r * h..(r + 1) * h;
            cell_backward(
                &run.gates[t * gate_block + r * 4 * h..][..4 * h],
                (&run.cells[t * block..][row.clone()], &c_prev[row.clone()]),
                (&grad[t * block..][row.clone()], &dh_next[row.clone()]),
                &mut dc[row],
                &mut dz[r * 4 * h..][..4 * h],
            );
        }
        if let Some(p) = prev {
            let h_prev = &run.states[p * block..][..block];
            matmul(
                h_prev,
                dz,
                &mut d_w,
                (h, batch, 4 * h),
                Layout::LeftTransposed,
                true,
            );
            dh_next.fill(0.0);
            matmul(
                dz,
                w_hh,
                &mut dh_next,
                (batch, 4 * h, h),
                Layout::RightTransposed,
                false,
            );
        }
    }
    (d_pre, d_w)
}

/// One row's step backwards: from the gradient of its hidden state (the output's, plus what
/// the step after sends back) and of its cell state (in `dc`, from the step after), the
/// gradients of the gates' pre-activations `dz`; `dc` becomes the gradient reaching the
/// previous cell state. `a`: the gates' activations; `c`: this step's and the previous
/// step's cell states.
fn cell_backward(
    a: &[f32],
    cells: (&[f32], &[f32]),
    grads: (&[f32], &[f32]),
    dc: &mut [f32],
    dz: &mut [f32],
) {
    with_avx2!(cell_backward_portable, cell_backward_avx2(a: &[f32], cells: (&[f32], &[f32]), grads: (&[f32], &[f32]), dc: &mut [f32], dz: &mut [f32]));
}

/// [`cell_backward`] in zipped slices of one length, so the loop vectorises.
#[inline(always)]
fn cell_backward_portable(
    a: &[f32],
    (c, c_prev): (&[f32], &[f32]),
    (d_out, d_next): (&[f32], &[f32]),
    dc: &mut [f32],
    dz: &mut [f32],
) {
    let n = c.len();
    let (ai, rest) = a.split_at(n);
    let (af, rest) = rest.split_at(n);
    let (ag, ao) = rest.split_at(n);
    let (dzi, rest) = dz.split_at_mut(n);
    let (dzf, rest) = rest.split_at_mut(n);
    let (dzg, dzo) = rest.split_at_mut(n);
    let acts = ai.iter().zip(af).zip(ag.iter().zip(ao));
    let cells = c.iter().zip(c_prev).zip(d_out.iter().zip(d_next));
    let grads = dzi
        .iter_mut()
        .zip(dzf.iter_mut())
        .zip(dzg.iter_mut().zip(dzo.iter_mut()));
    for ((((ai, af), (ag, ao)), ((c, c_prev), (d_out, d_next))), (((dzi, dzf), (dzg, dzo)), dc)) in
        acts.zip(cells).zip(grads.zip(dc.iter_mut()))
    {
        let dh = d_out + d_next;
        let tc = tanh(*c);
        let dcj = *dc + dh * ao * (1.0 - tc * tc);
        *dzo = dh * tc * ao * (1.0 - ao);
        *dzi = dcj * ag * ai * (1.0 - ai);
        *dzg = dcj * ai * (1.0 - ag * ag);
        *dzf = dcj * c_prev * af * (1.0 - af);
        *dc = dcj * af;
    }
}

/// Which operand of [`matmul`] is read transposed.
#[derive(Clone, Copy)]
enum Layout {
    Plain,
    LeftTransposed,
    RightTransposed,
}

/// `out` (+)= `a` · `b` for `(m, k, n)`: `a` is `[m, k]` (`[k, m]` stored when
/// left-transposed), `b` is `[k, n]` (`[n, k]` stored when right-transposed), row-major; added
/// to `out` when `accumulate`. By the `gemm` crate with flex's threading rule, which splits
/// the output, never a sum: the same bits on any thread count.
fn matmul(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
    layout: Layout,
    accumulate: bool,
) {
    assert!(
        out.len() == m * n && a.len() == m * k && b.len() == k * n,
        "matching shapes"
    );
    let (a_rows, a_cols) = match layout {
        Layout::LeftTransposed => (1, m as isize),
        _ => (k as isize, 1),
    };
    let (b_rows, b_cols) = match layout {
        Layout::RightTransposed => (1, k as isize),
        _ => (n as isize, 1),
    };
    let parallelism = if m * n * k >= 192 * 192 * 192 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above holds each operand's size; the strides address `a` as [m, k]
    // (or its transpose), `b` as [k, n] (or its transpose) and `out` as [m, n], row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cols,
            a_rows,
            b.as_ptr(),
            b_cols,
            b_rows,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cnn_lstm::unfused;
    use crate::model::network::values;
    use burn::tensor::Distribution;

    /// The fused recurrence gives what burn's ops give, to 1e-5: every step's hidden state
    /// and the gradients of both inputs, forward and reverse, on a batch small enough to run
    /// each product on one thread and one large enough to split them.
    #[test]
    fn the_fused_recurrence_matches_burns_ops_forward_and_backward() {
        let _rng = crate::device::TEST_RNG.lock();
        let device = crate::device::cpu().autodiff();
        device.seed(7);
        for (steps, batch, h) in [(5, 3, 4), (2, 512, 64)] {
            for reverse in [false, true] {
                let normal = |shape: [usize; 2], sd| {
                    Tensor::<2>::random(shape, Distribution::Normal(0.0, sd), &device)
                };
                let pre = normal([steps * batch, 4 * h], 1.5);
                let w_hh = normal([h, 4 * h], 0.5);
                let upstream = normal([steps * batch, h], 1.0);
                let run = |f: fn(Tensor<2>, Tensor<2>, usize, bool) -> Tensor<2>| {
                    let (p, w) = (pre.clone().require_grad(), w_hh.clone().require_grad());
                    let out = f(p.clone(), w.clone(), steps, reverse);
                    let grads = (out.clone() * upstream.clone()).sum().backward();
                    let grad = |t: &Tensor<2>| values(t.grad(&grads).expect("a gradient"));
                    [values(out), grad(&p), grad(&w)].map(Result::unwrap)
                };
                let (fused, plain) = (run(states), run(unfused));
                for (what, (a, b)) in ["states", "d pre", "d w_hh"]
                    .iter()
                    .zip(fused.iter().zip(&plain))
                {
                    assert_eq!(a.len(), b.len());
                    let worst = a
                        .iter()
                        .zip(b)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f32::max);
                    assert!(
                        worst <= 1e-5,
                        "{what} ({steps}, {batch}, {h}, {reverse}): {worst:e}"
                    );
                }
            }
        }
    }
}
