//! The NaN/inf check of `GpuSim::step`, on the device, with the CPU `Schedule`'s `NanCheck`
//! semantics (taken from the mirrored `Sim`'s schedule):
//! - `EveryStep`: after the step's systems, a pass over the state columns (six per dispatch)
//!   flags every env whose rows hold a NaN/inf (a `u32` per env, read back with the step's other
//!   columns: no extra round trip). On a hit the step is replayed from a copy of its start (the
//!   tape checkpoint while recording; otherwise the state is copied before every step, the one
//!   per-step cost besides the pass) with a check after every system, so the error still names
//!   the system and column that produced the value, as the CPU's replay does.
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

/// Columns one end-of-step dispatch checks: with the flags and the parameters that is 8 storage
/// bindings, the WebGPU default per shader stage.
const END_BATCH: usize = 6;

/// The end-of-step check of up to `END_BATCH` columns in one dispatch (one dispatch per column
/// cost ~20% of a chain_reach step on lavapipe, where every dispatch has a fixed cost).
/// `q` holds `n[6]`, `per_env[6]`, `code[6]`; unused slots have n = 0 and a dummy buffer.
const END_WGSL: &str = r#"
@group(0) @binding(0) var<storage, read> x0: array<f32>;
@group(0) @binding(1) var<storage, read> x1: array<f32>;
@group(0) @binding(2) var<storage, read> x2: array<f32>;
@group(0) @binding(3) var<storage, read> x3: array<f32>;
@group(0) @binding(4) var<storage, read> x4: array<f32>;
@group(0) @binding(5) var<storage, read> x5: array<f32>;
@group(0) @binding(6) var<storage, read_write> flags: array<atomic<u32>>;
@group(0) @binding(7) var<storage, read> q: array<u32>;
fn flag(v: f32, i: u32, k: u32) {
    if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
        atomicMax(&flags[i / q[6u + k]], 0xffffffffu - q[12u + k]);
    }
}
@compute @workgroup_size(64)
fn check(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i < q[0]) { flag(x0[i], i, 0u); }
    if (i < q[1]) { flag(x1[i], i, 1u); }
    if (i < q[2]) { flag(x2[i], i, 2u); }
    if (i < q[3]) { flag(x3[i], i, 3u); }
    if (i < q[4]) { flag(x4[i], i, 4u); }
    if (i < q[5]) { flag(x5[i], i, 5u); }
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

/// One end-of-step dispatch: up to `END_BATCH` columns (layout indices) and their parameters.
struct EndBatch {
    columns: Vec<usize>,
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
    end_check: GpuKernel,
    /// Bound to the unused column slots of an end batch.
    dummy: wgpu::Buffer,
    /// End-of-step checks of every state column with data (layout order), in batches.
    end: Vec<EndBatch>,
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
        let with_data: Vec<usize> = (0..ncols).filter(|&c| layout.specs[c].per_env() > 0).collect();
        let end = with_data
            .chunks(END_BATCH)
            .map(|cols| {
                let mut q = [0u32; 3 * END_BATCH];
                for (k, &c) in cols.iter().enumerate() {
                    let per_env = layout.specs[c].per_env();
                    q[k] = u32::try_from(per_env * num_envs).map_err(|_| {
                        EngineError::Gpu(format!("NaN check: column `{}` exceeds u32", layout.specs[c].name))
                    })?;
                    q[END_BATCH + k] = per_env as u32;
                    q[2 * END_BATCH + k] = end_base + c as u32;
                }
                let most = q[..END_BATCH].iter().copied().max().unwrap_or(0);
                Ok(EndBatch {
                    columns: cols.to_vec(),
                    params: gpu.storage_u32("nan end check params", &q)?,
                    grid: gpu.grid(most.div_ceil(WORKGROUP_SIZE))?,
                })
            })
            .collect::<Result<_, EngineError>>()?;
        let mut end_kinds = vec![BindKind::Read; END_BATCH];
        end_kinds.extend([BindKind::ReadWrite, BindKind::Read]);
        let end_check = GpuKernel::new(gpu, "nan end-of-step check", END_WGSL, "check", &end_kinds)?;
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
            end_check,
            dummy: gpu.storage_f32("nan check dummy", &[0.0])?,
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
        let c = &self.per_system[sys][j];
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
            let b = &self.end[j];
            let bg = match self.bind_groups.get(&(true, 0, j, slot)) {
                Some(bg) => bg.clone(),
                None => {
                    let mut xs = Vec::with_capacity(END_BATCH);
                    for k in 0..END_BATCH {
                        xs.push(match b.columns.get(k) {
                            Some(&c) => state.buffer(&state.layout().specs[c].name)?,
                            None => &self.dummy,
                        });
                    }
                    let bg = gpu.scoped("nan end-of-step check: bind group", || {
                        let mut entries: Vec<wgpu::BindGroupEntry> = xs
                            .iter()
                            .enumerate()
                            .map(|(i, x)| wgpu::BindGroupEntry { binding: i as u32, resource: x.as_entire_binding() })
                            .collect();
                        entries.push(wgpu::BindGroupEntry {
                            binding: END_BATCH as u32,
                            resource: self.flags.as_entire_binding(),
                        });
                        entries.push(wgpu::BindGroupEntry {
                            binding: END_BATCH as u32 + 1,
                            resource: b.params.as_entire_binding(),
                        });
                        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: Some("nan end-of-step check"),
                            layout: &self.end_check.layout,
                            entries: &entries,
                        })
                    })?;
                    self.bind_groups.insert((true, 0, j, slot), bg.clone());
                    bg
                }
            };
            ops.push(Op::Dispatch(self.end_check.pipeline.clone(), bg, self.end[j].grid));
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
