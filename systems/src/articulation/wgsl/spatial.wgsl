// Spatial algebra in f32 (the WGSL side of articulation/spatial.rs and the small adjoints of
// kinematics.rs): motion vectors (ω, v_O) and force vectors (n_O, f) at the world origin as `V6`,
// 3×3 matrices as WGSL mat3x3 holding the mathematical matrix (element (i, j) is m[j][i], so
// `m * v` is the usual product), quaternions as vec4 (x, y, z, w).

struct V6 {
    w: vec3<f32>,
    v: vec3<f32>,
}

fn v6_zero() -> V6 {
    return V6(vec3<f32>(0.0), vec3<f32>(0.0));
}
fn v6_add(a: V6, b: V6) -> V6 {
    return V6(a.w + b.w, a.v + b.v);
}
fn v6_sub(a: V6, b: V6) -> V6 {
    return V6(a.w - b.w, a.v - b.v);
}
fn v6_scale(a: V6, s: f32) -> V6 {
    return V6(a.w * s, a.v * s);
}
fn v6_dot(a: V6, b: V6) -> f32 {
    return a.w.x * b.w.x + a.w.y * b.w.y + a.w.z * b.w.z + a.v.x * b.v.x + a.v.y * b.v.y + a.v.z * b.v.z;
}
// Unit motion vector along coordinate i (0..6).
fn v6_unit(i: u32) -> V6 {
    var o = v6_zero();
    if (i < 3u) {
        o.w[i] = 1.0;
    } else {
        o.v[i - 3u] = 1.0;
    }
    return o;
}

// Spatial motion cross product m ×ₘ u (Featherstone eq. 2.31).
fn cross_motion(m: V6, u: V6) -> V6 {
    return V6(cross(m.w, u.w), cross(m.w, u.v) + cross(m.v, u.w));
}
// Spatial force cross product m ×* f (eq. 2.32).
fn cross_force(m: V6, f: V6) -> V6 {
    return V6(cross(m.w, f.w) + cross(m.v, f.v), cross(m.w, f.v));
}

// Adjoints of the spatial cross products: g = m ×ₘ u (or m ×* f) with ḡ → (m̄, ū). Each
// c = a × b contributes ā += b × c̄, b̄ += c̄ × a.
struct Pair6 {
    a: V6,
    b: V6,
}
fn cross_motion_adjoint(m: V6, u: V6, g: V6) -> Pair6 {
    let w_b = cross(u.w, g.w) + cross(u.v, g.v);
    let v_b = cross(u.w, g.v);
    let uw_b = cross(g.w, m.w) + cross(g.v, m.v);
    let uv_b = cross(g.v, m.w);
    return Pair6(V6(w_b, v_b), V6(uw_b, uv_b));
}
fn cross_force_adjoint(m: V6, f: V6, g: V6) -> Pair6 {
    let w_b = cross(f.w, g.w) + cross(f.v, g.v);
    let v_b = cross(f.v, g.w);
    let n_b = cross(g.w, m.w);
    let fl_b = cross(g.w, m.v) + cross(g.v, m.w);
    return Pair6(V6(w_b, v_b), V6(n_b, fl_b));
}

// a bᵀ.
fn outer(a: vec3<f32>, b: vec3<f32>) -> mat3x3<f32> {
    return mat3x3<f32>(a * b.x, a * b.y, a * b.z);
}
// [c]× with [c]× v = c × v.
fn skew(c: vec3<f32>) -> mat3x3<f32> {
    return mat3x3<f32>(vec3<f32>(0.0, c.z, -c.y), vec3<f32>(-c.z, 0.0, c.x), vec3<f32>(c.y, -c.x, 0.0));
}

// Hamilton product of (x, y, z, w) quaternions.
fn quat_mul(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
        a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
        a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
        a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
    );
}
fn quat_conj(a: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(-a.x, -a.y, -a.z, a.w);
}
fn quat_normalize(q: vec4<f32>) -> vec4<f32> {
    let n = sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
    return q / n;
}

// Rotation matrix of a unit quaternion (`spatial::quat_to_mat`).
fn quat_to_mat(q: vec4<f32>) -> mat3x3<f32> {
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    return mat3x3<f32>(
        vec3<f32>(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + z * w), 2.0 * (x * z - y * w)),
        vec3<f32>(2.0 * (x * y - z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + x * w)),
        vec3<f32>(2.0 * (x * z + y * w), 2.0 * (y * z - x * w), 1.0 - 2.0 * (x * x + y * y)),
    );
}
// q̄ = Σ R̄_ij ∂R_ij/∂q (`spatial::quat_to_mat_adjoint`).
fn quat_to_mat_adjoint(q: vec4<f32>, r: mat3x3<f32>) -> vec4<f32> {
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    // r_ij of the mathematical matrix.
    let r00 = r[0][0];
    let r01 = r[1][0];
    let r02 = r[2][0];
    let r10 = r[0][1];
    let r11 = r[1][1];
    let r12 = r[2][1];
    let r20 = r[0][2];
    let r21 = r[1][2];
    let r22 = r[2][2];
    return vec4<f32>(
        2.0 * (y * (r01 + r10) + z * (r02 + r20) + w * (r21 - r12)) - 4.0 * x * (r11 + r22),
        2.0 * (x * (r01 + r10) + z * (r12 + r21) + w * (r02 - r20)) - 4.0 * y * (r00 + r22),
        2.0 * (x * (r02 + r20) + y * (r12 + r21) + w * (r10 - r01)) - 4.0 * z * (r00 + r11),
        2.0 * (x * (r21 - r12) + y * (r02 - r20) + z * (r10 - r01)),
    );
}

// Quaternion of the rotation by `angle` about the unit `axis` (`spatial::axis_angle` goes
// through it).
fn axis_angle_quat(axis: vec3<f32>, angle: f32) -> vec4<f32> {
    let h = angle * 0.5;
    return vec4<f32>(axis * sin(h), cos(h));
}

// Spatial inertia at the world origin, compactly: [[tl, [h]×], [−[h]×, m 1]] with h = m c
// (`spatial::spatial_inertia`; composite inertias keep this form).
struct SpI {
    tl: mat3x3<f32>,
    h: vec3<f32>,
    m: f32,
}
fn spi_mul(a: SpI, x: V6) -> V6 {
    return V6(a.tl * x.w + cross(a.h, x.v), a.m * x.v - cross(a.h, x.w));
}
fn spi_add(a: SpI, b: SpI) -> SpI {
    return SpI(a.tl + b.tl, a.h + b.h, a.m + b.m);
}
fn spatial_inertia(m: f32, c: vec3<f32>, ic: mat3x3<f32>) -> SpI {
    let cx = skew(c);
    return SpI(ic - m * (cx * cx), m * c, m);
}

// Quaternion (x, y, z, w) of a rotation matrix by Shepperd's method (`fk::mat_to_quat`): the
// branch of the largest of (trace, m00, m11, m22), the last one on ties as Rust's `max_by`.
fn mat_to_quat_branch(m: mat3x3<f32>) -> u32 {
    let t = vec4<f32>(m[0][0] + m[1][1] + m[2][2], m[0][0], m[1][1], m[2][2]);
    var best = 0u;
    for (var i = 1u; i < 4u; i++) {
        if (t[i] >= t[best]) {
            best = i;
        }
    }
    return best;
}
fn mat_to_quat(m: mat3x3<f32>) -> vec4<f32> {
    let m00 = m[0][0];
    let m01 = m[1][0];
    let m02 = m[2][0];
    let m10 = m[0][1];
    let m11 = m[1][1];
    let m12 = m[2][1];
    let m20 = m[0][2];
    let m21 = m[1][2];
    let m22 = m[2][2];
    switch mat_to_quat_branch(m) {
        case 0u: {
            let s = sqrt(1.0 + (m00 + m11 + m22)) * 2.0;
            return vec4<f32>((m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s, s * 0.25);
        }
        case 1u: {
            let s = sqrt(1.0 + m00 - m11 - m22) * 2.0;
            return vec4<f32>(s * 0.25, (m01 + m10) / s, (m02 + m20) / s, (m21 - m12) / s);
        }
        case 2u: {
            let s = sqrt(1.0 + m11 - m00 - m22) * 2.0;
            return vec4<f32>((m01 + m10) / s, s * 0.25, (m12 + m21) / s, (m02 - m20) / s);
        }
        default: {
            let s = sqrt(1.0 + m22 - m00 - m11) * 2.0;
            return vec4<f32>((m02 + m20) / s, (m12 + m21) / s, s * 0.25, (m10 - m01) / s);
        }
    }
}
// Adjoint of `mat_to_quat` on the forward's branch: q̄ → M̄. With s = 2 √(1 + ±m00 ± m11 ± m22)
// (the signs of the branch), ∂s/∂m_ii = ±2/s, and each quotient n/s gives n̄ = q̄/s,
// s̄ −= q̄ n/s².
fn mat_to_quat_adjoint(m: mat3x3<f32>, qb: vec4<f32>) -> mat3x3<f32> {
    let m00 = m[0][0];
    let m01 = m[1][0];
    let m02 = m[2][0];
    let m10 = m[0][1];
    let m11 = m[1][1];
    let m12 = m[2][1];
    let m20 = m[0][2];
    let m21 = m[1][2];
    let m22 = m[2][2];
    // b[3 i + j] = M̄_ij.
    var b: array<f32, 9>;
    switch mat_to_quat_branch(m) {
        case 0u: {
            let s = sqrt(1.0 + (m00 + m11 + m22)) * 2.0;
            let n = vec3<f32>(m21 - m12, m02 - m20, m10 - m01);
            let sb = 0.25 * qb.w - dot(qb.xyz, n) / (s * s);
            let d = sb * 2.0 / s;
            b[0] = d;
            b[4] = d;
            b[8] = d;
            b[7] = qb.x / s;
            b[5] = -qb.x / s;
            b[2] = qb.y / s;
            b[6] = -qb.y / s;
            b[3] = qb.z / s;
            b[1] = -qb.z / s;
        }
        case 1u: {
            let s = sqrt(1.0 + m00 - m11 - m22) * 2.0;
            let n = vec3<f32>(m01 + m10, m02 + m20, m21 - m12);
            let sb = 0.25 * qb.x - dot(qb.yzw, n) / (s * s);
            let d = sb * 2.0 / s;
            b[0] = d;
            b[4] = -d;
            b[8] = -d;
            b[1] = qb.y / s;
            b[3] = qb.y / s;
            b[2] = qb.z / s;
            b[6] = qb.z / s;
            b[7] = qb.w / s;
            b[5] = -qb.w / s;
        }
        case 2u: {
            let s = sqrt(1.0 + m11 - m00 - m22) * 2.0;
            let n = vec3<f32>(m01 + m10, m12 + m21, m02 - m20);
            let sb = 0.25 * qb.y - dot(qb.xzw, n) / (s * s);
            let d = sb * 2.0 / s;
            b[0] = -d;
            b[4] = d;
            b[8] = -d;
            b[1] = qb.x / s;
            b[3] = qb.x / s;
            b[5] = qb.z / s;
            b[7] = qb.z / s;
            b[2] = qb.w / s;
            b[6] = -qb.w / s;
        }
        default: {
            let s = sqrt(1.0 + m22 - m00 - m11) * 2.0;
            let n = vec3<f32>(m02 + m20, m12 + m21, m10 - m01);
            let sb = 0.25 * qb.z - dot(qb.xyw, n) / (s * s);
            let d = sb * 2.0 / s;
            b[0] = -d;
            b[4] = -d;
            b[8] = d;
            b[2] = qb.x / s;
            b[6] = qb.x / s;
            b[5] = qb.y / s;
            b[7] = qb.y / s;
            b[3] = qb.w / s;
            b[1] = -qb.w / s;
        }
    }
    return mat3x3<f32>(vec3<f32>(b[0], b[3], b[6]), vec3<f32>(b[1], b[4], b[7]), vec3<f32>(b[2], b[5], b[8]));
}
