// mpm.collider_drive adjoint (one invocation per env): qd = (clamp(q + s a) - q) / (K dt), so
// inside the limits a_bar += g s (q_bar's g - g = 0 is not summed), clipped q_bar -= g; qd_bar <- 0,
// with g = qd_bar / (K dt).
@group(0) @binding(0) var<storage, read> qcol: array<f32>;
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<storage, read> axes: array<f32>;
@group(0) @binding(3) var<storage, read_write> aq: array<f32>;
@group(0) @binding(4) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(5) var<storage, read_write> aact: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn drive_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.envs) {
        return;
    }
    for (var k = 0u; k < p.na; k++) {
        let ax = u32(axes[4u * k]);
        let g = aqd[4u * e + ax] * p.inv_step;
        let raw = qcol[4u * e + ax] + axes[4u * k + 1u] * act[p.na * e + k];
        if (raw >= axes[4u * k + 2u] && raw <= axes[4u * k + 3u]) {
            aact[p.na * e + k] += g * axes[4u * k + 1u];
        } else {
            aq[4u * e + ax] -= g;
        }
    }
    for (var k = 0u; k < 4u; k++) {
        aqd[4u * e + k] = 0.0;
    }
}
