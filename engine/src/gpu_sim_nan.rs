//! The NaN/inf check of `GpuSim::step`, on the device, with the CPU `Schedule`'s `NanCheck`
//! semantics (taken from the mirrored `Sim`'s schedule):
//! - `EveryStep`: after the step's systems, one pass per state column flags every env whose rows
//!   hold a NaN/inf (a `u32` per env, read back with the step's other columns: no extra round
//!   trip). On a hit the step is replayed from a copy of its start (the tape checkpoint while
//!   recording, else a copy made before the step) with a check after every system, so the error
//!   still names the system and column that produced the value, as the CPU's replay does.
//! - `EverySystem`: the per-system checks run in the step itself (a debug mode: one extra
//!   dispatch per written column and system invocation).
//! - `Off`: nothing is checked.
//!
//! A flag holds `u32::MAX − code` and is combined with `atomicMax`, so each env keeps the
//! smallest code seen: `code = k · stride + j`, where k counts system invocations in execution
//! order (a one-thread `tick` kernel advances a counter after each system) and j is the
//! position of the column in that system's declared writes (the CPU's check order); the
//! end-of-step pass uses k = (invocations per step) and j = the column's layout index. The
//! smallest code is therefore the first system (and its first column) that produced a
//! non-finite value in that env, exactly what the CPU's per-system check names.
//!
//! Finiteness is tested on the bits (exponent all ones), not with float comparisons that a
//! shader compiler may fold under a no-NaN assumption.

use std::collections::HashMap;

use crate::columns::Layout;
use crate::error::EngineError;
use crate::gpu::Gpu;
use crate::schedule::NanCheck;
use crate::sim::Sim;
use crate::system::Access;

use super::{BindKind, GpuKernel, GpuMirror, Op, WORKGROUP_SIZE};

const CHECK_WGSL: &str = r#"
struct P { n: u32, per_env: u32, code: u32, stride: u32, use_counter: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> flags: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read> counter: array<u32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(64)
fn check(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.n) { return; }
    if ((bitcast<u32>(x[i]) & 0x7f800000u) == 0x7f800000u) {
        var code = p.code;
        if (p.use_counter != 0u) { code = code + counter[0] * p.stride; }
        atomicMax(&flags[i / p.per_env], 0xffffffffu - code);
    }
}
"#;

const TICK_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read_write> counter: array<u32>;
@compute @workgroup_size(1)
fn tick() { counter[0] = counter[0] + 1u; }
"#;

#[derive(encase::ShaderType)]
struct CheckParams {
    n: u32,
    per_env: u32,
    code: u32,
    stride: u32,
    use_counter: u32,
}

/// One check dispatch: a state column, the code it reports, its uniform block.
struct Check {
    column: usize,
    params: wgpu::Buffer,
    grid: [u32; 3],
}

/// Where a non-finite value of one env came from (see `GpuSim::non_finite`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonFiniteEnv {
    pub env: usize,
    /// The system that first wrote a NaN/inf into this env's state during the step, or
    /// `"(end of step)"` when only the end-of-step check saw it (the replay did not reproduce it).
    pub system: String,
    pub column: String,
}

pub(super) struct NanGuard {
    pub(super) mode: NanCheck,
    check: GpuKernel,
    tick: wgpu::ComputePipeline,
    tick_bind: wgpu::BindGroup,
    pub(super) flags: wgpu::Buffer,
    counter: wgpu::Buffer,
    /// End-of-step checks, one per state column with data (layout order).
    end: Vec<Check>,
    /// Per system (schedule order): one check per declared written column, in `access()` order.
    per_system: Vec<Vec<Check>>,
    /// Per system: the layout indices of its declared written columns (`per_system`'s order).
    writes: Vec<Vec<usize>>,
    /// System index of each invocation of one step, in execution order.
    pub(super) invocations: Vec<usize>,
    stride: u32,
    bind_groups: HashMap<(bool, usize, usize, usize), wgpu::BindGroup>,
    /// What the last checked step found.
    pub(super) last: Vec<NonFiniteEnv>,
}

impl NanGuard {
    pub(super) fn new(
        gpu: &Gpu,
        sim: &Sim<f32>,
        layout: &Layout,
        num_envs: usize,
        invocations: Vec<usize>,
    ) -> Result<Self, EngineError> {
        let ncols = layout.specs.len();
        let writes: Vec<Vec<usize>> = sim
            .schedule
            .systems()
            .map(|(_, s)| {
                let mut v: Vec<usize> = Vec::new();
                for a in s.access() {
                    let index = layout.index_of(&a.name).filter(|_| a.access != Access::Read);
                    if let Some(i) = index.filter(|i| !v.contains(i)) {
                        v.push(i);
                    }
                }
                v
            })
            .collect();
        let stride = ncols.max(writes.iter().map(Vec::len).max().unwrap_or(0)).max(1);
        let too_many = || {
            EngineError::Gpu(format!(
                "NaN check: {} system invocations × {stride} columns overflow u32",
                invocations.len()
            ))
        };
        let end_base =
            u32::try_from(invocations.len().checked_mul(stride).ok_or_else(too_many)?).map_err(|_| too_many())?;
        let stride = stride as u32;
        end_base.checked_add(stride).filter(|&c| c < u32::MAX).ok_or_else(too_many)?;
        let check_of = |column: usize, code: u32, use_counter: bool| -> Result<Option<Check>, EngineError> {
            let per_env = layout.specs[column].per_env();
            if per_env == 0 {
                return Ok(None);
            }
            let n = u32::try_from(per_env * num_envs).map_err(|_| {
                EngineError::Gpu(format!("NaN check: column `{}` exceeds u32", layout.specs[column].name))
            })?;
            let p = CheckParams { n, per_env: per_env as u32, code, stride, use_counter: u32::from(use_counter) };
            let params = gpu.uniform("nan check params", &p)?;
            Ok(Some(Check { column, params, grid: gpu.grid(n.div_ceil(WORKGROUP_SIZE))? }))
        };
        let end = (0..ncols)
            .map(|c| check_of(c, end_base + c as u32, false))
            .filter_map(Result::transpose)
            .collect::<Result<_, _>>()?;
        let per_system = writes
            .iter()
            .map(|w| {
                w.iter().enumerate().map(|(j, &c)| check_of(c, j as u32, true)).filter_map(Result::transpose).collect()
            })
            .collect::<Result<_, EngineError>>()?;
        let check = GpuKernel::new(
            gpu,
            "nan check",
            CHECK_WGSL,
            "check",
            &[BindKind::Read, BindKind::ReadWrite, BindKind::Read, BindKind::Uniform],
        )?;
        let tick = GpuKernel::new(gpu, "nan check tick", TICK_WGSL, "tick", &[BindKind::ReadWrite])?;
        let flags = gpu.storage_u32("nan flags", &vec![0; num_envs])?;
        let counter = gpu.storage_u32("nan counter", &[0])?;
        let tick_bind = gpu.scoped("nan check tick: bind group", || {
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("nan check tick"),
                layout: &tick.layout,
                entries: &[wgpu::BindGroupEntry { binding: 0, resource: counter.as_entire_binding() }],
            })
        })?;
        Ok(Self {
            mode: sim.schedule.nan_check,
            check,
            tick: tick.pipeline,
            tick_bind,
            flags,
            counter,
            end,
            per_system,
            writes,
            invocations,
            stride,
            bind_groups: HashMap::new(),
            last: Vec::new(),
        })
    }

    /// Clears the flags and the invocation counter.
    pub(super) fn push_clear(&self, ops: &mut Vec<Op>) {
        ops.push(Op::Clear(self.flags.clone()));
        ops.push(Op::Clear(self.counter.clone()));
    }

    fn push_check(
        &mut self,
        gpu: &Gpu,
        ops: &mut Vec<Op>,
        key: (bool, usize, usize),
        state: &GpuMirror,
        slot: usize,
    ) -> Result<(), EngineError> {
        let (end, sys, j) = key;
        let c = if end { &self.end[j] } else { &self.per_system[sys][j] };
        let grid = c.grid;
        let bg = match self.bind_groups.get(&(end, sys, j, slot)) {
            Some(b) => b.clone(),
            None => {
                let x = state.buffer(&state.layout().specs[c.column].name)?;
                let bg = gpu.scoped("nan check: bind group", || {
                    gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("nan check"),
                        layout: &self.check.layout,
                        entries: &[
                            wgpu::BindGroupEntry { binding: 0, resource: x.as_entire_binding() },
                            wgpu::BindGroupEntry { binding: 1, resource: self.flags.as_entire_binding() },
                            wgpu::BindGroupEntry { binding: 2, resource: self.counter.as_entire_binding() },
                            wgpu::BindGroupEntry { binding: 3, resource: c.params.as_entire_binding() },
                        ],
                    })
                })?;
                self.bind_groups.insert((end, sys, j, slot), bg.clone());
                bg
            }
        };
        ops.push(Op::Dispatch(self.check.pipeline.clone(), bg, grid));
        Ok(())
    }

    /// The checks of system `sys`'s declared writes on state `slot`, then the counter tick.
    pub(super) fn push_after_system(
        &mut self,
        gpu: &Gpu,
        ops: &mut Vec<Op>,
        sys: usize,
        state: &GpuMirror,
        slot: usize,
    ) -> Result<(), EngineError> {
        for j in 0..self.per_system[sys].len() {
            self.push_check(gpu, ops, (false, sys, j), state, slot)?;
        }
        ops.push(Op::Dispatch(self.tick.clone(), self.tick_bind.clone(), [1, 1, 1]));
        Ok(())
    }

    /// The end-of-step check of every state column on `slot`.
    pub(super) fn push_end(
        &mut self,
        gpu: &Gpu,
        ops: &mut Vec<Op>,
        state: &GpuMirror,
        slot: usize,
    ) -> Result<(), EngineError> {
        for j in 0..self.end.len() {
            self.push_check(gpu, ops, (true, 0, j), state, slot)?;
        }
        Ok(())
    }

    /// (system index or `None` for the end-of-step check, layout index of the column) of a
    /// non-zero flag.
    pub(super) fn decode(&self, flag: u32) -> (Option<usize>, usize) {
        let code = u32::MAX - flag;
        let (k, j) = ((code / self.stride) as usize, (code % self.stride) as usize);
        match self.invocations.get(k) {
            Some(&sys) => (Some(sys), self.writes[sys][j]),
            None => (None, j),
        }
    }
}

/// Parses a flags readback (little-endian u32 per env).
pub(super) fn parse_flags(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
