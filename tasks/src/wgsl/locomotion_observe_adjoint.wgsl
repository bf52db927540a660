// The observe adjoint of AntRun and Humanoid (locomotion_observe.wgsl), one invocation per env: ō pulled back to the torso's pose and twist,
// the hinge angles and rates and the actions, then ō <- 0 (obs is overwritten).
const NOBS: u32 = 13u + 3u * NA;

@group(0) @binding(2) var<storage, read_write> obs: array<f32>;
@group(0) @binding(3) var<storage, read_write> abq: array<f32>;
@group(0) @binding(4) var<storage, read_write> abqd: array<f32>;
@group(0) @binding(5) var<storage, read_write> ajq: array<f32>;
@group(0) @binding(6) var<storage, read_write> ajqd: array<f32>;
@group(0) @binding(7) var<storage, read_write> aact: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let t = torso_of_env(e);
    let o = NOBS * e;
    var bar = torso_bar();
    bar.p.y = obs[o];
    for (var i = 0u; i < 4u; i++) {
        bar.quat[i] = obs[o + 1u + i];
    }
    for (var i = 0u; i < 3u; i++) {
        bar.v[i] = obs[o + 5u + i];
        bar.w[i] = obs[o + 8u + i];
    }
    for (var i = 0u; i < NA; i++) {
        ajq[(7u + NA) * e + 7u + i] += obs[o + 11u + i];
        ajqd[(6u + NA) * e + 6u + i] += 0.1 * obs[o + 11u + NA + i];
        aact[NA * e + i] += obs[o + 13u + 2u * NA + i];
    }
    bar.rot.r1.y = obs[o + 11u + 2u * NA];
    heading_adjoint(t, p.target_x, obs[o + 12u + 2u * NA], &bar);
    let g = torso_adjoint(t, bar);
    let b = e * p.nb;
    for (var i = 0u; i < 3u; i++) {
        abq[7u * b + i] += g.p[i];
        abqd[6u * b + i] += g.w[i];
        abqd[6u * b + 3u + i] += g.vo[i];
    }
    for (var i = 0u; i < 4u; i++) {
        abq[7u * b + 3u + i] += g.quat[i];
    }
    for (var i = 0u; i < NOBS; i++) {
        obs[o + i] = 0.0;
    }
}
