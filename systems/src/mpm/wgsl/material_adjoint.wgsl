// mpm.material adjoint: one invocation per particle (material.rs `adjoint`). Recomputes the
// SVD and the maps, pulls tau_bar back through U diag(h) U^T and Fp_bar through Z (or straight to
// F_bar when Z = id) in the SVD frame (svd.rs `IsoMap::pullback`), F_bar += U M_bar V^T, and
// consumes Fp_bar and tau_bar.
//
// Divided differences (h_j - h_i) / (sigma_j - sigma_i): a plain quotient loses ~eps_f32 / gap
// of its relative accuracy to cancellation, and F stays near a rotation, so gaps are small. They
// are therefore written in closed form per material, exact for every gap including 0 (where they
// equal the CPU's limit 1/2 (J_jj - J_ji + J_ii - J_ij)):
//   corotated 2 mu (s_i + s_j - 1); neo-Hookean mu (s_i + s_j); water 0 (h and Z are constant
//   across i); Hencky 2 mu L(s_i, s_j) with L(a, b) = (log b - log a) / (b - a) from a series in
//   r = (b - a) / a near 0; plasticine's return mapping f_i = exp(m + c dev_i):
//   (f_j - f_i) / (s_j - s_i) = f_i E(c (e_j - e_i)) c L(s_i, s_j) with E(x) = (e^x - 1) / x,
//   and its stress (h of f) 2 mu c L(s_i, s_j); sand's cone return the same with c = k
//   (`sand_kappa`), its tip c = 0 (f and h constant).
// Where a clamp of sigma (0.01, 0.05 for sand, 1e-5) is active the generic quotient is used,
// with the limit below a relative gap of DEGENERATE_F32 = 3e-4 (about sqrt(eps_f32)).
const DEGENERATE_F32: f32 = 3e-4;
const SUM_EPS: f32 = 1e-8;

@group(0) @binding(0) var<storage, read> fcol: array<f32>;
@group(0) @binding(1) var<storage, read> mat: array<f32>;
@group(0) @binding(2) var<storage, read_write> af: array<f32>;
@group(0) @binding(3) var<storage, read_write> afp: array<f32>;
@group(0) @binding(4) var<storage, read_write> at: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

fn clamp_sum(x: f32) -> f32 {
    if (abs(x) < SUM_EPS) {
        return select(SUM_EPS, -SUM_EPS, x < 0.0);
    }
    return x;
}

// (log b - log a) / (b - a).
fn dlog(a: f32, b: f32) -> f32 {
    let r = (b - a) / a;
    if (abs(r) < 0.05) {
        // log(1 + r) / r = 1 - r/2 + r^2/3 - ...; truncation error < r^7 / 8 < 1e-10.
        let s = 1.0 - r * (1.0 / 2.0 - r * (1.0 / 3.0 - r * (1.0 / 4.0 - r * (1.0 / 5.0 - r * (1.0 / 6.0 - r / 7.0)))));
        return s / a;
    }
    return (log(b) - log(a)) / (b - a);
}

// (e^x - 1) / x.
fn expm1_over_x(x: f32) -> f32 {
    if (abs(x) < 0.05) {
        return 1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0 + x / 720.0))));
    }
    return (exp(x) - 1.0) / x;
}

// Closed-form divided differences of a material's stress map (plastic = false) or return
// mapping (plastic = true) at sigma; `ok` false where a clamp is active (use the generic form).
struct Divided {
    ok: bool,
    d: M3,
}

// `sand_k`: sand's k (`sand_kappa`: log f = tr/3 + k dev, so log f_j - log f_i =
// k (log s_j - log s_i) as plasticine's with c = k; 0 at the tip, where f and h are constant).
fn divided(kind: f32, mu: f32, yield_stress: f32, s: vec3<f32>, yielded: bool, plastic: bool, f: vec3<f32>, sand_k: f32) -> Divided {
    var out = Divided(true, m3_zero());
    var c = 1.0;
    if (kind == SAND) {
        if (yielded) {
            if (min(s.x, min(s.y, s.z)) <= SAND_SIGMA_MIN) {
                out.ok = false;
                return out;
            }
            c = sand_k;
        } else if (min(s.x, min(s.y, s.z)) <= HENCKY_SIGMA_MIN) {
            out.ok = false;
            return out;
        }
    } else if (kind == PLASTICINE) {
        if (yielded) {
            if (min(s.x, min(s.y, s.z)) <= PLASTIC_SIGMA_MIN) {
                out.ok = false;
                return out;
            }
            let eps = log(s);
            let mean = (eps.x + eps.y + eps.z) / 3.0;
            let dev = eps - vec3<f32>(mean);
            let n = sqrt(dot(dev, dev));
            c = yield_stress / (2.0 * mu) / n;
        } else if (min(s.x, min(s.y, s.z)) <= HENCKY_SIGMA_MIN) {
            out.ok = false;
            return out;
        }
    }
    for (var i = 0u; i < 3u; i++) {
        for (var j = 0u; j < 3u; j++) {
            if (i == j) {
                continue;
            }
            var d = 0.0;
            if (kind == PLASTICINE || kind == SAND) {
                let l = dlog(s[i], s[j]);
                if (plastic) {
                    d = f[i] * expm1_over_x(c * l * (s[j] - s[i])) * c * l;
                } else {
                    d = 2.0 * mu * c * l;
                }
            } else if (kind == NEO_HOOKEAN) {
                d = mu * (s[i] + s[j]);
            } else if (kind == COROTATED) {
                d = 2.0 * mu * (s[i] + s[j] - 1.0);
            }
            out.d[i][j] = d;
        }
    }
    return out;
}

// Adds the transpose of the map's differential applied to xbar (rotated frame) into mbar; the
// divided differences come from `dd` when dd.ok.
fn pullback(m: Map, sigma: vec3<f32>, form_b: bool, dd: Divided, xbar: M3, mbar_in: M3) -> M3 {
    var mbar = mbar_in;
    for (var i = 0u; i < 3u; i++) {
        for (var k = 0u; k < 3u; k++) {
            mbar[k][k] += m.jac[i][k] * xbar[i][i];
        }
        for (var j = 0u; j < 3u; j++) {
            if (i == j) {
                continue;
            }
            let gap = sigma[j] - sigma[i];
            let scale = max(1.0, max(abs(sigma[i]), abs(sigma[j])));
            var d: f32;
            if (dd.ok) {
                d = dd.d[i][j];
            } else if (abs(gap) < DEGENERATE_F32 * scale) {
                d = 0.5 * (m.jac[j][j] - m.jac[j][i] + m.jac[i][i] - m.jac[i][j]);
            } else {
                d = (m.val[j] - m.val[i]) / gap;
            }
            let sum = clamp_sum(sigma[i] + sigma[j]);
            var pc: f32;
            if (form_b) {
                pc = (m.val[j] - m.val[i]) / sum;
            } else {
                pc = (m.val[j] + m.val[i]) / sum;
            }
            mbar[i][j] += xbar[i][j] * 0.5 * (d + pc);
            mbar[j][i] += xbar[i][j] * 0.5 * (d - pc);
        }
    }
    return mbar;
}

@compute @workgroup_size(64)
fn material_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    var f = m3_zero();
    var tbar = m3_zero();
    var fpbar = m3_zero();
    var fbar = m3_zero();
    for (var r = 0u; r < 3u; r++) {
        for (var c = 0u; c < 3u; c++) {
            let o = 9u * i + 3u * r + c;
            f[r][c] = fcol[o];
            tbar[r][c] = at[o];
            fpbar[r][c] = afp[o];
            fbar[r][c] = af[o];
        }
    }
    if (mat[MAT_STRIDE * i] == WATER) {
        // material.rs `water_adjoint`: F_bar += cof(F) (dc/dJ tr(Fp_bar) + lambda (2J - 1) tr(tau_bar)).
        let j = m3_det(f);
        let jbar = water_cbrt_slope(cbrt_signed(j)) * (fpbar[0][0] + fpbar[1][1] + fpbar[2][2])
            + mat[MAT_STRIDE * i + 2u] * (2.0 * j - 1.0) * (tbar[0][0] + tbar[1][1] + tbar[2][2]);
        let cof = m3_cofactor(f);
        for (var r = 0u; r < 3u; r++) {
            for (var c = 0u; c < 3u; c++) {
                let o = 9u * i + 3u * r + c;
                af[o] = fbar[r][c] + jbar * cof[r][c];
                afp[o] = 0.0;
                at[o] = 0.0;
            }
        }
        return;
    }
    let ev = material_eval(f, mat[MAT_STRIDE * i], mat[MAT_STRIDE * i + 1u], mat[MAT_STRIDE * i + 2u], mat[MAT_STRIDE * i + 3u], mat[MAT_STRIDE * i + 4u]);
    let u = ev.svd.u;
    let v = ev.svd.v;
    let ut = m3_t(u);
    let kind = mat[MAT_STRIDE * i];
    let mu = mat[MAT_STRIDE * i + 1u];
    let ys = mat[MAT_STRIDE * i + 3u];
    let yielded = ev.plastic.on && (kind == PLASTICINE || kind == SAND);
    var sand_k = 1.0;
    if (kind == SAND) {
        sand_k = sand_kappa(ev.svd.s, mu, mat[MAT_STRIDE * i + 2u], ys, mat[MAT_STRIDE * i + 4u]).y;
    }
    let ds = divided(kind, mu, ys, ev.svd.s, yielded, false, ev.plastic.val, sand_k);
    var mbar = pullback(ev.stress, ev.svd.s, true, ds, m3_mul(m3_mul(ut, tbar), u), m3_zero());
    if (ev.plastic.on) {
        var right = v;
        if (ev.plastic_form_b) {
            right = u;
        }
        let dp = divided(kind, mu, ys, ev.svd.s, yielded, true, ev.plastic.val, sand_k);
        mbar = pullback(ev.plastic, ev.svd.s, ev.plastic_form_b, dp, m3_mul(m3_mul(ut, fpbar), right), mbar);
    } else {
        for (var r = 0u; r < 3u; r++) {
            for (var c = 0u; c < 3u; c++) {
                fbar[r][c] += fpbar[r][c];
            }
        }
    }
    let back = m3_mul(m3_mul(u, mbar), m3_t(v));
    for (var r = 0u; r < 3u; r++) {
        for (var c = 0u; c < 3u; c++) {
            let o = 9u * i + 3u * r + c;
            af[o] = fbar[r][c] + back[r][c];
            afp[o] = 0.0;
            at[o] = 0.0;
        }
    }
}
