//! `hand_flip`: HandFlip (Rewarped's `dexdeform.Flip`, rewarped.md §6.1–6.2): a kinematic
//! 24-dof hand folds a thin elastic-plastic disc onto itself.
//!
//! Physics (MLS-MPM, `diffsim_systems::mpm`): plasticine (E = 4000, ν = 0.2, τ_y = 130, ρ = 1) on
//! a 48³ grid over [0, 1]³ with a 3-cell boundary and a sticky floor, gravity −90, 40 substeps of
//! 5e-5 s per env step (the `dexdeform` sim config). The disc: radius 0.1, half-thickness 0.003,
//! centred at (0.5, 0.38, 0.6), 1250 particles by rejection sampling in its z ≥ 0.6 half and
//! their 1250 mirror images in z (particle i + 1250 is the mirror of i); particle volume
//! (1/128)² as rewarped.md §6.2 states (mass and stress both scale with it, so only their ratio
//! enters the dynamics).
//!
//! Hand: we have no Shadow MJCF asset, so `shadow_hand` builds a Shadow-like right hand in code
//! (Shadow's frame: fingers along +z, palm normal −y): wrist (2 hinges), index/middle/ring
//! (4 each: ab/adduction, 3 flexions), little (5, with the metacarpal cup joint), thumb (5):
//! 24 hinges with Shadow's joint limits, Shadow-like link lengths ×2.5, collision geometry
//! 16 capsules and 3 boxes (wrist, two palm boxes) as in rewarped.md §6.1. Base: position
//! (0.5, 0.30, 0.3), rotation rpy (−π/2, 0, π) composed with a fixed mount rotation that makes
//! the hand lie flat with its fingers along +z and its **palm up** under the disc, which
//! starts 0.08 above the wrist and falls onto the palm and fingers (folding it needs the fingers
//! under it; a palm-down hand would only touch it with its back). Initial qpos: all zeros (flat
//! open hand, inside every limit).
//! Actions: 24 joint-position deltas ×0.0264 rad (0.33 · 0.002 · 40) clipped to the limits,
//! spread over the substeps (`mpm.joint_drive`); FK every substep (`mpm.kinematic_fk`), the
//! links coupled to the grid by the DexDeform rule (`mpm::Bodies`, friction 0.5, softness 666).
//!
//! Observation (777 with the defaults): positions of every 10th particle of the first half
//! (125) and of their mirror partners (125), the mean of those 250, and the 24 joint angles.
//! Reward: dist = mean over the observed pairs of ‖p_i − p_mirror(i)‖,
//! r = clamp((d0 − dist)/d0, −1, 1), d0 = dist at the first step after a reset (progress == 1).
//! d0 lives in the state column `flip_d0` (0 after a reset, −1 once the first step's Step stage
//! armed it (`hand_flip.arm_d0`), then d0, recorded by that step's reward); it is an ordinary differentiable
//! state value: at step 1 d0 = dist(x₁) (r₁ = 0), and later rewards' gradients with respect to
//! d0 flow back into the particles of step 1. Init noise: the disc shifted by ±0.1 in x and z
//! and +0..0.1 in y, scaled by 1 ± 5% about its centre (mirror pairs stay mirror pairs).
//!
//! GPU: every system has WGSL kernels (drive, FK and integrate in `mpm::kinematic_gpu`, the
//! multi-body coupling in `mpm::gpu`; arm_d0, observe and reward here, `wgsl/hand_flip_*.wgsl`,
//! one invocation per env summing in the CPU's order), so the task runs on `GpuSim` (parity:
//! tests/tests/gpu_mpm_tasks.rs).

use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Src, adj_state, state};
use diffsim_engine::{
    ColumnAccess, ColumnSpec, Columns, Cpu, EngineError, ModelView, Real, Scene, Schedule, Sim, SimFactory, Stage,
    StepCx, System, View, ViewMut,
};
use diffsim_systems::articulation::spatial::quat_mul;
use diffsim_systems::mpm::{
    self, Bodies, BodyShape, Coupling, Floor, Grid, Hinge, JointDrive, JointIntegrate, KinematicFk, KinematicTree,
    Material, MpmMaterial, Shape, Transfer,
};
use glam::Vec3;

use crate::mpm_setup::{particle_scene, shift_and_scale};
use crate::vec_env::{Task, TaskRng, TaskSpec};

/// Observed pairs (every `OBS_STRIDE`-th particle of the first half, at most `OBS_PAIRS`).
pub const OBS_PAIRS: usize = 125;
pub const OBS_STRIDE: usize = 10;
/// Joint change per unit action, rad (0.33 · 0.002 · 40).
pub const ACTION_SCALE: f64 = 0.0264;
/// Hand size relative to the Shadow hand.
pub const HAND_SCALE: f64 = 2.5;
const BOUND: usize = 3;
const DISC_RADIUS: f64 = 0.1;
const DISC_HALF_THICKNESS: f64 = 0.003;
const DISC_CENTER: [f64; 3] = [0.5, 0.38, 0.6];
const BASE_POS: [f64; 3] = [0.5, 0.30, 0.3];

#[derive(Clone, Debug)]
pub struct HandFlipConfig {
    pub num_envs: usize,
    pub threads: usize,
    pub grid_res: usize,
    /// Particles in one half of the disc (the other half mirrors them).
    pub half_particles: usize,
    pub substeps: usize,
    /// MPM substep, seconds.
    pub substep_dt: f64,
    pub episode_length: usize,
    pub youngs: f64,
    pub poisson: f64,
    pub yield_stress: f64,
    pub density: f64,
    pub gravity: f64,
    /// Seed of the disc's random particle positions (part of the model, not the init noise).
    pub layout_seed: u64,
    /// Disc centre before the init noise (0.5, 0.38, 0.6).
    pub disc_center: [f64; 3],
    /// Rewarped's ground_friction: ≥ 99 sticky (the `dexdeform` config's 500), 0 free slip,
    /// else the friction law of `Floor::Friction`.
    pub ground_friction: f64,
}

impl Default for HandFlipConfig {
    fn default() -> Self {
        Self {
            num_envs: 2,
            threads: 2,
            grid_res: 48,
            half_particles: 1250,
            substeps: 40,
            substep_dt: 5e-5,
            episode_length: 300,
            youngs: 4000.0,
            poisson: 0.2,
            yield_stress: 130.0,
            density: 1.0,
            gravity: -90.0,
            layout_seed: 0,
            disc_center: DISC_CENTER,
            ground_friction: 500.0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct HandFlip {
    pub cfg: HandFlipConfig,
}

/// Quaternion (xyzw) of a rotation by `angle` about the unit `axis`.
fn axis_quat(axis: [f64; 3], angle: f64) -> [f64; 4] {
    let (s, c) = (0.5 * angle).sin_cos();
    [axis[0] * s, axis[1] * s, axis[2] * s, c]
}

fn conj(q: [f64; 4]) -> [f64; 4] {
    [-q[0], -q[1], -q[2], q[3]]
}

/// Roll-pitch-yaw (R = R_z(yaw) R_y(pitch) R_x(roll)) as a quaternion.
pub fn rpy_quat(roll: f64, pitch: f64, yaw: f64) -> [f64; 4] {
    let (x, y, z) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]);
    quat_mul(axis_quat(z, yaw), quat_mul(axis_quat(y, pitch), axis_quat(x, roll)))
}

/// The procedural Shadow-like right hand (module docs): its hinge tree and its collision
/// shapes on the tree's bodies. Joint order: WRJ2, WRJ1, FF (J4, J3, J2, J1), MF, RF,
/// LF (J5, J4, J3, J2, J1), TH (J5, J4, J3, J2, J1). Lengths are Shadow's (m) × `scale`.
pub fn shadow_hand(scale: f64, base_pos: [f64; 3], base_rot: [f64; 4]) -> (KinematicTree, Vec<BodyShape>) {
    use std::f64::consts::PI;
    let s = scale;
    let id = [0.0, 0.0, 0.0, 1.0];
    let (ax, ay) = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]);
    let mut joints: Vec<Hinge> = Vec::new();
    let mut shapes: Vec<BodyShape> = Vec::new();
    let hinge = |joints: &mut Vec<Hinge>, parent: Option<usize>, offset: [f64; 3], axis: [f64; 3], lo, hi| {
        joints.push(Hinge { parent, offset: offset.map(|x| x * s), rotation: id, axis, lo, hi });
        joints.len() - 1
    };
    // Capsule whose segment runs along the link's z from 0 to `len`.
    let capsule = |body: usize, len: f64, radius: f64| BodyShape {
        body,
        shape: Shape::Capsule { center: [0.0, 0.0, 0.5 * len * s], radius: radius * s, half_height: 0.5 * len * s },
    };
    let boxed = |body: usize, c: [f64; 3], h: [f64; 3]| BodyShape {
        body,
        shape: Shape::Box { center: c.map(|x| x * s), half_extents: h.map(|x| x * s) },
    };
    let wrist = hinge(&mut joints, None, [0.0; 3], ay, -0.524, 0.175);
    shapes.push(boxed(wrist, [0.0, 0.0, 0.012], [0.026, 0.012, 0.016]));
    let palm = hinge(&mut joints, Some(wrist), [0.0, 0.0, 0.034], ax, -0.698, 0.489);
    shapes.push(boxed(palm, [0.011, 0.0, 0.038], [0.032, 0.0111, 0.049]));
    shapes.push(boxed(palm, [-0.032, 0.0, 0.014], [0.011, 0.0111, 0.025]));
    // Index, middle, ring: knuckle, ab/adduction J4, flexions J3 (proximal 0.045), J2 (middle
    // 0.025), J1 (distal 0.026).
    let finger = |joints: &mut Vec<Hinge>, shapes: &mut Vec<BodyShape>, parent, knuckle, j4_axis| {
        let j4 = hinge(joints, Some(parent), knuckle, j4_axis, -0.349, 0.349);
        let j3 = hinge(joints, Some(j4), [0.0; 3], ax, -0.262, 0.5 * PI);
        let j2 = hinge(joints, Some(j3), [0.0, 0.0, 0.045], ax, 0.0, 0.5 * PI);
        let j1 = hinge(joints, Some(j2), [0.0, 0.0, 0.025], ax, 0.0, 0.5 * PI);
        shapes.push(capsule(j3, 0.045, 0.01));
        shapes.push(capsule(j2, 0.025, 0.0095));
        shapes.push(capsule(j1, 0.022, 0.009));
    };
    finger(&mut joints, &mut shapes, palm, [0.033, 0.0, 0.095], [0.0, -1.0, 0.0]);
    finger(&mut joints, &mut shapes, palm, [0.011, 0.0, 0.099], [0.0, -1.0, 0.0]);
    finger(&mut joints, &mut shapes, palm, [-0.011, 0.0, 0.095], ay);
    // Little finger: metacarpal cup joint LFJ5, then a finger on it.
    let n = (0.571f64 * 0.571 + 0.821 * 0.821).sqrt();
    let lf5 = hinge(&mut joints, Some(palm), [-0.033, 0.0, 0.02071], [0.571 / n, 0.0, 0.821 / n], 0.0, 0.785);
    shapes.push(BodyShape {
        body: lf5,
        shape: Shape::Capsule { center: [0.0, 0.0, 0.033 * s], radius: 0.011 * s, half_height: 0.022 * s },
    });
    finger(&mut joints, &mut shapes, lf5, [0.0, 0.0, 0.06579], ay);
    // Thumb: base on the palm, turned 45° about y (pointing between +x and +z), THJ5 about its
    // own axis, THJ4 flexion, proximal 0.038, THJ3 / THJ2, middle 0.032, THJ1, distal 0.0275.
    joints.push(Hinge {
        parent: Some(palm),
        offset: [0.034 * s, -0.009 * s, 0.029 * s],
        rotation: axis_quat(ay, 0.25 * PI),
        axis: [0.0, 0.0, -1.0],
        lo: -1.047,
        hi: 1.047,
    });
    let th5 = joints.len() - 1;
    let th4 = hinge(&mut joints, Some(th5), [0.0; 3], ax, 0.0, 1.222);
    let th3 = hinge(&mut joints, Some(th4), [0.0, 0.0, 0.038], ax, -0.209, 0.209);
    let th2 = hinge(&mut joints, Some(th3), [0.0; 3], [0.0, -1.0, 0.0], -0.524, 0.524);
    let th1 = hinge(&mut joints, Some(th2), [0.0, 0.0, 0.032], ax, -0.262, 0.5 * PI);
    shapes.push(capsule(th4, 0.038, 0.012));
    shapes.push(capsule(th2, 0.032, 0.011));
    shapes.push(capsule(th1, 0.024, 0.01));
    (KinematicTree { base_pos, base_rot, joints }, shapes)
}

impl HandFlip {
    pub fn new(cfg: HandFlipConfig) -> Self {
        Self { cfg }
    }
    pub fn num_particles(&self) -> usize {
        2 * self.cfg.half_particles
    }
    pub fn obs_pairs(&self) -> usize {
        OBS_PAIRS.min(self.cfg.half_particles.div_ceil(OBS_STRIDE))
    }
    pub fn obs_dim(&self) -> usize {
        6 * self.obs_pairs() + 3 + self.tree().dof()
    }
    /// The grid; errors on a bad `ground_friction`.
    pub fn grid(&self) -> Result<Grid, EngineError> {
        let floor = Floor::of_config("hand_flip", self.cfg.ground_friction)?;
        Ok(Grid { res: self.cfg.grid_res, bound: BOUND, gravity: [0.0, self.cfg.gravity, 0.0], floor })
    }
    /// Base rotation: rpy (−π/2, 0, π) then the mount that lays the Shadow frame (fingers +z,
    /// palm −y) flat with the fingers along world +z and the palm facing up: in total R_z(π).
    pub fn base_rot() -> [f64; 4] {
        use std::f64::consts::PI;
        let rpy = rpy_quat(-0.5 * PI, 0.0, PI);
        let mount = quat_mul(conj(rpy), axis_quat([0.0, 0.0, 1.0], PI));
        quat_mul(rpy, mount)
    }
    pub fn tree(&self) -> KinematicTree {
        shadow_hand(HAND_SCALE, BASE_POS, Self::base_rot()).0
    }
    pub fn bodies(&self) -> Bodies {
        let (tree, shapes) = shadow_hand(HAND_SCALE, BASE_POS, Self::base_rot());
        Bodies { bodies: tree.dof(), shapes, friction: 0.5, softness: 666.0 }
    }
    /// Initial joint angles: a flat open hand (zeros, inside every limit).
    pub fn initial_qpos(&self) -> Vec<f64> {
        vec![0.0; self.tree().dof()]
    }

    /// Per env: the disc (first half by rejection sampling, then the mirror images in z).
    pub fn scene(&self) -> Scene {
        let c = &self.cfg;
        let vol = (1.0f64 / 128.0).powi(2);
        let (mu, lambda) = MpmMaterial::lame(c.youngs, c.poisson);
        let material = MpmMaterial::Plasticine { mu, lambda, yield_stress: c.yield_stress };
        let mut rng = TaskRng::new(c.layout_seed);
        let center = c.disc_center;
        let mut half: Vec<[f64; 3]> = Vec::with_capacity(c.half_particles);
        while half.len() < c.half_particles {
            let (x, z) = (rng.uniform(-DISC_RADIUS, DISC_RADIUS), rng.uniform(0.0, DISC_RADIUS));
            let y = rng.uniform(-DISC_HALF_THICKNESS, DISC_HALF_THICKNESS);
            if x * x + z * z <= DISC_RADIUS * DISC_RADIUS {
                half.push([center[0] + x, center[1] + y, center[2] + z]);
            }
        }
        let mirror = half.iter().map(|p| [p[0], p[1], 2.0 * center[2] - p[2]]);
        let points: Vec<Vec3> =
            half.iter().copied().chain(mirror).map(|p| Vec3::new(p[0] as f32, p[1] as f32, p[2] as f32)).collect();
        particle_scene(c.num_envs, &points, vol, c.density, material)
    }

    /// The Step, Substep and Post systems (module docs).
    pub fn schedule<R: Real>(&self) -> Result<Schedule<R>, EngineError> {
        let c = &self.cfg;
        let tree = self.tree();
        let dof = tree.dof();
        let dt = c.substep_dt * c.substeps as f64;
        let transfer =
            Transfer { grid: self.grid()?, collider: Some(Coupling::Bodies(self.bodies())), threads: c.threads };
        Ok(Schedule::new(dt, c.substeps)
            .with(Stage::Step, JointDrive::of(&tree, "act", ACTION_SCALE, c.substeps))
            .with(Stage::Step, ArmD0)
            .with(Stage::Substep, Material { threads: c.threads })
            .with(Stage::Substep, KinematicFk { tree })
            .with(Stage::Substep, transfer)
            .with(Stage::Substep, JointIntegrate { dof })
            .with(Stage::Post, Observe { pairs: self.obs_pairs(), half: c.half_particles, dof })
            .with(Stage::Post, Reward { pairs: self.obs_pairs(), half: c.half_particles }))
    }
}

impl SimFactory for HandFlip {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let scene = self.scene();
        let mut packed = scene.pack()?;
        mpm::pack(&scene, &mut packed)?;
        let tree = self.tree();
        tree.validate().map_err(|e| EngineError::Asset(format!("hand_flip: procedural hand: {e}")))?;
        let n = tree.dof();
        let q0 = self.initial_qpos();
        let mut pose = vec![0.0; 7 * n];
        tree.poses(&q0, &mut pose);
        let per_env = |v: &[f64]| -> Vec<f32> { (0..c.num_envs).flat_map(|_| v.iter().map(|&x| x as f32)).collect() };
        packed.state.add_column(ColumnSpec::new("kin_q", 1, n), per_env(&q0))?;
        packed.add_state(ColumnSpec::new("kin_qd", 1, n))?;
        packed.state.add_column(ColumnSpec::new("body_pose", n, 7), per_env(&pose))?;
        packed.state.add_column(ColumnSpec::new("body_pose_next", n, 7), per_env(&pose))?;
        packed.add_state(ColumnSpec::new("flip_d0", 1, 1))?;
        self.spec().add_columns(&mut packed)?;
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, self.schedule()?, Cpu::new(c.threads))
    }
}

impl Task for HandFlip {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("hand_flip", self.cfg.num_envs, self.obs_dim(), self.tree().dof(), self.cfg.episode_length)
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let x = state.env_mut("mpm_x", env)?;
        shift_and_scale(rng, x, self.cfg.disc_center, [(-0.1, 0.1), (0.0, 0.1), (-0.1, 0.1)], (0.95, 1.05));
        state.env_mut("flip_d0", env)?.fill(0.0);
        Ok(())
    }
}

/// Row of the i-th observed particle of env `e` (i < K: first half, i ≥ K: the mirror of i − K).
#[inline]
fn observed(i: usize, pairs: usize, half: usize) -> usize {
    if i < pairs { OBS_STRIDE * i } else { half + OBS_STRIDE * (i - pairs) }
}

/// `hand_flip.observe`: obs = [x of the 2K observed particles, their mean, kin_q] (linear).
/// Adjoint: x̄_i += ō_i + ō_com / 2K; q̄ += ō_q; ō ← 0.
#[derive(Clone, Copy, Debug)]
pub struct Observe {
    pub pairs: usize,
    pub half: usize,
    pub dof: usize,
}

impl Observe {
    fn dim(&self) -> usize {
        6 * self.pairs + 3 + self.dof
    }
}

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "hand_flip.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("mpm_x", 3),
            ColumnAccess::state("kin_q", self.dof),
            ColumnAccess::write("obs", self.dim()),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let (k2, dim, nq) = (2 * self.pairs, self.dim(), self.dof);
        let np = model.count("mpm_mass_vol");
        let inv = R::from_f64(1.0 / k2 as f64);
        let [x, q, obs] = state.cols_mut(["mpm_x", "kin_q", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut obs[dim * e..dim * (e + 1)];
            let mut com = [R::zero(); 3];
            for i in 0..k2 {
                let p = e * np + observed(i, self.pairs, self.half);
                for d in 0..3 {
                    o[3 * i + d] = x[3 * p + d];
                    com[d] += x[3 * p + d] * inv;
                }
            }
            o[3 * k2..3 * k2 + 3].copy_from_slice(&com);
            o[3 * k2 + 3..].copy_from_slice(&q[nq * e..nq * (e + 1)]);
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
        let (k2, dim, nq) = (2 * self.pairs, self.dim(), self.dof);
        let np = model.count("mpm_mass_vol");
        let inv = R::from_f64(1.0 / k2 as f64);
        let [ax, aq, aobs] = adj.cols_mut(["mpm_x", "kin_q", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut aobs[dim * e..dim * (e + 1)];
            for i in 0..k2 {
                let p = e * np + observed(i, self.pairs, self.half);
                for d in 0..3 {
                    ax[3 * p + d] += o[3 * i + d] + o[3 * k2 + d] * inv;
                }
            }
            for k in 0..nq {
                aq[nq * e + k] += o[3 * k2 + 3 + k];
            }
            o.fill(R::zero());
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// |`flip_d0`| below this is "not recorded yet" (a real d0 is a mean pair distance of ~0.1; a
/// threshold rather than == 0 so that a perturbed initial state keeps the branch).
const D0_UNSET: f64 = 1e-6;
/// `flip_d0` = −1: armed by the first env step's Step stage, recorded by its Post stage.
const D0_ARMED: f64 = -1.0;

/// `hand_flip.arm_d0` (Step stage): `flip_d0` 0 → −1, so that the reward records d0 at the
/// first step after a reset (progress == 1) and not in the Post refresh a reset runs
/// (`VecEnv::reset_envs`), which would record it at progress 0. Piecewise constant: where it
/// arms, d̄0 ← 0; elsewhere the identity.
#[derive(Clone, Copy, Debug)]
pub struct ArmD0;

impl<R: Real> System<R> for ArmD0 {
    fn name(&self) -> &str {
        "hand_flip.arm_d0"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("flip_d0", 1), ColumnAccess::write("flip_d0", 1)]
    }
    fn forward(&self, _: &StepCx, _: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        for d0 in state.col_mut("flip_d0").iter_mut() {
            if d0.to_f64().abs() < D0_UNSET {
                *d0 = R::from_f64(D0_ARMED);
            }
        }
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, pre: &View<R>, adj: &mut ViewMut<R>, _: &mut ViewMut<R>) {
        let d0 = pre.col("flip_d0");
        for (a, d) in adj.col_mut("flip_d0").iter_mut().zip(d0) {
            if d.to_f64().abs() < D0_UNSET {
                *a = R::zero();
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// `hand_flip.reward` (module docs): dist = (1/K) Σ_i ‖x_i − x_m(i)‖, d0 ← dist when unset
/// (`flip_d0` = −1, armed by [`ArmD0`]), r = clamp((d0 − dist)/d0, −1, 1); r = 0 and d0 kept
/// while not armed (`flip_d0` = 0: only the reset's Post refresh sees that).
/// Adjoint: inside the clamp ∂r/∂dist = −1/d0, ∂r/∂d0 = dist/d0² (0 where clipped); d̄0 (the
/// incoming adjoint of the written d0 plus r̄ ∂r/∂d0) goes to dist when d0 was set this step,
/// else to the pre-step d0; dist̄ → x̄_i += dist̄/K · u_i, x̄_m(i) −= dist̄/K · u_i, u_i the unit
/// pair vector.
#[derive(Clone, Copy, Debug)]
pub struct Reward {
    pub pairs: usize,
    pub half: usize,
}

impl Reward {
    fn dist<R: Real>(&self, x: &[R], e: usize, np: usize) -> R {
        let inv = R::from_f64(1.0 / self.pairs as f64);
        let mut dist = R::zero();
        for i in 0..self.pairs {
            let (a, b) = (e * np + OBS_STRIDE * i, e * np + self.half + OBS_STRIDE * i);
            let r = [0, 1, 2].map(|d| x[3 * a + d] - x[3 * b + d]);
            dist += (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt() * inv;
        }
        dist
    }
}

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "hand_flip.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("mpm_x", 3),
            ColumnAccess::state("flip_d0", 1),
            ColumnAccess::write("flip_d0", 1),
            ColumnAccess::write("reward", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let np = model.count("mpm_mass_vol");
        let [x, d0, reward] = state.cols_mut(["mpm_x", "flip_d0", "reward"]);
        for e in 0..model.num_envs() {
            let dist = self.dist(x, e, np);
            let d = d0[e].to_f64();
            if d.abs() < D0_UNSET {
                reward[e] = R::zero();
                continue;
            }
            if d < 0.5 * D0_ARMED {
                d0[e] = dist;
            }
            reward[e] = ((d0[e] - dist) / d0[e]).max(-R::one()).min(R::one());
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
        let (x, d0_pre) = (pre.col("mpm_x"), pre.col("flip_d0"));
        let [ax, ad0, ar] = adj.cols_mut(["mpm_x", "flip_d0", "reward"]);
        for e in 0..model.num_envs() {
            if d0_pre[e].to_f64().abs() < D0_UNSET {
                // Not armed: r = 0, d0 unchanged (its adjoint passes through).
                ar[e] = R::zero();
                continue;
            }
            let dist = self.dist(x, e, np);
            let set_now = d0_pre[e].to_f64() < 0.5 * D0_ARMED;
            let d0 = if set_now { dist } else { d0_pre[e] };
            let raw = ((d0 - dist) / d0).to_f64();
            let rbar = ar[e];
            let inside = (-1.0..=1.0).contains(&raw);
            let mut g_dist = if inside { -rbar / d0 } else { R::zero() };
            let g_d0 = ad0[e] + if inside { rbar * dist / (d0 * d0) } else { R::zero() };
            if set_now {
                g_dist += g_d0;
                ad0[e] = R::zero();
            } else {
                ad0[e] = g_d0;
            }
            ar[e] = R::zero();
            let scale = g_dist / R::from_f64(self.pairs as f64);
            for i in 0..self.pairs {
                let (a, b) = (e * np + OBS_STRIDE * i, e * np + self.half + OBS_STRIDE * i);
                let r = [0, 1, 2].map(|d| x[3 * a + d] - x[3 * b + d]);
                let len = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
                for d in 0..3 {
                    let g = scale * r[d] / len;
                    ax[3 * a + d] += g;
                    ax[3 * b + d] -= g;
                }
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// Uniform block of the hand_flip kernels (WGSL `struct Params` in
/// `wgsl/hand_flip_params.wgsl`), laid out by encase.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct HandFlipParams {
    pub n: u32,
    pub np: u32,
    pub half: u32,
    pub pairs: u32,
    pub stride: u32,
    pub dof: u32,
    pub inv_k2: f32,
    pub inv_pairs: f32,
    pub d0_unset: f32,
    pub d0_armed: f32,
}

impl HandFlipParams {
    fn of(cx: &GpuBuildCx, pairs: usize, half: usize, dof: usize) -> Result<Self, EngineError> {
        let u = |n: usize, what: &str| {
            u32::try_from(n).map_err(|_| EngineError::Gpu(format!("hand_flip: {what} = {n} does not fit u32")))
        };
        Ok(Self {
            n: u(cx.num_envs, "envs")?,
            np: u(cx.count("mpm_mass_vol"), "particles")?,
            half: u(half, "half particles")?,
            pairs: u(pairs, "observed pairs")?,
            stride: OBS_STRIDE as u32,
            dof: u(dof, "joints")?,
            inv_k2: (1.0 / (2 * pairs.max(1)) as f64) as f32,
            inv_pairs: (1.0 / pairs.max(1) as f64) as f32,
            d0_unset: D0_UNSET as f32,
            d0_armed: D0_ARMED as f32,
        })
    }
}

fn hand_flip_source(kernel: &str) -> String {
    format!("{}\n{kernel}", include_str!("wgsl/hand_flip_params.wgsl"))
}

/// GPU: `wgsl/hand_flip_observe*.wgsl`, one invocation per env (sums in the CPU's order).
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "hand_flip.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = cx.uniform("hand_flip.observe", &HandFlipParams::of(cx, self.pairs, self.half, self.dof)?)?;
        let fwd =
            vec![Bind::read(state("mpm_x")), Bind::read(state("kin_q")), Bind::rw(state("obs")), Bind::uniform(0)];
        let adj = vec![
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("kin_q")),
            Bind::rw(adj_state("obs")),
            Bind::uniform(0),
        ];
        let fsrc = hand_flip_source(include_str!("wgsl/hand_flip_observe.wgsl"));
        let asrc = hand_flip_source(include_str!("wgsl/hand_flip_observe_adjoint.wgsl"));
        GpuKernels::per_env(cx, "hand_flip.observe", "observe", vec![params], (&fsrc, fwd), (&asrc, adj))
    }
}

/// GPU: `wgsl/hand_flip_arm_d0.wgsl`, one invocation per env.
impl GpuSystem for ArmD0 {
    fn name(&self) -> &str {
        "hand_flip.arm_d0"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let buffers = vec![
            cx.uniform("hand_flip.arm_d0", &HandFlipParams::of(cx, 0, 0, 0)?)?,
            // Bound where an entry point declares a read-write binding it does not use.
            cx.gpu.storage_f32_zeroed("hand_flip.arm_d0 scratch", 4)?,
        ];
        let fwd = vec![Bind::rw(state("flip_d0")), Bind::rw(Src::Own(1)), Bind::uniform(0)];
        let adj = vec![Bind::rw(state("flip_d0")), Bind::rw(adj_state("flip_d0")), Bind::uniform(0)];
        let src = hand_flip_source(include_str!("wgsl/hand_flip_arm_d0.wgsl"));
        GpuKernels::per_env(cx, "hand_flip.arm_d0", "arm", buffers, (&src, fwd), (&src, adj))
    }
}

/// GPU: `wgsl/hand_flip_reward.wgsl`, one invocation per env (sums in the CPU's order).
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "hand_flip.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let buffers = vec![
            cx.uniform("hand_flip.reward", &HandFlipParams::of(cx, self.pairs, self.half, 0)?)?,
            cx.gpu.storage_f32_zeroed("hand_flip.reward scratch", 4)?,
        ];
        let fwd = vec![
            Bind::read(state("mpm_x")),
            Bind::rw(state("flip_d0")),
            Bind::rw(state("reward")),
            Bind::rw(Src::Own(1)),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("mpm_x")),
            Bind::rw(state("flip_d0")),
            Bind::rw(adj_state("reward")),
            Bind::rw(adj_state("mpm_x")),
            Bind::uniform(0),
            Bind::rw(adj_state("flip_d0")),
        ];
        let src = hand_flip_source(include_str!("wgsl/hand_flip_reward.wgsl"));
        GpuKernels::per_env(cx, "hand_flip.reward", "reward", buffers, (&src, fwd), (&src, adj))
    }
}
