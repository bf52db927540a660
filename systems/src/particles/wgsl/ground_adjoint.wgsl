// particles.ground_contact adjoint, one invocation per particle (f̄ passes through; see ground.rs).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> af: array<f32>;
@group(0) @binding(3) var<storage, read_write> aq: array<f32>;
@group(0) @binding(4) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(5) var<storage, read> radius: array<f32>;
@group(0) @binding(6) var<storage, read> ground: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(64)
fn ground_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let e = k / p.np;
    let g = vec4<f32>(ground[4u * e], ground[4u * e + 1u], ground[4u * e + 2u], ground[4u * e + 3u]);
    let v = vec3<f32>(qd[3u * k], qd[3u * k + 1u], qd[3u * k + 2u]);
    let rg = regime(q[3u * k + 1u], radius[k], v, g);
    if (rg.kind == 0u) {
        return;
    }
    let afx = af[3u * k];
    let afy = af[3u * k + 1u];
    let afz = af[3u * k + 2u];
    var adj_n = afy;
    if (rg.kind == 1u) {
        aqd[3u * k] = aqd[3u * k] - g.z * afx;
        aqd[3u * k + 2u] = aqd[3u * k + 2u] - g.z * afz;
    } else {
        let ux = v.x / rg.s;
        let uz = v.z / rg.s;
        let adj_ux = -g.w * rg.n * afx;
        let adj_uz = -g.w * rg.n * afz;
        let uu = ux * adj_ux + uz * adj_uz;
        aqd[3u * k] = aqd[3u * k] + (adj_ux - ux * uu) / rg.s;
        aqd[3u * k + 2u] = aqd[3u * k + 2u] + (adj_uz - uz * uu) / rg.s;
        adj_n = afy - g.w * (ux * afx + uz * afz);
    }
    aq[3u * k + 1u] = aq[3u * k + 1u] - g.x * adj_n;
    aqd[3u * k + 1u] = aqd[3u * k + 1u] - g.y * adj_n;
}
