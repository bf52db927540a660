//! MPM inputs the test crates share: a block of particles on a jittered lattice spawned into
//! each env of a scene, and the sample inputs of the sand return mapping (a random rotation, a
//! trial strain in each case of the mapping).

use diffsim_engine::Scene;
use diffsim_systems::mpm::{self, MpmMaterial, MpmParticle};
use glam::Vec3;

use crate::Rng;

/// How far each lattice coordinate is moved, uniformly in ±the amount.
#[derive(Clone, Copy, Debug)]
pub enum Jitter {
    /// A fraction of the lattice spacing along that axis.
    Cells(f64),
    /// Metres.
    Metres(f64),
}

/// `per_axis` particles along each axis filling the box `center ± size / 2` (one per lattice
/// cell, at the cell's centre, then jittered), each of volume |box| / count and mass
/// `density` × volume, with velocity `v`.
#[derive(Clone, Debug)]
pub struct ParticleBlock {
    pub per_axis: [usize; 3],
    pub center: [f64; 3],
    pub size: [f64; 3],
    pub jitter: Jitter,
    pub density: f64,
    pub v: [f32; 3],
    pub material: MpmMaterial,
}

impl ParticleBlock {
    pub fn count(&self) -> usize {
        self.per_axis.iter().product()
    }

    /// The volume of each particle.
    pub fn volume(&self) -> f64 {
        self.size.iter().product::<f64>() / self.count() as f64
    }

    /// A scene of `num_envs` envs holding this block; `rng` jitters every env anew, in env,
    /// then lattice (x, y, z) order.
    pub fn scene(&self, num_envs: usize, rng: &mut Rng) -> Scene {
        let n = self.per_axis;
        let volume = self.volume();
        let mut scene = Scene::new();
        scene.spawn_envs(num_envs, |env| {
            let mut slot = 0;
            for i in 0..n[0] {
                for j in 0..n[1] {
                    for k in 0..n[2] {
                        let mut coord = |a: usize, d: usize| {
                            let spacing = self.size[d] / n[d] as f64;
                            let amount = match self.jitter {
                                Jitter::Cells(c) => c * spacing,
                                Jitter::Metres(m) => m,
                            };
                            let u = (a as f64 + 0.5) / n[d] as f64 - 0.5;
                            (self.center[d] + u * self.size[d] + amount * rng.uniform(-1.0, 1.0)) as f32
                        };
                        let x = Vec3::new(coord(i, 0), coord(j, 1), coord(k, 2));
                        let p = MpmParticle {
                            x,
                            v: Vec3::from_array(self.v),
                            mass: volume * self.density,
                            volume,
                            material: self.material,
                        };
                        mpm::spawn(env, slot, p);
                        slot += 1;
                    }
                }
            }
        });
        scene
    }
}

/// A random rotation (Rodrigues' formula of an axis-angle uniform in [−3, 3]³).
pub fn random_rotation(rng: &mut Rng) -> [[f64; 3]; 3] {
    let w = [rng.uniform(-3.0, 3.0), rng.uniform(-3.0, 3.0), rng.uniform(-3.0, 3.0)];
    let th = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).sqrt().max(1e-9);
    let k = w.map(|x| x / th);
    let (s, c) = th.sin_cos();
    let kx = [[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]];
    let mut r = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            r[i][j] = if i == j { c } else { 0.0 } + s * kx[i][j] + (1.0 - c) * k[i] * k[j];
        }
    }
    r
}

/// Principal log strains of one trial F in case `case` of the sand return mapping (cone slope
/// `a`, tip at trace `c`), ≥ 0.01 in strain away from the switches between cases: 0 elastic,
/// 1 projected to the tip, 2 returned to the cone; 3 and 4 near rest (deviator 1e-7, all σ
/// nearly equal) inside the cone and beyond the tip.
pub fn sand_case_strains(case: usize, a: f64, c: f64, rng: &mut Rng) -> [f64; 3] {
    let mut d = [rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)];
    let m = (d[0] + d[1] + d[2]) / 3.0;
    d = d.map(|x| x - m);
    let dn = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt().max(1e-12);
    let (tr, n) = match case {
        0 => {
            let tr = c - rng.uniform(0.05, 0.3);
            (tr, rng.uniform(0.0, a * (c - tr) - 0.01))
        }
        1 => (c + rng.uniform(0.01, 0.3), rng.uniform(0.0, 0.3)),
        2 => {
            let tr = c - rng.uniform(0.01, 0.3);
            (tr, a * (c - tr) + rng.uniform(0.01, 0.3))
        }
        3 => (c - rng.uniform(0.01, 0.1), 1e-7),
        _ => (c + rng.uniform(0.01, 0.1), 1e-7),
    };
    [0, 1, 2].map(|i| tr / 3.0 + n * d[i] / dn)
}
