// particles.ground_contact forward, one invocation per particle.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read_write> f: array<f32>;
@group(0) @binding(3) var<storage, read> radius: array<f32>;
@group(0) @binding(4) var<storage, read> ground: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64)
fn ground_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let e = k / p.np;
    let g = vec4<f32>(ground[4u * e], ground[4u * e + 1u], ground[4u * e + 2u], ground[4u * e + 3u]);
    let v = vec3<f32>(qd[3u * k], qd[3u * k + 1u], qd[3u * k + 2u]);
    let rg = regime(q[3u * k + 1u], radius[k], v, g);
    if (rg.kind == 1u) {
        f[3u * k] = f[3u * k] - g.z * v.x;
        f[3u * k + 1u] = f[3u * k + 1u] + rg.n;
        f[3u * k + 2u] = f[3u * k + 2u] - g.z * v.z;
    } else if (rg.kind == 2u) {
        f[3u * k] = f[3u * k] - g.w * rg.n * v.x / rg.s;
        f[3u * k + 1u] = f[3u * k + 1u] + rg.n;
        f[3u * k + 2u] = f[3u * k + 2u] - g.w * rg.n * v.z / rg.s;
    }
}
