// The multi-body coupling (collider.rs `Bodies`, `Posed::project` / `project_adjoint`) for the
// transfer's grid kernels, and `couple`, the grid update's one entry point for either coupling.
// With BODIES, qcol is `body_pose` and qdcol `body_pose_next` ([NBODIES, 7] per env: position,
// quaternion xyzw at the substep's start and end) and slot 7 of each shape row is its body.
// BODIES, NBODIES, INV_DT (1/dt, rounded from f64 as on the CPU) and CULL_RANGE
// (ln(1/MIN_INFLUENCE) / softness) are constants prepended by mpm/gpu.rs.

// Rotation matrix (rows) of a unit quaternion (x, y, z, w), no normalization (spatial.rs
// `quat_to_mat`).
fn quat_mat(q: vec4<f32>) -> M3 {
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    return M3(
        array<f32, 3>(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w)),
        array<f32, 3>(2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w)),
        array<f32, 3>(2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y)),
    );
}

// q_bar = sum_ij R_bar_ij dR_ij/dq (spatial.rs `quat_to_mat_adjoint`).
fn quat_mat_vjp(q: vec4<f32>, r: M3) -> vec4<f32> {
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    return vec4<f32>(
        2.0 * (y * (r[0][1] + r[1][0]) + z * (r[0][2] + r[2][0]) + w * (r[2][1] - r[1][2])) - 4.0 * x * (r[1][1] + r[2][2]),
        2.0 * (x * (r[0][1] + r[1][0]) + z * (r[1][2] + r[2][1]) + w * (r[0][2] - r[2][0])) - 4.0 * y * (r[0][0] + r[2][2]),
        2.0 * (x * (r[0][2] + r[2][0]) + y * (r[1][2] + r[2][1]) + w * (r[1][0] - r[0][1])) - 4.0 * z * (r[0][0] + r[1][1]),
        2.0 * (x * (r[2][1] - r[1][2]) + y * (r[0][2] - r[2][0]) + z * (r[1][0] - r[0][1])),
    );
}

// R v and R^T v, summed in the CPU's order (collider.rs `Frame`).
fn m3_apply(r: M3, v: vec3<f32>) -> vec3<f32> {
    return vec3<f32>(
        r[0][0] * v.x + r[0][1] * v.y + r[0][2] * v.z,
        r[1][0] * v.x + r[1][1] * v.y + r[1][2] * v.z,
        r[2][0] * v.x + r[2][1] * v.y + r[2][2] * v.z,
    );
}

fn m3_apply_t(r: M3, v: vec3<f32>) -> vec3<f32> {
    return vec3<f32>(
        r[0][0] * v.x + r[1][0] * v.y + r[2][0] * v.z,
        r[0][1] * v.x + r[1][1] * v.y + r[2][1] * v.z,
        r[0][2] * v.x + r[1][2] * v.y + r[2][2] * v.z,
    );
}

// Pose row `b` of env e at the substep's start (qcol) or end (qdcol): (position, quaternion).
fn pose_start(e: u32, b: u32) -> array<vec4<f32>, 2> {
    let o = 7u * (NBODIES * e + b);
    return array<vec4<f32>, 2>(
        vec4<f32>(qcol[o], qcol[o + 1u], qcol[o + 2u], 0.0),
        vec4<f32>(qcol[o + 3u], qcol[o + 4u], qcol[o + 5u], qcol[o + 6u]),
    );
}

fn pose_end(e: u32, b: u32) -> array<vec4<f32>, 2> {
    let o = 7u * (NBODIES * e + b);
    return array<vec4<f32>, 2>(
        vec4<f32>(qdcol[o], qdcol[o + 1u], qdcol[o + 2u], 0.0),
        vec4<f32>(qdcol[o + 3u], qdcol[o + 4u], qdcol[o + 5u], qdcol[o + 6u]),
    );
}

// Radius of a sphere about the shape's centre that encloses it (collider.rs
// `Shape::bounding_sphere`).
fn bounding_radius(k: u32) -> f32 {
    let o = 8u * k;
    let kind = shapes[o];
    if (kind == 0.0) {
        return shapes[o + 4u] + shapes[o + 5u];
    } else if (kind == 1.0) {
        return sqrt(shapes[o + 4u] * shapes[o + 4u] + shapes[o + 5u] * shapes[o + 5u]);
    }
    let h = vec3<f32>(shapes[o + 4u], shapes[o + 5u], shapes[o + 6u]);
    return sqrt(dot(h, h));
}

// The nearest shape at node x among those whose inflated bounding sphere holds x
// (`PosedBodies::nearest`; a culled shape has d > CULL_RANGE there, so culling changes nothing):
// k = NO_SHAPE where none.
const NO_SHAPE: u32 = 0xffffffffu;

struct BodyHit {
    k: u32,
    l: vec3<f32>,
    sdf: Sdf,
}

fn bodies_nearest(x: vec3<f32>, e: u32) -> BodyHit {
    var best = BodyHit(NO_SHAPE, vec3<f32>(0.0), Sdf(0.0, vec3<f32>(0.0)));
    for (var k = 0u; k < p.nshapes; k++) {
        let b = u32(shapes[8u * k + 7u]);
        let ps = pose_start(e, b);
        let rot = quat_mat(ps[1]);
        let cw = m3_apply(rot, vec3<f32>(shapes[8u * k + 1u], shapes[8u * k + 2u], shapes[8u * k + 3u])) + ps[0].xyz;
        let rc = bounding_radius(k) + CULL_RANGE;
        let dc = x - cw;
        if (dot(dc, dc) > rc * rc) {
            continue;
        }
        let l = m3_apply_t(rot, x - ps[0].xyz);
        let sd = shape_sdf(k, l);
        if (best.k == NO_SHAPE || sd.d < best.sdf.d) {
            best = BodyHit(k, l, sd);
        }
    }
    return best;
}

// The body velocity at node x, v_b = (R1 l + p1 - x) / dt with l = R0^T (x - p0) (Rewarped's
// (X_next X^-1 x - x) / dt). `exact` false: that expression in f32, as the CPU's f32 forward
// evaluates it. `exact` true: ((R1 - R0) l + (p1 - p0) + (R0 R0^T - I)(x - p0)) / dt, the same
// function of the poses (R0 l = R0 R0^T (x - p0)) without the f32 round trip x -> l -> R0 l,
// whose rounding (~1e-7 at coordinates ~0.5) the first form divides by dt; the last term keeps
// what a not exactly unit quaternion contributes. The adjoint uses it, as the CPU evaluates the
// coupling's adjoint in f64: on random states its worst error against the CPU drops from
// 7.2e-3 to 2.5e-3 (99th percentile 5.6e-3 to 2.2e-3).
fn body_velocity(r0: M3, r1: M3, p0: vec3<f32>, p1: vec3<f32>, l: vec3<f32>, x: vec3<f32>, exact: bool) -> vec3<f32> {
    if (!exact) {
        return (m3_apply(r1, l) + p1 - x) * INV_DT;
    }
    var d = m3_zero();
    var g = m3_zero();
    for (var i = 0u; i < 3u; i++) {
        for (var j = 0u; j < 3u; j++) {
            d[i][j] = r1[i][j] - r0[i][j];
            g[i][j] = r0[i][0] * r0[j][0] + r0[i][1] * r0[j][1] + r0[i][2] * r0[j][2];
        }
        g[i][i] -= 1.0;
    }
    return (m3_apply(d, l) + (p1 - p0) + m3_apply(g, x - p0)) * INV_DT;
}

// ι of a node at signed distance d, or a negative value where the node is untouched.
fn influence_of(d: f32) -> f32 {
    if (d <= 0.0) {
        return 1.0;
    }
    let infl = min(exp(-d * p.softness), 1.0);
    return select(-1.0, infl, infl > MIN_INFLUENCE);
}

// Grid-node velocity at x after the bodies' boundary condition (`Posed::project`), given the
// node's nearest shape `hit` (`exact`: see `body_velocity`).
fn bodies_project_hit(hit: BodyHit, x: vec3<f32>, v: vec3<f32>, e: u32, exact: bool) -> vec3<f32> {
    if (hit.k == NO_SHAPE) {
        return v;
    }
    let infl = influence_of(hit.sdf.d);
    if (infl < 0.0) {
        return v;
    }
    let b = u32(shapes[8u * hit.k + 7u]);
    let ps = pose_start(e, b);
    let pe = pose_end(e, b);
    let r0 = quat_mat(ps[1]);
    let n = m3_apply(r0, hit.sdf.n);
    let vb = body_velocity(r0, quat_mat(pe[1]), ps[0].xyz, pe[0].xyz, hit.l, x, exact);
    return coulomb(v, vb, n, infl);
}

fn bodies_project(x: vec3<f32>, v: vec3<f32>, e: u32) -> vec3<f32> {
    return bodies_project_hit(bodies_nearest(x, e), x, v, e, false);
}

// Adjoint of `bodies_project_hit` at one node for the output adjoint ob (`project_adjoint`): v_bar,
// and the adjoints of the deciding body's start and end poses (7 each), `body` = NO_SHAPE where
// the node is untouched (then v_bar = ob).
struct BodiesBar {
    v: vec3<f32>,
    body: u32,
    start: array<f32, 7>,
    end: array<f32, 7>,
}

fn bodies_project_vjp(hit: BodyHit, x: vec3<f32>, v: vec3<f32>, e: u32, ob: vec3<f32>) -> BodiesBar {
    var out: BodiesBar;
    out.v = ob;
    out.body = NO_SHAPE;
    if (hit.k == NO_SHAPE) {
        return out;
    }
    let infl = influence_of(hit.sdf.d);
    if (infl < 0.0) {
        return out;
    }
    let b = u32(shapes[8u * hit.k + 7u]);
    let ps = pose_start(e, b);
    let pe = pose_end(e, b);
    let r0 = quat_mat(ps[1]);
    let r1 = quat_mat(pe[1]);
    let l = hit.l;
    let nl = hit.sdf.n;
    let n = m3_apply(r0, nl);
    let vb = body_velocity(r0, r1, ps[0].xyz, pe[0].xyz, l, x, true);
    let cb = coulomb_vjp(v, vb, n, infl, ob);
    out.v = cb.v;
    out.body = b;
    // vb = (R1 l + p1 - x) / dt (the function `body_velocity` evaluates; its adjoint is that
    // of this form).
    let wbar = cb.vb * INV_DT;
    var r1bar = m3_zero();
    var r0bar = m3_zero();
    for (var i = 0u; i < 3u; i++) {
        for (var k = 0u; k < 3u; k++) {
            r1bar[i][k] = wbar[i] * l[k];
            // n = R0 nl.
            r0bar[i][k] = cb.n[i] * nl[k];
        }
    }
    var lbar = m3_apply_t(r1, wbar);
    // infl = exp(-d softness) outside.
    var dbar = 0.0;
    if (hit.sdf.d > 0.0) {
        dbar = -p.softness * infl * cb.infl;
    }
    lbar += shape_sdf_vjp(hit.k, l, dbar, m3_apply_t(r0, cb.n));
    // l = R0^T (x - p0).
    let r = x - ps[0].xyz;
    for (var j = 0u; j < 3u; j++) {
        for (var k = 0u; k < 3u; k++) {
            r0bar[j][k] += r[j] * lbar[k];
        }
    }
    let pbar = -m3_apply(r0, lbar);
    let q0bar = quat_mat_vjp(ps[1], r0bar);
    let q1bar = quat_mat_vjp(pe[1], r1bar);
    out.start = array<f32, 7>(pbar.x, pbar.y, pbar.z, q0bar.x, q0bar.y, q0bar.z, q0bar.w);
    out.end = array<f32, 7>(wbar.x, wbar.y, wbar.z, q1bar.x, q1bar.y, q1bar.z, q1bar.w);
    return out;
}

// The grid update's coupling at node x of env e (either kind).
fn couple(x: vec3<f32>, v: vec3<f32>, e: u32) -> vec3<f32> {
    if (BODIES) {
        return bodies_project(x, v, e);
    }
    return collider_project(x, v, load_q(e), load_qd(e));
}
