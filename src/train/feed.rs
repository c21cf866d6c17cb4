//! Where a training pass's batches come from: gathered on the host batch by batch, or sliced on
//! the device from rows uploaded there once.
//!
//! A GPU step that starts with an upload from the host, and ends with a read of its loss,
//! makes the GPU wait for the host twice per step; at large batches that wait was most of an
//! epoch. So on a GPU the encoded rows and their targets are uploaded once per run, each pass
//! uploads its shuffled row order once, and a batch is a `select` of those rows on the device.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::Objective;
use crate::data::Dataset;

/// Above this many bytes of rows and targets, batches stream from the host instead: a GPU
/// with less memory than the capture still trains.
const RESIDENT_LIMIT_BYTES: usize = 2 << 30;

/// The rows a pass draws its batches from.
pub enum Feed<'a> {
    /// Gathered on the host for each batch: on the CPU (where it is exact and costs no wait),
    /// for a sequence family's windows (built on the fly, never stored), and for rows too large
    /// for [`RESIDENT_LIMIT_BYTES`].
    Host(&'a Dataset),
    /// Every row and its target on the device.
    Device(Box<Resident>),
}

/// Rows and targets uploaded once.
pub struct Resident {
    x: Tensor<2>,
    t: Tensor<2>,
    /// Multiclass targets hold each row's class weight; a batch divides by its own sum.
    per_batch_weights: bool,
}

impl<'a> Feed<'a> {
    /// The feed for training on `data` on `device`.
    pub fn new(data: &'a Dataset, objective: &Objective, device: &Device) -> Feed<'a> {
        let n = data.len();
        let target_width = match objective {
            Objective::Binary { .. } => 1,
            Objective::Multiclass { weights } => weights.len(),
            Objective::Reconstruction => 0,
        };
        let bytes = n * (data.n_features + target_width) * 4;
        if crate::device::is_cpu(device) || data.windows.is_some() || bytes > RESIDENT_LIMIT_BYTES {
            return Feed::Host(data);
        }
        let x = Tensor::from_data(
            TensorData::new(data.x.clone(), [n, data.n_features]),
            device,
        );
        let t = match objective {
            Objective::Reconstruction => x.clone(),
            _ => {
                let all: Vec<usize> = (0..n).collect();
                let (t, shape) = objective.targets(data, &all);
                Tensor::from_data(TensorData::new(t, shape), device)
            }
        };
        Feed::Device(Box::new(Resident {
            x,
            t,
            per_batch_weights: matches!(objective, Objective::Multiclass { .. }),
        }))
    }

    /// A pass over `order`, whose batches are drawn in turn. A device feed uploads the order
    /// once, here.
    pub fn pass(&self, order: &[usize], device: &Device) -> Pass<'_> {
        match self {
            Feed::Host(data) => Pass::Host(data),
            Feed::Device(rows) => {
                let ids: Vec<i64> = order.iter().map(|&r| r as i64).collect();
                Pass::Device {
                    rows,
                    ids: Box::new(Tensor::from_data(
                        TensorData::new(ids, [order.len()]),
                        device,
                    )),
                    start: 0,
                }
            }
        }
    }
}

/// A pass under way.
pub enum Pass<'f> {
    Host(&'f Dataset),
    Device {
        rows: &'f Resident,
        /// The pass's order, on the device.
        ids: Box<Tensor<1, Int>>,
        /// Where the next batch starts in it.
        start: usize,
    },
}

impl Pass<'_> {
    /// The inputs and targets of the pass's next batch.
    pub fn next(
        &mut self,
        objective: &Objective,
        batch: &[usize],
        x_buf: &mut Vec<f32>,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        match self {
            Pass::Host(data) => host_batch(data, batch, objective, x_buf, device),
            Pass::Device { rows, ids, start } => {
                let ids = ids.as_ref().clone().slice(*start..*start + batch.len());
                *start += batch.len();
                let t = rows.t.clone().select(0, ids.clone());
                let t = if rows.per_batch_weights {
                    let total = t.clone().sum().unsqueeze::<2>();
                    t / total
                } else {
                    t
                };
                (rows.x.clone().select(0, ids), t)
            }
        }
    }
}

/// A batch gathered on the host and uploaded.
pub(super) fn host_batch(
    ds: &Dataset,
    rows: &[usize],
    objective: &Objective,
    x_buf: &mut Vec<f32>,
    device: &Device,
) -> (Tensor<2>, Tensor<2>) {
    let d = ds.n_features;
    x_buf.clear();
    ds.gather(rows, x_buf);
    let x = Tensor::from_data(TensorData::new(x_buf.clone(), [rows.len(), d]), device);
    let (t, shape) = objective.targets(ds, rows);
    (x, Tensor::from_data(TensorData::new(t, shape), device))
}
