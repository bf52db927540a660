//! Spatial algebra over any [`Real`], in world coordinates at the world origin (Featherstone,
//! "Rigid Body Dynamics Algorithms", ch. 2): motion vectors m = (ω, v_O), force vectors
//! f = (n_O, f), spatial inertia as 6×6 matrices. glam covers only f32/f64; the systems must also
//! run in duals and reverse-mode scalars, hence these small generic helpers.

use diffsim_engine::Real;

pub type V3<R> = [R; 3];
/// Spatial vector: angular part first.
pub type V6<R> = [R; 6];
/// Row-major 3×3.
pub type M3<R> = [[R; 3]; 3];
/// Row-major 6×6.
pub type M6<R> = [[R; 6]; 6];

pub fn v3<R: Real>(x: f64, y: f64, z: f64) -> V3<R> {
    [R::from_f64(x), R::from_f64(y), R::from_f64(z)]
}
pub fn add<R: Real>(a: V3<R>, b: V3<R>) -> V3<R> {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
pub fn sub<R: Real>(a: V3<R>, b: V3<R>) -> V3<R> {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub fn scale<R: Real>(a: V3<R>, s: R) -> V3<R> {
    [a[0] * s, a[1] * s, a[2] * s]
}
pub fn dot<R: Real>(a: V3<R>, b: V3<R>) -> R {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub fn cross<R: Real>(a: V3<R>, b: V3<R>) -> V3<R> {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
pub fn mat_vec<R: Real>(m: &M3<R>, v: V3<R>) -> V3<R> {
    [dot(m[0], v), dot(m[1], v), dot(m[2], v)]
}
pub fn mat_mul<R: Real>(a: &M3<R>, b: &M3<R>) -> M3<R> {
    let mut o = [[R::zero(); 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            o[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    o
}
pub fn transpose<R: Real>(a: &M3<R>) -> M3<R> {
    [[a[0][0], a[1][0], a[2][0]], [a[0][1], a[1][1], a[2][1]], [a[0][2], a[1][2], a[2][2]]]
}

/// Quaternion (x, y, z, w).
pub type Quat<R> = [R; 4];

pub fn quat_mul<R: Real>(a: Quat<R>, b: Quat<R>) -> Quat<R> {
    let [ax, ay, az, aw] = a;
    let [bx, by, bz, bw] = b;
    [
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ]
}
pub fn quat_normalize<R: Real>(q: Quat<R>) -> Quat<R> {
    let n = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    [q[0] / n, q[1] / n, q[2] / n, q[3] / n]
}
/// Rotation matrix of a unit quaternion.
pub fn quat_to_mat<R: Real>(q: Quat<R>) -> M3<R> {
    let [x, y, z, w] = q;
    let one = R::one();
    let two = R::from_f64(2.0);
    [
        [one - two * (y * y + z * z), two * (x * y - z * w), two * (x * z + y * w)],
        [two * (x * y + z * w), one - two * (x * x + z * z), two * (y * z - x * w)],
        [two * (x * z - y * w), two * (y * z + x * w), one - two * (x * x + y * y)],
    ]
}
/// Adjoint of [`quat_to_mat`]: q̄ = Σ_ij R̄_ij ∂R_ij/∂q (the map is quadratic in q, so the
/// partials are linear; no normalization is involved, as in the forward).
pub fn quat_to_mat_adjoint(q: Quat<f64>, r: &M3<f64>) -> Quat<f64> {
    let [x, y, z, w] = q;
    let t = 2.0;
    [
        t * (y * (r[0][1] + r[1][0]) + z * (r[0][2] + r[2][0]) + w * (r[2][1] - r[1][2]))
            - 2.0 * t * x * (r[1][1] + r[2][2]),
        t * (x * (r[0][1] + r[1][0]) + z * (r[1][2] + r[2][1]) + w * (r[0][2] - r[2][0]))
            - 2.0 * t * y * (r[0][0] + r[2][2]),
        t * (x * (r[0][2] + r[2][0]) + y * (r[1][2] + r[2][1]) + w * (r[1][0] - r[0][1]))
            - 2.0 * t * z * (r[0][0] + r[1][1]),
        t * (x * (r[2][1] - r[1][2]) + y * (r[0][2] - r[2][0]) + z * (r[1][0] - r[0][1])),
    ]
}

/// Rotation by `angle` about the unit `axis` (Rodrigues).
pub fn axis_angle<R: Real>(axis: V3<f64>, angle: R) -> M3<R> {
    // Through the quaternion (sin θ/2 · axis, cos θ/2).
    let (s, c) = (angle * R::from_f64(0.5)).sin_cos();
    let q = [R::from_f64(axis[0]) * s, R::from_f64(axis[1]) * s, R::from_f64(axis[2]) * s, c];
    quat_to_mat(q)
}

/// Spatial motion cross product m × u (Featherstone eq. 2.31, both at the origin).
pub fn cross_motion<R: Real>(m: V6<R>, u: V6<R>) -> V6<R> {
    let (w, v) = ([m[0], m[1], m[2]], [m[3], m[4], m[5]]);
    let (uw, uv) = ([u[0], u[1], u[2]], [u[3], u[4], u[5]]);
    let a = cross(w, uw);
    let b = add(cross(w, uv), cross(v, uw));
    [a[0], a[1], a[2], b[0], b[1], b[2]]
}
/// Spatial force cross product m ×* f (eq. 2.32).
pub fn cross_force<R: Real>(m: V6<R>, f: V6<R>) -> V6<R> {
    let (w, v) = ([m[0], m[1], m[2]], [m[3], m[4], m[5]]);
    let (n, fl) = ([f[0], f[1], f[2]], [f[3], f[4], f[5]]);
    let a = add(cross(w, n), cross(v, fl));
    let b = cross(w, fl);
    [a[0], a[1], a[2], b[0], b[1], b[2]]
}
pub fn add6<R: Real>(a: V6<R>, b: V6<R>) -> V6<R> {
    std::array::from_fn(|i| a[i] + b[i])
}
pub fn sub6<R: Real>(a: V6<R>, b: V6<R>) -> V6<R> {
    std::array::from_fn(|i| a[i] - b[i])
}
pub fn scale6<R: Real>(a: V6<R>, s: R) -> V6<R> {
    std::array::from_fn(|i| a[i] * s)
}
pub fn dot6<R: Real>(a: V6<R>, b: V6<R>) -> R {
    (0..6).fold(R::zero(), |s, i| s + a[i] * b[i])
}
pub fn mat6_vec<R: Real>(m: &M6<R>, v: V6<R>) -> V6<R> {
    std::array::from_fn(|i| dot6(m[i], v))
}
pub fn mat6_add<R: Real>(a: &mut M6<R>, b: &M6<R>) {
    for i in 0..6 {
        for j in 0..6 {
            a[i][j] += b[i][j];
        }
    }
}

/// Skew matrix [c]× with [c]× v = c × v.
fn skew<R: Real>(c: V3<R>) -> M3<R> {
    let z = R::zero();
    [[z, -c[2], c[1]], [c[2], z, -c[0]], [-c[1], c[0], z]]
}

/// Spatial inertia at the world origin of a body of mass m, centre of mass `c` (world) and
/// rotational inertia `ic` about the centre of mass (world axes):
/// I = [[I_c − m [c]×[c]×, m [c]×], [−m [c]×, m 1]]  (acting on (ω, v_O)).
pub fn spatial_inertia<R: Real>(m: R, c: V3<R>, ic: &M3<R>) -> M6<R> {
    let cx = skew(c);
    let cxcx = mat_mul(&cx, &cx);
    let mut o = [[R::zero(); 6]; 6];
    for i in 0..3 {
        for j in 0..3 {
            o[i][j] = ic[i][j] - m * cxcx[i][j];
            o[i][j + 3] = m * cx[i][j];
            o[i + 3][j] = -m * cx[i][j];
        }
        o[i + 3][i + 3] = m;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quat_to_mat_adjoint_matches_dual_numbers() {
        use diffsim_engine::Dual;
        let q = [0.3, -0.5, 0.2, 0.8];
        let r_bar: M3<f64> = [[0.7, -1.1, 0.4], [0.2, 0.9, -0.6], [-0.3, 0.5, 1.3]];
        let got = quat_to_mat_adjoint(q, &r_bar);
        for (k, g) in got.iter().enumerate() {
            let qd: Quat<Dual> = std::array::from_fn(|i| Dual::new(q[i], if i == k { 1.0 } else { 0.0 }));
            let d = quat_to_mat(qd);
            let want: f64 = (0..9).map(|i| r_bar[i / 3][i % 3] * d[i / 3][i % 3].t).sum();
            assert!((g - want).abs() < 1e-14, "component {k}: {g} vs {want}");
        }
    }

    #[test]
    fn inertia_gives_momentum_of_a_translating_and_spinning_body() {
        // Body of mass 2 at c = (1, 0, 0), spinning at ω = (0, 0, 1) about its COM: v_O = −ω × c.
        let ic: M3<f64> = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]];
        let i = spatial_inertia(2.0f64, [1.0, 0.0, 0.0], &ic);
        let w: V3<f64> = [0.0, 0.0, 1.0];
        let vo = scale(cross(w, [1.0, 0.0, 0.0]), -1.0);
        let h = mat6_vec(&i, [w[0], w[1], w[2], vo[0], vo[1], vo[2]]);
        // The COM is at rest: zero linear momentum; angular momentum I_c ω.
        assert!(h[3..].iter().all(|x| x.abs() < 1e-15), "{h:?}");
        assert!((h[2] - 0.5).abs() < 1e-15);
    }
}
