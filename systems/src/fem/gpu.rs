//! What the FEM systems' GPU kernels share: the uniform block [`FemParams`] (WGSL `struct Params`
//! in `wgsl/params.wgsl`), the WGSL sources, the per-tetrahedron constants derived on the host
//! in f64 (so the GPU sees the same f32 values as the CPU's `R::from_f64`), and the CSR
//! particle → (tetrahedron, corner) adjacency of the deterministic force gather.
//!
//! Tetrahedra reduce in two passes on every scatter mode: one invocation per tetrahedron writes
//! its four corner forces (or adjoint contributions) into a scratch buffer, then one invocation
//! per particle adds its corners' entries in increasing tetrahedron order, the CPU loop's order
//! of additions. Unlike the springs' gather this evaluates each element once, so there is no
//! determinism cost to trade against atomics and `Scatter::Atomic` uses the same kernels.

use diffsim_engine::scene::TET_PARAMS;

/// The uniform block of every FEM kernel, laid out by encase (field order = WGSL order).
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct FemParams {
    /// Invocations that do work in this dispatch, over all envs.
    pub n: u32,
    /// Particles per env.
    pub np: u32,
    /// Tetrahedra per env.
    pub nt: u32,
    /// 1 when the tetrahedra read `tet_activation`, else 0.
    pub activated: u32,
    /// Actions per env (`fem.activation`).
    pub na: u32,
    /// Tetrahedra per action (`fem.activation`).
    pub group: u32,
    /// Activation per unit action (`fem.activation`).
    pub scale: f32,
}

pub use crate::particles::gpu::to_u32;

/// Kernel source: the FEM params block followed by `parts`.
pub fn source(parts: &[&str]) -> String {
    crate::particles::gpu::assemble(include_str!("wgsl/params.wgsl"), parts)
}

pub const TET_COMMON: &str = include_str!("wgsl/tet_common.wgsl");
pub const TETRAHEDRA: &str = include_str!("wgsl/tetrahedra.wgsl");
pub const TETRAHEDRA_ADJOINT: &str = include_str!("wgsl/tetrahedra_adjoint.wgsl");
pub const FIBER_COMMON: &str = include_str!("wgsl/fiber_common.wgsl");
pub const FIBER: &str = include_str!("wgsl/fiber.wgsl");
pub const FIBER_ADJOINT: &str = include_str!("wgsl/fiber_adjoint.wgsl");
pub const ACTIVATION: &str = include_str!("wgsl/activation.wgsl");
pub const ACTIVATION_ADJOINT: &str = include_str!("wgsl/activation_adjoint.wgsl");

/// Per tetrahedron (all envs) `[det B, α]` with det B = 1/(6 V) and α = 1 + μ/λ − μ/(4λ),
/// computed in f64 from `tet_params` and rounded once, as the CPU's `params` does.
pub fn tet_derived(params: &[f64]) -> Vec<f32> {
    params
        .chunks_exact(TET_PARAMS)
        .flat_map(|p| {
            let (mu, lambda) = (p[10], p[11]);
            [(1.0 / (6.0 * p[9])) as f32, (1.0 + mu / lambda - mu / (4.0 * lambda)) as f32]
        })
        .collect()
}

/// Per tetrahedron (all envs) `[w₀, w₁, w₂, V k]` of `fem.fiber_muscles`, w = B d̂, computed in f64
/// from `tet_params` and `tet_fiber` as the CPU's `fiber_weights`, rounded once.
pub fn fiber_derived(params: &[f64], fibers: &[f64], stiffness: f64) -> Vec<f32> {
    params
        .chunks_exact(TET_PARAMS)
        .zip(fibers.chunks_exact(3))
        .flat_map(|(p, d)| {
            let w = |i: usize| (p[3 * i] * d[0] + p[3 * i + 1] * d[1] + p[3 * i + 2] * d[2]) as f32;
            [w(0), w(1), w(2), (p[9] * stiffness) as f32]
        })
        .collect()
}

/// CSR adjacency particle → tetrahedron corners over all envs: `offsets[g]..offsets[g + 1]`
/// index `entries` of global particle g = env · np + p; an entry is `4 k + c` with k the global
/// tetrahedron (env · nt + t) and c the corner (0..4) at which g sits. Entries of a particle are
/// in increasing k, the order the CPU loop adds them in.
pub fn tet_adjacency(indices: &[u32], num_envs: usize, np: usize, nt: usize) -> (Vec<u32>, Vec<u32>) {
    let n = num_envs * np;
    let corner = |k: usize, c: usize| (k / nt.max(1)) * np + indices[4 * k + c] as usize;
    let mut offsets = vec![0u32; n + 1];
    for k in 0..num_envs * nt {
        for c in 0..4 {
            offsets[corner(k, c) + 1] += 1;
        }
    }
    for g in 0..n {
        offsets[g + 1] += offsets[g];
    }
    let mut next = offsets.clone();
    let mut entries = vec![0u32; 4 * num_envs * nt];
    for k in 0..num_envs * nt {
        for c in 0..4 {
            let g = corner(k, c);
            entries[next[g] as usize] = (4 * k + c) as u32;
            next[g] += 1;
        }
    }
    (offsets, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacency_lists_each_corner_once_in_tet_order() {
        // 2 envs, 5 particles, tets (0,1,2,3), (1,2,3,4).
        let idx = [0, 1, 2, 3, 1, 2, 3, 4, 0, 1, 2, 3, 1, 2, 3, 4];
        let (off, ent) = tet_adjacency(&idx, 2, 5, 2);
        assert_eq!(off, vec![0, 1, 3, 5, 7, 8, 9, 11, 13, 15, 16]);
        assert_eq!(&ent[..8], &[0, 1, 4, 2, 5, 3, 6, 7]);
        assert_eq!(&ent[8..], &[8, 9, 12, 10, 13, 11, 14, 15]);
    }

    #[test]
    fn derived_constants_match_the_rest_shape() {
        let mut p = [0.0; TET_PARAMS];
        (p[9], p[10], p[11]) = (1.0 / 6.0, 1000.0, 1000.0);
        assert_eq!(tet_derived(&p), vec![1.0, 1.75]);
    }

    #[test]
    fn params_layout_is_seven_scalars() {
        use encase::ShaderType;
        assert_eq!(u64::from(FemParams::min_size()), 28);
    }
}
