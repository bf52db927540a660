//! `rolling_flat`: RollingFlat (Rewarped's `plasticinelab.RollingPin`, rewarped.md §6.1–6.2): a
//! kinematic roller flattens a block of plasticine.
//!
//! Physics (MLS-MPM, `diffsim_systems::mpm`): 18 × 8 × 18 = 2592 particles per env in a
//! 0.3 × 0.125 × 0.3 block, von Mises plasticine (E = 5000, ν = 0.2, τ_y = 50, ρ = 1), a 48³ grid
//! on [0, 1]³ with a 3-cell boundary and a sticky floor at y = 3/48, gravity −90, 40 substeps of
//! 5e-5 s per env step (the MPM dt of the DexDeform config, not frame_dt / substeps).
//! Roller: a capsule (r 0.03, half-height 0.2) and a handle capsule (r 0.012, half-height 0.3)
//! along the body's z, on a D6 joint (x, y, rotation about y) with limits x ∈ [0.12, 0.88],
//! y ∈ [0.1225, 0.3725], θ ∈ ±0.66π; friction 0.9, softness 666. Actions (dx, dy, dθ) ∈ [−1, 1]
//! scaled by (0.01, 0.01, π/60) per env step, clipped to the limits.
//!
//! Observation (756): every 10th particle's position, first 250 (750), their mean (3), and the
//! roller's (x, y, θ) (3). Reward, with h the particle heights and d = mean(h)/0.125:
//! r = (1/(1 + d))² (× 2 when d ≤ 0.33) − var(h).
//! Init noise: the block shifted by ±0.1 in x and z and +0..0.05 in y, scaled by 1 ± 10% about
//! its centre (rounded to 1e-3; particle masses and volumes are not rescaled).

use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, adj_state, state};
use diffsim_engine::{
    ColumnAccess, Columns, Cpu, EngineError, ModelView, Real, Scene, Sim, SimFactory, Stage, StepCx, System, View,
    ViewMut,
};
use diffsim_systems::mpm::{self, Collider, ColliderDrive, Floor, Grid, MpmMaterial, Shape};

use crate::mpm_setup::{particle_scene, shift_and_scale, uniform_box};
use crate::vec_env::{Task, TaskRng, TaskSpec};

/// Observed particles (every `OBS_STRIDE`-th, the first `OBS_PARTICLES`).
pub const OBS_PARTICLES: usize = 250;
pub const OBS_STRIDE: usize = 10;
/// Height that normalizes the mean particle height in the reward.
const HEIGHT_SCALE: f64 = 0.125;

#[derive(Clone, Debug)]
pub struct RollingFlatConfig {
    pub num_envs: usize,
    pub threads: usize,
    /// Grid nodes per axis.
    pub grid_res: usize,
    /// Particles per axis of the block.
    pub particles: [usize; 3],
    pub substeps: usize,
    /// MPM substep, seconds.
    pub substep_dt: f64,
    pub episode_length: usize,
    pub youngs: f64,
    pub poisson: f64,
    pub yield_stress: f64,
    pub density: f64,
    pub gravity: f64,
    /// Seed of the block's random particle positions (part of the model, not the init noise).
    pub layout_seed: u64,
    /// Rewarped's ground_friction: ≥ 99 sticky (the `dexdeform` config's 500), 0 free slip,
    /// else the friction law of `Floor::Friction`.
    pub ground_friction: f64,
}

impl Default for RollingFlatConfig {
    fn default() -> Self {
        Self {
            num_envs: 2,
            threads: 2,
            grid_res: 48,
            particles: [18, 8, 18],
            substeps: 40,
            substep_dt: 5e-5,
            episode_length: 300,
            youngs: 5000.0,
            poisson: 0.2,
            yield_stress: 50.0,
            density: 1.0,
            gravity: -90.0,
            layout_seed: 0,
            ground_friction: 500.0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct RollingFlat {
    pub cfg: RollingFlatConfig,
}

const BLOCK_SIZE: [f64; 3] = [0.3, 0.125, 0.3];
const BOUND: usize = 3;
const LO: [f64; 4] = [0.12, 0.1225, 0.0, -0.66 * std::f64::consts::PI];
const HI: [f64; 4] = [0.88, 0.3725, 1.0, 0.66 * std::f64::consts::PI];

impl RollingFlat {
    pub fn new(cfg: RollingFlatConfig) -> Self {
        Self { cfg }
    }
    pub fn num_particles(&self) -> usize {
        self.cfg.particles.iter().product()
    }
    /// Observed particles: every 10th, at most 250 (fewer in small test configs).
    pub fn obs_particles(&self) -> usize {
        OBS_PARTICLES.min(self.num_particles().div_ceil(OBS_STRIDE))
    }
    pub fn obs_dim(&self) -> usize {
        3 * self.obs_particles() + 6
    }
    fn ground_y(&self) -> f64 {
        BOUND as f64 / self.cfg.grid_res as f64
    }
    fn block_center(&self) -> [f64; 3] {
        [0.5, 0.7 * BLOCK_SIZE[1] + self.ground_y(), 0.5]
    }
    /// The grid; errors on a bad `ground_friction`.
    pub fn grid(&self) -> Result<Grid, EngineError> {
        let floor = Floor::of_config("rolling_flat", self.cfg.ground_friction)?;
        Ok(Grid { res: self.cfg.grid_res, bound: BOUND, gravity: [0.0, self.cfg.gravity, 0.0], floor })
    }
    pub fn collider() -> Collider {
        Collider {
            shapes: vec![
                Shape::Capsule { center: [0.0; 3], radius: 0.03, half_height: 0.2 },
                Shape::Capsule { center: [0.0; 3], radius: 0.012, half_height: 0.3 },
            ],
            friction: 0.9,
            softness: 666.0,
        }
    }
    /// Roller start: x = 0.5, y at 0.66 of its range, θ = 0.
    pub fn roller_start() -> [f64; 4] {
        [0.5, LO[1] + 0.66 * (HI[1] - LO[1]), 0.5, 0.0]
    }
    pub fn drive(&self) -> ColliderDrive {
        ColliderDrive {
            act: "act".into(),
            axes: vec![0, 1, 3],
            scale: vec![0.01, 0.01, std::f64::consts::PI / 60.0],
            lo: LO,
            hi: HI,
            substeps: self.cfg.substeps,
        }
    }

    /// Per env: the block's particles (uniform random points, fixed by `layout_seed`).
    pub fn scene(&self) -> Scene {
        let c = &self.cfg;
        let n = self.num_particles();
        let vol = BLOCK_SIZE.iter().product::<f64>() / n as f64;
        let (mu, lambda) = MpmMaterial::lame(c.youngs, c.poisson);
        let material = MpmMaterial::Plasticine { mu, lambda, yield_stress: c.yield_stress };
        let center = self.block_center();
        let points = uniform_box(&mut TaskRng::new(c.layout_seed), center, BLOCK_SIZE, n);
        particle_scene(c.num_envs, &points, vol, c.density, material)
    }
}

impl SimFactory for RollingFlat {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let scene = self.scene();
        let mut packed = scene.pack()?;
        mpm::pack(&scene, &mut packed)?;
        mpm::pack_collider(&mut packed, &Self::collider(), &vec![Self::roller_start(); c.num_envs])?;
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

impl Task for RollingFlat {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("rolling_flat", self.cfg.num_envs, self.obs_dim(), 3, self.cfg.episode_length)
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let x = state.env_mut("mpm_x", env)?;
        shift_and_scale(rng, x, self.block_center(), [(-0.1, 0.1), (0.0, 0.05), (-0.1, 0.1)], (0.9, 1.1));
        Ok(())
    }
}

/// `rolling_flat.observe`: obs = [x_{10k} for k < K, their mean, roller (x, y, θ)] (linear).
/// Adjoint: x̄_{10k} += ō_k + ō_com / K; q̄ += ō_q; ō ← 0.
#[derive(Clone, Copy, Debug)]
pub struct Observe {
    pub particles: usize,
}

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "rolling_flat.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("mpm_x", 3),
            ColumnAccess::state("collider_q", 4),
            ColumnAccess::write("obs", 3 * self.particles + 6),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let k = self.particles;
        let dim = 3 * k + 6;
        let np = model.count("mpm_mass_vol");
        let inv = R::from_f64(1.0 / k as f64);
        let [x, q, obs] = state.cols_mut(["mpm_x", "collider_q", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut obs[dim * e..dim * (e + 1)];
            let mut com = [R::zero(); 3];
            for i in 0..k {
                let p = e * np + OBS_STRIDE * i;
                for d in 0..3 {
                    o[3 * i + d] = x[3 * p + d];
                    com[d] += x[3 * p + d] * inv;
                }
            }
            o[3 * k..3 * k + 3].copy_from_slice(&com);
            o[3 * k + 3] = q[4 * e];
            o[3 * k + 4] = q[4 * e + 1];
            o[3 * k + 5] = q[4 * e + 3];
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
        let dim = 3 * k + 6;
        let np = model.count("mpm_mass_vol");
        let inv = R::from_f64(1.0 / k as f64);
        let [ax, aq, aobs] = adj.cols_mut(["mpm_x", "collider_q", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut aobs[dim * e..dim * (e + 1)];
            for i in 0..k {
                let p = e * np + OBS_STRIDE * i;
                for d in 0..3 {
                    ax[3 * p + d] += o[3 * i + d] + o[3 * k + d] * inv;
                }
            }
            aq[4 * e] += o[3 * k + 3];
            aq[4 * e + 1] += o[3 * k + 4];
            aq[4 * e + 3] += o[3 * k + 5];
            o.fill(R::zero());
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// `rolling_flat.reward`: with h_p the particle heights, N of them, m = mean(h), d = m / 0.125:
/// r = c (1 + d)⁻² − var(h), c = 2 if d ≤ 0.33 else 1 (the switch is piecewise constant).
/// Adjoint: h̄_p = r̄ (−2c (1 + d)⁻³ / (0.125 N) − 2 (h_p − m) / N); r̄ ← 0.
#[derive(Clone, Copy, Debug)]
pub struct Reward;

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "rolling_flat.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("mpm_x", 3), ColumnAccess::write("reward", 1)]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let np = model.count("mpm_mass_vol");
        let inv = R::from_f64(1.0 / np as f64);
        let [x, reward] = state.cols_mut(["mpm_x", "reward"]);
        for e in 0..model.num_envs() {
            let h = |p: usize| x[3 * (e * np + p) + 1];
            let mut m = R::zero();
            for p in 0..np {
                m += h(p) * inv;
            }
            let mut var = R::zero();
            for p in 0..np {
                let dh = h(p) - m;
                var += dh * dh * inv;
            }
            let d = m / R::from_f64(HEIGHT_SCALE);
            let c = R::from_f64(if d.to_f64() <= 0.33 { 2.0 } else { 1.0 });
            let s = R::one() / (R::one() + d);
            reward[e] = c * s * s - var;
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
        let inv = R::from_f64(1.0 / np as f64);
        let x = pre.col("mpm_x");
        let [ax, ar] = adj.cols_mut(["mpm_x", "reward"]);
        for e in 0..model.num_envs() {
            let rbar = ar[e];
            ar[e] = R::zero();
            let h = |p: usize| x[3 * (e * np + p) + 1];
            let mut m = R::zero();
            for p in 0..np {
                m += h(p) * inv;
            }
            let d = m / R::from_f64(HEIGHT_SCALE);
            let c = R::from_f64(if d.to_f64() <= 0.33 { 2.0 } else { 1.0 });
            let s = R::one() / (R::one() + d);
            let dmean = R::from_f64(-2.0) * c * s * s * s / R::from_f64(HEIGHT_SCALE) * inv;
            let two = R::from_f64(2.0);
            for p in 0..np {
                ax[3 * (e * np + p) + 1] += rbar * (dmean - two * (h(p) - m) * inv);
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// Uniform block of the rolling_flat kernels (WGSL `struct Params` in
/// `wgsl/rolling_flat_params.wgsl`), laid out by encase.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct RollingFlatParams {
    pub n: u32,
    pub np: u32,
    pub k: u32,
    pub stride: u32,
    pub height_scale: f32,
}

impl RollingFlatParams {
    fn of(cx: &GpuBuildCx, k: usize) -> Result<Self, EngineError> {
        let u = |n: usize, what: &str| {
            u32::try_from(n).map_err(|_| EngineError::Gpu(format!("rolling_flat: {what} = {n} does not fit u32")))
        };
        Ok(Self {
            n: u(cx.num_envs, "envs")?,
            np: u(cx.count("mpm_mass_vol"), "particles")?,
            k: u(k, "observed particles")?,
            stride: OBS_STRIDE as u32,
            height_scale: HEIGHT_SCALE as f32,
        })
    }
}

fn rolling_flat_source(kernel: &str) -> String {
    format!("{}\n{kernel}", include_str!("wgsl/rolling_flat_params.wgsl"))
}

/// GPU: `wgsl/rolling_flat_observe*.wgsl`, one invocation per env.
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "rolling_flat.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = cx.uniform("rolling_flat.observe", &RollingFlatParams::of(cx, self.particles)?)?;
        let fwd =
            vec![Bind::read(state("mpm_x")), Bind::read(state("collider_q")), Bind::rw(state("obs")), Bind::uniform(0)];
        let adj = vec![
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("collider_q")),
            Bind::rw(adj_state("obs")),
            Bind::uniform(0),
        ];
        let fsrc = rolling_flat_source(include_str!("wgsl/rolling_flat_observe.wgsl"));
        let asrc = rolling_flat_source(include_str!("wgsl/rolling_flat_observe_adjoint.wgsl"));
        GpuKernels::per_env(cx, "rolling_flat.observe", "observe", vec![params], (&fsrc, fwd), (&asrc, adj))
    }
}

/// GPU: `wgsl/rolling_flat_reward*.wgsl`, one invocation per env (sums in the CPU's order).
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "rolling_flat.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = cx.uniform("rolling_flat.reward", &RollingFlatParams::of(cx, 0)?)?;
        let fwd = vec![Bind::read(state("mpm_x")), Bind::rw(state("reward")), Bind::uniform(0)];
        let adj = vec![
            Bind::read(state("mpm_x")),
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("reward")),
            Bind::uniform(0),
        ];
        let fsrc = rolling_flat_source(include_str!("wgsl/rolling_flat_reward.wgsl"));
        let asrc = rolling_flat_source(include_str!("wgsl/rolling_flat_reward_adjoint.wgsl"));
        GpuKernels::per_env(cx, "rolling_flat.reward", "reward", vec![params], (&fsrc, fwd), (&asrc, adj))
    }
}
