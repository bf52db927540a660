//! `fluid_move`: FluidMove (Rewarped's `softgym.Transport`, rewarped.md §6.1–6.2): carry an open
//! container of water to a target position without spilling.
//!
//! Physics (MLS-MPM, `diffsim_systems::mpm`, the `regular` sim config): 16 × 9 × 20 = 2880 water
//! particles per env (weakly compressible, E = 1e5, ν = 0.3 → λ, ρ = 1000) at uniform random
//! points of a 0.16 × 0.094 × 0.2 block resting on the container's inner floor; a 48³ grid on
//! [0, 1]³ with a 3-cell boundary, a slip floor (ground_friction 0), gravity −9.8, 40 substeps of
//! 5e-4 s per env step.
//!
//! Container: one kinematic body of 5 boxes, inner size (l, h, w) = (0.18, 0.16, 0.22), wall
//! thickness t = 0.05, body origin at its centre, starting at (0.5, 0.15, 0.5). In the body frame
//! the bottom plate spans y ∈ [−h/2 − t/2, −h/2 + t/2] and the four walls y ∈ [−h/2, h/2 + t/2],
//! so the whole container fills the box of half extents b = (l/2 + t, h/2 + t/2, w/2 + t) that
//! the spill term uses, and the cavity (l × h × w, open at the top) sits above the plate.
//! (rewarped.md gives the sizes and b but not how the 5 boxes are placed; this placement is the
//! one consistent with b.) Friction 0.5, softness 666 (the `regular` config).
//! A 3-prismatic joint moves it: actions (dx, dy, dz) ∈ [−1, 1] × 0.01 per env step, clipped to
//! the joint limits [b_k, 1 − b_k] per axis (the container stays inside the domain).
//!
//! Observation (759): every 11th particle's position, first 250 (750), the mean position of all
//! particles (3), the container position (3) and the target (3).
//! Reward: with d = ‖q − target‖, dist_r = (1/(1 + d²))² (× 2 when d ≤ 0.02) and
//! spill = −mean_p max_k sigmoid((|x_pk − q_k| − b_k)/1e-5), r = 0.1 dist_r + spill.
//! Init: target = start + U(±0.2, 0..0.3, ±0.2), a state column (`target_q`) reset per episode.
//!
//! GPU: every system has WGSL kernels (the MPM ones in `diffsim_systems::mpm::gpu`; observe and
//! reward here, `wgsl/fluid_move_*.wgsl`, one invocation per env summing in the CPU's order), so
//! the task runs on `GpuSim` (parity: tests/tests/gpu_mpm_tasks.rs).

use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, adj_state, state};
use diffsim_engine::{
    ColumnAccess, ColumnSpec, Columns, Cpu, EngineError, ModelView, Real, Scene, Sim, SimFactory, Stage, StepCx,
    System, View, ViewMut,
};
use diffsim_systems::mpm::{self, Collider, ColliderDrive, Floor, Grid, MpmMaterial, Shape};

use crate::mpm_setup::{particle_scene, uniform_box};
use crate::vec_env::{Task, TaskRng, TaskSpec};

/// Observed particles (every `OBS_STRIDE`-th, the first `OBS_PARTICLES`).
pub const OBS_PARTICLES: usize = 250;
pub const OBS_STRIDE: usize = 11;
/// Container inner size (l, h, w) and wall thickness.
pub const INNER: [f64; 3] = [0.18, 0.16, 0.22];
pub const WALL: f64 = 0.05;
/// Container start position (body origin = container centre).
pub const START: [f64; 3] = [0.5, 0.15, 0.5];
/// Water block size (the `cube_20_random_0.16_0.094_0.2` layout).
const WATER_SIZE: [f64; 3] = [0.16, 0.094, 0.2];
/// Gap between the water block and the container's inner floor.
const FLOOR_GAP: f64 = 0.004;
/// Width of the spill sigmoid (rewarped.md §6.2).
const SPILL_WIDTH: f64 = 1e-5;
/// Weight of the distance term in the reward.
const DIST_WEIGHT: f64 = 0.1;
/// Distance under which the distance term doubles.
const NEAR: f64 = 0.02;
const BOUND: usize = 3;

#[derive(Clone, Debug)]
pub struct FluidMoveConfig {
    pub num_envs: usize,
    pub threads: usize,
    /// Grid nodes per axis.
    pub grid_res: usize,
    /// Particles per axis of the water block.
    pub particles: [usize; 3],
    pub substeps: usize,
    /// MPM substep, seconds.
    pub substep_dt: f64,
    pub episode_length: usize,
    pub youngs: f64,
    pub poisson: f64,
    pub density: f64,
    pub gravity: f64,
    /// Seed of the block's random particle positions (part of the model, not the init noise).
    pub layout_seed: u64,
    /// Rewarped's ground_friction: 0 free slip (the `regular` config's Transport), ≥ 99
    /// sticky, else the friction law of `Floor::Friction`.
    pub ground_friction: f64,
}

impl Default for FluidMoveConfig {
    fn default() -> Self {
        Self {
            num_envs: 2,
            threads: 2,
            grid_res: 48,
            particles: [16, 9, 20],
            substeps: 40,
            substep_dt: 5e-4,
            episode_length: 300,
            youngs: 1e5,
            poisson: 0.3,
            density: 1000.0,
            gravity: -9.8,
            layout_seed: 0,
            ground_friction: 0.0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct FluidMove {
    pub cfg: FluidMoveConfig,
}

/// Half extents of the box the whole container fills: b = (l/2 + t, h/2 + t/2, w/2 + t).
pub fn outer_half() -> [f64; 3] {
    [INNER[0] / 2.0 + WALL, INNER[1] / 2.0 + WALL / 2.0, INNER[2] / 2.0 + WALL]
}

impl FluidMove {
    pub fn new(cfg: FluidMoveConfig) -> Self {
        Self { cfg }
    }
    pub fn num_particles(&self) -> usize {
        self.cfg.particles.iter().product()
    }
    /// Observed particles: every 11th, at most 250 (fewer in small test configs).
    pub fn obs_particles(&self) -> usize {
        OBS_PARTICLES.min(self.num_particles().div_ceil(OBS_STRIDE))
    }
    pub fn obs_dim(&self) -> usize {
        3 * self.obs_particles() + 9
    }
    /// The grid; errors on a bad `ground_friction`.
    pub fn grid(&self) -> Result<Grid, EngineError> {
        let floor = Floor::of_config("fluid_move", self.cfg.ground_friction)?;
        Ok(Grid { res: self.cfg.grid_res, bound: BOUND, gravity: [0.0, self.cfg.gravity, 0.0], floor })
    }
    /// The container: bottom plate and four walls (module docs).
    pub fn collider() -> Collider {
        let [l, h, w] = INNER;
        let t = WALL;
        let b = outer_half();
        // Walls span y ∈ [−h/2, h/2 + t/2]: centre t/4, half height h/2 + t/4.
        let (wy, whh) = (t / 4.0, h / 2.0 + t / 4.0);
        Collider {
            shapes: vec![
                Shape::Box { center: [0.0, -h / 2.0, 0.0], half_extents: [b[0], t / 2.0, b[2]] },
                Shape::Box { center: [-(l + t) / 2.0, wy, 0.0], half_extents: [t / 2.0, whh, b[2]] },
                Shape::Box { center: [(l + t) / 2.0, wy, 0.0], half_extents: [t / 2.0, whh, b[2]] },
                Shape::Box { center: [0.0, wy, -(w + t) / 2.0], half_extents: [l / 2.0, whh, t / 2.0] },
                Shape::Box { center: [0.0, wy, (w + t) / 2.0], half_extents: [l / 2.0, whh, t / 2.0] },
            ],
            friction: 0.5,
            softness: 666.0,
        }
    }
    pub fn start() -> [f64; 4] {
        [START[0], START[1], START[2], 0.0]
    }
    /// Joint limits [b_k, 1 − b_k] on x, y, z (θ is not driven).
    pub fn drive(&self) -> ColliderDrive {
        let b = outer_half();
        ColliderDrive {
            act: "act".into(),
            axes: vec![0, 1, 2],
            scale: vec![0.01; 3],
            lo: [b[0], b[1], b[2], 0.0],
            hi: [1.0 - b[0], 1.0 - b[1], 1.0 - b[2], 0.0],
            substeps: self.cfg.substeps,
        }
    }
    /// Centre of the water block: centred in the cavity, resting on its floor.
    pub fn water_center() -> [f64; 3] {
        let floor = START[1] - INNER[1] / 2.0 + WALL / 2.0;
        [START[0], floor + FLOOR_GAP + WATER_SIZE[1] / 2.0, START[2]]
    }
    /// Nominal target (the middle of the init distribution); `reset_env` redraws it.
    pub fn nominal_target() -> [f64; 3] {
        [START[0], START[1] + 0.15, START[2]]
    }

    /// Per env: the water particles (uniform random points, fixed by `layout_seed`).
    pub fn scene(&self) -> Scene {
        let c = &self.cfg;
        let n = self.num_particles();
        let vol = WATER_SIZE.iter().product::<f64>() / n as f64;
        let lambda = MpmMaterial::lame(c.youngs, c.poisson).1;
        let material = MpmMaterial::Water { lambda };
        let center = Self::water_center();
        let points = uniform_box(&mut TaskRng::new(c.layout_seed), center, WATER_SIZE, n);
        particle_scene(c.num_envs, &points, vol, c.density, material)
    }
}

impl SimFactory for FluidMove {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let scene = self.scene();
        let mut packed = scene.pack()?;
        mpm::pack(&scene, &mut packed)?;
        mpm::pack_collider(&mut packed, &Self::collider(), &vec![Self::start(); c.num_envs])?;
        let target: Vec<f32> = (0..c.num_envs).flat_map(|_| Self::nominal_target().map(|x| x as f32)).collect();
        packed.state.add_column(ColumnSpec::new("target_q", 1, 3), target)?;
        self.spec().add_columns(&mut packed)?;
        let dt = c.substep_dt * c.substeps as f64;
        let obs = Observe { particles: self.obs_particles() };
        let collider = Some((Self::collider(), self.drive()));
        let schedule = mpm::schedule::<R>(dt, c.substeps, self.grid()?, collider, c.threads)
            .with(Stage::Post, obs)
            .with(Stage::Post, Reward);
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(c.threads))
    }
}

impl Task for FluidMove {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("fluid_move", self.cfg.num_envs, self.obs_dim(), 3, self.cfg.episode_length)
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let offset = [rng.uniform(-0.2, 0.2), rng.uniform(0.0, 0.3), rng.uniform(-0.2, 0.2)];
        let t = state.env_mut("target_q", env)?;
        for d in 0..3 {
            t[d] = (START[d] + offset[d]) as f32;
        }
        Ok(())
    }
}

/// `fluid_move.observe`: obs = [x_{11k} for k < K, mean of all x, container (x, y, z), target]
/// (linear). Adjoint: x̄_{11k} += ō_k; x̄_p += ō_com / N for every p; q̄ += ō_q; t̄ += ō_t; ō ← 0.
/// The target is constant over an episode (`reset_env` draws it); this system is its writer,
/// the identity t ← t (the schedule asks every state column read to have a writer), so its
/// adjoint leaves t̄ as it is apart from the observation's share.
#[derive(Clone, Copy, Debug)]
pub struct Observe {
    pub particles: usize,
}

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "fluid_move.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("mpm_x", 3),
            ColumnAccess::state("collider_q", 4),
            ColumnAccess::state("target_q", 3),
            ColumnAccess::write("target_q", 3),
            ColumnAccess::write("obs", 3 * self.particles + 9),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let k = self.particles;
        let dim = 3 * k + 9;
        let np = model.count("mpm_mass_vol");
        let inv = R::from_f64(1.0 / np as f64);
        let [x, q, target, obs] = state.cols_mut(["mpm_x", "collider_q", "target_q", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut obs[dim * e..dim * (e + 1)];
            let xe = &x[3 * np * e..3 * np * (e + 1)];
            for i in 0..k {
                o[3 * i..3 * i + 3].copy_from_slice(&xe[3 * OBS_STRIDE * i..3 * OBS_STRIDE * i + 3]);
            }
            let mut com = [R::zero(); 3];
            for p in xe.chunks_exact(3) {
                for d in 0..3 {
                    com[d] += p[d] * inv;
                }
            }
            o[3 * k..3 * k + 3].copy_from_slice(&com);
            o[3 * k + 3..3 * k + 6].copy_from_slice(&q[4 * e..4 * e + 3]);
            o[3 * k + 6..3 * k + 9].copy_from_slice(&target[3 * e..3 * e + 3]);
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        _: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let k = self.particles;
        let dim = 3 * k + 9;
        let np = model.count("mpm_mass_vol");
        let inv = R::from_f64(1.0 / np as f64);
        let [ax, aq, at, aobs] = adj.cols_mut(["mpm_x", "collider_q", "target_q", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut aobs[dim * e..dim * (e + 1)];
            let axe = &mut ax[3 * np * e..3 * np * (e + 1)];
            let com = [0, 1, 2].map(|d| o[3 * k + d] * inv);
            for p in axe.chunks_exact_mut(3) {
                for d in 0..3 {
                    p[d] += com[d];
                }
            }
            for i in 0..k {
                for d in 0..3 {
                    axe[3 * OBS_STRIDE * i + d] += o[3 * i + d];
                }
            }
            for d in 0..3 {
                aq[4 * e + d] += o[3 * k + 3 + d];
                at[3 * e + d] += o[3 * k + 6 + d];
            }
            o.fill(R::zero());
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// The logistic function, evaluated without overflow for large |z| (z = ±1e4 is common here:
/// the spill sigmoid is 1e-5 wide).
fn sigmoid<R: Real>(z: R) -> R {
    if z.to_f64() < 0.0 {
        let e = z.exp();
        e / (R::one() + e)
    } else {
        R::one() / (R::one() + (-z).exp())
    }
}

/// The spill term's per-particle argument: the axis k of largest z_k = (|x_k − q_k| − b_k)/w
/// (the sigmoid is monotone, so max_k sigmoid(z_k) = sigmoid(max_k z_k)), z and the sign of
/// x_k − q_k (∂z/∂x_k = sign/w).
fn spill_arg<R: Real>(x: &[R], q: &[R]) -> (usize, R, f64) {
    let b = outer_half();
    let mut best: Option<(usize, R, f64)> = None;
    for k in 0..3 {
        let r = x[k] - q[k];
        let sign = if r.to_f64() < 0.0 { -1.0 } else { 1.0 };
        let z = (r * R::from_f64(sign) - R::from_f64(b[k])) * R::from_f64(1.0 / SPILL_WIDTH);
        if best.as_ref().is_none_or(|(_, zb, _)| z.to_f64() > zb.to_f64()) {
            best = Some((k, z, sign));
        }
    }
    best.unwrap_or((0, R::zero(), 1.0))
}

/// `fluid_move.reward`: r = 0.1 c (1 + d²)⁻² − (1/N) Σ_p sigmoid(z_p), d = ‖q − target‖,
/// c = 2 if d ≤ 0.02 else 1 (piecewise constant), z_p from `spill_arg`.
/// Adjoint: with u = 1/(1 + d²), ∂r/∂q = −0.4 c u³ (q − target) = −∂r/∂target from the distance
/// term; the spill term gives x̄_pk −= r̄ s(1 − s) sign / (w N) on each particle's axis k and the
/// opposite on q̄_k; r̄ ← 0.
#[derive(Clone, Copy, Debug)]
pub struct Reward;

fn dist_term<R: Real>(q: &[R], t: &[R]) -> (R, R) {
    let d2 = (0..3).map(|k| (q[k] - t[k]) * (q[k] - t[k])).fold(R::zero(), |a, b| a + b);
    let c = if d2.to_f64().sqrt() <= NEAR { 2.0 } else { 1.0 };
    let u = R::one() / (R::one() + d2);
    (R::from_f64(DIST_WEIGHT * c) * u * u, R::from_f64(-4.0 * DIST_WEIGHT * c) * u * u * u)
}

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "fluid_move.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("mpm_x", 3),
            ColumnAccess::state("collider_q", 4),
            ColumnAccess::state("target_q", 3),
            ColumnAccess::write("reward", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let np = model.count("mpm_mass_vol");
        let inv = R::from_f64(1.0 / np as f64);
        let [x, q, target, reward] = state.cols_mut(["mpm_x", "collider_q", "target_q", "reward"]);
        for e in 0..model.num_envs() {
            let qe = &q[4 * e..4 * e + 3];
            let (dist, _) = dist_term(qe, &target[3 * e..3 * e + 3]);
            let mut spill = R::zero();
            for p in x[3 * np * e..3 * np * (e + 1)].chunks_exact(3) {
                spill += sigmoid(spill_arg(p, qe).1);
            }
            reward[e] = dist - spill * inv;
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let np = model.count("mpm_mass_vol");
        let scale = R::from_f64(1.0 / (np as f64 * SPILL_WIDTH));
        let (x, q, target) = (pre.col("mpm_x"), pre.col("collider_q"), pre.col("target_q"));
        let [ax, aq, at, ar] = adj.cols_mut(["mpm_x", "collider_q", "target_q", "reward"]);
        for e in 0..model.num_envs() {
            let rbar = ar[e];
            ar[e] = R::zero();
            let (qe, te) = (&q[4 * e..4 * e + 3], &target[3 * e..3 * e + 3]);
            let (_, dd2) = dist_term(qe, te);
            for k in 0..3 {
                // dd2 = ∂(0.1 c u²)/∂(d²) · 2 / 2: ∂r/∂q_k = dd2 (q_k − t_k).
                let g = rbar * dd2 * (qe[k] - te[k]);
                aq[4 * e + k] += g;
                at[3 * e + k] -= g;
            }
            for p in 0..np {
                let xp = &x[3 * (np * e + p)..3 * (np * e + p) + 3];
                let (k, z, sign) = spill_arg(xp, qe);
                let s = sigmoid(z);
                let g = rbar * s * (R::one() - s) * scale * R::from_f64(sign);
                ax[3 * (np * e + p) + k] -= g;
                aq[4 * e + k] += g;
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// Uniform block of the fluid_move kernels (WGSL `struct Params` in
/// `wgsl/fluid_move_params.wgsl`), laid out by encase.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct FluidMoveParams {
    pub n: u32,
    pub np: u32,
    pub k: u32,
    pub stride: u32,
    pub inv_width: f32,
    pub spill_scale: f32,
    pub bx: f32,
    pub by: f32,
    pub bz: f32,
    pub dist_weight: f32,
    pub near: f32,
}

impl FluidMoveParams {
    fn of(cx: &GpuBuildCx, k: usize) -> Result<Self, EngineError> {
        let u = |n: usize, what: &str| {
            u32::try_from(n).map_err(|_| EngineError::Gpu(format!("fluid_move: {what} = {n} does not fit u32")))
        };
        let np = cx.count("mpm_mass_vol");
        let b = outer_half();
        Ok(Self {
            n: u(cx.num_envs, "envs")?,
            np: u(np, "particles")?,
            k: u(k, "observed particles")?,
            stride: OBS_STRIDE as u32,
            inv_width: (1.0 / SPILL_WIDTH) as f32,
            spill_scale: (1.0 / (np as f64 * SPILL_WIDTH)) as f32,
            bx: b[0] as f32,
            by: b[1] as f32,
            bz: b[2] as f32,
            dist_weight: DIST_WEIGHT as f32,
            near: NEAR as f32,
        })
    }
}

fn fluid_move_source(kernel: &str) -> String {
    format!("{}\n{kernel}", include_str!("wgsl/fluid_move_params.wgsl"))
}

/// GPU: `wgsl/fluid_move_observe*.wgsl`, one invocation per env (sums in the CPU's order).
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "fluid_move.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = cx.uniform("fluid_move.observe", &FluidMoveParams::of(cx, self.particles)?)?;
        let fwd = vec![
            Bind::read(state("mpm_x")),
            Bind::read(state("collider_q")),
            Bind::read(state("target_q")),
            Bind::rw(state("obs")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("collider_q")),
            Bind::rw(adj_state("target_q")),
            Bind::rw(adj_state("obs")),
            Bind::uniform(0),
        ];
        let fsrc = fluid_move_source(include_str!("wgsl/fluid_move_observe.wgsl"));
        let asrc = fluid_move_source(include_str!("wgsl/fluid_move_observe_adjoint.wgsl"));
        GpuKernels::per_env(cx, "fluid_move.observe", "observe", vec![params], (&fsrc, fwd), (&asrc, adj))
    }
}

/// GPU: `wgsl/fluid_move_reward*.wgsl`, one invocation per env (sums in the CPU's order).
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "fluid_move.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = cx.uniform("fluid_move.reward", &FluidMoveParams::of(cx, 0)?)?;
        let fwd = vec![
            Bind::read(state("mpm_x")),
            Bind::read(state("collider_q")),
            Bind::read(state("target_q")),
            Bind::rw(state("reward")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("mpm_x")),
            Bind::read(state("collider_q")),
            Bind::read(state("target_q")),
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("collider_q")),
            Bind::rw(adj_state("target_q")),
            Bind::rw(adj_state("reward")),
            Bind::uniform(0),
        ];
        let fsrc = fluid_move_source(include_str!("wgsl/fluid_move_reward.wgsl"));
        let asrc = fluid_move_source(include_str!("wgsl/fluid_move_reward_adjoint.wgsl"));
        GpuKernels::per_env(cx, "fluid_move.reward", "reward", vec![params], (&fsrc, fwd), (&asrc, adj))
    }
}
