// hand_flip.reward, one invocation per env (hand_flip.rs `Reward`): dist = (1/K) sum_i
// |x_i - x_m(i)|, d0 <- dist when armed (-1), r = clamp((d0 - dist)/d0, -1, 1); r = 0 and d0 kept
// while not armed.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> d0: array<f32>;
@group(0) @binding(2) var<storage, read_write> reward: array<f32>;
@group(0) @binding(3) var<storage, read_write> ax: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn pair_vec(e: u32, i: u32) -> vec3<f32> {
    let a = e * p.np + p.stride * i;
    let b = e * p.np + p.half + p.stride * i;
    return vec3<f32>(x[3u * a] - x[3u * b], x[3u * a + 1u] - x[3u * b + 1u], x[3u * a + 2u] - x[3u * b + 2u]);
}

fn pair_dist(e: u32) -> f32 {
    var dist = 0.0;
    for (var i = 0u; i < p.pairs; i++) {
        let r = pair_vec(e, i);
        dist += sqrt(r.x * r.x + r.y * r.y + r.z * r.z) * p.inv_pairs;
    }
    return dist;
}

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let dist = pair_dist(e);
    let d = d0[e];
    if (abs(d) < p.d0_unset) {
        reward[e] = 0.0;
        return;
    }
    if (d < 0.5 * p.d0_armed) {
        d0[e] = dist;
    }
    reward[e] = min(max((d0[e] - dist) / d0[e], -1.0), 1.0);
}

// Bound with d0 = the pre-step flip_d0 (read only here), reward = its adjoint r_bar, and an
// extra read-write binding 5 for d0_bar. Inside the clamp dr/ddist = -1/d0, dr/dd0 = dist/d0^2;
// d0_bar (incoming plus r_bar dr/dd0) goes to dist when d0 was set this step, else stays on d0.
@group(0) @binding(5) var<storage, read_write> ad0: array<f32>;

@compute @workgroup_size(64)
fn reward_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    if (abs(d0[e]) < p.d0_unset) {
        reward[e] = 0.0;
        return;
    }
    let dist = pair_dist(e);
    let set_now = d0[e] < 0.5 * p.d0_armed;
    var dd = d0[e];
    if (set_now) {
        dd = dist;
    }
    let raw = (dd - dist) / dd;
    let rbar = reward[e];
    let inside = raw >= -1.0 && raw <= 1.0;
    var g_dist = 0.0;
    var g_d0 = ad0[e];
    if (inside) {
        g_dist = -rbar / dd;
        g_d0 += rbar * dist / (dd * dd);
    }
    if (set_now) {
        g_dist += g_d0;
        ad0[e] = 0.0;
    } else {
        ad0[e] = g_d0;
    }
    reward[e] = 0.0;
    let scale = g_dist / f32(p.pairs);
    for (var i = 0u; i < p.pairs; i++) {
        let a = e * p.np + p.stride * i;
        let b = e * p.np + p.half + p.stride * i;
        let r = pair_vec(e, i);
        let len = sqrt(r.x * r.x + r.y * r.y + r.z * r.z);
        for (var d = 0u; d < 3u; d++) {
            let g = scale * r[d] / len;
            ax[3u * a + d] += g;
            ax[3u * b + d] -= g;
        }
    }
}
