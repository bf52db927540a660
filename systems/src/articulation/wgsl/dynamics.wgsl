// Forward dynamics of one env and its adjoint (articulation/integrate.rs in f32): RNEA,
// CRBA + Cholesky, the semi-implicit Euler update, and by hand the adjoints of the update and
// of inverse dynamics. The entry point fills qv, qdv, tau, fext, grav; everything per env lives
// in its scratch row work[wi] (H is ND² floats).

var<private> grav: vec3<f32>;

// Kinematics, body inertias and RNEA (`Dynamics::rnea`) into tau_r; with `with_qdd` the joint
// accelerations qdd enter a_k (inverse dynamics less armature), else tau_r is τ_bias. k_force
// ends holding each body's subtree force.
fn rnea(with_qdd: bool) {
    kinematics();
    for (var k = 0u; k < p.nb; k++) {
        work[wi].k_inertia[k] = body_inertia(k);
    }
    let base = V6(vec3<f32>(0.0), -grav);
    for (var k = 0u; k < p.nb; k++) {
        let par = b_parent(k);
        var a = base;
        if (par != WORLD) {
            a = work[wi].k_acc[par];
        }
        a = v6_add(a, work[wi].k_bias[k]);
        if (with_qdd) {
            let ds = b_ds(k);
            for (var i = 0u; i < kind_dofs(b_kind(k)); i++) {
                a = v6_add(a, v6_scale(work[wi].k_s[ds + i], work[wi].qdd[ds + i]));
            }
        }
        let v = work[wi].k_twist[k];
        let iv = spi_mul(work[wi].k_inertia[k], v);
        work[wi].k_force[k] = v6_sub(v6_add(spi_mul(work[wi].k_inertia[k], a), cross_force(v, iv)), work[wi].fext[k]);
        work[wi].k_acc[k] = a;
    }
    for (var kk = 0u; kk < p.nb; kk++) {
        let k = p.nb - 1u - kk;
        let ds = b_ds(k);
        for (var i = 0u; i < kind_dofs(b_kind(k)); i++) {
            work[wi].tau_r[ds + i] = v6_dot(work[wi].k_s[ds + i], work[wi].k_force[k]);
        }
        let par = b_parent(k);
        if (par != WORLD) {
            work[wi].k_force[par] = v6_add(work[wi].k_force[par], work[wi].k_force[k]);
        }
    }
}

// L Lᵀ x = b in place on qdd, L the lower triangle of hm (`cholesky_solve_factored`).
fn cholesky_solve_factored_qdd() {
    for (var i = 0u; i < p.nd; i++) {
        var s = work[wi].qdd[i];
        for (var k = 0u; k < i; k++) {
            s = s - work[wi].hm[i * ND + k] * work[wi].qdd[k];
        }
        work[wi].qdd[i] = s / work[wi].hm[i * ND + i];
    }
    for (var ii = 0u; ii < p.nd; ii++) {
        let i = p.nd - 1u - ii;
        var s = work[wi].qdd[i];
        for (var k = i + 1u; k < p.nd; k++) {
            s = s - work[wi].hm[k * ND + i] * work[wi].qdd[k];
        }
        work[wi].qdd[i] = s / work[wi].hm[i * ND + i];
    }
}

// q̈ = H⁻¹ (τ − τ_bias) into qdd (`Dynamics::joint_accelerations`): RNEA with q̈ = 0, composite
// inertias (in place over k_inertia), H by CRBA with the armature on its diagonal, Cholesky
// (hm keeps the factor).
fn joint_accelerations() {
    rnea(false);
    for (var i = 0u; i < p.nd; i++) {
        work[wi].qdd[i] = work[wi].tau[i] - work[wi].tau_r[i];
    }
    for (var kk = 0u; kk < p.nb; kk++) {
        let k = p.nb - 1u - kk;
        let par = b_parent(k);
        if (par != WORLD) {
            work[wi].k_inertia[par] = spi_add(work[wi].k_inertia[par], work[wi].k_inertia[k]);
        }
    }
    for (var i = 0u; i < p.nd * ND; i++) {
        work[wi].hm[i] = 0.0;
    }
    for (var k = 0u; k < p.nb; k++) {
        let ds = b_ds(k);
        for (var i = ds; i < ds + kind_dofs(b_kind(k)); i++) {
            let f = spi_mul(work[wi].k_inertia[k], work[wi].k_s[i]);
            var jb = k;
            loop {
                let js = b_ds(jb);
                for (var j = js; j < js + kind_dofs(b_kind(jb)); j++) {
                    let hij = v6_dot(work[wi].k_s[j], f);
                    work[wi].hm[i * ND + j] = hij;
                    work[wi].hm[j * ND + i] = hij;
                }
                if (b_parent(jb) == WORLD) {
                    break;
                }
                jb = b_parent(jb);
            }
            work[wi].hm[i * ND + i] = work[wi].hm[i * ND + i] + b_armature(k);
        }
    }
    // Cholesky (`cholesky_solve`): the pivot is clamped at 1e-12 as on the CPU.
    for (var j = 0u; j < p.nd; j++) {
        var d = work[wi].hm[j * ND + j];
        for (var k = 0u; k < j; k++) {
            d = d - work[wi].hm[j * ND + k] * work[wi].hm[j * ND + k];
        }
        let l = sqrt(max(d, 1e-12));
        work[wi].hm[j * ND + j] = l;
        for (var i = j + 1u; i < p.nd; i++) {
            var s = work[wi].hm[i * ND + j];
            for (var k = 0u; k < j; k++) {
                s = s - work[wi].hm[i * ND + k] * work[wi].hm[j * ND + k];
            }
            work[wi].hm[i * ND + j] = s / l;
        }
    }
    cholesky_solve_factored_qdd();
}

// q + h (ω, 0) ⊗ q, renormalized (`integrate::quat_step`).
fn quat_step(quat: vec4<f32>, w: vec3<f32>, h: f32) -> vec4<f32> {
    let dq = quat_mul(vec4<f32>(w, 0.0), quat);
    return quat_normalize(quat + h * dq);
}
// Adjoint of `quat_step` at (quat, w): given n̄ of the result, (quat̄, w̄) as (xyzw, xyz0).
// p = quat + h (w, 0) ⊗ quat, n = p/|p|: p̄ = (n̄ − n (n·n̄))/|p|; for c = a ⊗ b,
// ā = c̄ ⊗ b*, b̄ = a* ⊗ c̄.
struct QuatStepBar {
    quat: vec4<f32>,
    w: vec3<f32>,
}
fn quat_step_adjoint(quat: vec4<f32>, w: vec3<f32>, h: f32, nb: vec4<f32>) -> QuatStepBar {
    let a = vec4<f32>(w, 0.0);
    let pp = quat + h * quat_mul(a, quat);
    let len = sqrt(pp.x * pp.x + pp.y * pp.y + pp.z * pp.z + pp.w * pp.w);
    let n = pp / len;
    let pb = (nb - n * dot(n, nb)) / len;
    let qb = pb + h * quat_mul(quat_conj(a), pb);
    let ab = h * quat_mul(pb, quat_conj(quat));
    return QuatStepBar(qb, ab.xyz);
}

// Pre-step centre-of-mass quantities of a free root at q index qs, dof index ds.
struct FreeCom {
    c: vec3<f32>,
    v_c: vec3<f32>,
}
fn free_com(k: u32, qs: u32, ds: u32) -> FreeCom {
    let rot = quat_to_mat(quat_at(qs + 3u));
    let c = vec3<f32>(work[wi].qv[qs], work[wi].qv[qs + 1u], work[wi].qv[qs + 2u]) + rot * b_com(k);
    let w = vec3<f32>(work[wi].qdv[ds], work[wi].qdv[ds + 1u], work[wi].qdv[ds + 2u]);
    let v_c = vec3<f32>(work[wi].qdv[ds + 3u], work[wi].qdv[ds + 4u], work[wi].qdv[ds + 5u]) + cross(w, c);
    return FreeCom(c, v_c);
}

// Step 5 of integrate.rs (`euler_update`) in place on qv, qdv given qdd.
fn euler_update(dt: f32) {
    let half = 0.5;
    for (var k = 0u; k < p.nb; k++) {
        let qs = b_qs(k);
        let ds = b_ds(k);
        let kind = b_kind(k);
        var fc: FreeCom;
        if (kind == KIND_FREE) {
            fc = free_com(k, qs, ds);
        }
        for (var i = ds; i < ds + kind_dofs(kind); i++) {
            work[wi].qdv[i] = work[wi].qdv[i] + dt * work[wi].qdd[i];
        }
        switch kind {
            case 2u, 3u: {
                work[wi].qv[qs] = work[wi].qv[qs] + dt * work[wi].qdv[ds];
            }
            case 0u: {
                let com_local = b_com(k);
                let w_old = vec3<f32>(work[wi].qdv[ds] - dt * work[wi].qdd[ds], work[wi].qdv[ds + 1u] - dt * work[wi].qdd[ds + 1u], work[wi].qdv[ds + 2u] - dt * work[wi].qdd[ds + 2u]);
                let alpha = vec3<f32>(work[wi].qdd[ds], work[wi].qdd[ds + 1u], work[wi].qdd[ds + 2u]);
                let a_o = vec3<f32>(work[wi].qdd[ds + 3u], work[wi].qdd[ds + 4u], work[wi].qdd[ds + 5u]);
                let a_c = (a_o + cross(alpha, fc.c)) + cross(w_old, fc.v_c);
                let w = vec3<f32>(work[wi].qdv[ds], work[wi].qdv[ds + 1u], work[wi].qdv[ds + 2u]);
                let v_c = fc.v_c + a_c * dt;
                let c = fc.c + v_c * dt;
                let next = quat_step(quat_at(qs + 3u), w, dt * half);
                let x = c - quat_to_mat(next) * com_local;
                let v_o = v_c - cross(w, c);
                for (var i = 0u; i < 3u; i++) {
                    work[wi].qv[qs + i] = x[i];
                    work[wi].qdv[ds + 3u + i] = v_o[i];
                }
                for (var i = 0u; i < 4u; i++) {
                    work[wi].qv[qs + 3u + i] = next[i];
                }
            }
            case 4u: {
                let w = vec3<f32>(work[wi].qdv[ds], work[wi].qdv[ds + 1u], work[wi].qdv[ds + 2u]);
                let next = quat_step(quat_at(qs), w, dt * half);
                for (var i = 0u; i < 4u; i++) {
                    work[wi].qv[qs + i] = next[i];
                }
            }
            default: {}
        }
    }
}

// Adjoint of `euler_update` at the pre-step (qv, qdv, qdd): from the seeds q̄' (eq_bar) and
// q̇̄' (eqd_bar) to q̄ (eq_bar), q̇̄ (eqd_bar) and ā (qdd_bar), in place. This replaces the CPU's
// reverse-mode replay of the update; per kind, the module-doc equations in reverse.

fn euler_adjoint(dt: f32) {
    let h = dt * 0.5;
    for (var k = 0u; k < p.nb; k++) {
        let qs = b_qs(k);
        let ds = b_ds(k);
        let kind = b_kind(k);
        switch kind {
            case 2u, 3u: {
                // q̇' = q̇ + dt a, q' = q + dt q̇'.
                let vb = work[wi].eqd_bar[ds] + dt * work[wi].eq_bar[qs];
                work[wi].eqd_bar[ds] = vb;
                work[wi].qdd_bar[ds] = dt * vb;
            }
            case 4u: {
                // ω' = ω + dt α, quat' = quat_step(quat, ω').
                let w1 = vec3<f32>(work[wi].qdv[ds] + dt * work[wi].qdd[ds], work[wi].qdv[ds + 1u] + dt * work[wi].qdd[ds + 1u], work[wi].qdv[ds + 2u] + dt * work[wi].qdd[ds + 2u]);
                let g = quat_step_adjoint(quat_at(qs), w1, h, vec4<f32>(work[wi].eq_bar[qs], work[wi].eq_bar[qs + 1u], work[wi].eq_bar[qs + 2u], work[wi].eq_bar[qs + 3u]));
                for (var i = 0u; i < 4u; i++) {
                    work[wi].eq_bar[qs + i] = g.quat[i];
                }
                for (var i = 0u; i < 3u; i++) {
                    let wb = work[wi].eqd_bar[ds + i] + g.w[i];
                    work[wi].eqd_bar[ds + i] = wb;
                    work[wi].qdd_bar[ds + i] = dt * wb;
                }
            }
            case 0u: {
                // Forward quantities (as `euler_update`).
                let com_local = b_com(k);
                let quat = quat_at(qs + 3u);
                let fc = free_com(k, qs, ds);
                let w = vec3<f32>(work[wi].qdv[ds], work[wi].qdv[ds + 1u], work[wi].qdv[ds + 2u]);
                let alpha = vec3<f32>(work[wi].qdd[ds], work[wi].qdd[ds + 1u], work[wi].qdd[ds + 2u]);
                let a_o = vec3<f32>(work[wi].qdd[ds + 3u], work[wi].qdd[ds + 4u], work[wi].qdd[ds + 5u]);
                let w1 = w + alpha * dt;
                // w_old = w1 − dt α is w (its α-derivative cancels); the forward's value:
                let w_old = w1 - alpha * dt;
                let a_c = (a_o + cross(alpha, fc.c)) + cross(w_old, fc.v_c);
                let v_c1 = fc.v_c + a_c * dt;
                let c1 = fc.c + v_c1 * dt;
                let next = quat_step(quat, w1, h);
                // Seeds: x̄', n̄ (quaternion), ω̄', v̄_O'.
                let xb = vec3<f32>(work[wi].eq_bar[qs], work[wi].eq_bar[qs + 1u], work[wi].eq_bar[qs + 2u]);
                var nb = vec4<f32>(work[wi].eq_bar[qs + 3u], work[wi].eq_bar[qs + 4u], work[wi].eq_bar[qs + 5u], work[wi].eq_bar[qs + 6u]);
                var w1b = vec3<f32>(work[wi].eqd_bar[ds], work[wi].eqd_bar[ds + 1u], work[wi].eqd_bar[ds + 2u]);
                let vob = vec3<f32>(work[wi].eqd_bar[ds + 3u], work[wi].eqd_bar[ds + 4u], work[wi].eqd_bar[ds + 5u]);
                // v_O' = v_c' − ω' × c'.
                var vc1b = vob;
                w1b = w1b + cross(c1, -vob);
                var c1b = cross(-vob, w1);
                // x' = c' − R(next) c_local.
                c1b = c1b + xb;
                nb = nb + quat_to_mat_adjoint(next, outer(-xb, com_local));
                // next = quat_step(quat, ω').
                let g = quat_step_adjoint(quat, w1, h, nb);
                w1b = w1b + g.w;
                // c' = c + dt v_c'; v_c' = v_c + dt a_c.
                var cb = c1b;
                vc1b = vc1b + dt * c1b;
                var vcb = vc1b;
                let acb = dt * vc1b;
                // a_c = a_O + α × c + w_old × v_c.
                let aob = acb;
                var alb = cross(fc.c, acb);
                cb = cb + cross(acb, alpha);
                let wob = cross(fc.v_c, acb);
                vcb = vcb + cross(acb, w_old);
                // w_old = ω' − dt α; ω' = ω + dt α.
                w1b = w1b + wob;
                alb = alb - dt * wob;
                var wb = w1b;
                alb = alb + dt * w1b;
                // v_c = v_O + ω × c; c = x + R(quat) c_local.
                let vb = vcb;
                wb = wb + cross(fc.c, vcb);
                cb = cb + cross(vcb, w);
                let qb = g.quat + quat_to_mat_adjoint(quat, outer(cb, com_local));
                for (var i = 0u; i < 3u; i++) {
                    work[wi].eq_bar[qs + i] = cb[i];
                    work[wi].eqd_bar[ds + i] = wb[i];
                    work[wi].eqd_bar[ds + 3u + i] = vb[i];
                    work[wi].qdd_bar[ds + i] = alb[i];
                    work[wi].qdd_bar[ds + 3u + i] = aob[i];
                }
                for (var i = 0u; i < 4u; i++) {
                    work[wi].eq_bar[qs + 3u + i] = qb[i];
                }
            }
            default: {}
        }
    }
}

// `Dynamics::inverse_dynamics_adjoint`: adds (∂τ/∂(q, q̇, f_ext))ᵀ τ̄ at fixed qdd into q_bar,
// qd_bar and fext_bar (τ̄ in tau_bar). RNEA in reverse, then the body inertias and kinematics.

fn inverse_dynamics_adjoint() {
    rnea(true);
    clear_bars();
    for (var k = 0u; k < p.nb; k++) {
        let par = b_parent(k);
        var fb = v6_zero();
        if (par != WORLD) {
            fb = work[wi].k_fb[par];
        }
        let ds = b_ds(k);
        for (var i = ds; i < ds + kind_dofs(b_kind(k)); i++) {
            fb = v6_add(fb, v6_scale(work[wi].k_s[i], work[wi].tau_bar[i]));
            work[wi].b_s[i] = v6_add(work[wi].b_s[i], v6_scale(work[wi].k_force[k], work[wi].tau_bar[i]));
        }
        work[wi].k_fb[k] = fb;
    }
    // k_acc is reused for ā once a_k has been read.
    for (var k = 0u; k < p.nb; k++) {
        let inertia = work[wi].k_inertia[k];
        let v = work[wi].k_twist[k];
        let fb = work[wi].k_fb[k];
        let iv = spi_mul(inertia, v);
        let g = cross_force_adjoint(v, iv, fb);
        work[wi].b_twist[k] = v6_add(work[wi].b_twist[k], v6_add(g.a, spi_mul(inertia, g.b)));
        body_inertia_adjoint(k, fb, work[wi].k_acc[k], g.b, v);
        work[wi].k_acc[k] = spi_mul(inertia, fb);
        work[wi].fext_bar[k] = v6_sub(work[wi].fext_bar[k], fb);
    }
    for (var kk = 0u; kk < p.nb; kk++) {
        let k = p.nb - 1u - kk;
        let ab = work[wi].k_acc[k];
        work[wi].b_bias[k] = v6_add(work[wi].b_bias[k], ab);
        let ds = b_ds(k);
        for (var i = ds; i < ds + kind_dofs(b_kind(k)); i++) {
            work[wi].b_s[i] = v6_add(work[wi].b_s[i], v6_scale(ab, work[wi].qdd[i]));
        }
        let par = b_parent(k);
        if (par != WORLD) {
            work[wi].k_acc[par] = v6_add(work[wi].k_acc[par], ab);
        }
    }
    kinematics_adjoint();
}
