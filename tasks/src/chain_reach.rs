//! `chain_reach`: a chain of particles joined by springs lies on the ground; a force on its head
//! particle (the action) must drag the tail particle onto a target.
//!
//! Per env step: substeps of the particle systems (gravity, springs, ground contact with friction,
//! actuation of the head, semi-implicit Euler), then `chain_reach.observe` and
//! `chain_reach.reward` (Post stage). The reward is r = −|x_tail − target|² − c_a |a|².

use diffsim_engine::Cpu;
use diffsim_engine::components::Ground;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, adj_control, adj_state, control, model, state};
use diffsim_engine::scalar::vec3;
use diffsim_engine::{
    ColumnAccess, ColumnSpec, Columns, EngineError, ModelView, Real, Scene, Sim, SimFactory, Stage, StepCx, System,
    View, ViewMut,
};
use diffsim_systems::particles::{self, Actuation};
use glam::Vec3;

use crate::vec_env::{Task, TaskRng, TaskSpec};

/// Everything that defines the task; defaults are what tests and benchmarks use.
#[derive(Clone, Debug)]
pub struct ChainReachConfig {
    pub num_envs: usize,
    /// Particles in the chain (≥ 2).
    pub links: usize,
    pub spacing: f32,
    pub particle_mass: f32,
    pub radius: f32,
    pub spring_ke: f32,
    pub spring_kd: f32,
    /// `None` removes the ground (a smooth problem, used for finite-difference tests).
    pub ground: Option<Ground>,
    /// Height of the chain above its resting height on the ground (0: resting in contact).
    pub lift: f32,
    /// Env step, seconds.
    pub dt: f64,
    pub substeps: usize,
    pub episode_length: usize,
    /// Newtons per unit action.
    pub action_scale: f64,
    pub action_cost: f64,
    pub target: Vec3,
    pub threads: usize,
}

impl Default for ChainReachConfig {
    fn default() -> Self {
        Self {
            num_envs: 1,
            links: 4,
            spacing: 0.1,
            particle_mass: 0.1,
            radius: 0.02,
            spring_ke: 200.0,
            spring_kd: 0.5,
            ground: Some(Ground { ke: 2.0e3, kd: 5.0, kf: 5.0, mu: 0.6 }),
            lift: 0.0,
            dt: 1.0 / 60.0,
            substeps: 8,
            episode_length: 60,
            action_scale: 2.0,
            action_cost: 1.0e-3,
            target: Vec3::new(0.3, 0.02, 0.3),
            threads: 1,
        }
    }
}

/// The task; `ChainReach::new(cfg).sim::<f32>()` builds a ready-to-step simulation.
#[derive(Clone, Debug, Default)]
pub struct ChainReach {
    pub cfg: ChainReachConfig,
}

impl ChainReach {
    pub fn new(cfg: ChainReachConfig) -> Self {
        Self { cfg }
    }
    pub fn obs_dim(&self) -> usize {
        6 * self.cfg.links
    }
    pub fn act_dim(&self) -> usize {
        3
    }

    /// The ECS scene: per env, `links` particles along +x, springs between neighbours and to the
    /// second neighbour (bending), and the ground.
    pub fn scene(&self) -> Scene {
        let c = &self.cfg;
        let mut scene = Scene::new();
        scene.spawn_envs(c.num_envs, |env| {
            // Rest in static contact equilibrium (penetration m g / kₑ), strictly inside the
            // contact branch, so the start state is a smooth point of the dynamics.
            let sink = c.ground.map_or(0.0, |g| c.particle_mass * 9.81 / g.ke);
            let y = c.radius - sink + c.lift;
            let ps: Vec<_> = (0..c.links)
                .map(|i| {
                    env.particle(Vec3::new(-(i as f32) * c.spacing, y, 0.0), Vec3::ZERO, c.particle_mass, c.radius)
                })
                .collect();
            for w in ps.windows(2) {
                env.spring(w[0], w[1], c.spring_ke, c.spring_kd);
            }
            for w in ps.windows(3) {
                env.spring(w[0], w[2], 0.2 * c.spring_ke, c.spring_kd);
            }
            if let Some(g) = c.ground {
                env.ground(g);
            }
        });
        scene
    }
}

impl SimFactory for ChainReach {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let mut packed = self.scene().pack()?;
        self.spec().add_columns(&mut packed)?;
        let target: Vec<f64> = (0..c.num_envs).flat_map(|_| c.target.to_array().map(f64::from)).collect();
        packed.add_param(ColumnSpec::new("target", 1, 3), target)?;
        let actuation = Actuation { particles: vec![0], scale: c.action_scale };
        let schedule = particles::schedule::<R>(c.dt, c.substeps, c.ground.is_some(), Some(actuation))
            .with(Stage::Post, Observe { links: c.links })
            .with(Stage::Post, Reward { tail: c.links - 1, action_cost: c.action_cost });
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(c.threads))
    }
}

/// `chain_reach.observe`: obs = [x_i − target, v_i for every particle] (linear; the adjoint
/// scatters ōbs back: x̄_i += ōbs_x,i, v̄_i += ōbs_v,i, and ōbs is zeroed since obs is overwritten).
#[derive(Clone, Copy, Debug)]
pub struct Observe {
    pub links: usize,
}

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "chain_reach.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("particle_qd", 3),
            ColumnAccess::model("target", 3),
            ColumnAccess::write("obs", 6 * self.links),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let target = model.param("target");
        let n = self.links;
        let [q, qd, obs] = state.cols_mut(["particle_q", "particle_qd", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut obs[6 * n * e..6 * n * (e + 1)];
            for i in 0..n {
                for c in 0..3 {
                    o[3 * i + c] = q[3 * (e * n + i) + c] - R::from_f64(target[3 * e + c]);
                    o[3 * n + 3 * i + c] = qd[3 * (e * n + i) + c];
                }
            }
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
        let n = self.links;
        let [aq, aqd, aobs] = adj.cols_mut(["particle_q", "particle_qd", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut aobs[6 * n * e..6 * n * (e + 1)];
            for i in 0..n {
                for c in 0..3 {
                    aq[3 * (e * n + i) + c] += o[3 * i + c];
                    aqd[3 * (e * n + i) + c] += o[3 * n + 3 * i + c];
                }
            }
            o.fill(R::zero());
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// `chain_reach.reward`: r = −|x_tail − target|² − c_a |a|².
/// Adjoint: x̄_tail += −2 (x_tail − target) r̄ ; ā += −2 c_a a r̄ ; r̄ ← 0 (overwritten).
#[derive(Clone, Copy, Debug)]
pub struct Reward {
    pub tail: usize,
    pub action_cost: f64,
}

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "chain_reach.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::model("target", 3),
            ColumnAccess::control("act", 3),
            ColumnAccess::write("reward", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let target = model.param("target");
        let act = control.col("act");
        let np = state.layout().spec("particle_q").map_or(0, |s| s.count);
        let ca = R::from_f64(self.action_cost);
        let [q, reward] = state.cols_mut(["particle_q", "reward"]);
        for e in 0..model.num_envs() {
            let x = vec3::load(q, e * np + self.tail);
            let t = [0, 1, 2].map(|c| R::from_f64(target[3 * e + c]));
            let d = vec3::sub(x, t);
            let a = vec3::load(act, e);
            reward[e] = -vec3::dot(d, d) - ca * vec3::dot(a, a);
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        control: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let target = model.param("target");
        let act = control.col("act");
        let q = pre.col("particle_q");
        let np = pre.layout().spec("particle_q").map_or(0, |s| s.count);
        let two = R::from_f64(2.0);
        let ca = R::from_f64(self.action_cost);
        let [aq, ar] = adj.cols_mut(["particle_q", "reward"]);
        let aact = adj_control.col_mut("act");
        for e in 0..model.num_envs() {
            let r_bar = ar[e];
            ar[e] = R::zero();
            let x = vec3::load(q, e * np + self.tail);
            let t = [0, 1, 2].map(|c| R::from_f64(target[3 * e + c]));
            let d = vec3::sub(x, t);
            vec3::add_to(aq, e * np + self.tail, vec3::scale(d, -two * r_bar));
            let a = vec3::load(act, e);
            vec3::add_to(aact, e, vec3::scale(a, -two * ca * r_bar));
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// Uniform block of the chain_reach kernels (WGSL `struct Params` in
/// `wgsl/chain_reach_params.wgsl`), laid out by encase.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct ChainReachParams {
    pub n: u32,
    pub np: u32,
    pub tail: u32,
    pub action_cost: f32,
}

fn chain_reach_source(kernel: &str) -> String {
    format!("{}\n{kernel}", include_str!("wgsl/chain_reach_params.wgsl"))
}

fn u32_of(n: usize, what: &str) -> Result<u32, EngineError> {
    u32::try_from(n).map_err(|_| EngineError::Gpu(format!("chain_reach: {what} = {n} does not fit u32")))
}

/// GPU: `wgsl/chain_reach_observe.wgsl` and its adjoint, one invocation per particle.
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "chain_reach.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = self.links * cx.num_envs;
        let params = ChainReachParams {
            n: u32_of(n, "particles")?,
            np: u32_of(self.links, "links")?,
            tail: 0,
            action_cost: 0.0,
        };
        let params = cx.uniform("chain_reach.observe", &params)?;
        let fwd = vec![
            Bind::read(state("particle_q")),
            Bind::read(state("particle_qd")),
            Bind::read(model("target")),
            Bind::rw(state("obs")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::rw(adj_state("particle_q")),
            Bind::rw(adj_state("particle_qd")),
            Bind::rw(adj_state("obs")),
            Bind::uniform(0),
        ];
        let fsrc = chain_reach_source(include_str!("wgsl/chain_reach_observe.wgsl"));
        let asrc = chain_reach_source(include_str!("wgsl/chain_reach_observe_adjoint.wgsl"));
        GpuKernels::per_env(cx, "chain_reach.observe", "observe", vec![params], (&fsrc, fwd), (&asrc, adj))
    }
}

/// GPU: `wgsl/chain_reach_reward.wgsl` and its adjoint, one invocation per env.
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "chain_reach.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = ChainReachParams {
            n: u32_of(cx.num_envs, "envs")?,
            np: u32_of(cx.count("particle_q"), "particles")?,
            tail: u32_of(self.tail, "tail")?,
            action_cost: self.action_cost as f32,
        };
        let params = cx.uniform("chain_reach.reward", &params)?;
        let fwd = vec![
            Bind::read(state("particle_q")),
            Bind::read(model("target")),
            Bind::read(control("act")),
            Bind::rw(state("reward")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("particle_q")),
            Bind::read(model("target")),
            Bind::read(control("act")),
            Bind::rw(adj_state("particle_q")),
            Bind::rw(adj_control("act")),
            Bind::rw(adj_state("reward")),
            Bind::uniform(0),
        ];
        let fsrc = chain_reach_source(include_str!("wgsl/chain_reach_reward.wgsl"));
        let asrc = chain_reach_source(include_str!("wgsl/chain_reach_reward_adjoint.wgsl"));
        GpuKernels::per_env(cx, "chain_reach.reward", "reward", vec![params], (&fsrc, fwd), (&asrc, adj))
    }
}

/// Half-width of the uniform jitter `reset_env` adds to every particle's x and z, metres.
pub const INIT_JITTER: f64 = 0.01;

impl Task for ChainReach {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("chain_reach", self.cfg.num_envs, self.obs_dim(), self.act_dim(), self.cfg.episode_length)
    }
    /// Uniform jitter of ±`INIT_JITTER` on every particle's x and z (y stays at rest height).
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        for p in state.env_mut("particle_q", env)?.chunks_exact_mut(3) {
            p[0] += rng.uniform(-INIT_JITTER, INIT_JITTER) as f32;
            p[2] += rng.uniform(-INIT_JITTER, INIT_JITTER) as f32;
        }
        Ok(())
    }
}
