//! Observation encoders in front of the actor's and critics' trunks (sapo.md §2.2 "Point-cloud
//! encoder"): the flat observation itself, or a PointNet over a block of particle positions plus a
//! small MLP over the remaining low-dimensional entries.
//!
//! The PointNet follows the DP3-style encoder SAPO uses on RollingFlat, SoftJumper, HandFlip and
//! FluidMove:
//! - a shared per-point MLP 3 → 64 → 128 → 256 (Linear + LayerNorm + activation each),
//! - **mean** pooling over the points (permutation invariant),
//! - a projection Linear(256 → 64) + LayerNorm + activation,
//! - the low-dimensional entries through Linear(→ 128) + LayerNorm + activation,
//! - z = concat(64, 128), 192 wide.
//!
//! The actor and each critic own their encoder (`share_encoder: False` in SAPO), trained with
//! their own optimizer. The point block enters unnormalized (the observation normalizer passes it
//! through, see `RunningMeanStd::raw`); only the low-dimensional entries are normalized.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module};

use crate::nets::{Activation, Mlp};

/// Widths of the per-point MLP, the projection and the low-dimensional MLP (sapo.md §2.2).
const PER_POINT: [i64; 3] = [64, 128, 256];
const PROJECTION: i64 = 64;
const LOW_DIM: i64 = 128;

/// Where a point cloud sits in the flat observation: `points` consecutive xyz triples starting at
/// entry `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointCloudLayout {
    pub points: usize,
    pub offset: usize,
}

impl PointCloudLayout {
    /// The observation entries of the points.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + 3 * self.points
    }

    /// `Ok` when the block fits an observation of `obs_dim` entries and holds at least one point.
    pub fn check(&self, obs_dim: usize) -> Result<(), String> {
        if self.points == 0 {
            return Err("a point cloud needs at least 1 point".into());
        }
        if self.range().end > obs_dim {
            return Err(format!(
                "{} points from entry {} need entries {}..{}, but the observation has {obs_dim}",
                self.points,
                self.offset,
                self.offset,
                self.range().end
            ));
        }
        Ok(())
    }
}

/// PointNet over the point block plus an MLP over the other entries.
#[derive(Debug)]
pub struct PointNet {
    layout: PointCloudLayout,
    per_point: Mlp,
    projection: Mlp,
    /// The MLP of the low-dimensional entries, and their indices; `None` when the observation is
    /// only points.
    low: Option<(Mlp, Tensor)>,
    obs_dim: i64,
}

impl PointNet {
    pub fn new(vs: nn::Path, obs_dim: i64, layout: PointCloudLayout, act: Activation, gain: f64) -> Self {
        let per_point = Mlp::new(&vs / "per_point", 3, &PER_POINT, act, gain);
        let projection = Mlp::new(&vs / "projection", per_point.out_dim, &[PROJECTION], act, gain);
        let points = layout.range();
        let low_index: Vec<i64> = (0..obs_dim).filter(|&j| !points.contains(&(j as usize))).collect();
        let low = (!low_index.is_empty()).then(|| {
            let mlp = Mlp::new(&vs / "low", low_index.len() as i64, &[LOW_DIM], act, gain);
            (mlp, Tensor::from_slice(&low_index))
        });
        Self { layout, per_point, projection, low, obs_dim }
    }

    pub fn out_dim(&self) -> i64 {
        self.projection.out_dim + self.low.as_ref().map_or(0, |(m, _)| m.out_dim)
    }
}

impl Module for PointNet {
    /// `[..., obs_dim]` → `[..., out_dim]`.
    fn forward(&self, obs: &Tensor) -> Tensor {
        let size = obs.size();
        let lead = &size[..size.len() - 1];
        let flat = obs.reshape([-1, self.obs_dim]);
        let p = self.layout.points as i64;
        let pts = flat.narrow(-1, self.layout.offset as i64, 3 * p).reshape([-1, p, 3]);
        // Mean pooling: invariant to the order of the points, and smooth in every point (max
        // pooling would pass gradient to one point per feature).
        let pooled = self.per_point.forward(&pts).mean_dim(1, false, pts.kind());
        let mut z = self.projection.forward(&pooled);
        if let Some((mlp, index)) = &self.low {
            let low = flat.index_select(-1, index);
            z = Tensor::cat(&[z, mlp.forward(&low)], -1);
        }
        let mut out: Vec<i64> = lead.to_vec();
        out.push(self.out_dim());
        z.reshape(out)
    }
}

/// What a network sees of the (normalized) observation.
#[derive(Debug)]
pub enum Encoder {
    /// The observation itself.
    Flat {
        dim: i64,
    },
    PointNet(PointNet),
}

impl Encoder {
    /// A flat encoder when `layout` is `None`, else a PointNet on that block.
    pub fn new(vs: nn::Path, obs_dim: i64, layout: Option<PointCloudLayout>, act: Activation, gain: f64) -> Self {
        match layout {
            None => Encoder::Flat { dim: obs_dim },
            Some(l) => Encoder::PointNet(PointNet::new(&vs / "pointnet", obs_dim, l, act, gain)),
        }
    }

    pub fn out_dim(&self) -> i64 {
        match self {
            Encoder::Flat { dim } => *dim,
            Encoder::PointNet(p) => p.out_dim(),
        }
    }
}

impl Module for Encoder {
    fn forward(&self, obs: &Tensor) -> Tensor {
        match self {
            Encoder::Flat { .. } => obs.shallow_clone(),
            Encoder::PointNet(p) => p.forward(obs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn tensor_of(v: &[f64], shape: &[i64], kind: Kind) -> Tensor {
        Tensor::from_slice(v).reshape(shape).to_kind(kind)
    }

    fn net(layout: PointCloudLayout, obs_dim: i64) -> (nn::VarStore, PointNet) {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let p = PointNet::new(vs.root(), obs_dim, layout, Activation::Silu, 1.0);
        (vs, p)
    }

    fn obs(n: usize, d: usize) -> Tensor {
        let v: Vec<f64> = (0..n * d).map(|i| ((i * 37 % 101) as f64 / 50.0 - 1.0) * 0.3).collect();
        tensor_of(&v, &[n as i64, d as i64], Kind::Float)
    }

    #[test]
    fn layout_check_names_the_overflow() {
        let l = PointCloudLayout { points: 4, offset: 2 };
        assert!(l.check(14).is_ok());
        let e = l.check(13).unwrap_err();
        assert!(e.contains("2..14") && e.contains("13"), "{e}");
        assert!(PointCloudLayout { points: 0, offset: 0 }.check(5).is_err());
    }

    #[test]
    fn output_is_192_wide_and_keeps_leading_dims() {
        let layout = PointCloudLayout { points: 5, offset: 3 };
        let (_vs, p) = net(layout, 3 + 15 + 4);
        assert_eq!(p.out_dim(), 192);
        let z = p.forward(&obs(6, 22).reshape([2, 3, 22]));
        assert_eq!(z.size(), vec![2, 3, 192]);
        // Only points: no low-dimensional branch.
        let (_vs, q) = net(PointCloudLayout { points: 5, offset: 0 }, 15);
        assert_eq!(q.forward(&obs(2, 15)).size(), vec![2, 64]);
    }

    #[test]
    fn invariant_to_the_order_of_the_points_but_not_to_the_points() {
        let layout = PointCloudLayout { points: 4, offset: 2 };
        let (_vs, p) = net(layout, 2 + 12 + 3);
        let o = obs(3, 17);
        // Swap points 0 and 3 (entries 2..5 and 11..14) in every row.
        let mut idx: Vec<i64> = (0..17).collect();
        for d in 0..3 {
            idx.swap(2 + d, 11 + d);
        }
        let swapped = o.index_select(1, &Tensor::from_slice(&idx));
        let (a, b) = (p.forward(&o), p.forward(&swapped));
        assert!(f64::try_from((&a - &b).abs().max()).unwrap() < 1e-5);
        // Moving one point changes the encoding.
        let moved = &o
            + tensor_of(
                &(0..51).map(|i| if i % 17 == 5 { 0.5 } else { 0.0 }).collect::<Vec<_>>(),
                &[3, 17],
                Kind::Float,
            );
        assert!(f64::try_from((p.forward(&moved) - &a).abs().max()).unwrap() > 1e-4);
    }

    #[test]
    fn every_parameter_and_every_input_gets_a_gradient() {
        let layout = PointCloudLayout { points: 4, offset: 2 };
        let (vs, p) = net(layout, 17);
        let o = obs(3, 17).set_requires_grad(true);
        p.forward(&o).square().sum(Kind::Float).backward();
        let g = o.grad();
        for j in 0..17 {
            let col = f64::try_from(g.select(1, j).abs().sum(Kind::Float)).unwrap();
            assert!(col > 0.0, "observation entry {j} gets no gradient");
        }
        for (name, t) in vs.variables() {
            let gn = f64::try_from(t.grad().abs().sum(Kind::Float)).unwrap();
            assert!(gn > 0.0, "{name} gets no gradient");
        }
    }
}
