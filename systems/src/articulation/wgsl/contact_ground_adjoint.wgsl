// articulation.ground_contact adjoint, one invocation per body: its shapes' pullbacks of the
// body_f adjoint (which passes through unchanged) added into the body's pose and twist adjoints
// in shape order.
@group(0) @binding(5) var<storage, read> bq: array<f32>;
@group(0) @binding(6) var<storage, read> bqd: array<f32>;
@group(0) @binding(7) var<storage, read> abf: array<f32>;
@group(0) @binding(8) var<storage, read_write> abq: array<f32>;
@group(0) @binding(9) var<storage, read_write> abqd: array<f32>;
@group(0) @binding(10) var<uniform> p: Params;

@compute @workgroup_size(64)
fn ground_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let nb = vec3<f32>(abf[6u * k], abf[6u * k + 1u], abf[6u * k + 2u]);
    let fb = vec3<f32>(abf[6u * k + 3u], abf[6u * k + 4u], abf[6u * k + 5u]);
    if (all(nb == vec3<f32>(0.0)) && all(fb == vec3<f32>(0.0))) {
        return;
    }
    let e = k / p.nb;
    let b = k % p.nb;
    let xb = vec3<f32>(bq[7u * k], bq[7u * k + 1u], bq[7u * k + 2u]);
    let q = vec4<f32>(bq[7u * k + 3u], bq[7u * k + 4u], bq[7u * k + 5u], bq[7u * k + 6u]);
    let w = vec3<f32>(bqd[6u * k], bqd[6u * k + 1u], bqd[6u * k + 2u]);
    let vo = vec3<f32>(bqd[6u * k + 3u], bqd[6u * k + 4u], bqd[6u * k + 5u]);
    for (var s = e * p.ns; s < (e + 1u) * p.ns; s++) {
        if (shape_body[s] != b) {
            continue;
        }
        let g = ground_wrench_adjoint(s, xb, q, w, vo, nb, fb);
        if (!g.on) {
            continue;
        }
        for (var i = 0u; i < 3u; i++) {
            abq[7u * k + i] = abq[7u * k + i] + g.x[i];
            abqd[6u * k + i] = abqd[6u * k + i] + g.w[i];
            abqd[6u * k + 3u + i] = abqd[6u * k + 3u + i] + g.vo[i];
        }
        for (var i = 0u; i < 4u; i++) {
            abq[7u * k + 3u + i] = abq[7u * k + 3u + i] + g.q[i];
        }
    }
}
