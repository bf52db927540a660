//! The GPU pipeline: the [`GpuSystem`] contract (a system's WGSL forward and adjoint kernels,
//! declared as passes over named columns) and [`GpuSim`], the stepper that runs a whole
//! validated `Schedule` on the GPU with the same semantics as the CPU `Sim`.
//!
//! **Contract.** A `GpuSystem` does not bind buffers itself: `build` compiles its kernels and
//! returns [`GpuKernels`], lists of [`Pass`]es whose bindings name *where* data lives
//! ([`Src::State`], [`Src::Control`], [`Src::Model`], [`Src::AdjState`], ...). The stepper
//! resolves the names against whichever mirror a pass runs on (the live state, a recompute slot,
//! the adjoint) and caches one bind group per (pass, slot), so encoding a step creates no GPU
//! objects. The adjoint passes follow the CPU `System::adjoint` contract exactly: `State` then
//! means the state the forward saw, they accumulate into the adjoints of the columns they read
//! and into `AdjControl`, and zero-then-accumulate the adjoints of columns they overwrite.
//!
//! **Stepper.** One env step (`Stage::Step` once, `substeps` × `Stage::Substep`, `Stage::Post`
//! once) is one command buffer: every dispatch of every substep is recorded up front, with no
//! host round trip inside a step. While recording, the state and control at the start of each
//! step are copied into GPU-resident checkpoints (buffer copies in the same command buffer, the
//! CPU `Tape`'s layout). Backward mirrors `Schedule::backward_step`: per step, in reverse, one
//! command buffer recomputes the segment boundary states from the checkpoint into scratch
//! mirrors, then per segment in reverse the pre-state of every system, runs the adjoint passes,
//! and copies ∂L/∂control of the step into a per-step gradient mirror. The host sees only what
//! it asks for: the `readback` columns (obs, reward) after each step, and the control
//! gradients plus ∂L/∂(initial state) after backward.
//!
//! **NaN/inf.** `step` checks the state on the device with the CPU schedule's `NanCheck` mode
//! (`gpu_sim_nan`): a hit is `EngineError::NonFinite` naming the system, column and first env,
//! with the state stepped (as the CPU's); `non_finite` lists every such env with its origin.
//! Resets (`reset_envs`) and divergence (`mark_diverged`) inside a recorded rollout behave as
//! the CPU `Tape::cut` / `Tape::mark_diverged`: backward stops a reset env's path there, and a
//! diverged step gives its env no gradient (its recompute is NaN; the rows are overwritten with
//! zeros, not scaled, since NaN · 0 is NaN).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;

use crate::columns::{Columns, Layout};
use crate::error::EngineError;
use crate::gpu::Gpu;
use crate::gpu_mirror::GpuMirror;
use crate::model::Model;
use crate::schedule::NanCheck;
use crate::sim::{Gradients, Sim};
use crate::system::Stage;

#[path = "gpu_sim_nan.rs"]
mod nan;
pub use nan::NonFiniteEnv;

/// Invocations per workgroup of every kernel of this pipeline (`@workgroup_size(64)`). A kernel
/// linearizes its index as `gid.x + gid.y * nwg.x * 64u` and bounds-checks it, because dispatches
/// above 65535 workgroups are split into an `[x, y]` grid (`Gpu::grid`).
pub const WORKGROUP_SIZE: u32 = 64;

/// How a binding is declared in the WGSL (it must match exactly: wgpu rejects a
/// `var<storage, read>` bound through a read-write layout entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindKind {
    /// `var<storage, read>`
    Read,
    /// `var<storage, read_write>` (also `array<atomic<u32>>` / `array<atomic<f32>>`)
    ReadWrite,
    /// `var<uniform>`
    Uniform,
}

/// Where a binding's buffer lives; resolved by the stepper for the mirror a pass runs on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    /// A state column. In adjoint passes: the state this system's forward saw.
    State(String),
    Control(String),
    /// A model parameter column (f64 on the CPU, f32 here).
    Model(String),
    /// An integer topology column (u32).
    Topology(String),
    /// ∂L/∂(a state column).
    AdjState(String),
    /// ∂L/∂(a control column), accumulated.
    AdjControl(String),
    /// A buffer the system created in `build` (index into [`GpuKernels::buffers`]): uniforms,
    /// adjacency lists.
    Own(usize),
}

/// One binding of a pass: `@binding(i)` is the i-th entry.
#[derive(Clone, Debug)]
pub struct Bind {
    pub src: Src,
    pub kind: BindKind,
}

impl Bind {
    pub fn read(src: Src) -> Self {
        Self { src, kind: BindKind::Read }
    }
    pub fn rw(src: Src) -> Self {
        Self { src, kind: BindKind::ReadWrite }
    }
    /// A uniform block the system created (`Own(index)`).
    pub fn uniform(own: usize) -> Self {
        Self { src: Src::Own(own), kind: BindKind::Uniform }
    }
}

/// Shorthands for [`Src`].
pub fn state(name: &str) -> Src {
    Src::State(name.into())
}
pub fn control(name: &str) -> Src {
    Src::Control(name.into())
}
pub fn model(name: &str) -> Src {
    Src::Model(name.into())
}
pub fn topology(name: &str) -> Src {
    Src::Topology(name.into())
}
pub fn adj_state(name: &str) -> Src {
    Src::AdjState(name.into())
}
pub fn adj_control(name: &str) -> Src {
    Src::AdjControl(name.into())
}

/// A compiled compute pipeline with an explicit bind group layout built from its bindings, so a
/// binding the entry point does not use is still accepted (wgpu's automatic layout drops it).
#[derive(Debug)]
pub struct GpuKernel {
    label: String,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl GpuKernel {
    pub fn new(gpu: &Gpu, label: &str, wgsl: &str, entry: &str, kinds: &[BindKind]) -> Result<Self, EngineError> {
        let (pipeline, layout) =
            gpu.scoped(&format!("kernel `{label}` (entry point `{entry}`): compilation"), || {
                let entries: Vec<wgpu::BindGroupLayoutEntry> = kinds
                    .iter()
                    .enumerate()
                    .map(|(i, k)| wgpu::BindGroupLayoutEntry {
                        binding: i as u32,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: match k {
                                BindKind::Read => wgpu::BufferBindingType::Storage { read_only: true },
                                BindKind::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                                BindKind::Uniform => wgpu::BufferBindingType::Uniform,
                            },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    })
                    .collect();
                let layout = gpu.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(label),
                    entries: &entries,
                });
                let pl = gpu.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(label),
                    bind_group_layouts: &[Some(&layout)],
                    immediate_size: 0,
                });
                let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(label),
                    source: wgpu::ShaderSource::Wgsl(wgsl.into()),
                });
                let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(label),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                });
                (pipeline, layout)
            })?;
        Ok(Self { label: label.to_string(), pipeline, layout })
    }
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// One dispatch of a system: a kernel, its bindings, and how many invocations it needs.
#[derive(Debug)]
pub struct Pass {
    pub kernel: GpuKernel,
    pub binds: Vec<Src>,
    pub kinds: Vec<BindKind>,
    pub invocations: u32,
}

impl Pass {
    /// Compiles `entry` of `wgsl` with a layout of `binds` (binding i = `binds[i]`).
    pub fn new(
        cx: &GpuBuildCx,
        label: &str,
        wgsl: &str,
        entry: &str,
        binds: Vec<Bind>,
        invocations: usize,
    ) -> Result<Self, EngineError> {
        let kinds: Vec<BindKind> = binds.iter().map(|b| b.kind).collect();
        let invocations = u32::try_from(invocations)
            .map_err(|_| EngineError::Gpu(format!("pass `{label}`: {invocations} invocations exceed u32")))?;
        Ok(Self {
            kernel: GpuKernel::new(cx.gpu, label, wgsl, entry, &kinds)?,
            binds: binds.into_iter().map(|b| b.src).collect(),
            kinds,
            invocations,
        })
    }
}

/// How kernels that add into one location from several invocations (springs: both endpoints)
/// reduce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scatter {
    /// A gather over a CSR entity → elements adjacency built at upload: every output is summed by
    /// one invocation in element order, the CPU's order, so results are bitwise reproducible
    /// (and on lavapipe equal to the CPU's). Costs each element's evaluation once per endpoint:
    /// measured ~15% slower forward and ~35% slower forward+backward than `Atomic` on a
    /// 61-spring chain (see `particles::springs`), within noise on chain_reach's 5 springs.
    /// FEM and shape contacts gather the same way in both modes (each element is evaluated
    /// once); MPM bins particles by cell each substep and gathers per grid row
    /// (`mpm::gpu`; with its parallel binning about `Atomic`'s speed on lavapipe: 5.2 / 1.2 against
    /// 5.5 / 1.1 env-steps/s fwd / fwd+bwd, RollingFlat at 8 envs).
    #[default]
    Deterministic,
    /// One invocation per element, adding into both endpoints with atomics: native `atomicAdd`
    /// on `atomic<f32>` where the device has `SHADER_FLOAT32_ATOMIC`, else a compare-exchange
    /// loop on the u32 bits. The summation order, hence the last bits, vary run to run.
    Atomic,
}

/// Options of a [`GpuSim`].
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub scatter: Scatter,
    /// State columns copied back to the host after every `step` (e.g. `obs`, `reward`).
    pub readback: Vec<String>,
}

/// What a system sees when it builds its kernels.
pub struct GpuBuildCx<'a> {
    pub gpu: &'a Gpu,
    /// Substep length (the `dt` of `StepCx`), seconds.
    pub dt: f32,
    pub num_envs: usize,
    pub state: &'a Layout,
    pub control: &'a Layout,
    pub model: &'a Model,
    pub scatter: Scatter,
}

impl GpuBuildCx<'_> {
    /// Entities per env of a column of any set (0 when absent).
    pub fn count(&self, name: &str) -> usize {
        [self.state, self.control, self.model.params.layout(), self.model.topology.layout()]
            .iter()
            .find_map(|l| l.spec(name))
            .map_or(0, |s| s.count)
    }
    /// A uniform buffer laid out by encase.
    pub fn uniform<T>(&self, label: &str, value: &T) -> Result<wgpu::Buffer, EngineError>
    where
        T: encase::ShaderType + encase::internal::WriteInto,
    {
        self.gpu.uniform(label, value)
    }
    /// Whether to use native `atomic<f32>` in [`Scatter::Atomic`] kernels.
    pub fn f32_atomics(&self) -> bool {
        self.gpu.has_f32_atomics()
    }
}

/// A system's compiled kernels: the buffers it owns and its forward and adjoint passes, run in
/// list order (the adjoint passes in list order too: the system orders them itself).
#[derive(Debug, Default)]
pub struct GpuKernels {
    pub buffers: Vec<wgpu::Buffer>,
    pub forward: Vec<Pass>,
    pub adjoint: Vec<Pass>,
}

impl GpuKernels {
    /// The usual shape of a task's observe/reward/flag kernels: one forward and one adjoint pass
    /// of one invocation per env, labelled `name` and "`name` adjoint", with entry points
    /// `{entry}_forward` and `{entry}_adjoint` of the WGSL sources given with their bindings;
    /// `buffers` are the system's own (`Src::Own(i)`, a uniform block first as a rule).
    pub fn per_env(
        cx: &GpuBuildCx,
        name: &str,
        entry: &str,
        buffers: Vec<wgpu::Buffer>,
        (fsrc, fwd): (&str, Vec<Bind>),
        (asrc, adj): (&str, Vec<Bind>),
    ) -> Result<Self, EngineError> {
        let n = cx.num_envs;
        Ok(Self {
            forward: vec![Pass::new(cx, name, fsrc, &format!("{entry}_forward"), fwd, n)?],
            adjoint: vec![Pass::new(cx, &format!("{name} adjoint"), asrc, &format!("{entry}_adjoint"), adj, n)?],
            buffers,
        })
    }
}

/// The GPU mirror of a CPU `System`: same name, same semantics. Obtained from
/// `System::gpu()`.
pub trait GpuSystem: Send + Sync {
    fn name(&self) -> &str;
    /// Compiles the kernels and uploads what they need besides the mirrors (uniform blocks with
    /// dt and counts, adjacency lists).
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError>;
}

/// Seeds of one step of `GpuSim::backward`: values added into ∂L/∂(state after the step).
#[derive(Debug, Default)]
pub struct Seeds {
    entries: Vec<(String, Vec<f32>)>,
}

impl Seeds {
    /// Adds `values` (the whole column, all envs) into the adjoint of state column `column`.
    pub fn add(&mut self, column: &str, values: Vec<f32>) {
        self.entries.push((column.to_string(), values));
    }
}

const ADD_WGSL: &str = r#"
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> adj: array<f32>;
@group(0) @binding(1) var<storage, read> seed: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(64)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i < p.n) { adj[i] = adj[i] + seed[i]; }
}
"#;

#[derive(encase::ShaderType)]
struct AddParams {
    n: u32,
}

struct Built {
    name: String,
    stage: Stage,
    k: GpuKernels,
    /// State columns its forward passes bind read-write (what it may change).
    writes: Vec<String>,
    /// State columns its adjoint passes bind (what of the pre-state its adjoint reads).
    adjoint_reads: Vec<String>,
}

impl Built {
    fn new(name: String, stage: Stage, k: GpuKernels) -> Self {
        let states = |passes: &[Pass], rw_only: bool| -> Vec<String> {
            let mut v: Vec<String> = passes
                .iter()
                .flat_map(|p| p.binds.iter().zip(&p.kinds))
                .filter(|(_, kind)| !rw_only || **kind == BindKind::ReadWrite)
                .filter_map(|(src, _)| if let Src::State(n) = src { Some(n.clone()) } else { None })
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let writes = states(&k.forward, true);
        let adjoint_reads = states(&k.adjoint, false);
        Self { name, stage, k, writes, adjoint_reads }
    }
}

/// One recorded command: a dispatch, or a buffer copy/clear between dispatches.
enum Op {
    Dispatch(wgpu::ComputePipeline, wgpu::BindGroup, [u32; 3]),
    Copy(wgpu::Buffer, wgpu::Buffer),
    Clear(wgpu::Buffer),
    /// Zero `size` bytes at `offset` (one env's rows of a column).
    ClearRange(wgpu::Buffer, u64, u64),
}

/// Key of a cached bind group: (system, adjoint?, pass, state slot, control slot).
type BindKey = (usize, bool, usize, usize, usize);

/// A `Sim`'s schedule, model, state and control on the GPU (see the module docs).
pub struct GpuSim {
    gpu: Arc<Gpu>,
    num_envs: usize,
    state_layout: Layout,
    control_layout: Layout,
    systems: Vec<Built>,
    /// System indices of each segment: `[step]`, `substeps` × `[substep]`, `[post]`.
    segments: Vec<Vec<usize>>,
    /// 0: the live state; `1 + i`: the boundary before segment i; then the pre-state slots.
    states: Vec<GpuMirror>,
    /// 0: the live control; 1: the control of the step being differentiated.
    controls: [GpuMirror; 2],
    adj_state: GpuMirror,
    adj_control: GpuMirror,
    model: GpuMirror,
    topology: GpuMirror,
    /// Checkpoints (state, control at the start of each recorded step), reused across rollouts.
    tape: Vec<(GpuMirror, GpuMirror)>,
    tape_len: usize,
    recording: bool,
    /// `cuts[t]`: envs reset right before recorded step t (their adjoint stops there).
    cuts: Vec<Vec<usize>>,
    pending_cuts: Vec<usize>,
    /// `diverged[t]`: envs whose recorded step t went non-finite (no gradient through it).
    diverged: Vec<Vec<usize>>,
    nan: nan::NanGuard,
    /// ∂L/∂control of each recorded step, filled by backward.
    grads: Vec<GpuMirror>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    add: GpuKernel,
    /// Per state column seeded by backward: (seed buffer, bind group).
    seeds: HashMap<String, (wgpu::Buffer, wgpu::BindGroup, [u32; 3])>,
    readback: Vec<String>,
    staging: Option<wgpu::Buffer>,
    host: HashMap<String, Vec<f32>>,
    steps: usize,
}

impl std::fmt::Debug for GpuSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSim")
            .field("gpu", &self.gpu)
            .field("num_envs", &self.num_envs)
            .field("systems", &self.systems.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl GpuSim {
    /// Mirrors `sim` (its schedule, model, current state and control layout) on `gpu`. Fails,
    /// naming it, on the first system of the schedule that has no GPU kernels.
    pub fn new(gpu: Arc<Gpu>, sim: &Sim<f32>, opts: GpuOptions) -> Result<Self, EngineError> {
        let schedule = &sim.schedule;
        if let Some((name, stage)) = Self::first_without_kernels(sim) {
            return Err(EngineError::Gpu(format!(
                "system `{name}` ({stage} stage) has no GPU kernels yet; run this task with --backend cpu"
            )));
        }
        let gpu_systems: Vec<_> = schedule.systems().filter_map(|(stage, sys)| sys.gpu().map(|g| (stage, g))).collect();
        let num_envs = sim.num_envs();
        let state_layout = sim.state.layout().clone();
        let control_layout = sim.control.layout().clone();
        let cx = GpuBuildCx {
            gpu: &gpu,
            dt: schedule.substep_dt() as f32,
            num_envs,
            state: &state_layout,
            control: &control_layout,
            model: &sim.model,
            scatter: opts.scatter,
        };
        let systems = gpu_systems
            .into_iter()
            .map(|(stage, g)| Ok(Built::new(g.name().to_string(), stage, g.build(&cx)?)))
            .collect::<Result<Vec<_>, EngineError>>()?;
        let of = |st: Stage| -> Vec<usize> { (0..systems.len()).filter(|&i| systems[i].stage == st).collect() };
        let mut segments = vec![of(Stage::Step)];
        for _ in 0..schedule.substeps {
            segments.push(of(Stage::Substep));
        }
        segments.push(of(Stage::Post));
        let longest = segments.iter().map(Vec::len).max().unwrap_or(0);
        let mut states = vec![GpuMirror::upload(&gpu, &sim.state)?];
        for i in 0..segments.len() + longest {
            states.push(GpuMirror::zeros(&gpu, &format!("scratch{i}"), &state_layout, num_envs)?);
        }
        let controls = [
            GpuMirror::upload(&gpu, &sim.control)?,
            GpuMirror::zeros(&gpu, "backward control", &control_layout, num_envs)?,
        ];
        for name in &opts.readback {
            if state_layout.spec(name).is_none() {
                return Err(EngineError::UnknownColumn {
                    column: name.clone(),
                    available: state_layout.specs.iter().map(|s| s.name.clone()).collect(),
                });
            }
        }
        let invocations = segments.iter().flatten().copied().collect();
        let nan = nan::NanGuard::new(&gpu, sim, &state_layout, num_envs, invocations)?;
        Ok(Self {
            adj_state: GpuMirror::zeros(&gpu, "adj state", &state_layout, num_envs)?,
            adj_control: GpuMirror::zeros(&gpu, "adj control", &control_layout, num_envs)?,
            model: GpuMirror::upload(&gpu, &sim.model.params)?,
            topology: GpuMirror::upload_u32(&gpu, &sim.model.topology)?,
            add: GpuKernel::new(
                &gpu,
                "seed add",
                ADD_WGSL,
                "add",
                &[BindKind::ReadWrite, BindKind::Read, BindKind::Uniform],
            )?,
            gpu,
            num_envs,
            state_layout,
            control_layout,
            systems,
            segments,
            states,
            controls,
            tape: Vec::new(),
            tape_len: 0,
            recording: false,
            cuts: Vec::new(),
            pending_cuts: Vec::new(),
            diverged: Vec::new(),
            nan,
            grads: Vec::new(),
            bind_groups: HashMap::new(),
            seeds: HashMap::new(),
            readback: opts.readback,
            staging: None,
            host: HashMap::new(),
            steps: sim.steps_taken(),
        })
    }

    /// The first system of `sim`'s schedule with no GPU kernels (its name and stage), if any:
    /// what decides whether a task can run on the GPU at all, without touching a device.
    pub fn first_without_kernels(sim: &Sim<f32>) -> Option<(String, Stage)> {
        sim.schedule.systems().find(|(_, s)| s.gpu().is_none()).map(|(st, s)| (s.name().to_string(), st))
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }
    /// The systems in schedule order.
    pub fn system_names(&self) -> Vec<&str> {
        self.systems.iter().map(|s| s.name.as_str()).collect()
    }
    pub fn steps_taken(&self) -> usize {
        self.steps
    }

    /// Overwrites one control column of every env (applied from the next `step`).
    pub fn set_control(&self, name: &str, values: &[f32]) -> Result<(), EngineError> {
        let spec = self.control_layout.spec(name).ok_or_else(|| EngineError::UnknownColumn {
            column: name.to_string(),
            available: self.control_layout.specs.iter().map(|s| s.name.clone()).collect(),
        })?;
        let expected = spec.per_env() * self.num_envs;
        if values.len() != expected {
            return Err(EngineError::ShapeMismatch { column: name.to_string(), expected, found: values.len() });
        }
        self.gpu.write_f32(self.controls[0].buffer(name)?, values)
    }
    pub fn write_control(&self, control: &Columns<f32>) -> Result<(), EngineError> {
        self.controls[0].write(&self.gpu, control)
    }
    /// Replaces the live state of every env; while recording, this cuts every env's gradient
    /// path there (as `reset_envs` of all envs).
    pub fn write_state(&mut self, state: &Columns<f32>) -> Result<(), EngineError> {
        self.states[0].write(&self.gpu, state)?;
        if self.recording {
            self.pending_cuts = (0..self.num_envs).collect();
        }
        Ok(())
    }

    /// Overwrites env `env`'s rows of state column `name`, *without* a tape cut: a perturbation
    /// of the live state (tests inject faults this way, as writing `Sim::state` does on the CPU),
    /// not a reset.
    pub fn write_state_row(&self, name: &str, env: usize, values: &[f32]) -> Result<(), EngineError> {
        let spec = self.state_layout.spec(name).ok_or_else(|| EngineError::UnknownColumn {
            column: name.to_string(),
            available: self.state_layout.specs.iter().map(|s| s.name.clone()).collect(),
        })?;
        if env >= self.num_envs {
            return Err(EngineError::Gpu(format!("write_state_row: env {env} of {}", self.num_envs)));
        }
        if values.len() != spec.per_env() {
            return Err(EngineError::ShapeMismatch {
                column: name.to_string(),
                expected: spec.per_env(),
                found: values.len(),
            });
        }
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        let (buf, offset) = (self.states[0].buffer(name)?, (env * spec.per_env() * 4) as u64);
        self.gpu.scoped("write_state_row", || self.gpu.queue.write_buffer(buf, offset, &bytes))
    }

    /// Marks `envs` as diverged in the last recorded step (no-op when not recording), as
    /// `Sim::mark_diverged`: backward gives them no gradient through that step. Reset them
    /// afterwards (`reset_envs`).
    pub fn mark_diverged(&mut self, envs: &[usize]) {
        if let (true, Some(d)) = (self.recording, self.diverged.last_mut()) {
            d.extend_from_slice(envs);
        }
    }

    /// The envs whose state the last `step` left non-finite, each with the system and column
    /// that first produced the value (empty after a finite step or with `NanCheck::Off`).
    pub fn non_finite(&self) -> &[NonFiniteEnv] {
        &self.nan.last
    }

    /// Replaces the state of `envs` by their rows in `init` (same layout); on a tape this cuts
    /// only those envs' gradient paths, as `Sim::reset_envs`.
    pub fn reset_envs(&mut self, envs: &[usize], init: &Columns<f32>) -> Result<(), EngineError> {
        if init.layout() != &self.state_layout || init.num_envs() != self.num_envs {
            return Err(EngineError::Gpu("reset_envs: `init` has another layout or env count than the state".into()));
        }
        for &e in envs {
            if e >= self.num_envs {
                return Err(EngineError::Gpu(format!("reset_envs: env {e} of {}", self.num_envs)));
            }
            for (spec, buf) in self.state_layout.specs.iter().zip(self.states[0].buffers()) {
                let row = init.env(&spec.name, e)?;
                if !row.is_empty() {
                    let bytes: Vec<u8> = row.iter().flat_map(|x| x.to_le_bytes()).collect();
                    let offset = (e * spec.per_env() * 4) as u64;
                    self.gpu.scoped("reset_envs", || self.gpu.queue.write_buffer(buf, offset, &bytes))?;
                }
            }
        }
        if self.recording {
            self.pending_cuts.extend_from_slice(envs);
        }
        Ok(())
    }

    /// Runs the systems of one stage once on the live state (e.g. `Stage::Post` to refresh
    /// observations after `reset_envs`), then reads back the `readback` columns.
    pub fn run_stage(&mut self, stage: Stage) -> Result<(), EngineError> {
        let mut ops = Vec::new();
        for sys in 0..self.systems.len() {
            if self.systems[sys].stage == stage {
                self.push_system(&mut ops, sys, false, 0, 0)?;
            }
        }
        self.submit_and_read("gpu run_stage", ops, false).map(drop)
    }
    /// Downloads the live state (every column; for tests and checkpoints, not the hot path).
    pub fn read_state(&self) -> Result<Columns<f32>, EngineError> {
        let mut c = Columns::zeros(self.state_layout.clone(), self.num_envs);
        self.states[0].download(&self.gpu, &mut c)?;
        Ok(c)
    }
    /// A `readback` column as of the last `step`.
    pub fn host(&self, name: &str) -> Result<&[f32], EngineError> {
        self.host.get(name).map(Vec::as_slice).ok_or_else(|| {
            EngineError::Gpu(format!("column `{name}` is not read back (readback: {:?}) or no step ran", self.readback))
        })
    }

    /// Starts recording a fresh tape (checkpoints are reused from the previous one).
    pub fn record(&mut self) {
        self.recording = true;
        self.tape_len = 0;
        self.cuts.clear();
        self.pending_cuts.clear();
        self.diverged.clear();
    }
    pub fn stop_recording(&mut self) {
        self.recording = false;
    }
    /// Recorded steps.
    pub fn tape_len(&self) -> usize {
        if self.recording { self.tape_len } else { 0 }
    }
    /// GPU bytes of the tape's checkpoints (state + control per recorded step) and of the
    /// recompute scratch.
    pub fn tape_bytes(&self) -> u64 {
        let ck: u64 = self.tape[..self.tape_len].iter().map(|(s, c)| s.bytes() + c.bytes()).sum();
        ck + self.states[1..].iter().map(GpuMirror::bytes).sum::<u64>()
    }

    fn bind_group(&mut self, key: BindKey) -> Result<wgpu::BindGroup, EngineError> {
        if let Some(b) = self.bind_groups.get(&key) {
            return Ok(b.clone());
        }
        let (sys, adjoint, pass, slot, ctrl) = key;
        let built = &self.systems[sys];
        let p = if adjoint { &built.k.adjoint[pass] } else { &built.k.forward[pass] };
        let state = &self.states[slot];
        let buffers: Vec<&wgpu::Buffer> = p
            .binds
            .iter()
            .map(|src| match src {
                Src::State(n) => state.buffer(n),
                Src::Control(n) => self.controls[ctrl].buffer(n),
                Src::Model(n) => self.model.buffer(n),
                Src::Topology(n) => self.topology.buffer(n),
                Src::AdjState(n) => self.adj_state.buffer(n),
                Src::AdjControl(n) => self.adj_control.buffer(n),
                Src::Own(i) => built.k.buffers.get(*i).ok_or_else(|| {
                    EngineError::Gpu(format!("system `{}`: pass binds own buffer {i} it did not create", built.name))
                }),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| EngineError::Gpu(format!("system `{}`, kernel `{}`: {e}", built.name, p.kernel.label)))?;
        let bg = self.gpu.scoped(&format!("kernel `{}`: bind group", p.kernel.label), || {
            let entries: Vec<wgpu::BindGroupEntry> = buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
                .collect();
            self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&p.kernel.label),
                layout: &p.kernel.layout,
                entries: &entries,
            })
        })?;
        self.bind_groups.insert(key, bg.clone());
        Ok(bg)
    }

    /// The state slot each system of `seg` runs its adjoint on: `boundary` when no earlier
    /// system of the segment writes a state column the adjoint reads, else its recomputed
    /// pre-state slot `pre0 + j`.
    fn pre_slots(&self, seg: &[usize], boundary: usize, pre0: usize) -> Vec<usize> {
        let mut written: Vec<&str> = Vec::new();
        seg.iter()
            .enumerate()
            .map(|(j, &sys)| {
                let b = &self.systems[sys];
                let stale = b.adjoint_reads.iter().any(|c| written.contains(&c.as_str()));
                written.extend(b.writes.iter().map(String::as_str));
                if stale { pre0 + j } else { boundary }
            })
            .collect()
    }

    /// Appends the forward (or adjoint) passes of system `sys` on state slot `slot`.
    fn push_system(
        &mut self,
        ops: &mut Vec<Op>,
        sys: usize,
        adjoint: bool,
        slot: usize,
        ctrl: usize,
    ) -> Result<(), EngineError> {
        let n = if adjoint { self.systems[sys].k.adjoint.len() } else { self.systems[sys].k.forward.len() };
        for pass in 0..n {
            let bg = self.bind_group((sys, adjoint, pass, slot, ctrl))?;
            let built = &self.systems[sys];
            let p = if adjoint { &built.k.adjoint[pass] } else { &built.k.forward[pass] };
            if p.invocations == 0 {
                continue;
            }
            let grid = self.gpu.grid(p.invocations.div_ceil(WORKGROUP_SIZE))?;
            ops.push(Op::Dispatch(p.kernel.pipeline.clone(), bg, grid));
        }
        Ok(())
    }

    fn push_copy(ops: &mut Vec<Op>, src: &GpuMirror, dst: &GpuMirror) {
        for (s, d) in src.buffers().iter().zip(dst.buffers()) {
            ops.push(Op::Copy(s.clone(), d.clone()));
        }
    }

    /// Records `ops` into one command buffer (consecutive dispatches share a compute pass; wgpu
    /// orders dispatches that touch the same buffer), lets `tail` append copies, and submits.
    fn submit(
        &self,
        what: &str,
        ops: Vec<Op>,
        tail: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> Result<wgpu::SubmissionIndex, EngineError> {
        self.gpu.scoped(what, || {
            let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(what) });
            let mut i = 0;
            while i < ops.len() {
                if let Op::Dispatch(..) = ops[i] {
                    let mut pass = enc
                        .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(what), timestamp_writes: None });
                    while let Some(Op::Dispatch(pipeline, bg, [x, y, z])) = ops.get(i) {
                        pass.set_pipeline(pipeline);
                        pass.set_bind_group(0, bg, &[]);
                        pass.dispatch_workgroups(*x, *y, *z);
                        i += 1;
                    }
                } else {
                    match &ops[i] {
                        Op::Copy(s, d) => enc.copy_buffer_to_buffer(s, 0, d, 0, s.size()),
                        Op::Clear(b) => enc.clear_buffer(b, 0, None),
                        Op::ClearRange(b, offset, size) => enc.clear_buffer(b, *offset, Some(*size)),
                        Op::Dispatch(..) => unreachable!(),
                    }
                    i += 1;
                }
            }
            tail(&mut enc);
            self.gpu.queue.submit([enc.finish()])
        })
    }

    /// Maps `staging` after the submission that filled it and returns its bytes.
    fn map_read(&self, what: &str, staging: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, EngineError> {
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, ..size, move |r| {
            let _ = tx.send(r);
        });
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::Gpu(format!("{what}: device poll failed: {e}")))?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(EngineError::Gpu(format!("{what}: map_async failed: {e}"))),
            Err(_) => return Err(EngineError::Gpu(format!("{what}: map_async did not complete"))),
        }
        let bytes = staging
            .get_mapped_range(..size)
            .map_err(|e| EngineError::Gpu(format!("{what}: get_mapped_range failed: {e}")))?
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }

    fn staging(&self, label: &str, size: u64) -> wgpu::Buffer {
        self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// One env step of every environment: one command buffer, then (if any `readback` columns
    /// or a NaN check) one copy of those columns and the per-env NaN flags to the host. A
    /// non-finite state is `EngineError::NonFinite` (see the module docs); the step has still
    /// run and counts, as on the CPU.
    pub fn step(&mut self) -> Result<(), EngineError> {
        let mut ops = Vec::new();
        let mode = self.nan.mode;
        if self.recording {
            if self.tape.len() == self.tape_len {
                let t = self.tape.len();
                self.tape.push((
                    GpuMirror::zeros(&self.gpu, &format!("tape{t}.state"), &self.state_layout, self.num_envs)?,
                    GpuMirror::zeros(&self.gpu, &format!("tape{t}.control"), &self.control_layout, self.num_envs)?,
                ));
            }
            let (s, c) = &self.tape[self.tape_len];
            Self::push_copy(&mut ops, &self.states[0], s);
            Self::push_copy(&mut ops, &self.controls[0], c);
            self.tape_len += 1;
            self.cuts.truncate(self.tape_len - 1);
            self.cuts.push(std::mem::take(&mut self.pending_cuts));
            self.diverged.truncate(self.tape_len - 1);
            self.diverged.push(Vec::new());
        } else if mode == NanCheck::EveryStep {
            // The replay that names the system starts from here (scratch slot 1; backward, the
            // only other user of the scratch slots, does not run inside a step).
            Self::push_copy(&mut ops, &self.states[0], &self.states[1]);
        }
        if mode != NanCheck::Off {
            self.nan.push_clear(&mut ops);
        }
        for k in 0..self.nan.invocations.len() {
            let sys = self.nan.invocations[k];
            self.push_system(&mut ops, sys, false, 0, 0)?;
            if mode == NanCheck::EverySystem {
                self.nan.push_after_system(&self.gpu, &mut ops, sys, &self.states[0], 0)?;
            }
        }
        if mode != NanCheck::Off {
            self.nan.push_end(&self.gpu, &mut ops, &self.states[0], 0)?;
        }
        let step = self.steps;
        self.steps += 1;
        let flags = self.submit_and_read("gpu step", ops, mode != NanCheck::Off)?;
        self.nan.last.clear();
        if flags.iter().all(|&f| f == 0) {
            return Ok(());
        }
        // Name the origin: in `EveryStep` mode replay the step with per-system checks.
        let origins = if mode == NanCheck::EveryStep { self.replay_checked()? } else { flags.clone() };
        for (env, (&f, &o)) in flags.iter().zip(&origins).enumerate() {
            if f == 0 {
                continue;
            }
            let (sys, col) = self.nan.decode(if o != 0 { o } else { f });
            let system = sys.map_or_else(|| "(end of step)".to_string(), |s| self.systems[s].name.clone());
            let column = self.state_layout.specs[col].name.clone();
            self.nan.last.push(NonFiniteEnv { env, system, column });
        }
        let first = self.nan.last[0].clone();
        let spec = self.state_layout.spec(&first.column).expect("decoded from the layout");
        let per = spec.per_env();
        let col = self.gpu.read_f32(self.states[0].buffer(&first.column)?)?;
        let row = &col[first.env * per..(first.env + 1) * per];
        // The value as the column holds it at the end of the step (NaN if it was finite again by
        // then, e.g. a force column cleared by a later system).
        let (k, value) =
            row.iter().enumerate().find(|(_, x)| !x.is_finite()).map_or((0, f64::NAN), |(k, &x)| (k, f64::from(x)));
        let width = spec.width.max(1);
        Err(EngineError::NonFinite {
            system: first.system,
            set: crate::error::ColumnSet::State,
            column: first.column,
            env: first.env,
            entity: k / width,
            component: k % width,
            step,
            value,
        })
    }

    /// Checks the live state now, without stepping (e.g. after `write_state` from a checkpoint):
    /// every env holding a NaN/inf, named by its first such column in layout order and the
    /// system `"(state check)"`. Runs whatever the `NanCheck` mode.
    pub fn check_state(&mut self) -> Result<Vec<NonFiniteEnv>, EngineError> {
        let mut ops = Vec::new();
        self.nan.push_clear(&mut ops);
        self.nan.push_end(&self.gpu, &mut ops, &self.states[0], 0)?;
        self.submit("gpu check_state", ops, |_| {})?;
        let flags = nan::parse_flags(&self.gpu.read_bytes(&self.nan.flags)?);
        Ok(flags
            .iter()
            .enumerate()
            .filter(|(_, f)| **f != 0)
            .map(|(env, &f)| NonFiniteEnv {
                env,
                system: "(state check)".into(),
                column: self.state_layout.specs[self.nan.decode(f).1].name.clone(),
            })
            .collect())
    }

    /// Replays the step just taken from its start (the tape checkpoint, or scratch slot 1) on
    /// scratch slot 2 with a NaN check after every system; returns the per-env flags.
    fn replay_checked(&mut self) -> Result<Vec<u32>, EngineError> {
        let mut ops = Vec::new();
        let start = if self.recording { &self.tape[self.tape_len - 1].0 } else { &self.states[1] };
        Self::push_copy(&mut ops, start, &self.states[2]);
        self.nan.push_clear(&mut ops);
        for k in 0..self.nan.invocations.len() {
            let sys = self.nan.invocations[k];
            self.push_system(&mut ops, sys, false, 2, 0)?;
            self.nan.push_after_system(&self.gpu, &mut ops, sys, &self.states[2], 2)?;
        }
        self.submit("gpu NaN replay", ops, |_| {})?;
        Ok(nan::parse_flags(&self.gpu.read_bytes(&self.nan.flags)?))
    }

    /// Submits `ops` with a copy of the `readback` columns (and with `flags`, the NaN flags)
    /// appended, and reads those back; returns the flags (empty without `flags`).
    fn submit_and_read(&mut self, what: &str, ops: Vec<Op>, flags: bool) -> Result<Vec<u32>, EngineError> {
        let mut cols: Vec<(u64, &wgpu::Buffer)> = self
            .readback
            .iter()
            .map(|n| {
                let spec = self.state_layout.spec(n).expect("readback columns are checked in new");
                Ok(((spec.per_env() * self.num_envs * 4) as u64, self.states[0].buffer(n)?))
            })
            .collect::<Result<_, EngineError>>()?;
        if flags {
            cols.push(((self.num_envs * 4) as u64, &self.nan.flags));
        }
        let total: u64 = cols.iter().map(|(n, _)| n).sum();
        if total > 0 && self.staging.as_ref().is_none_or(|s| s.size() < total) {
            self.staging = Some(self.staging("step readback", total));
        }
        let staging = self.staging.clone();
        self.submit(what, ops, |enc| {
            if let Some(st) = &staging {
                let mut off = 0;
                for (n, b) in &cols {
                    if *n > 0 {
                        enc.copy_buffer_to_buffer(b, 0, st, off, *n);
                    }
                    off += n;
                }
            }
        })?;
        if let (Some(st), true) = (&staging, total > 0) {
            let bytes = self.map_read(what, st, total)?;
            let mut off = 0;
            for (name, (n, _)) in self.readback.iter().zip(&cols) {
                let v: Vec<f32> = bytes[off..off + *n as usize]
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                off += *n as usize;
                self.host.insert(name.clone(), v);
            }
            if flags {
                return Ok(nan::parse_flags(&bytes[off..]));
            }
        } else {
            self.gpu
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| EngineError::Gpu(format!("{what}: device poll failed: {e}")))?;
        }
        Ok(Vec::new())
    }

    /// The seed-add dispatch for state column `name` (its buffers created on first use).
    fn seed_op(&mut self, name: &str, values: &[f32]) -> Result<Op, EngineError> {
        let len = self.state_layout.spec(name).map(|s| s.per_env() * self.num_envs).ok_or_else(|| {
            EngineError::UnknownColumn {
                column: name.to_string(),
                available: self.state_layout.specs.iter().map(|s| s.name.clone()).collect(),
            }
        })?;
        if values.len() != len {
            return Err(EngineError::ShapeMismatch { column: name.to_string(), expected: len, found: values.len() });
        }
        if !self.seeds.contains_key(name) {
            let seed = self.gpu.storage_f32_zeroed(&format!("seed.{name}"), len)?;
            let params = self.gpu.uniform("seed params", &AddParams { n: len as u32 })?;
            let adj = self.adj_state.buffer(name)?;
            let bg = self.gpu.scoped("seed bind group", || {
                self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("seed add"),
                    layout: &self.add.layout,
                    entries: &[
                        wgpu::BindGroupEntry { binding: 0, resource: adj.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 1, resource: seed.as_entire_binding() },
                        wgpu::BindGroupEntry { binding: 2, resource: params.as_entire_binding() },
                    ],
                })
            })?;
            let grid = self.gpu.grid((len as u32).div_ceil(WORKGROUP_SIZE))?;
            self.seeds.insert(name.to_string(), (seed, bg, grid));
        }
        let (seed, bg, grid) = &self.seeds[name];
        // Staged by the queue and applied before the next submission, i.e. before this step's
        // command buffer and after the previous one.
        self.gpu.write_f32(seed, values)?;
        Ok(Op::Dispatch(self.add.pipeline.clone(), bg.clone(), *grid))
    }

    /// Reverse sweep over the recorded steps, as `Sim::backward`: `seed(t, seeds)` adds
    /// ∂L/∂(state after step t) for t = H-1 .. 0. One command buffer per step; the gradients
    /// are read back once at the end.
    pub fn backward(&mut self, mut seed: impl FnMut(usize, &mut Seeds)) -> Result<Gradients<f32>, EngineError> {
        self.sweep(false, |t, s, _| seed(t, s))
    }

    /// `Sim::backward_sweep` (the gradient bridge): `seed(t, seeds, next)` also receives
    /// ∂L/∂control_{t+1} (`None` for the last step). That costs one host round trip per step
    /// (the control gradient is read back after each step's command buffer).
    pub fn backward_sweep(
        &mut self,
        seed: impl FnMut(usize, &mut Seeds, Option<&Columns<f32>>),
    ) -> Result<Gradients<f32>, EngineError> {
        self.sweep(true, seed)
    }

    fn sweep(
        &mut self,
        need_next: bool,
        mut seed: impl FnMut(usize, &mut Seeds, Option<&Columns<f32>>),
    ) -> Result<Gradients<f32>, EngineError> {
        if !self.recording || self.tape_len == 0 {
            return Err(EngineError::Tape("gpu backward without `record()` and at least one step".into()));
        }
        while self.grads.len() < self.tape_len {
            let t = self.grads.len();
            self.grads.push(GpuMirror::zeros(&self.gpu, &format!("grad{t}"), &self.control_layout, self.num_envs)?);
        }
        let nseg = self.segments.len();
        let boundary = |i: usize| 1 + i;
        let pre = |j: usize| 1 + nseg + j;
        let segments = self.segments.clone();
        let mut next: Option<Columns<f32>> = None;
        for t in (0..self.tape_len).rev() {
            let mut ops = Vec::new();
            if t + 1 == self.tape_len {
                for b in self.adj_state.buffers() {
                    ops.push(Op::Clear(b.clone()));
                }
            }
            let mut seeds = Seeds::default();
            seed(t, &mut seeds, next.as_ref());
            for (name, values) in &seeds.entries {
                let op = self.seed_op(name, values)?;
                ops.push(op);
            }
            for b in self.adj_control.buffers() {
                ops.push(Op::Clear(b.clone()));
            }
            let (ck_state, ck_control) = &self.tape[t];
            Self::push_copy(&mut ops, ck_state, &self.states[boundary(0)]);
            Self::push_copy(&mut ops, ck_control, &self.controls[1]);
            // Segment boundaries: the state before each segment.
            for (i, seg) in segments[..nseg - 1].iter().enumerate() {
                Self::push_copy(&mut ops, &self.states[boundary(i)], &self.states[boundary(i + 1)]);
                for &sys in seg {
                    self.push_system(&mut ops, sys, false, boundary(i + 1), 1)?;
                }
            }
            // Per segment in reverse: the pre-state of each system, then the adjoints in reverse.
            // A system whose adjoint reads no state column that an earlier system of the
            // segment writes sees the segment's boundary state unchanged in what it reads, so
            // it binds the boundary slot and nothing is recomputed for it (for the particle
            // substep: every system); only the others get a recomputed pre-state.
            for (i, seg) in segments.iter().enumerate().rev() {
                let slots = self.pre_slots(seg, boundary(i), pre(0));
                if let Some(last) = slots.iter().rposition(|&s| s != boundary(i)) {
                    Self::push_copy(&mut ops, &self.states[boundary(i)], &self.states[pre(0)]);
                    for (j, &sys) in seg[..last].iter().enumerate() {
                        Self::push_copy(&mut ops, &self.states[pre(j)], &self.states[pre(j + 1)]);
                        self.push_system(&mut ops, sys, false, pre(j + 1), 1)?;
                    }
                }
                for (j, &sys) in seg.iter().enumerate().rev() {
                    self.push_system(&mut ops, sys, true, slots[j], 1)?;
                }
            }
            // A diverged step gives its env nothing: overwrite (NaN · 0 is NaN) the env's rows of
            // ∂L/∂(state before) and ∂L/∂control of the step, as `Sim::backward_sweep`.
            for &e in &self.diverged[t] {
                let adj = self.state_layout.specs.iter().zip(self.adj_state.buffers());
                let ctl = self.control_layout.specs.iter().zip(self.adj_control.buffers());
                for (spec, b) in adj.chain(ctl) {
                    let size = (spec.per_env() * 4) as u64;
                    if size > 0 {
                        ops.push(Op::ClearRange(b.clone(), e as u64 * size, size));
                    }
                }
            }
            // A reset before step t cuts the path into step t−1 (its control gradient stays).
            for &e in &self.cuts[t] {
                for (spec, b) in self.state_layout.specs.iter().zip(self.adj_state.buffers()) {
                    let size = (spec.per_env() * 4) as u64;
                    if size > 0 {
                        ops.push(Op::ClearRange(b.clone(), e as u64 * size, size));
                    }
                }
            }
            Self::push_copy(&mut ops, &self.adj_control, &self.grads[t]);
            self.submit("gpu backward step", ops, |_| {})?;
            if need_next && t > 0 {
                let mut c = Columns::zeros(self.control_layout.clone(), self.num_envs);
                self.grads[t].download(&self.gpu, &mut c)?;
                next = Some(c);
            }
        }
        // One readback of every step's control gradient.
        let per = self.grads[0].bytes();
        let total = per * self.tape_len as u64;
        let staging = self.staging("gradient readback", total);
        self.submit("gpu gradient readback", Vec::new(), |enc| {
            let mut off = 0;
            for g in &self.grads[..self.tape_len] {
                for b in g.buffers() {
                    enc.copy_buffer_to_buffer(b, 0, &staging, off, b.size());
                    off += b.size();
                }
            }
        })?;
        let bytes = self.map_read("gpu gradient readback", &staging, total)?;
        let mut off = 0usize;
        let mut controls = Vec::with_capacity(self.tape_len);
        for g in &self.grads[..self.tape_len] {
            let mut c: Columns<f32> = Columns::zeros(self.control_layout.clone(), self.num_envs);
            for ((_, col), b) in c.columns_mut().zip(g.buffers()) {
                let n = col.len();
                for (k, x) in col.iter_mut().enumerate() {
                    let o = off + 4 * k;
                    *x = f32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
                }
                debug_assert!(n * 4 <= b.size() as usize);
                off += b.size() as usize;
            }
            controls.push(c);
        }
        let mut initial_state = Columns::zeros(self.state_layout.clone(), self.num_envs);
        self.adj_state.download(&self.gpu, &mut initial_state)?;
        Ok(Gradients { initial_state, controls })
    }

    // ---- Single-system access, for parity tests of each kernel against its CPU system. ----

    /// Index of the first system named `name`.
    pub fn system_index(&self, name: &str) -> Result<usize, EngineError> {
        self.systems.iter().position(|s| s.name == name).ok_or_else(|| {
            EngineError::Gpu(format!("no system `{name}` in this GpuSim (have {:?})", self.system_names()))
        })
    }

    /// Runs system `sys`'s forward passes once on the live state and control.
    pub fn forward_system(&mut self, sys: usize) -> Result<(), EngineError> {
        let mut ops = Vec::new();
        self.push_system(&mut ops, sys, false, 0, 0)?;
        self.submit("gpu forward_system", ops, |_| {})?;
        Ok(())
    }

    /// Runs system `sys`'s adjoint passes once with `pre` as the state its forward saw, the live
    /// control, and the adjoints last written by `write_adjoints`.
    pub fn adjoint_system(&mut self, sys: usize, pre: &Columns<f32>) -> Result<(), EngineError> {
        let slot = self.states.len() - 1;
        self.states[slot].write(&self.gpu, pre)?;
        let mut ops = Vec::new();
        self.push_system(&mut ops, sys, true, slot, 0)?;
        self.submit("gpu adjoint_system", ops, |_| {})?;
        Ok(())
    }

    pub fn write_adjoints(&self, adj_state: &Columns<f32>, adj_control: &Columns<f32>) -> Result<(), EngineError> {
        self.adj_state.write(&self.gpu, adj_state)?;
        self.adj_control.write(&self.gpu, adj_control)
    }

    pub fn read_adjoints(&self) -> Result<(Columns<f32>, Columns<f32>), EngineError> {
        let mut s = Columns::zeros(self.state_layout.clone(), self.num_envs);
        let mut c = Columns::zeros(self.control_layout.clone(), self.num_envs);
        self.adj_state.download(&self.gpu, &mut s)?;
        self.adj_control.download(&self.gpu, &mut c)?;
        Ok((s, c))
    }
}
