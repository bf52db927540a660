// articulation.ground_contact: the per-shape wrench shared by the forward and the adjoint
// (contact.rs `Shapes::wrench` / `wrench_adjoint`, same formulas in f32).

// Whether shape s, centred at height y, is culled by its bounding sphere.
fn off_ground(s: u32, y: f32) -> bool {
    let sz = size_of(s);
    var reach: f32;
    switch shape_kind[s] {
        case SHAPE_SPHERE: { reach = sz.x; }
        case SHAPE_CAPSULE: { reach = sz.x + sz.y; }
        default: { reach = sqrt(sz.x * sz.x + sz.y * sz.y + sz.z * sz.z); }
    }
    return y > reach;
}

fn point_count(s: u32) -> u32 {
    switch shape_kind[s] {
        case SHAPE_SPHERE: { return 1u; }
        case SHAPE_CAPSULE: { return 2u; }
        case SHAPE_BOX: { return 8u; }
        default: { return 0u; }
    }
}

// Contact point i of shape s in its own frame (xyz) and its radius (w): a sphere's centre, a
// capsule's end-sphere centres (0, ±h, 0), a box's corners (radius 0).
fn local_point(s: u32, i: u32) -> vec4<f32> {
    let sz = size_of(s);
    switch shape_kind[s] {
        case SHAPE_SPHERE: { return vec4<f32>(0.0, 0.0, 0.0, sz.x); }
        case SHAPE_CAPSULE: {
            if (i == 0u) {
                return vec4<f32>(0.0, sz.y, 0.0, sz.x);
            }
            return vec4<f32>(0.0, -sz.y, 0.0, sz.x);
        }
        default: {
            let sgn = vec3<f32>(select(-1.0, 1.0, (i & 1u) == 1u), select(-1.0, 1.0, (i & 2u) == 2u), select(-1.0, 1.0, (i & 4u) == 4u));
            return vec4<f32>(sgn * sz, 0.0);
        }
    }
}

struct Wrench {
    on: bool,
    torque: vec3<f32>,
    force: vec3<f32>,
}

// The ground's spatial force (torque about the origin, force) on shape s of a body with position
// xb, rotation rot, twist (w, vo); on = false if no contact point pushes.
fn ground_wrench(s: u32, xb: vec3<f32>, rot: M3, w: vec3<f32>, vo: vec3<f32>) -> Wrench {
    var out = Wrench(false, vec3<f32>(0.0), vec3<f32>(0.0));
    let centre = xb + mat_vec(rot, pose_position(s));
    if (off_ground(s, centre.y)) {
        return out;
    }
    let srot = mat_mul(rot, pose_rotation(s));
    let c = contact_of(s);
    let up = vec3<f32>(0.0, 1.0, 0.0);
    for (var i = 0u; i < point_count(s); i++) {
        let l = local_point(s, i);
        let cp = centre + mat_vec(srot, l.xyz);
        let x = vec3<f32>(cp.x, cp.y - l.w, cp.z);
        let u = vo + cross3(w, x);
        let pf = penalty_force(l.w - cp.y, u, up, c);
        if (pf.on) {
            out.on = true;
            out.torque = out.torque + cross3(x, pf.f);
            out.force = out.force + pf.f;
        }
    }
    return out;
}

struct BodyBar {
    on: bool,
    x: vec3<f32>,
    q: vec4<f32>,
    w: vec3<f32>,
    vo: vec3<f32>,
}

// Adjoint of `ground_wrench` given the wrench's adjoint (n̄, f̄), contact.rs `wrench_adjoint`:
// per pushing point x̄ = f × n̄ + ū × ω, the penalty adjoint at f̄ + n̄ × x, v̄_O += ū,
// ω̄ += x × ū, c̄ = x̄ - p̄en ŷ into the centre and R̄_s += c̄ lᵀ; then R̄ = R̄_s R_pᵀ +
// centre̅ p_localᵀ and q̄ by `quat_to_mat_adjoint`.
fn ground_wrench_adjoint(s: u32, xb: vec3<f32>, q: vec4<f32>, w: vec3<f32>, vo: vec3<f32>, nb: vec3<f32>, fb: vec3<f32>) -> BodyBar {
    var out = BodyBar(false, vec3<f32>(0.0), vec4<f32>(0.0), vec3<f32>(0.0), vec3<f32>(0.0));
    let rot = quat_to_mat(q);
    let pl = pose_position(s);
    let centre = xb + mat_vec(rot, pl);
    if (off_ground(s, centre.y)) {
        return out;
    }
    let rp = pose_rotation(s);
    let srot = mat_mul(rot, rp);
    let c = contact_of(s);
    let up = vec3<f32>(0.0, 1.0, 0.0);
    var srot_bar = M3(vec3<f32>(0.0), vec3<f32>(0.0), vec3<f32>(0.0));
    for (var i = 0u; i < point_count(s); i++) {
        let l = local_point(s, i);
        let cp = centre + mat_vec(srot, l.xyz);
        let x = vec3<f32>(cp.x, cp.y - l.w, cp.z);
        let u = vo + cross3(w, x);
        let pen = l.w - cp.y;
        let pf = penalty_force(pen, u, up, c);
        if (!pf.on) {
            continue;
        }
        out.on = true;
        let pb = penalty_adjoint(pen, u, up, c, fb + cross3(nb, x));
        out.vo = out.vo + pb.u;
        out.w = out.w + cross3(x, pb.u);
        let x_bar = cross3(pf.f, nb) + cross3(pb.u, w);
        let c_bar = vec3<f32>(x_bar.x, x_bar.y - pb.pen, x_bar.z);
        out.x = out.x + c_bar;
        srot_bar = m3_add(srot_bar, outer(c_bar, l.xyz));
    }
    if (out.on) {
        let rot_bar = m3_add(mat_mul(srot_bar, transpose3(rp)), outer(out.x, pl));
        out.q = quat_to_mat_adjoint(q, rot_bar);
    }
    return out;
}
