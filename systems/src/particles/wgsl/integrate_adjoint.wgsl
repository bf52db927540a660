// particles.integrate adjoint (see integrate.rs): per particle, with q̄', q̄d' incoming,
//   s = q̄d' + dt q̄' ;  q̄d = s (overwritten: qd' = qd + ...) ;  f̄ += (dt / m) s ;  q̄ = q̄'.
@group(0) @binding(0) var<storage, read> aq: array<f32>;
@group(0) @binding(1) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(2) var<storage, read_write> af: array<f32>;
@group(0) @binding(3) var<storage, read> mass: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn integrate_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let inv_m = 1.0 / mass[k];
    for (var c = 0u; c < 3u; c++) {
        let i = 3u * k + c;
        let s = aqd[i] + p.dt * aq[i];
        aqd[i] = s;
        af[i] = af[i] + p.dt * inv_m * s;
    }
}
