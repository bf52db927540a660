// particles.integrate on the GPU: semi-implicit (symplectic) Euler, the forward of
// `systems/src/particles/integrate.rs`, one invocation per particle k over num_envs * count:
//     qd' = qd + dt * f / m ;  q' = q + dt * qd'
// q, qd, f are [env][particle][3] flattened f32 (index 3k + c: plain f32 arrays, because
// array<vec3<f32>> has a 16-byte stride); mass is [env][particle] flattened f32.
// The arithmetic order matches the CPU system: inv_m = 1 / m, then (dt * f) * inv_m.

struct IntegrateParams {
    dt: f32,
    n: u32,
}

@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> qd: array<f32>;
@group(0) @binding(2) var<storage, read> f: array<f32>;
@group(0) @binding(3) var<storage, read> mass: array<f32>;
@group(0) @binding(4) var<uniform> p: IntegrateParams;

const WORKGROUP_SIZE: u32 = 64u;

@compute @workgroup_size(64)
fn integrate(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    // Kernel::dispatch lays out more than 65535 workgroups as an [x, y] grid.
    let k = gid.x + gid.y * nwg.x * WORKGROUP_SIZE;
    if (k >= p.n) {
        return;
    }
    let inv_m = 1.0 / mass[k];
    for (var c = 0u; c < 3u; c++) {
        let i = 3u * k + c;
        let v = qd[i] + p.dt * f[i] * inv_m;
        qd[i] = v;
        q[i] = q[i] + p.dt * v;
    }
}
