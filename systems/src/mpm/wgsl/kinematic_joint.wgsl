// mpm.joint_drive and mpm.joint_integrate (kinematic.rs), forward and adjoint, one invocation
// per joint scalar (env e, joint k). `limits` holds 3 floats per joint: (scale, lo, hi).
// Drive: qd = (clamp(q + s a, lo, hi) - q) / (K dt); adjoint with g = qd_bar / (K dt):
// inside the limits a_bar += g s (q_bar gets g - g = 0, not summed: it would round q_bar by an
// ulp of g), clipped q_bar -= g; qd_bar <- 0.
@group(0) @binding(0) var<storage, read> qcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> qdcol: array<f32>;
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read> limits: array<f32>;
@group(0) @binding(4) var<storage, read_write> aq: array<f32>;
@group(0) @binding(5) var<storage, read_write> aact: array<f32>;
@group(0) @binding(6) var<uniform> p: KinParams;

@compute @workgroup_size(64)
fn drive_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.count) {
        return;
    }
    let k = i % p.dof;
    let target_ = min(max(qcol[i] + limits[3u * k] * act[i], limits[3u * k + 1u]), limits[3u * k + 2u]);
    qdcol[i] = (target_ - qcol[i]) * p.inv_step;
}

// Bound with qdcol = the adjoint of kin_qd.
@compute @workgroup_size(64)
fn drive_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.count) {
        return;
    }
    let k = i % p.dof;
    let g = qdcol[i] * p.inv_step;
    let raw = qcol[i] + limits[3u * k] * act[i];
    if (raw >= limits[3u * k + 1u] && raw <= limits[3u * k + 2u]) {
        aact[i] += g * limits[3u * k];
    } else {
        aq[i] -= g;
    }
    qdcol[i] = 0.0;
}
