//! `Scene`: the hecs World of Model components for N environments, and its packing into the
//! `[env][entity]` mirrors (`Packed`) that backends step.
//!
//! A task writes a template once (`Scene::spawn_envs(n, |env| ...)`); every environment gets its
//! own entities tagged `EnvId`, and each entity gets a `Slot`, its row in the mirror. Packing
//! checks that all environments hold the same entities (lock-step) and that references stay
//! inside their environment.

use glam::Vec3;
use hecs::{Entity, World};

use crate::columns::{ColumnSpec, Columns, Layout};
use crate::components::{EnvId, Gravity, Ground, Material, Particle, Slot, Spring, Tetrahedron};
use crate::error::{EngineError, SceneError};
use crate::model::Model;

/// Spawns the entities of one environment.
pub struct EnvBuilder<'w> {
    world: &'w mut World,
    env: EnvId,
    particles: u32,
    springs: u32,
    tets: u32,
}

impl EnvBuilder<'_> {
    pub fn env(&self) -> EnvId {
        self.env
    }
    pub fn particle(&mut self, q: Vec3, qd: Vec3, mass: f32, radius: f32) -> Entity {
        let slot = Slot(self.particles);
        self.particles += 1;
        self.world.spawn((self.env, slot, Particle { q, qd, mass, radius }))
    }
    /// A spring whose rest length is the current distance between `a` and `b`.
    pub fn spring(&mut self, a: Entity, b: Entity, ke: f32, kd: f32) -> Entity {
        let rest_length = match (self.world.get::<&Particle>(a), self.world.get::<&Particle>(b)) {
            (Ok(pa), Ok(pb)) => pa.q.distance(pb.q),
            _ => f32::NAN, // reported by `pack` as a bad reference
        };
        self.spring_with_rest(a, b, rest_length, ke, kd)
    }
    pub fn spring_with_rest(&mut self, a: Entity, b: Entity, rest_length: f32, ke: f32, kd: f32) -> Entity {
        let slot = Slot(self.springs);
        self.springs += 1;
        self.world.spawn((self.env, slot, Spring { a, b, rest_length, ke, kd }))
    }
    pub fn tetrahedron(&mut self, tet: Tetrahedron) -> Entity {
        let slot = Slot(self.tets);
        self.tets += 1;
        self.world.spawn((self.env, slot, tet))
    }
    pub fn ground(&mut self, ground: Ground) -> Entity {
        self.world.spawn((self.env, ground))
    }
    pub fn gravity(&mut self, g: Vec3) -> Entity {
        self.world.spawn((self.env, Gravity(g)))
    }
    /// Any other component bundle, tagged with this environment.
    pub fn spawn(&mut self, bundle: impl hecs::DynamicBundle) -> Entity {
        let e = self.world.spawn(bundle);
        self.world.insert_one(e, self.env).expect("entity just spawned");
        e
    }
}

/// The ECS world of a multi-environment scene.
#[derive(Default)]
pub struct Scene {
    pub world: World,
    num_envs: usize,
}

/// Mirrors packed from a scene: constant Model, initial State, Control layout.
#[derive(Clone, Debug)]
pub struct Packed {
    pub model: Model,
    pub state: Columns<f32>,
    pub control: Layout,
}

impl Packed {
    /// Adds a state column (zeros), e.g. `obs` or `reward` written by a task's systems.
    pub fn add_state(&mut self, spec: ColumnSpec) -> Result<(), EngineError> {
        let n = spec.per_env() * self.state.num_envs();
        self.state.add_column(spec, vec![0.0; n])
    }
    /// Adds a model parameter column with per-env values laid out `[env][entity][width]`.
    pub fn add_param(&mut self, spec: ColumnSpec, values: Vec<f64>) -> Result<(), EngineError> {
        self.model.params.add_column(spec, values)
    }
    pub fn add_control(&mut self, spec: ColumnSpec) {
        self.control.push(spec);
    }
}

impl Scene {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }
    /// Spawns `n` environments from one template.
    pub fn spawn_envs(&mut self, n: usize, mut template: impl FnMut(&mut EnvBuilder)) {
        for _ in 0..n {
            let env = EnvId(self.num_envs as u32);
            let mut b = EnvBuilder { world: &mut self.world, env, particles: 0, springs: 0, tets: 0 };
            template(&mut b);
            self.num_envs += 1;
        }
    }

    /// The particles of environment `env`, in mirror order.
    pub fn particles(&self, env: usize) -> Vec<(Entity, Particle)> {
        let mut v: Vec<(Slot, Entity, Particle)> = self
            .world
            .query::<(Entity, &EnvId, &Slot, &Particle)>()
            .iter()
            .filter(|(_, id, _, _)| id.0 as usize == env)
            .map(|(e, _, s, p)| (*s, e, *p))
            .collect();
        v.sort_by_key(|x| x.0);
        v.into_iter().map(|(_, e, p)| (e, p)).collect()
    }

    /// Writes particle positions and velocities of a mirror back into the components.
    pub fn sync_particles(&mut self, state: &Columns<f32>) -> Result<(), EngineError> {
        let q = state.get("particle_q")?;
        let qd = state.get("particle_qd")?;
        let n = q.len() / (3 * state.num_envs().max(1));
        for (id, slot, p) in self.world.query_mut::<(&EnvId, &Slot, &mut Particle)>() {
            let i = id.0 as usize * n + slot.0 as usize;
            p.q = Vec3::new(q[3 * i], q[3 * i + 1], q[3 * i + 2]);
            p.qd = Vec3::new(qd[3 * i], qd[3 * i + 1], qd[3 * i + 2]);
        }
        Ok(())
    }

    /// Packs particles, springs, tetrahedra, ground and gravity into mirrors.
    ///
    /// State: `particle_q`, `particle_qd`, `particle_f` `[P, 3]`. Model params: `particle_mass`,
    /// `particle_radius` `[P, 1]`, `spring_params` `[S, 3]` (rest, ke, kd), `gravity` `[1, 3]`,
    /// `ground` `[1, 4]` (ke, kd, kf, mu), and with tetrahedra `tet_params` `[T, 13]` (see
    /// `TET_PARAMS`) plus the state `tet_activation` `[T, 1]` (zeros). Topology: `spring_indices`
    /// `[S, 2]`, `tet_indices` `[T, 4]`.
    pub fn pack(&self) -> Result<Packed, EngineError> {
        let n = self.num_envs;
        if n == 0 {
            return Err(SceneError::Empty.into());
        }
        // Particles grouped per env, ordered by slot.
        let mut parts: Vec<Vec<(u32, Entity, Particle)>> = vec![Vec::new(); n];
        for (e, id, slot, p) in self.world.query::<(Entity, &EnvId, &Slot, &Particle)>().iter() {
            parts[id.0 as usize].push((slot.0, e, *p));
        }
        let np = same_count(
            "particles",
            parts.iter_mut().map(|v| {
                v.sort_by_key(|x| x.0);
                v.len()
            }),
        )?;
        let mut q = Vec::with_capacity(n * np * 3);
        let mut qd = Vec::with_capacity(n * np * 3);
        let mut mass = Vec::with_capacity(n * np);
        let mut radius = Vec::with_capacity(n * np);
        for (env, ps) in parts.iter().enumerate() {
            for (_, _, p) in ps {
                if !p.mass.is_finite() || p.mass <= 0.0 {
                    return Err(SceneError::BadParameter {
                        kind: "particle",
                        env,
                        field: "mass",
                        value: p.mass as f64,
                        expected: "a finite mass > 0",
                    }
                    .into());
                }
                q.extend(p.q.to_array());
                qd.extend(p.qd.to_array());
                mass.push(p.mass as f64);
                radius.push(p.radius as f64);
            }
        }
        let slot_of = |env: usize, e: Entity, kind: &'static str| -> Result<u32, SceneError> {
            let id = self.world.get::<&EnvId>(e).map_err(|_| SceneError::BadReference {
                kind,
                env,
                reason: format!("{e:?} that no longer exists or is not in an environment"),
            })?;
            if id.0 as usize != env {
                return Err(SceneError::BadReference { kind, env, reason: format!("{e:?} in environment {}", id.0) });
            }
            if self.world.get::<&Particle>(e).is_err() {
                return Err(SceneError::BadReference { kind, env, reason: format!("{e:?} that is not a particle") });
            }
            Ok(self
                .world
                .get::<&Slot>(e)
                .map_err(|_| SceneError::BadReference { kind, env, reason: format!("{e:?} without a slot") })?
                .0)
        };
        // Springs.
        let mut springs: Vec<Vec<(u32, Spring)>> = vec![Vec::new(); n];
        for (id, slot, s) in self.world.query::<(&EnvId, &Slot, &Spring)>().iter() {
            springs[id.0 as usize].push((slot.0, *s));
        }
        let ns = same_count(
            "springs",
            springs.iter_mut().map(|v| {
                v.sort_by_key(|x| x.0);
                v.len()
            }),
        )?;
        let mut spring_indices = Vec::with_capacity(n * ns * 2);
        let mut spring_params = Vec::with_capacity(n * ns * 3);
        for (env, ss) in springs.iter().enumerate() {
            for (_, s) in ss {
                spring_indices.push(slot_of(env, s.a, "spring")?);
                spring_indices.push(slot_of(env, s.b, "spring")?);
                if !s.rest_length.is_finite() || s.rest_length < 0.0 {
                    return Err(SceneError::BadParameter {
                        kind: "spring",
                        env,
                        field: "rest_length",
                        value: s.rest_length as f64,
                        expected: "a finite length >= 0",
                    }
                    .into());
                }
                spring_params.extend([s.rest_length as f64, s.ke as f64, s.kd as f64]);
            }
        }
        // Tetrahedra (topology only; FEM parameters come with the FEM systems).
        let mut tets: Vec<Vec<(u32, Tetrahedron)>> = vec![Vec::new(); n];
        for (id, slot, t) in self.world.query::<(&EnvId, &Slot, &Tetrahedron)>().iter() {
            tets[id.0 as usize].push((slot.0, *t));
        }
        let nt = same_count(
            "tetrahedra",
            tets.iter_mut().map(|v| {
                v.sort_by_key(|x| x.0);
                v.len()
            }),
        )?;
        let mut tet_indices = Vec::with_capacity(n * nt * 4);
        let mut tet_params = Vec::with_capacity(n * nt * TET_PARAMS);
        for (env, ts) in tets.iter().enumerate() {
            for (_, t) in ts {
                let mut x = [[0.0f64; 3]; 4];
                for (xv, v) in x.iter_mut().zip(t.vertices) {
                    tet_indices.push(slot_of(env, v, "tetrahedron")?);
                    let p = self.world.get::<&Particle>(v).map_err(|_| SceneError::BadReference {
                        kind: "tetrahedron",
                        env,
                        reason: format!("{v:?} that is not a particle"),
                    })?;
                    *xv = p.q.to_array().map(f64::from);
                }
                tet_params.extend(tet_rest_params(&self.world, env, t, &x)?);
            }
        }
        // Per-env singletons with defaults.
        let mut gravity = vec![Gravity::default(); n];
        for (id, g) in self.world.query::<(&EnvId, &Gravity)>().iter() {
            gravity[id.0 as usize] = *g;
        }
        let mut ground = vec![None; n];
        for (id, g) in self.world.query::<(&EnvId, &Ground)>().iter() {
            ground[id.0 as usize] = Some(*g);
        }

        let mut state = Columns::zeros(Layout::default(), n);
        state.add_column(ColumnSpec::new("particle_q", np, 3), q)?;
        state.add_column(ColumnSpec::new("particle_qd", np, 3), qd)?;
        state.add_column(ColumnSpec::new("particle_f", np, 3), vec![0.0; n * np * 3])?;
        let mut model = Model::empty(n);
        model.params.add_column(ColumnSpec::new("particle_mass", np, 1), mass)?;
        model.params.add_column(ColumnSpec::new("particle_radius", np, 1), radius)?;
        model.params.add_column(ColumnSpec::new("spring_params", ns, 3), spring_params)?;
        model.params.add_column(
            ColumnSpec::new("gravity", 1, 3),
            gravity.iter().flat_map(|g| g.0.to_array().map(f64::from)).collect(),
        )?;
        if ground.iter().any(Option::is_some) {
            let g: Vec<f64> = ground
                .iter()
                .flat_map(|g| {
                    let g = g.unwrap_or(Ground { ke: 0.0, kd: 0.0, kf: 0.0, mu: 0.0 });
                    [g.ke, g.kd, g.kf, g.mu].map(f64::from)
                })
                .collect();
            model.params.add_column(ColumnSpec::new("ground", 1, 4), g)?;
        }
        model.topology.add_column(ColumnSpec::new("spring_indices", ns, 2), spring_indices)?;
        model.topology.add_column(ColumnSpec::new("tet_indices", nt, 4), tet_indices)?;
        if nt > 0 {
            model.params.add_column(ColumnSpec::new("tet_params", nt, TET_PARAMS), tet_params)?;
            state.add_column(ColumnSpec::new("tet_activation", nt, 1), vec![0.0; n * nt])?;
        }
        crate::articulation::pack(&self.world, n, &mut state, &mut model)?;
        Ok(Packed { model, state, control: Layout::default() })
    }
}

/// Scalars per tetrahedron in the `tet_params` model column: D_m⁻¹ row-major (9), rest volume
/// V₀, Lamé μ, Lamé λ, damping k_d.
pub const TET_PARAMS: usize = 13;

/// A tetrahedron's rest parameters (see `TET_PARAMS`) from its vertices' initial positions `x`
/// and its material entity. D_m = [x₁−x₀, x₂−x₀, x₃−x₀] (columns), V₀ = det(D_m)/6 must be > 0.
fn tet_rest_params(world: &World, env: usize, t: &Tetrahedron, x: &[[f64; 3]; 4]) -> Result<[f64; 13], SceneError> {
    let bad =
        |field, value: f64, expected| SceneError::BadParameter { kind: "tetrahedron", env, field, value, expected };
    let (mu, lambda) = match world.get::<&Material>(t.material).map(|m| *m) {
        Ok(Material::Elastic { youngs, poisson }) => {
            let (e, nu) = (f64::from(youngs), f64::from(poisson));
            if !(e.is_finite() && e > 0.0) {
                return Err(bad("youngs", e, "a finite Young's modulus > 0"));
            }
            if !(nu > 0.0 && nu < 0.5) {
                return Err(bad("poisson", nu, "a Poisson ratio in (0, 0.5)"));
            }
            (e / (2.0 * (1.0 + nu)), e * nu / ((1.0 + nu) * (1.0 - 2.0 * nu)))
        }
        Ok(_) => {
            return Err(SceneError::BadReference {
                kind: "tetrahedron",
                env,
                reason: format!("{:?} whose material is not `Material::Elastic`", t.material),
            });
        }
        Err(_) => {
            return Err(SceneError::BadReference {
                kind: "tetrahedron",
                env,
                reason: format!("{:?} that has no `Material` component", t.material),
            });
        }
    };
    let damping = f64::from(t.damping);
    if !(damping.is_finite() && damping >= 0.0) {
        return Err(bad("damping", damping, "a finite damping >= 0"));
    }
    // D_m with columns x_i − x₀, as rows of its transpose.
    let c = [1, 2, 3].map(|i| [0, 1, 2].map(|k| x[i][k] - x[0][k]));
    let dm = [[c[0][0], c[1][0], c[2][0]], [c[0][1], c[1][1], c[2][1]], [c[0][2], c[1][2], c[2][2]]];
    let det = dm[0][0] * (dm[1][1] * dm[2][2] - dm[1][2] * dm[2][1])
        - dm[0][1] * (dm[1][0] * dm[2][2] - dm[1][2] * dm[2][0])
        + dm[0][2] * (dm[1][0] * dm[2][1] - dm[1][1] * dm[2][0]);
    let size = c.iter().map(|v| v.iter().map(|a| a * a).sum::<f64>()).fold(0.0, f64::max).sqrt();
    if !(det.is_finite() && det > 1e-9 * size * size * size) {
        return Err(bad("rest volume", det / 6.0, "> 0: four non-coplanar vertices, x₁−x₀, x₂−x₀, x₃−x₀ right-handed"));
    }
    // D_m⁻¹ = adj(D_m) / det, row-major.
    let m = |r: usize, k: usize| dm[r % 3][k % 3];
    let mut out = [0.0; 13];
    for i in 0..3 {
        for j in 0..3 {
            // Cofactor C_ji (transposed), i.e. adj(D_m)_ij.
            out[3 * i + j] = (m(j + 1, i + 1) * m(j + 2, i + 2) - m(j + 1, i + 2) * m(j + 2, i + 1)) / det;
        }
    }
    out[9] = det / 6.0;
    out[10] = mu;
    out[11] = lambda;
    out[12] = damping;
    Ok(out)
}

fn same_count(kind: &'static str, counts: impl Iterator<Item = usize>) -> Result<usize, SceneError> {
    let mut first = None;
    for (env, c) in counts.enumerate() {
        match first {
            None => first = Some(c),
            Some(f) if f != c => return Err(SceneError::EnvMismatch { kind, env, expected: f, found: c }),
            _ => {}
        }
    }
    Ok(first.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_lays_out_env_major_and_checks_lock_step() {
        let mut scene = Scene::new();
        scene.spawn_envs(3, |env| {
            let x = env.env().0 as f32;
            let a = env.particle(Vec3::new(x, 1.0, 0.0), Vec3::ZERO, 1.0, 0.1);
            let b = env.particle(Vec3::new(x, 2.0, 0.0), Vec3::ZERO, 2.0, 0.1);
            env.spring(a, b, 100.0, 1.0);
        });
        let p = scene.pack().unwrap();
        assert_eq!(p.state.env("particle_q", 2).unwrap(), &[2.0, 1.0, 0.0, 2.0, 2.0, 0.0]);
        assert_eq!(p.model.topology.env("spring_indices", 1).unwrap(), &[0, 1]);
        assert_eq!(p.model.params.env("spring_params", 0).unwrap()[0], 1.0);
        assert_eq!(scene.particles(1).len(), 2);

        let mut bad = Scene::new();
        bad.spawn_envs(2, |env| {
            env.particle(Vec3::ZERO, Vec3::ZERO, 1.0, 0.1);
            if env.env().0 == 1 {
                env.particle(Vec3::ONE, Vec3::ZERO, 1.0, 0.1);
            }
        });
        let err = bad.pack().unwrap_err();
        assert!(
            matches!(err, EngineError::Scene(SceneError::EnvMismatch { env: 1, expected: 1, found: 2, .. })),
            "{err}"
        );
    }

    #[test]
    fn spring_across_environments_is_rejected() {
        let mut scene = Scene::new();
        let mut first = None;
        scene.spawn_envs(2, |env| {
            let a = env.particle(Vec3::ZERO, Vec3::ZERO, 1.0, 0.1);
            let b = env.particle(Vec3::ONE, Vec3::ZERO, 1.0, 0.1);
            let other = *first.get_or_insert(a);
            env.spring_with_rest(other, b, 1.0, 1.0, 0.0);
        });
        let err = scene.pack().unwrap_err().to_string();
        assert!(err.contains("spring in environment 1"), "{err}");
    }

    #[test]
    fn tetrahedra_pack_rest_shape_and_reject_bad_input() {
        use crate::components::Material;
        let build = |apex: Vec3, material: Option<Material>| {
            let mut scene = Scene::new();
            scene.spawn_envs(1, |env| {
                let m = env.spawn((material.unwrap_or(Material::Water { bulk: 1.0 }),));
                let v = [Vec3::ZERO, Vec3::new(2.0, 0.0, 0.0), Vec3::new(0.0, 0.0, -1.0), apex]
                    .map(|q| env.particle(q, Vec3::ZERO, 1.0, 0.1));
                env.tetrahedron(Tetrahedron { vertices: v, material: m, damping: 1.0 });
            });
            scene.pack()
        };
        let elastic = Some(Material::Elastic { youngs: 2500.0, poisson: 0.25 });
        let p = build(Vec3::new(0.0, 3.0, 0.0), elastic).unwrap();
        let t = p.model.params.get("tet_params").unwrap();
        // Edges (2,0,0), (0,0,−1), (0,3,0) as the columns of D_m (det 6, V₀ = 1); check D_m D_m⁻¹ = I.
        let dm = [[2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.0, -1.0, 0.0]];
        for (i, row) in dm.iter().enumerate() {
            for j in 0..3 {
                let id: f64 = (0..3).map(|k| row[k] * t[3 * k + j]).sum();
                assert!((id - f64::from(u8::from(i == j))).abs() < 1e-12, "D_m D_m⁻¹ [{i}][{j}] = {id}");
            }
        }
        assert!((t[9] - 1.0).abs() < 1e-12, "volume {}", t[9]);
        assert!((t[10] - 1000.0).abs() < 1e-9 && (t[11] - 1000.0).abs() < 1e-9, "Lamé {} {}", t[10], t[11]);
        assert_eq!(p.state.get("tet_activation").unwrap(), &[0.0]);
        let err = build(Vec3::new(0.0, -3.0, 0.0), elastic).unwrap_err().to_string();
        assert!(err.contains("tetrahedron") && err.contains("rest volume"), "{err}");
        let err = build(Vec3::new(0.0, 3.0, 0.0), None).unwrap_err().to_string();
        assert!(err.contains("not `Material::Elastic`"), "{err}");
        let bad_nu = Some(Material::Elastic { youngs: 1.0, poisson: 0.5 });
        let err = build(Vec3::new(0.0, 3.0, 0.0), bad_nu).unwrap_err().to_string();
        assert!(err.contains("poisson") && err.contains("(0, 0.5)"), "{err}");
    }

    #[test]
    fn nonpositive_mass_names_field() {
        let mut scene = Scene::new();
        scene.spawn_envs(1, |env| {
            env.particle(Vec3::ZERO, Vec3::ZERO, 0.0, 0.1);
        });
        let err = scene.pack().unwrap_err().to_string();
        assert!(err.contains("mass") && err.contains("particle"), "{err}");
    }
}
