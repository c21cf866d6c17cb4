//! The LSTM's gate functions in plain f32 arithmetic: `exp` as a polynomial (no libm call,
//! whose bits differ between CPUs with and without FMA), so training and inference compute
//! the same bits on every CPU, and loops over them vectorise.

/// `e^x` in f32 arithmetic only (Cephes' `expf`: `x = n·ln 2 + r`, a degree-6 polynomial in
/// `r`, times `2^n`), so its bits are the same on every CPU. Within 1 ULP of the exact value
/// over [−87, 88] (a test measures it); outside, the value at the nearer end.
#[inline]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two, so n·C1 is exact.
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Adding and taking away 1.5·2^23 rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.336_54, 88.722_83);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * C1) - n * C2;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n, built from its exponent bits (n within [−126, 128] after the clamp).
    let n = n as i32;
    let half = f32::from_bits(((n / 2 + 127) as u32) << 23);
    e * half * f32::from_bits(((n - n / 2 + 127) as u32) << 23)
}

/// The logistic function through [`exp`].
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh` through [`exp`]: `1 − 2 / (e^{2x} + 1)` (absolute error, not relative, near 0).
#[inline]
pub fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// Calls `$portable` (an `#[inline(always)]` function) compiled for AVX2 where the CPU has it,
/// twice the lanes of the baseline's SSE2. Not FMA: each operation rounds as it does in
/// SSE2, so the bits are the same either way.
macro_rules! with_avx2 {
    ($portable:ident, $avx2:ident ( $($arg:ident: $ty:ty),* )) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn $avx2($($arg: $ty),*) {
            $portable($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { $avx2($($arg),*) };
        }
        $portable($($arg),*)
    };
}
pub(crate) use with_avx2;

/// One row's gates: `z` (pre-activations) → `a` (activations), and the cell state `c` and
/// hidden state `h` updated in place.
pub(crate) fn cell_update(z: &[f32], a: &mut [f32], c: &mut [f32], h: &mut [f32]) {
    with_avx2!(cell_update_portable, cell_update_avx2(z: &[f32], a: &mut [f32], c: &mut [f32], h: &mut [f32]));
}

/// [`cell_update`] in zipped slices of one length, so the loop vectorises.
#[inline(always)]
fn cell_update_portable(z: &[f32], a: &mut [f32], c: &mut [f32], h: &mut [f32]) {
    let n = c.len();
    let (zi, rest) = z.split_at(n);
    let (zf, rest) = rest.split_at(n);
    let (zg, zo) = rest.split_at(n);
    let (ai, rest) = a.split_at_mut(n);
    let (af, rest) = rest.split_at_mut(n);
    let (ag, ao) = rest.split_at_mut(n);
    let gates = zi.iter().zip(zf).zip(zg.iter().zip(zo));
    let acts = ai
        .iter_mut()
        .zip(af.iter_mut())
        .zip(ag.iter_mut().zip(ao.iter_mut()));
    let states = c.iter_mut().zip(h.iter_mut());
    for ((((zi, zf), (zg, zo)), ((ai, af), (ag, ao))), (c, h)) in gates.zip(acts).zip(states) {
        (*ai, *af, *ag, *ao) = (sigmoid(*zi), sigmoid(*zf), tanh(*zg), sigmoid(*zo));
        *c = *af * *c + *ai * *ag;
        *h = *ao * tanh(*c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance between two finite f32 of one sign, in units in the last place.
    fn ulps(a: f32, b: f32) -> i64 {
        (a.to_bits() as i64 - b.to_bits() as i64).abs()
    }

    /// Measured against f64 on a grid of 2,000,001 points: `exp` over [−87, 88] in ULP,
    /// `sigmoid` and `tanh` over [−11, 11] as absolute error.
    #[test]
    fn exp_sigmoid_and_tanh_are_within_a_few_ulp() {
        let (mut exp_ulp, mut sig_err, mut tanh_err) = (0, 0f64, 0f64);
        let n = 2_000_000;
        for i in 0..=n {
            let x = -87.0 + 175.0 * (i as f64 / n as f64);
            let xf = x as f32;
            exp_ulp = exp_ulp.max(ulps(exp(xf), (xf as f64).exp() as f32));
            let x = xf / 8.0;
            let exact = 1.0 / (1.0 + (-(x as f64)).exp());
            sig_err = sig_err.max((sigmoid(x) as f64 - exact).abs());
            tanh_err = tanh_err.max((tanh(x) as f64 - (x as f64).tanh()).abs());
        }
        eprintln!("exp {exp_ulp} ULP, sigmoid {sig_err:.2e}, tanh {tanh_err:.2e}");
        assert!(exp_ulp <= 1, "exp: {exp_ulp} ULP");
        assert!(sig_err <= 1e-7, "sigmoid: {sig_err:e}");
        assert!(tanh_err <= 2e-7, "tanh: {tanh_err:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(1000.0) > 3e38 && exp(f32::NAN).is_nan());
    }

    /// The gate loop built for AVX2 (where this CPU has it) gives the baseline build's bits.
    #[test]
    fn the_avx2_gate_loop_gives_the_baseline_bits() {
        let h = 37;
        let z: Vec<f32> = (0..4 * h)
            .map(|i| ((i * 7919) % 613) as f32 / 20.0 - 15.0)
            .collect();
        type GateLoop = fn(&[f32], &mut [f32], &mut [f32], &mut [f32]);
        let run = |f: GateLoop| {
            let (mut a, mut c, mut out) = (vec![0.0; 4 * h], vec![0.5; h], vec![0.0; h]);
            f(&z, &mut a, &mut c, &mut out);
            f(&z, &mut a, &mut c, &mut out);
            [a, c, out].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>())
        };
        assert_eq!(run(cell_update), run(cell_update_portable));
    }
}
