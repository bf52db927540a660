//! `soft_jumper`: Rewarped's SoftJumper (`gradsim.Jumper`, which="table"; rewarped.md §5, §6): a
//! soft "table" (a slab on four legs, tetrahedral FEM with stable neo-Hookean energy) that learns
//! to jump forward (+x) by activating its tetrahedra as muscles.
//!
//! Per env step: (Step) `fem.activation` maps the A actions to the tetrahedra (activation 0.3 ×
//! action, each action driving 2 consecutive tetrahedra) and `soft_jumper.clock` advances the
//! episode time; 80 substeps of 1/4800 s of the FEM schedule (gravity, tetrahedra, particle–ground
//! penalty contact, semi-implicit Euler); (Post) `soft_jumper.observe` and `soft_jumper.reward`.
//! No termination; episodes are truncated at 300 steps.
//!
//! Where each piece comes from (formulas read in Rewarped's `envs/gradsim/jumper.py`, code written
//! here):
//! - model: density 1, k_mu = k_lambda = 1000 (here E = 2500, ν = 0.25), k_damp = 1, placed at
//!   y = 0.2, particle radius 0.05; ground contact kₑ 2e3, k_d 0.1, k_f 10, μ 0.7.
//! - mesh: Rewarped ships a 204-vertex, 444-tetrahedron `table.usda`; here the procedural
//!   `BoxWithLegs::default()` of the same outer size gives 195 vertices and 420 tetrahedra, so
//!   A = 210 actions instead of 222 (a TetGen pair can be loaded instead, `JumperMesh::TetGen`).
//! - obs (flattened, in the order of Rewarped's dict): 8 phases sin(5 t + k 2π/8) with t the
//!   episode time; loss = |v̄_z| + |v̄_y| − v̄_x; com_q = mean(0.1 q); com_qd = mean(0.1 q̇);
//!   0.1 q (3P); 0.1 q̇ (3P); the actions (A). Rewarped's SAPO encodes the particles with a
//!   PointNet; here the learners get the flat vector.
//! - reward: 10 com_qd_x + 30 (com_q_y − start_y) − 0.001 Σ a², start_y = 0.1 × the mean height
//!   of the nominal (un-randomized) mesh.
//! - init noise: shift x, z by U(−0.8, 0.8), y by U(0, 0.4) (rounded to 1e-3), then scale all
//!   positions about the origin by 1 + 0.1 U(−1, 1) (rounded to 1e-3); velocities 0.
//! - gravity −9.80665 (Warp's default).
//!
//! GPU: clock, observe and reward have WGSL mirrors (forward and adjoint, `wgsl/soft_jumper_*.wgsl`,
//! impls at the end of this file); with the FEM and particle kernels the whole schedule runs on a
//! `GpuSim` (`diffsim bench --task soft-jumper --backend gpu`, `VecEnv::on_gpu`).

use std::f64::consts::PI;
use std::path::PathBuf;

use diffsim_engine::components::{Ground, Material};
use diffsim_engine::gpu_sim::{
    Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Src, adj_control, adj_state, control, state,
};
use diffsim_engine::{
    ColumnAccess, ColumnSpec, Columns, Cpu, EngineError, ModelView, Real, Scene, Sim, SimFactory, Stage, StepCx,
    System, View, ViewMut,
};
use diffsim_systems::fem::{self, Activation, BoxWithLegs, TetMesh};
use glam::Vec3;

use crate::vec_env::{Task, TaskRng, TaskSpec};

const PHASES: usize = 8;
const PHASE_FREQ: f64 = 5.0;
/// Rewarped's observation scale of positions and velocities.
const OBS_SCALE: f64 = 0.1;
const PROGRESS_WEIGHT: f64 = 10.0;
const HEIGHT_WEIGHT: f64 = 30.0;
const ACTION_COST: f64 = 0.001;
/// Tetrahedra per action.
const GROUP: usize = 2;

/// Where the body's tetrahedral mesh comes from.
#[derive(Clone, Debug)]
pub enum JumperMesh {
    Procedural(BoxWithLegs),
    /// A TetGen `.node` / `.ele` pair (vertex coordinates in metres, y up).
    TetGen {
        node: PathBuf,
        ele: PathBuf,
    },
}

#[derive(Clone, Debug)]
pub struct SoftJumperConfig {
    pub num_envs: usize,
    pub dt: f64,
    pub substeps: usize,
    pub episode_length: usize,
    /// Activation per unit action (Rewarped: 0.3).
    pub action_scale: f64,
    pub threads: usize,
    pub mesh: JumperMesh,
    /// Translation of the mesh (Rewarped: y = 0.2).
    pub origin: Vec3,
    pub density: f64,
    pub youngs: f32,
    pub poisson: f32,
    pub damping: f32,
    pub radius: f32,
    pub ground: Ground,
    pub gravity: f32,
    /// Half-widths of the init shift in x and z, the range of the upward shift, and of the scale.
    pub init_noise: [f64; 3],
}

impl Default for SoftJumperConfig {
    fn default() -> Self {
        Self {
            num_envs: 32,
            dt: 1.0 / 60.0,
            substeps: 80,
            episode_length: 300,
            action_scale: 0.3,
            threads: 2,
            mesh: JumperMesh::Procedural(BoxWithLegs::default()),
            origin: Vec3::new(0.0, 0.2, 0.0),
            density: 1.0,
            youngs: 2500.0,
            poisson: 0.25,
            damping: 1.0,
            radius: 0.05,
            ground: Ground { ke: 2.0e3, kd: 0.1, kf: 10.0, mu: 0.7 },
            gravity: 9.80665,
            init_noise: [0.8, 0.4, 0.1],
        }
    }
}

/// The task with its mesh loaded (sizes follow from it).
#[derive(Clone, Debug)]
pub struct SoftJumper {
    pub cfg: SoftJumperConfig,
    mesh: TetMesh,
}

impl Default for SoftJumper {
    fn default() -> Self {
        Self::new(SoftJumperConfig::default()).expect("the procedural mesh always builds")
    }
}

/// Sizes of one env: particles, tetrahedra, actions, observation width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub particles: usize,
    pub tets: usize,
    pub actions: usize,
    pub obs: usize,
}

impl Sizes {
    fn of(mesh: &TetMesh) -> Self {
        let (p, t) = (mesh.vertices.len(), mesh.tets.len());
        let a = t.div_ceil(GROUP);
        Self { particles: p, tets: t, actions: a, obs: PHASES + 1 + 3 + 3 + 6 * p + a }
    }
}

impl SoftJumper {
    /// Builds the mesh (or loads the TetGen pair: errors name the file and line).
    pub fn new(cfg: SoftJumperConfig) -> Result<Self, EngineError> {
        let mesh = match &cfg.mesh {
            JumperMesh::Procedural(b) => b.mesh(),
            JumperMesh::TetGen { node, ele } => {
                TetMesh::from_tetgen(node, ele).map_err(|e| EngineError::Asset(e.to_string()))?
            }
        };
        Ok(Self { cfg, mesh })
    }
    pub fn sizes(&self) -> Sizes {
        Sizes::of(&self.mesh)
    }
    pub fn mesh(&self) -> &TetMesh {
        &self.mesh
    }
    /// 0.1 × the mean height of the nominal body: the reward's reference.
    pub fn start_height(&self) -> f64 {
        let n = self.mesh.vertices.len() as f64;
        let y: f64 = self.mesh.vertices.iter().map(|v| (v[1] as f32 + self.cfg.origin.y) as f64).sum();
        OBS_SCALE * y / n
    }
    pub fn scene(&self) -> Scene {
        let c = &self.cfg;
        let mut scene = Scene::new();
        scene.spawn_envs(c.num_envs, |env| {
            let material = env.spawn((Material::Elastic { youngs: c.youngs, poisson: c.poisson },));
            self.mesh.spawn(env, c.origin, c.density, material, c.damping, c.radius);
            env.ground(c.ground);
            env.gravity(Vec3::new(0.0, -c.gravity, 0.0));
        });
        scene
    }
}

impl SimFactory for SoftJumper {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let sizes = self.sizes();
        let mut packed = self.scene().pack()?;
        self.spec().add_columns(&mut packed)?;
        packed.add_state(ColumnSpec::new("time", 1, 1))?;
        let act = Activation { group: GROUP, scale: c.action_scale };
        let schedule = fem::schedule::<R>(c.dt, c.substeps, true, Some(act), None)
            .with(Stage::Step, Clock { dt: c.dt })
            .with(Stage::Post, Observe { sizes })
            .with(Stage::Post, Reward { actions: sizes.actions, start_height: self.start_height() });
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(c.threads))
    }
}

impl Task for SoftJumper {
    fn spec(&self) -> TaskSpec {
        let s = self.sizes();
        TaskSpec::new("soft-jumper", self.cfg.num_envs, s.obs, s.actions, self.cfg.episode_length)
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let [xz, up, scale] = self.cfg.init_noise;
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        let shift =
            [round(rng.uniform(-1.0, 1.0)) * xz, round(rng.uniform(0.0, 1.0)) * up, round(rng.uniform(-1.0, 1.0)) * xz];
        let s = 1.0 + scale * round(rng.uniform(-1.0, 1.0));
        for (k, x) in state.env_mut("particle_q", env)?.iter_mut().enumerate() {
            *x = ((f64::from(*x) + shift[k % 3]) * s) as f32;
        }
        Ok(())
    }
}

/// `soft_jumper.clock`: time ← time + dt once per env step (the episode time of the phase
/// observation; reset to 0 with the env). Its adjoint is the identity: nothing to do.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub dt: f64,
}

impl<R: Real> System<R> for Clock {
    fn name(&self) -> &str {
        "soft_jumper.clock"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("time", 1), ColumnAccess::write("time", 1)]
    }
    fn forward(&self, _: &StepCx, _: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        for t in state.col_mut("time") {
            *t += R::from_f64(self.dt);
        }
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, _: &mut ViewMut<R>, _: &mut ViewMut<R>) {}
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// Sign of x for |x|' (0 at 0).
fn sign<R: Real>(x: R) -> R {
    R::from_f64(if x.to_f64() > 0.0 {
        1.0
    } else if x.to_f64() < 0.0 {
        -1.0
    } else {
        0.0
    })
}

/// `soft_jumper.observe`: obs = [phase (8), loss, com_q (3), com_qd (3), 0.1 q (3P), 0.1 q̇ (3P),
/// act (A)] (module docs). Adjoint: q̄ᵢ += 0.1 ō_qᵢ + 0.1/P ō_com_q; q̇̄ᵢ += 0.1 ō_q̇ᵢ + 0.1/P w with
/// w = ō_com_qd + (−1, sign v̄_y, sign v̄_z) ō_loss; t̄ += Σ_k 5 cos(5t + kπ/4) ō_phase_k; āct += ō_act;
/// ō ← 0.
#[derive(Clone, Copy, Debug)]
pub struct Observe {
    pub sizes: Sizes,
}

/// Offsets of the observation's blocks.
const LOSS: usize = PHASES;
const COM_Q: usize = PHASES + 1;
const COM_QD: usize = COM_Q + 3;
const PARTICLES: usize = COM_QD + 3;

fn mean3<R: Real>(x: &[R]) -> [R; 3] {
    let mut m = [R::zero(); 3];
    for p in x.chunks_exact(3) {
        for c in 0..3 {
            m[c] += p[c];
        }
    }
    let k = R::from_f64(OBS_SCALE / (x.len() / 3).max(1) as f64);
    m.map(|v| v * k)
}

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "soft_jumper.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("particle_qd", 3),
            ColumnAccess::state("time", 1),
            ColumnAccess::control("act", self.sizes.actions),
            ColumnAccess::write("obs", self.sizes.obs),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let Sizes { particles: np, actions: na, obs: no, .. } = self.sizes;
        let act = control.col("act");
        let [q, qd, time, obs] = state.cols_mut(["particle_q", "particle_qd", "time", "obs"]);
        let k = R::from_f64(OBS_SCALE);
        for e in 0..model.num_envs() {
            let (q, qd) = (&q[3 * np * e..3 * np * (e + 1)], &qd[3 * np * e..3 * np * (e + 1)]);
            let o = &mut obs[no * e..no * (e + 1)];
            for (p, o) in o[..PHASES].iter_mut().enumerate() {
                let angle = R::from_f64(PHASE_FREQ) * time[e] + R::from_f64(p as f64 * 2.0 * PI / PHASES as f64);
                *o = angle.sin_cos().0;
            }
            let (cq, cqd) = (mean3(q), mean3(qd));
            o[LOSS] = cqd[2] * sign(cqd[2]) + cqd[1] * sign(cqd[1]) - cqd[0];
            o[COM_Q..COM_Q + 3].copy_from_slice(&cq);
            o[COM_QD..COM_QD + 3].copy_from_slice(&cqd);
            let (pq, rest) = o[PARTICLES..].split_at_mut(3 * np);
            let (pqd, a) = rest.split_at_mut(3 * np);
            for (d, &s) in pq.iter_mut().zip(q) {
                *d = k * s;
            }
            for (d, &s) in pqd.iter_mut().zip(qd) {
                *d = k * s;
            }
            a.copy_from_slice(&act[na * e..na * (e + 1)]);
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let Sizes { particles: np, actions: na, obs: no, .. } = self.sizes;
        let (qd, time) = (pre.col("particle_qd"), pre.col("time"));
        let aact = adj_control.col_mut("act");
        let [aq, aqd, atime, aobs] = adj.cols_mut(["particle_q", "particle_qd", "time", "obs"]);
        let k = R::from_f64(OBS_SCALE);
        let per = R::from_f64(OBS_SCALE / np.max(1) as f64);
        for e in 0..model.num_envs() {
            let o = &mut aobs[no * e..no * (e + 1)];
            for (p, &g) in o[..PHASES].iter().enumerate() {
                let angle = R::from_f64(PHASE_FREQ) * time[e] + R::from_f64(p as f64 * 2.0 * PI / PHASES as f64);
                atime[e] += R::from_f64(PHASE_FREQ) * angle.sin_cos().1 * g;
            }
            let cqd = mean3(&qd[3 * np * e..3 * np * (e + 1)]);
            let wq = [o[COM_Q], o[COM_Q + 1], o[COM_Q + 2]].map(|w| w * per);
            let l = o[LOSS];
            let wqd =
                [o[COM_QD] - l, o[COM_QD + 1] + sign(cqd[1]) * l, o[COM_QD + 2] + sign(cqd[2]) * l].map(|w| w * per);
            let (aq, aqd) = (&mut aq[3 * np * e..3 * np * (e + 1)], &mut aqd[3 * np * e..3 * np * (e + 1)]);
            for i in 0..3 * np {
                aq[i] += k * o[PARTICLES + i] + wq[i % 3];
                aqd[i] += k * o[PARTICLES + 3 * np + i] + wqd[i % 3];
            }
            for (a, &g) in aact[na * e..na * (e + 1)].iter_mut().zip(&o[PARTICLES + 6 * np..]) {
                *a += g;
            }
            o.fill(R::zero());
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// `soft_jumper.reward`: r = 10 com_qd_x + 30 (com_q_y − start) − 0.001 Σ a².
/// Adjoint: q̇̄_{i,x} += 10·0.1/P r̄; q̄_{i,y} += 30·0.1/P r̄; ā −= 0.002 a r̄; r̄ ← 0.
#[derive(Clone, Copy, Debug)]
pub struct Reward {
    pub actions: usize,
    /// 0.1 × the nominal mean height.
    pub start_height: f64,
}

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "soft_jumper.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("particle_qd", 3),
            ColumnAccess::control("act", self.actions),
            ColumnAccess::write("reward", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let n = model.num_envs();
        let na = self.actions;
        let act = control.col("act");
        let [q, qd, r] = state.cols_mut(["particle_q", "particle_qd", "reward"]);
        let per = q.len() / n.max(1);
        for e in 0..n {
            let cq = mean3(&q[per * e..per * (e + 1)]);
            let cqd = mean3(&qd[per * e..per * (e + 1)]);
            let a2 = act[na * e..na * (e + 1)].iter().fold(R::zero(), |s, &a| s + a * a);
            r[e] = R::from_f64(PROGRESS_WEIGHT) * cqd[0]
                + R::from_f64(HEIGHT_WEIGHT) * (cq[1] - R::from_f64(self.start_height))
                - R::from_f64(ACTION_COST) * a2;
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        control: &View<R>,
        _: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let n = model.num_envs();
        let na = self.actions;
        let act = control.col("act");
        let aact = adj_control.col_mut("act");
        let [aq, aqd, ar] = adj.cols_mut(["particle_q", "particle_qd", "reward"]);
        let per = aq.len() / n.max(1);
        let w = R::from_f64(OBS_SCALE / (per / 3).max(1) as f64);
        for e in 0..n {
            let g = ar[e];
            ar[e] = R::zero();
            for i in 0..per / 3 {
                aqd[per * e + 3 * i] += R::from_f64(PROGRESS_WEIGHT) * w * g;
                aq[per * e + 3 * i + 1] += R::from_f64(HEIGHT_WEIGHT) * w * g;
            }
            for i in 0..na {
                aact[na * e + i] -= R::from_f64(2.0 * ACTION_COST) * act[na * e + i] * g;
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

// ---- GPU mirrors (`wgsl/soft_jumper_*.wgsl`): the same formulas and order of f32 operations. ----

/// Uniform block of the soft_jumper kernels (WGSL `struct Params` in
/// `wgsl/soft_jumper_params.wgsl`), laid out by encase.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct SoftJumperParams {
    /// Invocations that do work in this dispatch, over all envs.
    pub n: u32,
    pub np: u32,
    pub na: u32,
    pub no: u32,
    /// Per-env width of the observe adjoint's body pass: max(3 np, na).
    pub m: u32,
    /// 0.1 / np (rounded from f64, as `mean3`).
    pub per: f32,
    pub start: f32,
    pub dt: f32,
    pub cost: f32,
    pub cost2: f32,
}

impl SoftJumperParams {
    fn of(sizes: Sizes) -> Result<Self, EngineError> {
        let (np, na) = (sizes.particles, sizes.actions);
        Ok(Self {
            n: 0,
            np: u32_of(np, "particles per env")?,
            na: u32_of(na, "actions per env")?,
            no: u32_of(sizes.obs, "observation width")?,
            m: u32_of((3 * np).max(na), "observe adjoint width")?,
            per: (OBS_SCALE / np.max(1) as f64) as f32,
            cost: ACTION_COST as f32,
            cost2: (2.0 * ACTION_COST) as f32,
            ..Self::default()
        })
    }
    fn with_n(self, n: usize) -> Result<Self, EngineError> {
        Ok(Self { n: u32_of(n, "dispatch size")?, ..self })
    }
}

fn u32_of(n: usize, what: &str) -> Result<u32, EngineError> {
    u32::try_from(n).map_err(|_| EngineError::Gpu(format!("soft_jumper: {what} = {n} does not fit u32")))
}

/// The params block, the phase offsets k 2π/8 (f64 rounded to f32, as the CPU's `from_f64`),
/// then `parts`.
fn soft_jumper_source(parts: &[&str]) -> String {
    let offsets: Vec<String> =
        (0..PHASES).map(|k| format!("{:?}f", (k as f64 * 2.0 * PI / PHASES as f64) as f32)).collect();
    let mut s = format!(
        "{}\nconst PHASE_OFFSET = array<f32, {PHASES}>({});\n",
        include_str!("wgsl/soft_jumper_params.wgsl"),
        offsets.join(", ")
    );
    for p in parts {
        s.push('\n');
        s.push_str(p);
    }
    s
}

const MEAN_WGSL: &str = include_str!("wgsl/soft_jumper_mean.wgsl");

/// GPU: one invocation per env (`wgsl/soft_jumper_clock.wgsl`); the adjoint has no pass.
impl GpuSystem for Clock {
    fn name(&self) -> &str {
        "soft_jumper.clock"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = SoftJumperParams { n: u32_of(cx.num_envs, "envs")?, dt: self.dt as f32, ..Default::default() };
        let src = soft_jumper_source(&[include_str!("wgsl/soft_jumper_clock.wgsl")]);
        let binds = vec![Bind::rw(state("time")), Bind::uniform(0)];
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "soft_jumper.clock", &src, "clock_forward", binds, cx.num_envs)?],
            adjoint: Vec::new(),
            buffers: vec![cx.uniform("soft_jumper.clock", &params)?],
        })
    }
}

/// GPU: `wgsl/soft_jumper_observe*.wgsl`. Forward: one invocation per env for the phases, loss
/// and centre of mass (a sum over the env's particles), then one per (env, entry) for the
/// particle and action blocks. Adjoint: per env (t̄ and the centre-of-mass weights, into an own
/// scratch buffer), per (env, entry) (q̄, q̇̄, āct), per (env, entry) (ō ← 0). Own buffers: params
/// with n = envs, n = envs · (6P + A), n = envs · max(3P, A), n = envs · obs width; the scratch.
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "soft_jumper.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let s = self.sizes;
        let base = SoftJumperParams::of(s)?;
        let n = cx.num_envs;
        let body = n * (6 * s.particles + s.actions);
        let wide = n * (3 * s.particles).max(s.actions);
        let buffers = vec![
            cx.uniform("soft_jumper.observe envs", &base.with_n(n)?)?,
            cx.uniform("soft_jumper.observe body", &base.with_n(body)?)?,
            cx.uniform("soft_jumper.observe adjoint body", &base.with_n(wide)?)?,
            cx.uniform("soft_jumper.observe adjoint clear", &base.with_n(n * s.obs)?)?,
            cx.gpu.storage_f32_zeroed("soft_jumper.observe adjoint weights", 6 * n)?,
        ];
        let fwd = |own| {
            vec![
                Bind::read(state("particle_q")),
                Bind::read(state("particle_qd")),
                Bind::read(state("time")),
                Bind::read(control("act")),
                Bind::rw(state("obs")),
                Bind::uniform(own),
            ]
        };
        let adj = |own| {
            vec![
                Bind::read(state("particle_q")),
                Bind::read(state("particle_qd")),
                Bind::read(state("time")),
                Bind::rw(adj_state("particle_q")),
                Bind::rw(adj_state("particle_qd")),
                Bind::rw(adj_state("time")),
                Bind::rw(adj_state("obs")),
                Bind::rw(adj_control("act")),
                Bind::rw(Src::Own(4)),
                Bind::uniform(own),
            ]
        };
        let fsrc = soft_jumper_source(&[MEAN_WGSL, include_str!("wgsl/soft_jumper_observe.wgsl")]);
        let asrc = soft_jumper_source(&[MEAN_WGSL, include_str!("wgsl/soft_jumper_observe_adjoint.wgsl")]);
        Ok(GpuKernels {
            forward: vec![
                Pass::new(cx, "soft_jumper.observe head", &fsrc, "observe_head", fwd(0), n)?,
                Pass::new(cx, "soft_jumper.observe body", &fsrc, "observe_body", fwd(1), body)?,
            ],
            adjoint: vec![
                Pass::new(cx, "soft_jumper.observe adjoint head", &asrc, "observe_adjoint_head", adj(0), n)?,
                Pass::new(cx, "soft_jumper.observe adjoint body", &asrc, "observe_adjoint_body", adj(2), wide)?,
                Pass::new(cx, "soft_jumper.observe adjoint clear", &asrc, "observe_adjoint_clear", adj(3), n * s.obs)?,
            ],
            buffers,
        })
    }
}

/// GPU: `wgsl/soft_jumper_reward*.wgsl`, one invocation per env (sums over its particles and
/// actions), forward and adjoint.
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "soft_jumper.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let np = cx.count("particle_q");
        let sizes = Sizes { particles: np, tets: 0, actions: self.actions, obs: 0 };
        let params =
            SoftJumperParams { start: self.start_height as f32, ..SoftJumperParams::of(sizes)? }.with_n(cx.num_envs)?;
        let fwd = vec![
            Bind::read(state("particle_q")),
            Bind::read(state("particle_qd")),
            Bind::read(control("act")),
            Bind::rw(state("reward")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(control("act")),
            Bind::rw(adj_state("particle_q")),
            Bind::rw(adj_state("particle_qd")),
            Bind::rw(adj_control("act")),
            Bind::rw(adj_state("reward")),
            Bind::uniform(0),
        ];
        let fsrc = soft_jumper_source(&[MEAN_WGSL, include_str!("wgsl/soft_jumper_reward.wgsl")]);
        let asrc = soft_jumper_source(&[include_str!("wgsl/soft_jumper_reward_adjoint.wgsl")]);
        GpuKernels::per_env(
            cx,
            "soft_jumper.reward",
            "reward",
            vec![cx.uniform("soft_jumper.reward", &params)?],
            (&fsrc, fwd),
            (&asrc, adj),
        )
    }
}
