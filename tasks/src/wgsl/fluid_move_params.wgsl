// Uniform block of the fluid_move kernels (`FluidMoveParams` in fluid_move.rs).
struct Params {
    // Envs.
    n: u32,
    // Particles per env.
    np: u32,
    // Observed particles per env (every `stride`-th).
    k: u32,
    stride: u32,
    // 1 / spill sigmoid width, and 1 / (width N) (both rounded from f64, as on the CPU).
    inv_width: f32,
    spill_scale: f32,
    // Half extents b of the box the container fills.
    bx: f32,
    by: f32,
    bz: f32,
    // Distance-term weight and the radius under which it doubles.
    dist_weight: f32,
    near: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// The logistic function without overflow for large |z| (fluid_move.rs `sigmoid`).
fn sigmoid(z: f32) -> f32 {
    if (z < 0.0) {
        let e = exp(z);
        return e / (1.0 + e);
    }
    return 1.0 / (1.0 + exp(-z));
}

// The spill term's argument of one particle (fluid_move.rs `spill_arg`): the axis k of largest
// z_k = (|x_k - q_k| - b_k) / w (the first on ties), z, and the sign of x_k - q_k.
struct Spill {
    k: u32,
    z: f32,
    sign: f32,
}

fn spill_arg(x: vec3<f32>, q: vec3<f32>) -> Spill {
    let b = vec3<f32>(p.bx, p.by, p.bz);
    var best = Spill(0u, 0.0, 1.0);
    for (var k = 0u; k < 3u; k++) {
        let r = x[k] - q[k];
        let sign = select(1.0, -1.0, r < 0.0);
        let z = (r * sign - b[k]) * p.inv_width;
        if (k == 0u || z > best.z) {
            best = Spill(k, z, sign);
        }
    }
    return best;
}

// (dist term, its derivative with respect to d^2 times 2): 0.1 c u^2 and -0.4 c u^3 with
// u = 1 / (1 + d^2), c = 2 within `near` of the target.
fn dist_term(q: vec3<f32>, t: vec3<f32>) -> vec2<f32> {
    let r = q - t;
    let d2 = r.x * r.x + r.y * r.y + r.z * r.z;
    let c = select(1.0, 2.0, sqrt(d2) <= p.near);
    let u = 1.0 / (1.0 + d2);
    return vec2<f32>(p.dist_weight * c * u * u, -4.0 * p.dist_weight * c * u * u * u);
}
