//! The tail of a convolution block in training, batch norm on the batch's statistics, ReLU and
//! max-pool, as one fused operation on the CPU, forward and backward: two passes for the
//! statistics, one normalising, one writing the pooled outputs, and a hand-written backward
//! (which finds the step that won each pool again, by the same arithmetic). burn runs them as some twenty tensor ops, each a buffer and an
//! autodiff node. Sums run over the rows in order, so the bits do not depend on the CPU's
//! vector width or the thread count. Elsewhere (inference, a GPU) the block runs as burn's ops.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;

use super::gates::with_avx2;
use super::lstm::{flex, host};

/// The fused block tail, for the backends that have it.
#[backend_extension(Flex, Autodiff)]
pub trait FusedNormPool: burn::backend::Backend {
    /// `y`: a convolution's outputs `[batch · steps, channels]`, batch-major; `gamma`, `beta`:
    /// `[channels]`. Batch norm with the batch's statistics (biased variance, as PyTorch's
    /// training mode), ReLU, then the maximum of each `pool` steps (a last partial pool
    /// dropped): `[batch · (steps / pool), channels]`.
    fn norm_relu_pool(
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        steps: usize,
        pool: usize,
        epsilon: f32,
    ) -> FloatTensor<Self>;
}

/// [`FusedNormPool::norm_relu_pool`] on burn tensors (a CPU device with the flex backend);
/// `sizes`: steps per window and pool.
pub fn norm_relu_pool(
    y: Tensor<2>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    sizes: (usize, usize),
    epsilon: f32,
) -> Tensor<2> {
    let out = <Dispatch as FusedNormPool>::norm_relu_pool(
        y.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        sizes.0,
        sizes.1,
        epsilon,
    );
    Tensor::from_dispatch(out)
}

impl FusedNormPool for Flex {
    fn norm_relu_pool(
        y: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        steps: usize,
        pool: usize,
        epsilon: f32,
    ) -> FlexTensor {
        let sizes = Sizes::of(&y, steps, pool);
        let run = forward(&host(y), (&host(gamma), &host(beta)), sizes, epsilon);
        flex(run.out, sizes.out_shape())
    }
}

impl<C: CheckpointStrategy> FusedNormPool for Autodiff<Flex, C> {
    fn norm_relu_pool(
        y: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        steps: usize,
        pool: usize,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        let sizes = Sizes::of(y.primitive(), steps, pool);
        let nodes = [y.node(), gamma.node(), beta.node()];
        let y = host(y.into_primitive());
        let (gamma, beta) = (host(gamma.into_primitive()), host(beta.into_primitive()));
        let run = forward(&y, (&gamma, &beta), sizes, epsilon);
        let out = flex(run.out.clone(), sizes.out_shape());
        match NormPool.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let saved = Saved {
                    run: Arc::new(run),
                    affine: Arc::new((gamma, beta)),
                    sizes,
                };
                prep.finish(saved, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

#[derive(Debug)]
struct NormPool;

#[derive(Debug, Clone)]
struct Saved {
    run: Arc<Run>,
    /// γ and β.
    affine: Arc<(Vec<f32>, Vec<f32>)>,
    sizes: Sizes,
}

impl Backward<Flex, 3> for NormPool {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [y_node, gamma_node, beta_node] = ops.parents;
        let grad = host(grads.consume::<Flex>(&ops.node));
        let Saved { run, affine, sizes } = ops.state;
        let (d_y, d_gamma, d_beta) = backward(&run, (&affine.0, &affine.1), &grad, sizes);
        let c = sizes.channels;
        if let Some(node) = y_node {
            grads.register::<Flex>(node.id, flex(d_y, [sizes.rows(), c]));
        }
        for (node, values) in [(gamma_node, d_gamma), (beta_node, d_beta)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, flex(values, [c]));
            }
        }
    }
}

/// The sizes of one block tail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    pub batch: usize,
    pub steps: usize,
    pub pool: usize,
    pub channels: usize,
}

impl Sizes {
    fn of(y: &FlexTensor, steps: usize, pool: usize) -> Sizes {
        let shape = y.layout().shape();
        Sizes {
            batch: shape[0] / steps,
            steps,
            pool,
            channels: shape[1],
        }
    }

    fn rows(&self) -> usize {
        self.batch * self.steps
    }

    fn pooled(&self) -> usize {
        self.steps / self.pool
    }

    fn out_shape(&self) -> [usize; 2] {
        [self.batch * self.pooled(), self.channels]
    }
}

/// A forward pass, and what the backward pass reads of it.
#[derive(Debug)]
pub struct Run {
    pub out: Vec<f32>,
    /// The normalised inputs `(y − mean) / √(var + ε)`, as `y`.
    normalised: Vec<f32>,
    /// `1 / √(var + ε)` per channel.
    inv_std: Vec<f32>,
}

/// Per channel, the sum of `rows` (each `channels` wide) added in row order.
fn column_sums<'a>(rows: impl Iterator<Item = &'a [f32]>, channels: usize) -> Vec<f32> {
    let mut sums = vec![0.0f32; channels];
    for row in rows {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
    sums
}

/// Batch norm's affine step: the value batch norm gives a normalised `x` (the forward and the
/// backward pass both compute it this way, so they agree to the bit on which step won a pool).
#[inline]
fn affine(x: f32, gamma: f32, beta: f32) -> f32 {
    x * gamma + beta
}

/// See [`FusedNormPool::norm_relu_pool`].
pub fn forward(y: &[f32], (gamma, beta): (&[f32], &[f32]), sizes: Sizes, epsilon: f32) -> Run {
    let c = sizes.channels;
    let n = sizes.rows() as f32;
    let mean: Vec<f32> = column_sums(y.chunks_exact(c), c)
        .iter()
        .map(|s| s / n)
        .collect();
    let mut normalised = y.to_vec();
    let mut sq_sum = vec![0.0f32; c];
    for row in normalised.chunks_exact_mut(c) {
        for ((v, m), s) in row.iter_mut().zip(&mean).zip(sq_sum.iter_mut()) {
            *v -= m;
            *s += *v * *v;
        }
    }
    let inv_std: Vec<f32> = sq_sum
        .iter()
        .map(|s| 1.0 / (s / n + epsilon).sqrt())
        .collect();
    for row in normalised.chunks_exact_mut(c) {
        row.iter_mut().zip(&inv_std).for_each(|(v, i)| *v *= i);
    }
    let (pooled, pool) = (sizes.pooled(), sizes.pool);
    let mut out = vec![0.0f32; sizes.batch * pooled * c];
    for (bu, o) in out.chunks_exact_mut(c).enumerate() {
        let first = (bu / pooled) * sizes.steps + (bu % pooled) * pool;
        // ReLU then max: the largest of the pool's values and zero.
        for x in normalised[first * c..(first + pool) * c].chunks_exact(c) {
            let values = x.iter().zip(gamma).zip(beta);
            for (o, ((x, g), b)) in o.iter_mut().zip(values) {
                *o = o.max(affine(*x, *g, *b));
            }
        }
    }
    Run {
        out,
        normalised,
        inv_std,
    }
}

/// One step of a pool backwards: the pool's gradient `g` goes to the channels where this
/// step gave the maximum `o` and no earlier step took it (`taken`, updated).
fn pool_gradient(
    x: &[f32],
    affine: (&[f32], &[f32]),
    pooled: (&[f32], &[f32]),
    taken: &mut [f32],
    d: &mut [f32],
) {
    with_avx2!(pool_gradient_portable, pool_gradient_avx2(x: &[f32], affine: (&[f32], &[f32]), pooled: (&[f32], &[f32]), taken: &mut [f32], d: &mut [f32]));
}

/// [`pool_gradient`] in zipped slices and selects, so the loop vectorises.
#[inline(always)]
fn pool_gradient_portable(
    x: &[f32],
    (gamma, beta): (&[f32], &[f32]),
    (o, g): (&[f32], &[f32]),
    taken: &mut [f32],
    d: &mut [f32],
) {
    let per_channel = gamma.iter().zip(beta).zip(o.iter().zip(g));
    for (((x, d), t), ((gm, b), (o, g))) in x.iter().zip(d).zip(taken).zip(per_channel) {
        let won = *t == 0.0 && affine(*x, *gm, *b) == *o;
        *d = if won { *g } else { 0.0 };
        *t = if won { 1.0 } else { *t };
    }
}

/// The gradients of `y`, `gamma` and `beta` from that of the pooled outputs.
pub fn backward(
    run: &Run,
    (gamma, beta): (&[f32], &[f32]),
    grad: &[f32],
    sizes: Sizes,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = sizes.channels;
    let (pooled, pool) = (sizes.pooled(), sizes.pool);
    // The gradient reaching each normalised value: its pool's, at the first step that gave
    // the pool's (positive) maximum.
    let mut d_z = vec![0.0f32; sizes.rows() * c];
    // Per channel, 1 where an earlier step of the pool took the gradient (or none will).
    let mut taken = vec![0.0f32; c];
    for (bu, (o, g)) in run
        .out
        .chunks_exact(c)
        .zip(grad.chunks_exact(c))
        .enumerate()
    {
        let first = (bu / pooled) * sizes.steps + (bu % pooled) * pool;
        taken
            .iter_mut()
            .zip(o)
            .for_each(|(t, o)| *t = f32::from(*o <= 0.0));
        for r in first..first + pool {
            let (x, d) = (&run.normalised[r * c..][..c], &mut d_z[r * c..][..c]);
            pool_gradient(x, (gamma, beta), (o, g), &mut taken, d);
        }
    }
    let d_beta = column_sums(d_z.chunks_exact(c), c);
    let mut d_gamma = vec![0.0f32; c];
    for (dz, x) in d_z.chunks_exact(c).zip(run.normalised.chunks_exact(c)) {
        for ((s, d), v) in d_gamma.iter_mut().zip(dz).zip(x) {
            *s += d * v;
        }
    }
    // dy = γ/σ · (dz − mean(dz) − x̂ · mean(dz · x̂)), x̂ the normalised input.
    let n = sizes.rows() as f32;
    let scale: Vec<f32> = gamma.iter().zip(&run.inv_std).map(|(g, i)| g * i).collect();
    let mean_dz: Vec<f32> = d_beta.iter().map(|d| d / n).collect();
    let mean_dzx: Vec<f32> = d_gamma.iter().map(|d| d / n).collect();
    let mut d_y = d_z;
    for (dz, x) in d_y.chunks_exact_mut(c).zip(run.normalised.chunks_exact(c)) {
        let per_channel = scale.iter().zip(&mean_dz).zip(&mean_dzx);
        for ((d, x), ((s, m), mx)) in dz.iter_mut().zip(x).zip(per_channel) {
            *d = s * (*d - m - x * mx);
        }
    }
    (d_y, d_gamma, d_beta)
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::Distribution;

    use super::*;
    use crate::model::cnn_lstm::unfused_norm_relu_pool;
    use crate::model::network::values;

    /// The fused tail gives what burn's ops give, to 1e-5 (relative beyond 1): the pooled
    /// outputs and the gradients of the inputs, γ and β, with an odd step count (a partial
    /// pool dropped), ReLU zeros, a batch large enough for several vector widths, and pools
    /// whose steps tie.
    #[test]
    fn the_fused_block_tail_matches_burns_ops_forward_and_backward() {
        let _rng = crate::device::TEST_RNG.lock();
        let device = crate::device::cpu().autodiff();
        device.seed(11);
        for (batch, steps, pool, c) in [(3, 7, 2, 5), (64, 13, 2, 40), (5, 9, 3, 8), (4, 8, 2, 6)] {
            let normal = |shape: [usize; 2], sd| {
                Tensor::<2>::random(shape, Distribution::Normal(0.5, sd), &device)
            };
            let y = match steps {
                // Each step twice (as a repeated flow gives): every pool a tie.
                8 => {
                    let half = normal([batch * steps / 2, c], 2.0);
                    Tensor::cat(vec![half.clone(), half], 1).reshape([batch * steps, c])
                }
                _ => normal([batch * steps, c], 2.0),
            };
            let affine = normal([2, c], 1.0);
            let upstream = normal([batch * (steps / pool), c], 1.0);
            let run = |fused: bool| {
                let mut norm = BatchNormConfig::new(c).init(&device);
                let row = |i| affine.clone().narrow(0, i, 1).reshape([c]);
                norm.gamma = Param::from_tensor(row(0));
                norm.beta = Param::from_tensor(row(1));
                let y = y.clone().require_grad();
                let out = if fused {
                    let (g, b) = (norm.gamma.val(), norm.beta.val());
                    norm_relu_pool(y.clone(), g, b, (steps, pool), norm.epsilon as f32)
                } else {
                    let h = unfused_norm_relu_pool(&norm, y.clone(), (batch, steps, pool));
                    h.reshape([batch * (steps / pool), c])
                };
                let grads = (out.clone() * upstream.clone()).sum().backward();
                let grad = |t: Tensor<2>| values(t.grad(&grads).expect("a gradient"));
                let grad1 = |t: Tensor<1>| values(t.grad(&grads).expect("a gradient"));
                let (g, b) = (norm.gamma.val(), norm.beta.val());
                [values(out), grad(y), grad1(g), grad1(b)].map(Result::unwrap)
            };
            let (fused, plain) = (run(true), run(false));
            for (what, (a, b)) in ["out", "d y", "d gamma", "d beta"]
                .iter()
                .zip(fused.iter().zip(&plain))
            {
                assert_eq!(a.len(), b.len(), "{what}");
                for (x, y) in a.iter().zip(b) {
                    let tolerance = 1e-5 * y.abs().max(1.0);
                    assert!(
                        (x - y).abs() <= tolerance,
                        "{what} ({batch}, {steps}): {x} vs {y}"
                    );
                }
            }
            assert!(fused[0].contains(&0.0), "some outputs are ReLU's zeros");
        }
    }
}
