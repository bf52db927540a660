// articulation.joint_forces forward, one invocation per (env, body); bodies on a revolute or
// prismatic joint add τ += gain a_k (gain = scale · gear of the k-th actuated joint, rounded on
// the host as the CPU's `R::from_f64`), the limit penalty when q is outside [lo, hi], and
// −damping q̇ into their one dof of joint_tau.
// Bindings 0–7: joint_forces_common.wgsl.
@group(0) @binding(8) var<storage, read> jqd: array<f32>;
@group(0) @binding(9) var<storage, read> act: array<f32>;
@group(0) @binding(10) var<storage, read_write> jtau: array<f32>;

@compute @workgroup_size(64)
fn joint_forces_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = linear_index(gid, nwg);
    let dof = joint_dof(b);
    if (!dof.on) {
        return;
    }
    let e = dof.e;
    let qi = dof.qi;
    let di = dof.di;
    let x = jq[qi];
    let v = jqd[di];
    var t = -damping[b] * v;
    let a = actuator[b];
    if (a != WORLD) {
        t = t + gain[b] * act[e * p.na + a];
    }
    if (limit[3u * b] != 0.0) {
        let ke = gains[2u * e];
        let kd = gains[2u * e + 1u];
        let lo = limit[3u * b + 1u];
        let hi = limit[3u * b + 2u];
        if (x < lo) {
            t = t + (ke * (lo - x) - kd * v);
        } else if (x > hi) {
            t = t + (ke * (hi - x) - kd * v);
        }
    }
    jtau[di] = jtau[di] + t;
}
