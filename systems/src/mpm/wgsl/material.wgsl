// mpm.material forward: one invocation per particle, Fp <- Z(F), tau <- tau(Fp) (material.rs).
@group(0) @binding(0) var<storage, read> fcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> fpcol: array<f32>;
@group(0) @binding(2) var<storage, read_write> tcol: array<f32>;
@group(0) @binding(3) var<storage, read> mat: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn material_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    var f = m3_zero();
    for (var r = 0u; r < 3u; r++) {
        for (var c = 0u; c < 3u; c++) {
            f[r][c] = fcol[9u * i + 3u * r + c];
        }
    }
    if (mat[MAT_STRIDE * i] == WATER) {
        let j = m3_det(f);
        let c = cbrt_signed(j);
        let t = mat[MAT_STRIDE * i + 2u] * j * (j - 1.0);
        for (var r = 0u; r < 3u; r++) {
            for (var k = 0u; k < 3u; k++) {
                tcol[9u * i + 3u * r + k] = select(0.0, t, r == k);
                fpcol[9u * i + 3u * r + k] = select(0.0, c, r == k);
            }
        }
        return;
    }
    let ev = material_eval(f, mat[MAT_STRIDE * i], mat[MAT_STRIDE * i + 1u], mat[MAT_STRIDE * i + 2u], mat[MAT_STRIDE * i + 3u], mat[MAT_STRIDE * i + 4u]);
    let tau = m3_compose(ev.svd.u, ev.stress.val, ev.svd.u);
    var fp = f;
    if (ev.plastic.on) {
        if (ev.plastic_form_b) {
            fp = m3_compose(ev.svd.u, ev.plastic.val, ev.svd.u);
        } else {
            fp = m3_compose(ev.svd.u, ev.plastic.val, ev.svd.v);
        }
    }
    for (var r = 0u; r < 3u; r++) {
        for (var c = 0u; c < 3u; c++) {
            tcol[9u * i + 3u * r + c] = tau[r][c];
            fpcol[9u * i + 3u * r + c] = fp[r][c];
        }
    }
}
