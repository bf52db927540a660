// soft_jumper.reward forward, one invocation per env (soft_jumper.rs `Reward`):
// r = 10 com_qd_x + 30 (com_q_y − start) − c_a Σ a².
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> reward: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let cq = mean3_q(e);
    let cqd = mean3_qd(e);
    var a2 = 0.0;
    for (var i = 0u; i < p.na; i++) {
        let a = act[p.na * e + i];
        a2 = a2 + a * a;
    }
    reward[e] = 10.0 * cqd.x + 30.0 * (cq.y - p.start) - p.cost * a2;
}
