//! `cartpole`: the DFlex-suite cart-pole swing-up (rewarped.md §6.1: 2 bodies, 2 dof, 4 substeps
//! × 4.17 ms, 240-step episodes, 5 observations, 1 action, no termination).
//!
//! A cart slides on a rail (prismatic x); a pole hangs from it on a hinge (revolute z; θ = 0 is
//! upright). Episodes start with the pole hanging down (θ = π) plus noise. Per env step:
//! the articulation substeps, then `cartpole.observe` and `cartpole.reward` (Post stage):
//! - obs = [x, sin θ, cos θ, ẋ, θ̇];
//! - r = −(2 (1 − cos θ) + 0.1 θ̇² + 0.05 x² + 0.1 ẋ²); 2 (1 − cos θ) ≈ θ² near upright, but is
//!   periodic, so a pole that swings up the other way is not penalized by 4π².
//!
//! The DFlex URDF's masses are not in our references; we use a 1 kg cart and a 0.1 kg, 1 m pole
//! (uniform rod), with the force scaled so a full action accelerates the cart at ~10 m/s².
//!
//! GPU: observe and reward have WGSL mirrors (`wgsl/cartpole_*.wgsl`, one invocation per env),
//! so with the articulation kernels the whole task runs on `GpuSim`.

use diffsim_engine::components::{Body, Joint, JointKind};
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, adj_state, state};
use diffsim_engine::{
    ColumnAccess, Columns, Cpu, EngineError, ModelView, Real, Scene, Sim, SimFactory, Stage, StepCx, System, View,
    ViewMut,
};
use diffsim_systems::articulation::{self, Contacts, JointForces};
use glam::Vec3;

use crate::vec_env::{Task, TaskRng, TaskSpec};

#[derive(Clone, Debug)]
pub struct CartpoleConfig {
    pub num_envs: usize,
    pub dt: f64,
    pub substeps: usize,
    pub episode_length: usize,
    /// Newtons per unit action on the cart.
    pub action_scale: f64,
    pub cart_mass: f32,
    pub pole_mass: f32,
    pub pole_length: f32,
    /// Uniform noise on (x, θ, ẋ, θ̇) at reset.
    pub init_noise: [f64; 4],
    pub threads: usize,
}

impl Default for CartpoleConfig {
    fn default() -> Self {
        Self {
            num_envs: 64,
            dt: 4.0 * 1.0 / 240.0,
            substeps: 4,
            episode_length: 240,
            action_scale: 11.0,
            cart_mass: 1.0,
            pole_mass: 0.1,
            pole_length: 1.0,
            init_noise: [0.1, 0.2, 0.1, 0.1],
            threads: 1,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Cartpole {
    pub cfg: CartpoleConfig,
}

impl Cartpole {
    pub fn new(cfg: CartpoleConfig) -> Self {
        Self { cfg }
    }

    pub fn scene(&self) -> Scene {
        let c = &self.cfg;
        let mut scene = Scene::new();
        scene.spawn_envs(c.num_envs, |env| {
            let cart = env.spawn((Body::at(Vec3::ZERO, c.cart_mass, Vec3::splat(0.01)),));
            let mut rail = Joint::new(None, cart, JointKind::Prismatic { axis: Vec3::X }, Vec3::ZERO, Vec3::ZERO);
            rail.gear = 1.0;
            env.spawn((rail,));
            let l = c.pole_length;
            let rod = c.pole_mass * l * l / 12.0;
            let mut pole = Body::at(Vec3::ZERO, c.pole_mass, Vec3::new(rod, 1e-5, rod));
            pole.com = Vec3::new(0.0, 0.5 * l, 0.0);
            let pole = env.spawn((pole,));
            let mut hinge = Joint::new(Some(cart), pole, JointKind::Revolute { axis: Vec3::Z }, Vec3::ZERO, Vec3::ZERO);
            hinge.q0 = std::f32::consts::PI;
            env.spawn((hinge,));
        });
        scene
    }
}

impl SimFactory for Cartpole {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let mut packed = self.scene().pack()?;
        self.spec().add_columns(&mut packed)?;
        let forces = JointForces { num_actions: 1, scale: c.action_scale };
        let schedule = articulation::schedule::<R>(c.dt, c.substeps, Contacts::default(), forces)
            .with(Stage::Post, Observe)
            .with(Stage::Post, Reward);
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(c.threads))
    }
}

impl Task for Cartpole {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("cartpole", self.cfg.num_envs, 5, 1, self.cfg.episode_length)
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let n = self.cfg.init_noise;
        let q = state.env_mut("joint_q", env)?;
        q[0] += rng.uniform(-n[0], n[0]) as f32;
        q[1] += rng.uniform(-n[1], n[1]) as f32;
        let qd = state.env_mut("joint_qd", env)?;
        qd[0] += rng.uniform(-n[2], n[2]) as f32;
        qd[1] += rng.uniform(-n[3], n[3]) as f32;
        Ok(())
    }
}

/// `cartpole.observe`: obs = [x, sin θ, cos θ, ẋ, θ̇].
/// Adjoint: x̄ += ō₀, θ̄ += cos θ ō₁ − sin θ ō₂, ẋ̄ += ō₃, θ̇̄ += ō₄; ō ← 0 (overwritten).
#[derive(Clone, Copy, Debug)]
pub struct Observe;

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "cartpole.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("joint_q", 2), ColumnAccess::state("joint_qd", 2), ColumnAccess::write("obs", 5)]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let [q, qd, obs] = state.cols_mut(["joint_q", "joint_qd", "obs"]);
        for e in 0..model.num_envs() {
            let (s, c) = q[2 * e + 1].sin_cos();
            obs[5 * e..5 * e + 5].copy_from_slice(&[q[2 * e], s, c, qd[2 * e], qd[2 * e + 1]]);
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
        let q = pre.col("joint_q");
        let [aq, aqd, aobs] = adj.cols_mut(["joint_q", "joint_qd", "obs"]);
        for e in 0..model.num_envs() {
            let (s, c) = q[2 * e + 1].sin_cos();
            let o = &mut aobs[5 * e..5 * e + 5];
            aq[2 * e] += o[0];
            aq[2 * e + 1] += c * o[1] - s * o[2];
            aqd[2 * e] += o[3];
            aqd[2 * e + 1] += o[4];
            o.fill(R::zero());
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// `cartpole.reward`: r = −(2 (1 − cos θ) + 0.1 θ̇² + 0.05 x² + 0.1 ẋ²).
/// Adjoint: θ̄ += −2 sin θ r̄, θ̇̄ += −0.2 θ̇ r̄, x̄ += −0.1 x r̄, ẋ̄ += −0.2 ẋ r̄; r̄ ← 0.
#[derive(Clone, Copy, Debug)]
pub struct Reward;

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "cartpole.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("joint_q", 2), ColumnAccess::state("joint_qd", 2), ColumnAccess::write("reward", 1)]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let k = |v: f64| R::from_f64(v);
        let [q, qd, r] = state.cols_mut(["joint_q", "joint_qd", "reward"]);
        for e in 0..model.num_envs() {
            let (x, th, xd, thd) = (q[2 * e], q[2 * e + 1], qd[2 * e], qd[2 * e + 1]);
            let (_, c) = th.sin_cos();
            r[e] = -(k(2.0) * (R::one() - c) + k(0.1) * thd * thd + k(0.05) * x * x + k(0.1) * xd * xd);
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
        let k = |v: f64| R::from_f64(v);
        let (q, qd) = (pre.col("joint_q"), pre.col("joint_qd"));
        let [aq, aqd, ar] = adj.cols_mut(["joint_q", "joint_qd", "reward"]);
        for e in 0..model.num_envs() {
            let g = ar[e];
            ar[e] = R::zero();
            let (s, _) = q[2 * e + 1].sin_cos();
            aq[2 * e] -= k(0.1) * q[2 * e] * g;
            aq[2 * e + 1] -= k(2.0) * s * g;
            aqd[2 * e] -= k(0.2) * qd[2 * e] * g;
            aqd[2 * e + 1] -= k(0.2) * qd[2 * e + 1] * g;
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// Uniform block of the cartpole kernels (WGSL `struct Params` in `wgsl/cartpole_params.wgsl`),
/// laid out by encase.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct CartpoleParams {
    /// Envs.
    pub n: u32,
}

fn cartpole_source(kernel: &str) -> String {
    format!("{}\n{kernel}", include_str!("wgsl/cartpole_params.wgsl"))
}

fn env_params(cx: &GpuBuildCx, label: &str) -> Result<CartpoleParams, EngineError> {
    let n = u32::try_from(cx.num_envs)
        .map_err(|_| EngineError::Gpu(format!("{label}: {} envs exceed u32", cx.num_envs)))?;
    Ok(CartpoleParams { n })
}

/// GPU: `wgsl/cartpole_observe.wgsl` and its adjoint, one invocation per env.
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "cartpole.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let fwd =
            vec![Bind::read(state("joint_q")), Bind::read(state("joint_qd")), Bind::rw(state("obs")), Bind::uniform(0)];
        let adj = vec![
            Bind::read(state("joint_q")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_state("obs")),
            Bind::uniform(0),
        ];
        let fsrc = cartpole_source(include_str!("wgsl/cartpole_observe.wgsl"));
        let asrc = cartpole_source(include_str!("wgsl/cartpole_observe_adjoint.wgsl"));
        GpuKernels::per_env(
            cx,
            "cartpole.observe",
            "observe",
            vec![cx.uniform("cartpole.observe", &env_params(cx, "cartpole.observe")?)?],
            (&fsrc, fwd),
            (&asrc, adj),
        )
    }
}

/// GPU: `wgsl/cartpole_reward.wgsl` and its adjoint, one invocation per env.
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "cartpole.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let fwd = vec![
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::rw(state("reward")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_state("reward")),
            Bind::uniform(0),
        ];
        let fsrc = cartpole_source(include_str!("wgsl/cartpole_reward.wgsl"));
        let asrc = cartpole_source(include_str!("wgsl/cartpole_reward_adjoint.wgsl"));
        GpuKernels::per_env(
            cx,
            "cartpole.reward",
            "reward",
            vec![cx.uniform("cartpole.reward", &env_params(cx, "cartpole.reward")?)?],
            (&fsrc, fwd),
            (&asrc, adj),
        )
    }
}
