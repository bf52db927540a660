//! What the MPM tasks (RollingFlat, FluidMove, HandFlip) set up alike: the same particles spawned
//! in every env, uniform random points in a box, and the init noise of rewarped.md §6.2 (a shift
//! of the whole body and a uniform scale about its centre, drawn in Rewarped's order: shift x, y,
//! z, then the scale, rounded to 1e-3).

use diffsim_engine::Scene;
use diffsim_systems::mpm::{self, MpmMaterial, MpmParticle};
use glam::Vec3;

use crate::TaskRng;

/// `n` uniform random points in the box `center ± size / 2` (x, y, z drawn per point in order).
pub fn uniform_box(rng: &mut TaskRng, center: [f64; 3], size: [f64; 3], n: usize) -> Vec<Vec3> {
    (0..n)
        .map(|_| {
            let p = [0, 1, 2].map(|d| center[d] + size[d] * rng.uniform(-0.5, 0.5));
            Vec3::new(p[0] as f32, p[1] as f32, p[2] as f32)
        })
        .collect()
}

/// A scene of `num_envs` envs, each with one resting particle of `material` (volume `volume`,
/// mass `volume · density`) at every point, in order (the points' index is their slot).
pub fn particle_scene(num_envs: usize, points: &[Vec3], volume: f64, density: f64, material: MpmMaterial) -> Scene {
    let mut scene = Scene::new();
    scene.spawn_envs(num_envs, |env| {
        for (slot, &x) in points.iter().enumerate() {
            let p = MpmParticle { x, v: Vec3::ZERO, mass: volume * density, volume, material };
            mpm::spawn(env, slot as u32, p);
        }
    });
    scene
}

/// Moves the particle positions `x` ([P, 3] rows) to `center + scale (x − center) + shift`, with
/// shift_d ~ U(shift[d]) and scale ~ U(scale) rounded to 1e-3.
pub fn shift_and_scale(rng: &mut TaskRng, x: &mut [f32], center: [f64; 3], shift: [(f64, f64); 3], scale: (f64, f64)) {
    let shift = shift.map(|(lo, hi)| rng.uniform(lo, hi));
    let scale = (rng.uniform(scale.0, scale.1) * 1000.0).round() / 1000.0;
    for p in x.chunks_exact_mut(3) {
        for d in 0..3 {
            p[d] = (center[d] + scale * (f64::from(p[d]) - center[d]) + shift[d]) as f32;
        }
    }
}
