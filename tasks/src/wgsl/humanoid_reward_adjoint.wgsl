// humanoid.reward adjoint, one invocation per env: r̄ pulled back to the torso's pose and twist
// (H'(height) r̄ into its height) and to the actions (ā −= 0.004 a r̄), then r̄ <- 0 (reward is
// overwritten).
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> reward: array<f32>;
@group(0) @binding(4) var<storage, read_write> abq: array<f32>;
@group(0) @binding(5) var<storage, read_write> abqd: array<f32>;
@group(0) @binding(6) var<storage, read_write> aact: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
@group(0) @binding(8) var<uniform> tp: Task;

@compute @workgroup_size(64)
fn reward_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let t = torso_of_env(e);
    let r_bar = reward[e];
    var bar = torso_bar();
    bar.v.x = r_bar;
    bar.rot.r1.y = 0.1 * r_bar;
    bar.p.y = height_reward(t.p.y).y * r_bar;
    heading_adjoint(t, p.target_x, r_bar, &bar);
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
    for (var i = 0u; i < 21u; i++) {
        aact[21u * e + i] -= tp.action_slope * act[21u * e + i] * r_bar;
    }
    reward[e] = 0.0;
}
