// mpm.kinematic_fk (kinematic.rs), one invocation per env: body_pose = FK(q) and
// body_pose_next = FK(q + dt qd). `tree` rows of 12 floats: row 0 the base (position, rotation
// xyzw), row 1 + k joint k (parent or -1, offset xyz, rotation xyzw, axis xyz, 0). NJ (the
// joints) is a constant prepended by kinematic_gpu.rs. FK per joint k with parent frame
// (p_par, q_par): p_k = p_par + R(q_par) o_k, q_k = (q_par (x) r_k) (x) (sin(th/2) a_k, cos(th/2)).
// The adjoint recomputes the poses and runs the chain rule back from the leaves to the base
// (parents precede children); the pose adjoints are consumed.
@group(0) @binding(0) var<storage, read> qcol: array<f32>;
@group(0) @binding(1) var<storage, read> qdcol: array<f32>;
@group(0) @binding(2) var<storage, read_write> pose0: array<f32>;
@group(0) @binding(3) var<storage, read_write> pose1: array<f32>;
@group(0) @binding(4) var<storage, read> tree: array<f32>;
@group(0) @binding(5) var<storage, read_write> aq: array<f32>;
@group(0) @binding(6) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(7) var<uniform> p: KinParams;

fn row_vec3(o: u32) -> vec3<f32> {
    return vec3<f32>(tree[o], tree[o + 1u], tree[o + 2u]);
}

fn row_vec4(o: u32) -> vec4<f32> {
    return vec4<f32>(tree[o], tree[o + 1u], tree[o + 2u], tree[o + 3u]);
}

struct Poses {
    pos: array<vec3<f32>, NJ>,
    rot: array<vec4<f32>, NJ>,
}

// The hinge of joint k at angle th: (sin(th/2) a, cos(th/2)).
fn hinge(k: u32, th: f32) -> vec4<f32> {
    let h = th * 0.5;
    let s = sin(h);
    let a = row_vec3(12u * (1u + k) + 8u);
    return vec4<f32>(a.x * s, a.y * s, a.z * s, cos(h));
}

// Parent frame of joint k in `ps` (the base for a root joint).
fn parent_pos(ps: ptr<function, Poses>, k: u32) -> vec3<f32> {
    let par = tree[12u * (1u + k)];
    if (par < 0.0) {
        return row_vec3(0u);
    }
    return (*ps).pos[u32(par)];
}

fn parent_rot(ps: ptr<function, Poses>, k: u32) -> vec4<f32> {
    let par = tree[12u * (1u + k)];
    if (par < 0.0) {
        return row_vec4(3u);
    }
    return (*ps).rot[u32(par)];
}

fn fk(e: u32, next: bool) -> Poses {
    var ps: Poses;
    for (var k = 0u; k < NJ; k++) {
        let i = NJ * e + k;
        var th = qcol[i];
        if (next) {
            th = qcol[i] + p.dt * qdcol[i];
        }
        let o = 12u * (1u + k);
        let pp = parent_pos(&ps, k);
        let qp = parent_rot(&ps, k);
        ps.pos[k] = pp + quat_rotate(qp, row_vec3(o + 1u));
        ps.rot[k] = quat_mul(quat_mul(qp, row_vec4(o + 4u)), hinge(k, th));
    }
    return ps;
}

@compute @workgroup_size(64)
fn fk_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.envs) {
        return;
    }
    for (var pass_ = 0u; pass_ < 2u; pass_++) {
        let ps = fk(e, pass_ == 1u);
        for (var k = 0u; k < NJ; k++) {
            let o = 7u * (NJ * e + k);
            let v = array<f32, 7>(ps.pos[k].x, ps.pos[k].y, ps.pos[k].z, ps.rot[k].x, ps.rot[k].y, ps.rot[k].z, ps.rot[k].w);
            for (var c = 0u; c < 7u; c++) {
                if (pass_ == 0u) {
                    pose0[o + c] = v[c];
                } else {
                    pose1[o + c] = v[c];
                }
            }
        }
    }
}

// Bound with pose0 / pose1 = the adjoints of body_pose / body_pose_next (read, then zeroed).
@compute @workgroup_size(64)
fn fk_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.envs) {
        return;
    }
    for (var pass_ = 0u; pass_ < 2u; pass_++) {
        var ps = fk(e, pass_ == 1u);
        var bar: Poses;
        for (var k = 0u; k < NJ; k++) {
            let o = 7u * (NJ * e + k);
            if (pass_ == 0u) {
                bar.pos[k] = vec3<f32>(pose0[o], pose0[o + 1u], pose0[o + 2u]);
                bar.rot[k] = vec4<f32>(pose0[o + 3u], pose0[o + 4u], pose0[o + 5u], pose0[o + 6u]);
            } else {
                bar.pos[k] = vec3<f32>(pose1[o], pose1[o + 1u], pose1[o + 2u]);
                bar.rot[k] = vec4<f32>(pose1[o + 3u], pose1[o + 4u], pose1[o + 5u], pose1[o + 6u]);
            }
        }
        for (var kk = 0u; kk < NJ; kk++) {
            let k = NJ - 1u - kk;
            let i = NJ * e + k;
            var th = qcol[i];
            if (pass_ == 1u) {
                th = qcol[i] + p.dt * qdcol[i];
            }
            let o = 12u * (1u + k);
            let qp = parent_rot(&ps, k);
            let r = row_vec4(o + 4u);
            let a = quat_mul(qp, r);
            let h = hinge(k, th);
            // q_k = a (x) h, a = q_par (x) r.
            let hbar = quat_mul_vjp_b(a, bar.rot[k]);
            let abar = quat_mul_vjp_a(h, bar.rot[k]);
            var qpbar = quat_mul_vjp_a(r, abar);
            // h = (sin(th/2) axis, cos(th/2)).
            let ax = row_vec3(o + 8u);
            let c = 0.5 * cos(th * 0.5);
            let s = 0.5 * sin(th * 0.5);
            let thbar = c * (ax.x * hbar.x + ax.y * hbar.y + ax.z * hbar.z) - s * hbar.w;
            // p_k = p_par + R(q_par) o_k.
            qpbar += quat_rotate_vjp(qp, row_vec3(o + 1u), bar.pos[k]);
            let par = tree[o];
            if (par >= 0.0) {
                let pi = u32(par);
                bar.pos[pi] += bar.pos[k];
                bar.rot[pi] += qpbar;
            }
            aq[i] += thbar;
            if (pass_ == 1u) {
                aqd[i] += p.dt * thbar;
            }
        }
    }
    for (var k = 0u; k < 7u * NJ; k++) {
        pose0[7u * NJ * e + k] = 0.0;
        pose1[7u * NJ * e + k] = 0.0;
    }
}
