//! Init noise of the MPM tasks (rewarped.md §6.2, RollingFlat and HandFlip): a shift of the whole
//! body and a uniform scale about its centre, drawn in Rewarped's order (shift x, y, z, then the
//! scale, rounded to 1e-3).

use crate::TaskRng;

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
