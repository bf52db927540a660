// mpm.material, shared by its forward and adjoint kernels: the return mapping f(sigma) and the
// Kirchhoff stress h(sigma) of each material (material.rs), with their Jacobians, in f32.
const COROTATED: f32 = 0.0;
const PLASTICINE: f32 = 1.0;
const NEO_HOOKEAN: f32 = 2.0;
const WATER: f32 = 3.0;
const SAND: f32 = 4.0;
// Lower clamp of sigma in the sand return mapping (sand.rs SIGMA_MIN).
const SAND_SIGMA_MIN: f32 = 0.05;
const PLASTIC_SIGMA_MIN: f32 = 0.01;
const HENCKY_SIGMA_MIN: f32 = 1e-5;
const J_MIN: f32 = 1e-6;

// A map of the singular values: values and Jacobian (jac[i][k] = d val_i / d sigma_k).
struct Map {
    on: bool,
    val: vec3<f32>,
    jac: M3,
}

fn von_mises(s: vec3<f32>, mu: f32, yield_stress: f32) -> Map {
    var m = Map(false, s, m3_zero());
    let eps = log(max(s, vec3<f32>(PLASTIC_SIGMA_MIN)));
    let mean = (eps.x + eps.y + eps.z) / 3.0;
    let dev = eps - vec3<f32>(mean);
    let n = sqrt(dev.x * dev.x + dev.y * dev.y + dev.z * dev.z);
    let r = yield_stress / (2.0 * mu);
    if (n - r <= 0.0) {
        return m;
    }
    let c = r / n;
    let f = exp(vec3<f32>(mean) + c * dev);
    m.on = true;
    m.val = f;
    for (var i = 0u; i < 3u; i++) {
        for (var k = 0u; k < 3u; k++) {
            var delta = 0.0;
            if (i == k) {
                delta = 1.0;
            }
            var de = 0.0;
            if (s[k] > PLASTIC_SIGMA_MIN) {
                de = 1.0 / s[k];
            }
            m.jac[i][k] = f[i] * (1.0 / 3.0 + c * (delta - 1.0 / 3.0) - c * dev[i] * dev[k] / (n * n)) * de;
        }
    }
    return m;
}

// Sand's Drucker-Prager return mapping (sand.rs `drucker_prager`): eps = log max(s, 0.05),
// tr, dev = eps - tr/3, n = |dev|, A = alpha (3 lambda + 2 mu) / (2 mu), dgamma = n + A (tr - c).
// Elastic (dgamma <= 0): off. Tip (tr > c): f = exp(c/3), constant. Cone: log f = tr/3 + k dev
// with k = 1 - dgamma/n = A (c - tr) / n (written so, without the cancellation of 1 - dgamma/n),
// and d log f_i / d eps_k = 1/3 - A e_i + k (P_ik - e_i e_k), e = dev/n, P = I - 11^T/3.
fn sand_kappa(s: vec3<f32>, mu: f32, lambda: f32, alpha: f32, cohesion: f32) -> vec2<f32> {
    // (case: 0 elastic, 1 tip, 2 cone; k of the cone, 1 when elastic, 0 at the tip).
    let eps = log(max(s, vec3<f32>(SAND_SIGMA_MIN)));
    let tr = eps.x + eps.y + eps.z;
    let dev = eps - vec3<f32>(tr / 3.0);
    let n = sqrt(dot(dev, dev));
    let a = alpha * (3.0 * lambda + 2.0 * mu) / (2.0 * mu);
    if (n + a * (tr - cohesion) <= 0.0) {
        return vec2<f32>(0.0, 1.0);
    }
    if (tr > cohesion) {
        return vec2<f32>(1.0, 0.0);
    }
    return vec2<f32>(2.0, a * (cohesion - tr) / n);
}

fn drucker_prager(s: vec3<f32>, mu: f32, lambda: f32, alpha: f32, cohesion: f32) -> Map {
    var m = Map(false, s, m3_zero());
    let ck = sand_kappa(s, mu, lambda, alpha, cohesion);
    if (ck.x == 0.0) {
        return m;
    }
    m.on = true;
    if (ck.x == 1.0) {
        m.val = vec3<f32>(exp(cohesion / 3.0));
        return m;
    }
    let eps = log(max(s, vec3<f32>(SAND_SIGMA_MIN)));
    let tr = eps.x + eps.y + eps.z;
    let dev = eps - vec3<f32>(tr / 3.0);
    let n = sqrt(dot(dev, dev));
    let a = alpha * (3.0 * lambda + 2.0 * mu) / (2.0 * mu);
    let k = ck.y;
    let e = dev / n;
    let f = exp(vec3<f32>(tr / 3.0) + k * dev);
    m.val = f;
    for (var i = 0u; i < 3u; i++) {
        for (var j = 0u; j < 3u; j++) {
            var p = -1.0 / 3.0;
            if (i == j) {
                p = 2.0 / 3.0;
            }
            var ds = 0.0;
            if (s[j] > SAND_SIGMA_MIN) {
                ds = 1.0 / s[j];
            }
            m.jac[i][j] = f[i] * (1.0 / 3.0 - a * e[i] + k * (p - e[i] * e[j])) * ds;
        }
    }
    return m;
}

fn cbrt_signed(x: f32) -> f32 {
    return sign(x) * pow(abs(x), 1.0 / 3.0);
}

// Water without an SVD (material.rs `water`): J = det F, Fp = J^{1/3} I, tau = lambda J (J - 1) I.
// The SVD of a nearly isotropic F (water's F is J^{1/3} I plus one substep's C dt) is the worst
// conditioned case of the Jacobi sweeps, and neither Fp nor tau depends on U or V.
fn water_cbrt_slope(c: f32) -> f32 {
    if (abs(c) > 1e-12) {
        return 1.0 / (3.0 * c * c);
    }
    return 0.0;
}

// d det F / dF.
fn m3_cofactor(a: M3) -> M3 {
    var c = m3_zero();
    for (var i = 0u; i < 3u; i++) {
        for (var k = 0u; k < 3u; k++) {
            let i1 = (i + 1u) % 3u;
            let i2 = (i + 2u) % 3u;
            let k1 = (k + 1u) % 3u;
            let k2 = (k + 2u) % 3u;
            c[i][k] = a[i1][k1] * a[i2][k2] - a[i1][k2] * a[i2][k1];
        }
    }
    return c;
}

fn fluid(s: vec3<f32>) -> Map {
    let c = cbrt_signed(s.x * s.y * s.z);
    var m = Map(true, vec3<f32>(c), m3_zero());
    for (var k = 0u; k < 3u; k++) {
        var d = 0.0;
        if (abs(c) > 1e-12) {
            d = s[(k + 1u) % 3u] * s[(k + 2u) % 3u] / (3.0 * c * c);
        }
        for (var i = 0u; i < 3u; i++) {
            m.jac[i][k] = d;
        }
    }
    return m;
}

fn stress_map(kind: f32, s: vec3<f32>, mu: f32, lambda: f32) -> Map {
    var m = Map(true, vec3<f32>(0.0), m3_zero());
    if (kind == PLASTICINE || kind == SAND) {
        let l = log(max(s, vec3<f32>(HENCKY_SIGMA_MIN)));
        let tr = l.x + l.y + l.z;
        for (var i = 0u; i < 3u; i++) {
            m.val[i] = 2.0 * mu * l[i] + lambda * tr;
            for (var k = 0u; k < 3u; k++) {
                var dl = 0.0;
                if (s[k] > HENCKY_SIGMA_MIN) {
                    dl = 1.0 / s[k];
                }
                var diag = 0.0;
                if (i == k) {
                    diag = 2.0 * mu;
                }
                m.jac[i][k] = (diag + lambda) * dl;
            }
        }
    } else if (kind == NEO_HOOKEAN) {
        let j = s.x * s.y * s.z;
        let lj = log(max(j, J_MIN));
        for (var i = 0u; i < 3u; i++) {
            m.val[i] = mu * (s[i] * s[i] - 1.0) + lambda * lj;
            for (var k = 0u; k < 3u; k++) {
                let others = s[(k + 1u) % 3u] * s[(k + 2u) % 3u];
                var dlj = 0.0;
                if (j > J_MIN) {
                    dlj = others / j;
                }
                var diag = 0.0;
                if (i == k) {
                    diag = 2.0 * mu * s[i];
                }
                m.jac[i][k] = diag + lambda * dlj;
            }
        }
    } else if (kind == WATER) {
        let j = s.x * s.y * s.z;
        for (var i = 0u; i < 3u; i++) {
            m.val[i] = lambda * j * (j - 1.0);
            for (var k = 0u; k < 3u; k++) {
                m.jac[i][k] = lambda * (2.0 * j - 1.0) * s[(k + 1u) % 3u] * s[(k + 2u) % 3u];
            }
        }
    } else {
        let j = s.x * s.y * s.z;
        for (var i = 0u; i < 3u; i++) {
            m.val[i] = 2.0 * mu * (s[i] * s[i] - s[i]) + lambda * (j - 1.0) * j;
            for (var k = 0u; k < 3u; k++) {
                let others = s[(k + 1u) % 3u] * s[(k + 2u) % 3u];
                var diag = 0.0;
                if (i == k) {
                    diag = 2.0 * mu * (2.0 * s[i] - 1.0);
                }
                m.jac[i][k] = diag + lambda * (2.0 * j - 1.0) * others;
            }
        }
    }
    return m;
}

// What one particle's material computes: the SVD, the return mapping (inactive: Z = id) and
// the stress map (its Jacobian with respect to the original sigma, through Z when on).
struct Eval {
    svd: Svd,
    plastic: Map,
    // 0: form A, U diag(f) V^T (plasticine, sand); 1: form B, U diag(f) U^T (water).
    plastic_form_b: bool,
    stress: Map,
}

// p3, p4: the row's last two parameters (plasticine: yield stress; sand: alpha, cohesion).
fn material_eval(f: M3, kind: f32, mu: f32, lambda: f32, p3: f32, p4: f32) -> Eval {
    let svd = svd3(f);
    var plastic = Map(false, svd.s, m3_zero());
    var form_b = false;
    if (kind == PLASTICINE) {
        plastic = von_mises(svd.s, mu, p3);
    } else if (kind == SAND) {
        plastic = drucker_prager(svd.s, mu, lambda, p3, p4);
    } else if (kind == WATER) {
        plastic = fluid(svd.s);
        form_b = true;
    }
    var stress: Map;
    if (plastic.on) {
        stress = stress_map(kind, plastic.val, mu, lambda);
        stress.jac = m3_mul(stress.jac, plastic.jac);
    } else {
        stress = stress_map(kind, svd.s, mu, lambda);
    }
    return Eval(svd, plastic, form_b, stress);
}
