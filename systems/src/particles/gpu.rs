//! What the particle systems' GPU kernels share: the uniform block [`ParticleParams`] (WGSL
//! `struct Params` in `wgsl/params.wgsl`), the WGSL sources assembled from `wgsl/`, and the CSR
//! particle → springs adjacency of the deterministic spring kernels. Each system's
//! `GpuSystem` impl (its passes and bindings) sits in the system's own file, next to the CPU
//! forward and adjoint it mirrors.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::GpuBuildCx;

/// The uniform block of every particle kernel, laid out by encase (field order = WGSL order).
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct ParticleParams {
    /// Entities this dispatch covers over all envs (particles, springs, envs or action rows).
    pub n: u32,
    /// Particles per env.
    pub np: u32,
    /// Springs per env.
    pub ns: u32,
    /// Actuated particles per env.
    pub na: u32,
    /// Substep length, seconds.
    pub dt: f32,
    /// Newtons per unit action.
    pub scale: f32,
}

impl ParticleParams {
    /// The counts of a build context (n left to the caller), dt of the substep.
    pub fn of(cx: &GpuBuildCx) -> Result<Self, EngineError> {
        Ok(Self {
            n: 0,
            np: to_u32(cx.count("particle_q"), "particles per env")?,
            ns: to_u32(cx.count("spring_indices"), "springs per env")?,
            na: 0,
            dt: cx.dt,
            scale: 0.0,
        })
    }
    pub fn with_n(self, n: usize) -> Result<Self, EngineError> {
        Ok(Self { n: to_u32(n, "dispatch size")?, ..self })
    }
}

/// `n` as a u32 index, or an error naming what overflowed.
pub fn to_u32(n: usize, what: &str) -> Result<u32, EngineError> {
    u32::try_from(n).map_err(|_| EngineError::Gpu(format!("{what}: {n} does not fit the kernels' u32 indices")))
}

/// Kernel source: `prelude` (a family's shared WGSL block) followed by `parts`, one per line.
pub fn assemble(prelude: &str, parts: &[&str]) -> String {
    let mut s = String::from(prelude);
    for p in parts {
        s.push('\n');
        s.push_str(p);
    }
    s
}

/// Kernel source: the particle systems' params block followed by `parts`.
pub fn source(parts: &[&str]) -> String {
    assemble(include_str!("wgsl/params.wgsl"), parts)
}

pub const CLEAR: &str = include_str!("wgsl/clear.wgsl");
pub const GRAVITY: &str = include_str!("wgsl/gravity.wgsl");
pub const INTEGRATE_ADJOINT: &str = include_str!("wgsl/integrate_adjoint.wgsl");
pub const ACTUATION: &str = include_str!("wgsl/actuation.wgsl");
pub const ACTUATION_ADJOINT: &str = include_str!("wgsl/actuation_adjoint.wgsl");
pub const GROUND_COMMON: &str = include_str!("wgsl/ground_common.wgsl");
pub const GROUND: &str = include_str!("wgsl/ground.wgsl");
pub const GROUND_ADJOINT: &str = include_str!("wgsl/ground_adjoint.wgsl");
pub const SPRINGS_COMMON: &str = include_str!("wgsl/springs_common.wgsl");
pub const SPRINGS_GATHER: &str = include_str!("wgsl/springs_gather.wgsl");
pub const SPRINGS_GATHER_ADJOINT: &str = include_str!("wgsl/springs_gather_adjoint.wgsl");
pub const SPRINGS_ATOMIC: &str = include_str!("wgsl/springs_atomic.wgsl");
pub const SPRINGS_ATOMIC_ADJOINT: &str = include_str!("wgsl/springs_atomic_adjoint.wgsl");

/// Fills the atomic placeholders of a scatter kernel: `ATOMIC_T` and each `ADD(buf)` body.
/// Native: `atomicAdd` on `atomic<f32>`. Otherwise a compare-exchange loop on the u32 bits:
/// read the bits, add in f32, swap in if nobody wrote meanwhile, else retry with their value.
pub fn atomic_source(src: &str, native: bool, buffers: &[&str]) -> String {
    let mut s = src.replace("ATOMIC_T", if native { "f32" } else { "u32" });
    for b in buffers {
        let body = if native {
            format!("atomicAdd(&{b}[i], v);")
        } else {
            format!(
                "var old = atomicLoad(&{b}[i]);\n    loop {{\n        let r = atomicCompareExchangeWeak(&{b}[i], old, \
                 bitcast<u32>(bitcast<f32>(old) + v));\n        if (r.exchanged) {{ break; }}\n        old = r.old_value;\n    }}"
            )
        };
        s = s.replace(&format!("ADD({b})"), &body);
    }
    s
}

/// CSR adjacency particle → springs over all envs: `offsets[g]..offsets[g + 1]` index `entries`
/// of global particle g = env · np + p; an entry is `2 k + side` with k the global spring index
/// (env · ns + s) and side 0 when g is the spring's first endpoint, 1 when its second. Entries
/// of a particle are in increasing k, the order the CPU loop adds them in.
pub fn spring_adjacency(indices: &[u32], num_envs: usize, np: usize, ns: usize) -> (Vec<u32>, Vec<u32>) {
    let n = num_envs * np;
    let mut counts = vec![0u32; n + 1];
    let endpoint = |k: usize, side: usize| (k / ns.max(1)) * np + indices[2 * k + side] as usize;
    for k in 0..num_envs * ns {
        for side in 0..2 {
            counts[endpoint(k, side) + 1] += 1;
        }
    }
    for g in 0..n {
        counts[g + 1] += counts[g];
    }
    let offsets = counts.clone();
    let mut next = counts;
    let mut entries = vec![0u32; 2 * num_envs * ns];
    for k in 0..num_envs * ns {
        for side in 0..2 {
            let g = endpoint(k, side);
            entries[next[g] as usize] = (2 * k + side) as u32;
            next[g] += 1;
        }
    }
    (offsets, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacency_lists_each_endpoint_once_in_spring_order() {
        // 2 envs, 3 particles, springs (0,1), (1,2), (0,2).
        let idx = [0, 1, 1, 2, 0, 2, 0, 1, 1, 2, 0, 2];
        let (off, ent) = spring_adjacency(&idx, 2, 3, 3);
        assert_eq!(off, vec![0, 2, 4, 6, 8, 10, 12]);
        assert_eq!(&ent[..6], &[0, 4, 1, 2, 3, 5]);
        assert_eq!(&ent[6..], &[6, 10, 7, 8, 9, 11]);
    }

    #[test]
    fn params_layout_is_six_scalars() {
        use encase::ShaderType;
        assert_eq!(u64::from(ParticleParams::min_size()), 24);
    }
}
