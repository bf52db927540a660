//! Helpers shared by the physical-sanity tests of the rigid tasks.

use diffsim_engine::Sim;

/// Deepest penetration below y = 0 over all contact spheres (capsule ends and spheres), in m;
/// negative when every shape is above the ground.
pub fn deepest_penetration(sim: &Sim<f32>) -> f32 {
    let bq = sim.state.get("body_q").unwrap();
    let size = sim.model.params.get("shape_size").unwrap();
    let pose = sim.model.params.get("shape_pose").unwrap();
    let body = sim.model.topology.get("shape_body").unwrap();
    let kind = sim.model.topology.get("shape_kind").unwrap();
    let mut deepest = f32::NEG_INFINITY;
    for s in 0..kind.len() {
        let b = body[s] as usize;
        let rot = glam::Quat::from_xyzw(bq[7 * b + 3], bq[7 * b + 4], bq[7 * b + 5], bq[7 * b + 6]);
        let x = glam::Vec3::new(bq[7 * b], bq[7 * b + 1], bq[7 * b + 2]);
        let p = &pose[7 * s..7 * s + 7];
        let centre = x + rot * glam::Vec3::new(p[0] as f32, p[1] as f32, p[2] as f32);
        let srot = rot * glam::Quat::from_xyzw(p[3] as f32, p[4] as f32, p[5] as f32, p[6] as f32);
        let r = size[3 * s] as f32;
        let ends = if kind[s] == 1 {
            let a = srot * glam::Vec3::Y * size[3 * s + 1] as f32;
            vec![centre + a, centre - a]
        } else {
            vec![centre]
        };
        for c in ends {
            deepest = deepest.max(r - c.y);
        }
    }
    deepest
}
