// fem.tetrahedra adjoint, two passes (fem/gpu.rs): tet_adjoint, one invocation per tetrahedron,
// pulls the force adjoints of its corners back (tetrahedra.rs `tet_adjoint`, same order of
// operations) and writes corner c's (x̄, v̄) into scratch[24 k + 6 c ..], adding ā into the
// activation's adjoint (one tetrahedron per entry: no conflict); tet_adjoint_gather, one
// invocation per particle, adds its corners' entries into aq, aqd in increasing k. f̄ passes
// through (f is accumulated).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> tp: array<f32>;
@group(0) @binding(3) var<storage, read> ti: array<u32>;
@group(0) @binding(4) var<storage, read> der: array<f32>;
@group(0) @binding(5) var<storage, read> act: array<f32>;
@group(0) @binding(6) var<storage, read> af: array<f32>;
@group(0) @binding(7) var<storage, read_write> aq: array<f32>;
@group(0) @binding(8) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(9) var<storage, read_write> aact: array<f32>;
@group(0) @binding(10) var<storage, read> adj_off: array<u32>;
@group(0) @binding(11) var<storage, read> adj: array<u32>;
@group(0) @binding(12) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(13) var<uniform> p: Params;

fn load_af(i: u32) -> vec3<f32> {
    return vec3<f32>(af[3u * i], af[3u * i + 1u], af[3u * i + 2u]);
}

fn put(k: u32, c: u32, x: vec3<f32>, v: vec3<f32>) {
    let o = 24u * k + 6u * c;
    scratch[o] = x.x;
    scratch[o + 1u] = x.y;
    scratch[o + 2u] = x.z;
    scratch[o + 3u] = v.x;
    scratch[o + 4u] = v.y;
    scratch[o + 5u] = v.z;
}

@compute @workgroup_size(64)
fn tet_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let vs = tet_verts(k);
    let pr = tet_params(k);
    let ev = tet_eval(k, vs, pr);
    let f0bar = load_af(vs.x);
    let ybar = M3(load_af(vs.y) - f0bar, load_af(vs.z) - f0bar, load_af(vs.w) - f0bar);
    // f_i = -(V (P B^T)_i + s g_i).
    let hbar = from_cols(ybar[0] * (-pr.vol), ybar[1] * (-pr.vol), ybar[2] * (-pr.vol));
    let sbar = -(dot3(ybar[0], ev.g[0]) + dot3(ybar[1], ev.g[1]) + dot3(ybar[2], ev.g[2]));
    var gbar = M3(ybar[0] * (-ev.s), ybar[1] * (-ev.s), ybar[2] * (-ev.s));
    // H = P B^T -> P̄ = H̄ B.
    let pbar = mul(hbar, pr.b);
    // P = c F + k Ḟ, c = mu (1 - 1/(I_C + 1)), I_C = |F|².
    var pf = 0.0;
    for (var r = 0u; r < 3u; r++) {
        pf = pf + pbar[r].x * ev.f[r].x;
        pf = pf + pbar[r].y * ev.f[r].y;
        pf = pf + pbar[r].z * ev.f[r].z;
    }
    let ic1 = ev.ic + 1.0;
    let icbar = pf * pr.mu / (ic1 * ic1);
    var fbar: M3;
    var fdotbar: M3;
    for (var r = 0u; r < 3u; r++) {
        fbar[r] = ev.c * pbar[r] + (icbar + icbar) * ev.f[r];
        fdotbar[r] = pr.damp * pbar[r];
    }
    // s = V (lambda (J - alpha + a) + k J̇).
    let jbar = pr.vol * pr.lambda * sbar;
    let jdotbar = pr.vol * pr.damp * sbar;
    // J̇ = sum g_i · u_i.
    for (var i = 0u; i < 3u; i++) {
        gbar[i] = gbar[i] + jdotbar * ev.u[i];
    }
    // F = D_s B -> D̄_s = F̄ B^T; Ḟ = U B -> Ū = Ḟ̄ B^T.
    let ds_bar = mul_bt(fbar, pr.b);
    let u_bar = mul_bt(fdotbar, pr.b);
    var dbar = M3(col(ds_bar, 0u), col(ds_bar, 1u), col(ds_bar, 2u));
    var ubar = M3(col(u_bar, 0u), col(u_bar, 1u), col(u_bar, 2u));
    for (var i = 0u; i < 3u; i++) {
        ubar[i] = ubar[i] + jdotbar * ev.g[i];
        dbar[i] = dbar[i] + jbar * ev.g[i];
    }
    // g_i = det B (d_{i+1} x d_{i+2}) (cyclic): ḡ·(a x b) -> ā += b x ḡ, b̄ += ḡ x a.
    for (var i = 0u; i < 3u; i++) {
        let ia = (i + 1u) % 3u;
        let ib = (i + 2u) % 3u;
        let gb = gbar[i] * pr.det_b;
        dbar[ia] = dbar[ia] + cross3(ev.d[ib], gb);
        dbar[ib] = dbar[ib] + cross3(gb, ev.d[ia]);
    }
    put(k, 0u, -dbar[0] - dbar[1] - dbar[2], -ubar[0] - ubar[1] - ubar[2]);
    put(k, 1u, dbar[0], ubar[0]);
    put(k, 2u, dbar[1], ubar[1]);
    put(k, 3u, dbar[2], ubar[2]);
    if (p.activated == 1u) {
        aact[k] = aact[k] + jbar;
    }
}

@compute @workgroup_size(64)
fn tet_adjoint_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = linear_index(gid, nwg);
    if (g >= p.n) {
        return;
    }
    var acc_q = vec3<f32>(aq[3u * g], aq[3u * g + 1u], aq[3u * g + 2u]);
    var acc_qd = vec3<f32>(aqd[3u * g], aqd[3u * g + 1u], aqd[3u * g + 2u]);
    for (var a = adj_off[g]; a < adj_off[g + 1u]; a++) {
        let o = 6u * adj[a];
        acc_q = acc_q + vec3<f32>(scratch[o], scratch[o + 1u], scratch[o + 2u]);
        acc_qd = acc_qd + vec3<f32>(scratch[o + 3u], scratch[o + 4u], scratch[o + 5u]);
    }
    aq[3u * g] = acc_q.x;
    aq[3u * g + 1u] = acc_q.y;
    aq[3u * g + 2u] = acc_q.z;
    aqd[3u * g] = acc_qd.x;
    aqd[3u * g + 1u] = acc_qd.y;
    aqd[3u * g + 2u] = acc_qd.z;
}
