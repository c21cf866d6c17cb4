//! Exact nearest neighbours for the neighbourhood families (LOF, DBSCAN; the one-class SVM
//! scores through the same blocks): distances from one
//! matrix product per block of 256 query rows (‖q‖² + ‖f‖² − 2 q·f, by the `gemm` crate burn's
//! CPU backend uses, one thread per block), so a row's neighbours do not depend on the number
//! of threads. Written here: the Rust k-NN crates build trees, which do not help at 100+
//! dimensions, and the brute force is a few lines around one product.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rayon::prelude::*;

pub const BLOCK: usize = 256;

/// A row's k nearest fitted rows: (index, distance), nearest first.
pub type Neighbours = Vec<(u32, f32)>;

pub(crate) fn squared_norms(rows: &[f32], d: usize) -> Vec<f32> {
    rows.chunks_exact(d)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

/// `each(block index, block, dots)` for every block of up to 256 `queries` rows, where `dots`
/// holds the block's dot products with every `fit` row (q × n, row-major); the results in
/// block order.
pub(crate) fn blocks<T: Send>(
    fit: &[f32],
    queries: &[f32],
    d: usize,
    each: impl Fn(usize, &[f32], &[f32]) -> Vec<T> + Sync,
) -> Vec<T> {
    let n = fit.len() / d;
    let parts: Vec<Vec<T>> = queries
        .par_chunks(d * BLOCK)
        .enumerate()
        .map_init(Vec::new, |dots: &mut Vec<f32>, (b, block)| {
            let q = block.len() / d;
            dots.clear();
            dots.resize(q * n, 0.0);
            // SAFETY: `dots` holds q × n values (row-major), `block` q × d (row-major) and
            // `fit` n × d (row-major), read as the d × n transpose through its strides.
            unsafe {
                gemm::gemm(
                    q,
                    n,
                    d,
                    dots.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    block.as_ptr(),
                    1,
                    d as isize,
                    fit.as_ptr(),
                    d as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            each(b, block, dots)
        })
        .collect();
    parts.into_iter().flatten().collect()
}

/// The `k` nearest rows of `fit` to each row of `queries`; with `exclude_self`, `queries` is
/// `fit` and a row is not its own neighbour.
pub fn nearest(
    fit: &[f32],
    queries: &[f32],
    d: usize,
    k: usize,
    exclude_self: bool,
) -> Vec<Neighbours> {
    let fit_norms = squared_norms(fit, d);
    let n = fit_norms.len();
    blocks(fit, queries, d, |b, block, dots| {
        let query_norms = squared_norms(block, d);
        (0..query_norms.len())
            .map(|i| {
                let row = &block[i * d..(i + 1) * d];
                let skip = exclude_self.then_some(b * BLOCK + i);
                let mut nb = k_smallest(
                    &dots[i * n..(i + 1) * n],
                    query_norms[i],
                    &fit_norms,
                    k,
                    skip,
                );
                // The product form loses precision to cancellation (scikit-learn's distances
                // upcast to f64 for the same reason): the kept neighbours' distances are
                // recomputed exactly.
                for (j, dist) in nb.iter_mut() {
                    let other = &fit[*j as usize * d..(*j as usize + 1) * d];
                    *dist = exact_distance(row, other);
                }
                nb.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                nb
            })
            .collect()
    })
}

/// The squared Euclidean distance, summed in f64.
pub fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (*x - *y) as f64;
            d * d
        })
        .sum()
}

fn exact_distance(a: &[f32], b: &[f32]) -> f32 {
    squared_distance(a, b).sqrt() as f32
}

/// The `k` fitted rows nearest to a query, from its dot products with them (`dots`) and the
/// squared norms: kept sorted by (squared distance, index) as the candidates stream past, so
/// no row needs more than k slots.
fn k_smallest(
    dots: &[f32],
    query_norm: f32,
    fit_norms: &[f32],
    k: usize,
    skip: Option<usize>,
) -> Neighbours {
    let mut best: Neighbours = Vec::with_capacity(k + 1);
    for (j, (&dot, &fit_norm)) in dots.iter().zip(fit_norms).enumerate() {
        if Some(j) == skip {
            continue;
        }
        let squared = (query_norm + fit_norm - 2.0 * dot).max(0.0);
        if best.len() == k && squared >= best[k - 1].1 {
            continue;
        }
        // After equal distances: the earlier row stays ahead.
        let at = best.partition_point(|e| e.1 <= squared);
        best.insert(at, (j as u32, squared));
        best.truncate(k);
    }
    best
}

/// Each fitted row's count of fitted rows (itself included) within `radius`.
pub fn counts_within(fit: &[f32], d: usize, radius: f32) -> Vec<usize> {
    let limit = radius * radius;
    let norms = squared_norms(fit, d);
    let n = norms.len();
    blocks(fit, fit, d, |b, block, dots| {
        (0..block.len() / d)
            .map(|i| {
                let qn = norms[b * BLOCK + i];
                dots[i * n..(i + 1) * n]
                    .iter()
                    .zip(&norms)
                    .filter(|(dot, fnorm)| qn + **fnorm - 2.0 * **dot <= limit)
                    .count()
            })
            .collect()
    })
}

/// Each row's connected component when rows within `radius` of each other are linked,
/// numbered 0, 1, … in the order of each component's first row. Each block of rows unions its
/// links into a forest over all rows and hands back the forest (n labels, however many links),
/// and the blocks' forests are merged; the components do not depend on the blocks.
pub fn components_within(fit: &[f32], d: usize, radius: f32) -> Vec<u32> {
    let limit = radius * radius;
    let norms = squared_norms(fit, d);
    let n = norms.len();
    let forests = blocks(fit, fit, d, |b, block, dots| {
        let mut forest = Forest::new(n);
        for i in 0..block.len() / d {
            let row = b * BLOCK + i;
            let linked = dots[i * n..(i + 1) * n]
                .iter()
                .zip(&norms)
                .map(|(dot, fnorm)| norms[row] + fnorm - 2.0 * dot <= limit);
            for (j, _) in linked.enumerate().filter(|(_, l)| *l) {
                forest.union(row, j);
            }
        }
        (0..n).map(|j| forest.root(j)).collect()
    });
    let mut forest = Forest::new(n);
    for roots in forests.chunks_exact(n.max(1)) {
        for (j, &r) in roots.iter().enumerate() {
            forest.union(j, r as usize);
        }
    }
    let mut ids = vec![u32::MAX; n];
    let mut next = 0;
    (0..n)
        .map(|j| {
            let r = forest.root(j) as usize;
            if ids[r] == u32::MAX {
                ids[r] = next;
                next += 1;
            }
            ids[r]
        })
        .collect()
}

/// Union-find over row indices (path halving; the smaller root wins, so roots are stable).
struct Forest {
    parent: Vec<u32>,
}

impl Forest {
    fn new(n: usize) -> Forest {
        Forest {
            parent: (0..n as u32).collect(),
        }
    }

    fn root(&mut self, mut i: usize) -> u32 {
        while self.parent[i] as usize != i {
            self.parent[i] = self.parent[self.parent[i] as usize];
            i = self.parent[i] as usize;
        }
        i as u32
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        self.parent[hi as usize] = lo;
    }
}

/// `rows` of `x` (row-major, `d` features per row) as a matrix of their own.
pub fn gather(x: &[f32], d: usize, rows: &[usize]) -> Vec<f32> {
    rows.iter()
        .flat_map(|&r| &x[r * d..(r + 1) * d])
        .copied()
        .collect()
}

/// At most `max` of `rows`, a seeded sample in file order (all of them when there are fewer).
pub fn subsample(rows: &[usize], max: usize, seed: u64) -> Vec<usize> {
    if rows.len() <= max {
        return rows.to_vec();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kept: Vec<usize> = sample(&mut rng, rows.len(), max)
        .into_iter()
        .map(|i| rows[i])
        .collect();
    kept.sort_unstable();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_exact_and_skip_the_row_itself() {
        // Points on a line at 0, 1, 3, 6: the 2 nearest of 1 (itself skipped) are 0 and 3.
        let fit = [0.0f32, 1.0, 3.0, 6.0];
        let nb = nearest(&fit, &fit, 1, 2, true);
        assert_eq!(nb[1], [(0, 1.0), (2, 2.0)]);
        assert_eq!(nb[3], [(2, 3.0), (1, 5.0)]);
        // A new point at 2.5: 3 (0.5) then 1 (1.5).
        assert_eq!(nearest(&fit, &[2.5], 1, 2, false)[0], [(2, 0.5), (1, 1.5)]);
    }

    #[test]
    fn components_link_rows_within_the_radius_across_blocks() {
        // 0, 1, 2 chain together at radius 1.5; 5 and 6 form a second component; 9 is alone.
        let fit = [5.0f32, 0.0, 9.0, 1.0, 6.0, 2.0];
        assert_eq!(components_within(&fit, 1, 1.5), [0, 1, 2, 1, 0, 1]);
        // A chain longer than a block, given in reverse: one component.
        let chain: Vec<f32> = (0..(2 * BLOCK + 7)).rev().map(|i| i as f32).collect();
        assert!(components_within(&chain, 1, 1.0).iter().all(|&c| c == 0));
    }

    #[test]
    fn counts_within_include_the_row_itself() {
        let fit = [0.0f32, 1.0, 3.0, 6.0];
        assert_eq!(counts_within(&fit, 1, 2.0), [2, 3, 2, 1]);
        assert_eq!(subsample(&[5, 6, 7], 10, 1), [5, 6, 7]);
        let kept = subsample(&(0..100).collect::<Vec<_>>(), 10, 1);
        assert_eq!(kept.len(), 10);
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
    }
}
