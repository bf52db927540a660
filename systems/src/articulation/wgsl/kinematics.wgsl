// Forward kinematics of one env's articulations and its adjoint (articulation/kinematics.rs,
// line by line in f32): poses, twists, velocity products Ṡ q̇ and motion subspaces S of every
// body and dof, into the env's scratch row work[wi] (k_rot, k_pos, k_twist, k_bias, k_s from
// qv, qdv); the adjoint pulls ∂L/∂ of those (b_rot, b_pos, b_twist, b_bias, b_s) back into
// (q_bar, qd_bar).


// Adjoints of the kinematic quantities (inputs of `kinematics_adjoint`, also its scratch) and
// its outputs q̄, q̇̄.

const IDENT: mat3x3<f32> = mat3x3<f32>(vec3<f32>(1.0, 0.0, 0.0), vec3<f32>(0.0, 1.0, 0.0), vec3<f32>(0.0, 0.0, 1.0));

fn quat_at(i: u32) -> vec4<f32> {
    return vec4<f32>(work[wi].qv[i], work[wi].qv[i + 1u], work[wi].qv[i + 2u], work[wi].qv[i + 3u]);
}

// S q̇ of body k's joint.
fn joint_velocity(k: u32) -> V6 {
    let ds = b_ds(k);
    var sqd = v6_zero();
    for (var i = 0u; i < kind_dofs(b_kind(k)); i++) {
        sqd = v6_add(sqd, v6_scale(work[wi].k_s[ds + i], work[wi].qdv[ds + i]));
    }
    return sqd;
}

// `kinematics::kinematics_into` on (qv, qdv).
fn kinematics() {
    for (var k = 0u; k < p.nb; k++) {
        let par = b_parent(k);
        var rp = IDENT;
        var xp = vec3<f32>(0.0);
        var vp = v6_zero();
        if (par != WORLD) {
            rp = work[wi].k_rot[par];
            xp = work[wi].k_pos[par];
            vp = work[wi].k_twist[par];
        }
        let r = xp + rp * b_parent_anchor(k);
        let ac = b_child_anchor(k);
        let qs = b_qs(k);
        let ds = b_ds(k);
        let u = b_axis(k);
        let uw = rp * u;
        let kind = b_kind(k);
        var rot = rp;
        var pos = r - rp * ac;
        switch kind {
            case 0u: {
                for (var i = 0u; i < 6u; i++) {
                    work[wi].k_s[ds + i] = v6_unit(i);
                }
                rot = quat_to_mat(quat_at(qs + 3u));
                pos = vec3<f32>(work[wi].qv[qs], work[wi].qv[qs + 1u], work[wi].qv[qs + 2u]);
            }
            case 2u: {
                rot = rp * quat_to_mat(axis_angle_quat(u, work[wi].qv[qs]));
                work[wi].k_s[ds] = V6(uw, cross(r, uw));
                pos = r - rot * ac;
            }
            case 3u: {
                work[wi].k_s[ds] = V6(vec3<f32>(0.0), uw);
                pos = (r + uw * work[wi].qv[qs]) - rp * ac;
            }
            case 4u: {
                rot = rp * quat_to_mat(quat_at(qs));
                for (var i = 0u; i < 3u; i++) {
                    let e = rp[i];
                    work[wi].k_s[ds + i] = V6(e, cross(r, e));
                }
                pos = r - rot * ac;
            }
            default: {}
        }
        work[wi].k_rot[k] = rot;
        work[wi].k_pos[k] = pos;
        let sqd = joint_velocity(k);
        work[wi].k_twist[k] = v6_add(vp, sqd);
        if (kind == KIND_FREE) {
            work[wi].k_bias[k] = v6_zero();
        } else {
            work[wi].k_bias[k] = cross_motion(vp, sqd);
        }
    }
}

// World spatial inertia of body k (`kinematics::body_inertia`).
fn body_inertia(k: u32) -> SpI {
    let rot = work[wi].k_rot[k];
    let c = work[wi].k_pos[k] + rot * b_com(k);
    let ic = (rot * b_inertia(k)) * transpose(rot);
    return spatial_inertia(b_mass(k), c, ic);
}

fn clear_bars() {
    for (var k = 0u; k < p.nb; k++) {
        work[wi].b_rot[k] = mat3x3<f32>();
        work[wi].b_pos[k] = vec3<f32>(0.0);
        work[wi].b_twist[k] = v6_zero();
        work[wi].b_bias[k] = v6_zero();
    }
    for (var i = 0u; i < p.nd; i++) {
        work[wi].b_s[i] = v6_zero();
        work[wi].qd_bar[i] = 0.0;
    }
    for (var i = 0u; i < p.nq; i++) {
        work[wi].q_bar[i] = 0.0;
    }
}

// `kinematics::body_inertia_adjoint` with Ī = f̄ aᵀ + ī vᵀ (the only form RNEA's adjoint
// produces): only the blocks TL, TR, BL of Ī are needed.
fn body_inertia_adjoint(k: u32, fb: V6, a: V6, ivb: V6, v: V6) {
    let rot = work[wi].k_rot[k];
    let com = b_com(k);
    let c = work[wi].k_pos[k] + rot * com;
    let mass = b_mass(k);
    let tl = outer(fb.w, a.w) + outer(ivb.w, v.w);
    let tr = outer(fb.w, a.v) + outer(ivb.w, v.v);
    let bl = outer(fb.v, a.w) + outer(ivb.v, v.w);
    let p_bar = -mass * tl;
    let cxt = transpose(skew(c));
    let cx_bar = mass * (tr - bl) + p_bar * cxt + cxt * p_bar;
    let c_bar = vec3<f32>(cx_bar[1][2] - cx_bar[2][1], cx_bar[2][0] - cx_bar[0][2], cx_bar[0][1] - cx_bar[1][0]);
    let sym = tl + transpose(tl);
    work[wi].b_rot[k] = work[wi].b_rot[k] + (sym * rot) * b_inertia(k) + outer(c_bar, com);
    work[wi].b_pos[k] = work[wi].b_pos[k] + c_bar;
}

// `kinematics::kinematics_adjoint`: bodies in reverse, each passing (R̄_p, x̄_p, v̄_p) to its
// parent; adds into q_bar, qd_bar.
fn kinematics_adjoint() {
    for (var kk = 0u; kk < p.nb; kk++) {
        let k = p.nb - 1u - kk;
        let par = b_parent(k);
        var rp = IDENT;
        var xp = vec3<f32>(0.0);
        var vp = v6_zero();
        if (par != WORLD) {
            rp = work[wi].k_rot[par];
            xp = work[wi].k_pos[par];
            vp = work[wi].k_twist[par];
        }
        let ap = b_parent_anchor(k);
        let ac = b_child_anchor(k);
        let r = xp + rp * ap;
        let u = b_axis(k);
        let uw = rp * u;
        let qs = b_qs(k);
        let ds = b_ds(k);
        let kind = b_kind(k);
        let nd = kind_dofs(kind);
        let rot_bar = work[wi].b_rot[k];
        let pos_bar = work[wi].b_pos[k];
        let twist_bar = work[wi].b_twist[k];
        var rp_bar = mat3x3<f32>();
        var r_bar = vec3<f32>(0.0);
        var uw_bar = vec3<f32>(0.0);
        var vp_bar = twist_bar;
        var sqd_bar = twist_bar;
        if (kind != KIND_FREE) {
            let g = cross_motion_adjoint(vp, joint_velocity(k), work[wi].b_bias[k]);
            vp_bar = v6_add(vp_bar, g.a);
            sqd_bar = v6_add(sqd_bar, g.b);
        }
        for (var i = 0u; i < nd; i++) {
            work[wi].b_s[ds + i] = v6_add(work[wi].b_s[ds + i], v6_scale(sqd_bar, work[wi].qdv[ds + i]));
            work[wi].qd_bar[ds + i] = work[wi].qd_bar[ds + i] + v6_dot(work[wi].k_s[ds + i], sqd_bar);
        }
        switch kind {
            case 0u: {
                for (var i = 0u; i < 3u; i++) {
                    work[wi].q_bar[qs + i] = work[wi].q_bar[qs + i] + pos_bar[i];
                }
                let g = quat_to_mat_adjoint(quat_at(qs + 3u), rot_bar);
                for (var i = 0u; i < 4u; i++) {
                    work[wi].q_bar[qs + 3u + i] = work[wi].q_bar[qs + 3u + i] + g[i];
                }
            }
            case 2u: {
                // x = r − R a_c; S = (u_w, r × u_w); R = R_p A(θ).
                let rb = rot_bar - outer(pos_bar, ac);
                r_bar = r_bar + pos_bar;
                let sb = work[wi].b_s[ds];
                uw_bar = uw_bar + sb.w;
                r_bar = r_bar + cross(uw, sb.v);
                uw_bar = uw_bar + cross(sb.v, r);
                let qa = axis_angle_quat(u, work[wi].qv[qs]);
                rp_bar = rp_bar + rb * transpose(quat_to_mat(qa));
                let a_bar = transpose(rp) * rb;
                // dA/dθ through the quaternion (u sin θ/2, cos θ/2).
                let g = quat_to_mat_adjoint(qa, a_bar);
                let h = 0.5 * work[wi].qv[qs];
                work[wi].q_bar[qs] = work[wi].q_bar[qs] + 0.5 * (dot(g.xyz, u) * cos(h) - g.w * sin(h));
            }
            case 3u: {
                // x = r + q u_w − R_p a_c; S = (0, u_w); R = R_p.
                rp_bar = rp_bar + rot_bar - outer(pos_bar, ac);
                r_bar = r_bar + pos_bar;
                uw_bar = uw_bar + pos_bar * work[wi].qv[qs] + work[wi].b_s[ds].v;
                work[wi].q_bar[qs] = work[wi].q_bar[qs] + dot(uw, pos_bar);
            }
            case 4u: {
                // x = r − R a_c; S_i = (e_i, r × e_i), e_i = column i of R_p; R = R_p R(quat).
                let rb = rot_bar - outer(pos_bar, ac);
                r_bar = r_bar + pos_bar;
                for (var i = 0u; i < 3u; i++) {
                    let e = rp[i];
                    let sb = work[wi].b_s[ds + i];
                    r_bar = r_bar + cross(e, sb.v);
                    rp_bar[i] = rp_bar[i] + sb.w + cross(sb.v, r);
                }
                let quat = quat_at(qs);
                rp_bar = rp_bar + rb * transpose(quat_to_mat(quat));
                let g = quat_to_mat_adjoint(quat, transpose(rp) * rb);
                for (var i = 0u; i < 4u; i++) {
                    work[wi].q_bar[qs + i] = work[wi].q_bar[qs + i] + g[i];
                }
            }
            default: {
                // Fixed: R = R_p, x = r − R_p a_c.
                rp_bar = rp_bar + rot_bar - outer(pos_bar, ac);
                r_bar = r_bar + pos_bar;
            }
        }
        if (par == WORLD) {
            continue;
        }
        // u_w = R_p u, r = x_p + R_p a_p.
        rp_bar = rp_bar + outer(uw_bar, u) + outer(r_bar, ap);
        work[wi].b_rot[par] = work[wi].b_rot[par] + rp_bar;
        work[wi].b_pos[par] = work[wi].b_pos[par] + r_bar;
        work[wi].b_twist[par] = v6_add(work[wi].b_twist[par], vp_bar);
    }
}
