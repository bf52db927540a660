// Shared by the ant_run / torso kernels (ant_run_gpu.rs): the uniform block (`TorsoParams`, laid
// out by encase), the torso's kinematics (torso.rs `torso`, `heading_to_target`) in the CPU's
// order of f32 operations, and their adjoints.
struct Params {
    // Envs.
    n: u32,
    // Bodies per env (the torso is body 0 of each env).
    nb: u32,
    // x of the far target (ant_run::TARGET_X).
    target_x: f32,
    // ant_run::TERMINATION_HEIGHT (reward), or the smallest f32 >= the height (terminate).
    height: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

struct Torso {
    p: vec3<f32>,
    quat: vec4<f32>,
    rot: M3,
    w: vec3<f32>,
    // Velocity of the torso origin v_O + ω × p.
    v: vec3<f32>,
}

fn torso_of(p: vec3<f32>, quat: vec4<f32>, w: vec3<f32>, vo: vec3<f32>) -> Torso {
    return Torso(p, quat, quat_to_mat(quat), w, vo + cross3(w, p));
}

// heading · (unit vector from the torso to (target_x, ·, 0) in the ground plane).
fn heading(t: Torso, target_x: f32) -> f32 {
    let to = vec3<f32>(target_x - t.p.x, 0.0, -t.p.z);
    let hd = vec3<f32>(t.rot.r0.x, t.rot.r1.x, t.rot.r2.x);
    return dot3(hd, to) / sqrt(dot3(to, to));
}

// Adjoints of a torso's outputs (p, quat, rot, w, v), pulled back to the body's pose and twist.
struct TorsoBar {
    p: vec3<f32>,
    quat: vec4<f32>,
    rot: M3,
    w: vec3<f32>,
    v: vec3<f32>,
}

fn torso_bar() -> TorsoBar {
    return TorsoBar(vec3<f32>(0.0), vec4<f32>(0.0), M3(vec3<f32>(0.0), vec3<f32>(0.0), vec3<f32>(0.0)), vec3<f32>(0.0), vec3<f32>(0.0));
}

// h = hd·to/|to|: hd̄ = h̄ to/|to| into the rotation's column 0; to̅ = h̄ (hd − h to/|to|)/|to|
// into p (to = (X − p_x, 0, −p_z)).
fn heading_adjoint(t: Torso, target_x: f32, h_bar: f32, bar: ptr<function, TorsoBar>) {
    let to = vec3<f32>(target_x - t.p.x, 0.0, -t.p.z);
    let hd = vec3<f32>(t.rot.r0.x, t.rot.r1.x, t.rot.r2.x);
    let len = sqrt(dot3(to, to));
    let h = dot3(hd, to) / len;
    let hd_bar = to * (h_bar / len);
    (*bar).rot.r0.x += hd_bar.x;
    (*bar).rot.r1.x += hd_bar.y;
    (*bar).rot.r2.x += hd_bar.z;
    let to_bar = (hd - to * (h / len)) * (h_bar / len);
    (*bar).p.x -= to_bar.x;
    (*bar).p.z -= to_bar.z;
}

struct BodyBar {
    p: vec3<f32>,
    quat: vec4<f32>,
    w: vec3<f32>,
    vo: vec3<f32>,
}

// v = v_O + ω × p: v̄_O = v̄, ω̄ += p × v̄, p̄ += v̄ × ω; q̄ += quat_to_mat_adjoint(R̄).
fn torso_adjoint(t: Torso, bar: TorsoBar) -> BodyBar {
    return BodyBar(bar.p + cross3(bar.v, t.w), bar.quat + quat_to_mat_adjoint(t.quat, bar.rot), bar.w + cross3(t.p, bar.v), bar.v);
}
