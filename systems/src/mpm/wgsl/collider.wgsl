// mpm.collider_drive and mpm.collider_integrate (collider.rs), forward and adjoint.
// Drive: one invocation per env; `axes` holds 4 floats per action column: (pose coordinate,
// scale, lo, hi). Integrate: one invocation per pose scalar (4 per env).
@group(0) @binding(0) var<storage, read> qcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> qdcol: array<f32>;
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read> axes: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn drive_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.envs) {
        return;
    }
    for (var k = 0u; k < 4u; k++) {
        qdcol[4u * e + k] = 0.0;
    }
    for (var k = 0u; k < p.na; k++) {
        let ax = u32(axes[4u * k]);
        let cur = qcol[4u * e + ax];
        let target_ = min(max(cur + axes[4u * k + 1u] * act[p.na * e + k], axes[4u * k + 2u]), axes[4u * k + 3u]);
        qdcol[4u * e + ax] = (target_ - cur) * p.inv_step;
    }
}
