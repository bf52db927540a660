//! Mass properties of MJCF geoms and the principal axes of a symmetric 3×3 inertia tensor.
//!
//! Shape-frame conventions are the simulator's: a capsule's axis is the shape frame's local y.
//! All arithmetic is f64; callers convert to f32 at the end.

use glam::{DMat3, DQuat, DVec3};

/// Volume of a sphere of radius `r`.
pub(crate) fn sphere_volume(r: f64) -> f64 {
    4.0 / 3.0 * std::f64::consts::PI * r * r * r
}

/// Volume of a capsule of radius `r` whose cylinder has half-length `h`.
pub(crate) fn capsule_volume(r: f64, h: f64) -> f64 {
    std::f64::consts::PI * r * r * 2.0 * h + sphere_volume(r)
}

/// Volume of a box with half extents `e`.
pub(crate) fn box_volume(e: DVec3) -> f64 {
    8.0 * e.x * e.y * e.z
}

/// Principal moments of a solid sphere of mass `m`, about its centre.
pub(crate) fn sphere_inertia(m: f64, r: f64) -> DVec3 {
    DVec3::splat(0.4 * m * r * r)
}

/// Principal moments of a solid box of mass `m` and half extents `e`, about its centre.
pub(crate) fn box_inertia(m: f64, e: DVec3) -> DVec3 {
    DVec3::new(e.y * e.y + e.z * e.z, e.x * e.x + e.z * e.z, e.x * e.x + e.y * e.y) * (m / 3.0)
}

/// Principal moments of a solid capsule of total mass `m` (radius `r`, cylinder half-length `h`)
/// about its centre, axis along local y: (transverse, axial, transverse).
///
/// The mass splits between the cylinder and the two hemispherical caps in proportion to their
/// volumes. Cylinder: axial m_c r²/2, transverse m_c (r²/4 + (2h)²/12). Caps (together, mass
/// m_s): axial 2 m_s r²/5; transverse about the centre m_s (2r²/5 + h² + 3hr/4), from each
/// hemisphere's moment 2/5 m r² about its flat face, shifted by its centroid at 3r/8 from the face.
pub(crate) fn capsule_inertia(m: f64, r: f64, h: f64) -> DVec3 {
    let vc = std::f64::consts::PI * r * r * 2.0 * h;
    let vs = sphere_volume(r);
    let (mc, ms) = (m * vc / (vc + vs), m * vs / (vc + vs));
    let axial = mc * r * r / 2.0 + ms * 0.4 * r * r;
    let transverse = mc * (r * r / 4.0 + h * h / 3.0) + ms * (0.4 * r * r + h * h + 0.75 * h * r);
    DVec3::new(transverse, axial, transverse)
}

/// A symmetric 3×3 matrix as rows.
pub(crate) type Sym3 = [[f64; 3]; 3];

pub(crate) fn to_rows(m: DMat3) -> Sym3 {
    let c = m.to_cols_array_2d();
    [[c[0][0], c[1][0], c[2][0]], [c[0][1], c[1][1], c[2][1]], [c[0][2], c[1][2], c[2][2]]]
}

/// The inertia tensor `R diag(d) Rᵀ` of principal moments `d` along the axes rotated by `rot`.
pub(crate) fn tensor(d: DVec3, rot: DQuat) -> Sym3 {
    let r = DMat3::from_quat(rot);
    to_rows(r * DMat3::from_diagonal(d) * r.transpose())
}

/// Parallel-axis term `m (|c|² E − c cᵀ)` moving a tensor about the centre of mass to a point
/// at offset `-c` from it.
pub(crate) fn parallel_axis(m: f64, c: DVec3) -> Sym3 {
    let c2 = c.dot(c);
    let v = c.to_array();
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = m * (if i == j { c2 } else { 0.0 } - v[i] * v[j]);
        }
    }
    out
}

pub(crate) fn add(a: &mut Sym3, b: &Sym3) {
    for i in 0..3 {
        for j in 0..3 {
            a[i][j] += b[i][j];
        }
    }
}

/// Eigen-decomposition of a symmetric 3×3 matrix by cyclic Jacobi rotations: eigenvalues and
/// the matrix whose columns are the matching unit eigenvectors (rows-major). Off-diagonal entries
/// below 1e-10 of the adjacent diagonal magnitudes count as zero, so an (almost) diagonal input
/// comes back unrotated.
pub(crate) fn sym_eigen(m: &Sym3) -> ([f64; 3], Sym3) {
    let mut a = *m;
    // Symmetrize (inputs are built symmetric, up to rounding).
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let s = 0.5 * (a[i][j] + a[j][i]);
        a[i][j] = s;
        a[j][i] = s;
    }
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for _sweep in 0..64 {
        let mut rotated = false;
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            let apq = a[p][q];
            let tol = 1e-10 * (a[p][p].abs() + a[q][q].abs());
            if apq.abs() <= tol || apq == 0.0 {
                continue;
            }
            rotated = true;
            let theta = (a[q][q] - a[p][p]) / (2.0 * apq);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let t = if theta == 0.0 { 1.0 } else { t };
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            // A ← Pᵀ A P with P = identity except P_pp = P_qq = c, P_pq = s, P_qp = −s.
            let mut pm = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            pm[p][p] = c;
            pm[q][q] = c;
            pm[p][q] = s;
            pm[q][p] = -s;
            a = mul(&transpose(&pm), &mul(&a, &pm));
            a[p][q] = 0.0;
            a[q][p] = 0.0;
            v = mul(&v, &pm);
        }
        if !rotated {
            break;
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

fn mul(a: &Sym3, b: &Sym3) -> Sym3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn transpose(a: &Sym3) -> Sym3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = a[j][i];
        }
    }
    out
}

/// Principal moments and the rotation of the principal axes (principal frame → tensor's frame)
/// of an inertia tensor. When the principal axes are the frame's own axes up to order and sign,
/// the moments are reordered onto them and the rotation is the identity.
pub(crate) fn principal(m: &Sym3) -> (DVec3, DQuat) {
    let (d, mut v) = sym_eigen(m);
    // Signed permutation? Then principal axis k lies along frame axis j(k).
    let mut perm = [usize::MAX; 3];
    for (k, slot) in perm.iter_mut().enumerate() {
        for (j, row) in v.iter().enumerate() {
            if row[k].abs() > 1.0 - 1e-9 {
                *slot = j;
            }
        }
    }
    if perm.iter().all(|&j| j < 3) && perm[0] != perm[1] && perm[1] != perm[2] && perm[0] != perm[2] {
        let mut out = [0.0; 3];
        for k in 0..3 {
            out[perm[k]] = d[k];
        }
        return (DVec3::from_array(out), DQuat::IDENTITY);
    }
    let det = v[0][0] * (v[1][1] * v[2][2] - v[1][2] * v[2][1]) - v[0][1] * (v[1][0] * v[2][2] - v[1][2] * v[2][0])
        + v[0][2] * (v[1][0] * v[2][1] - v[1][1] * v[2][0]);
    if det < 0.0 {
        for row in v.iter_mut() {
            row[2] = -row[2];
        }
    }
    let cols = DMat3::from_cols(
        DVec3::new(v[0][0], v[1][0], v[2][0]),
        DVec3::new(v[0][1], v[1][1], v[2][1]),
        DVec3::new(v[0][2], v[1][2], v[2][2]),
    );
    (DVec3::from_array(d), DQuat::from_mat3(&cols).normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Sym3, b: &Sym3, tol: f64) -> bool {
        (0..3).all(|i| (0..3).all(|j| (a[i][j] - b[i][j]).abs() <= tol))
    }

    #[test]
    fn capsule_limits_match_sphere_and_rod() {
        // h = 0: a sphere.
        let s = capsule_inertia(2.0, 0.3, 0.0);
        assert!((s - sphere_inertia(2.0, 0.3)).abs().max_element() < 1e-12);
        // r → 0: a thin rod of length 2h: transverse m (2h)²/12, axial 0.
        let rod = capsule_inertia(3.0, 1e-6, 0.5);
        assert!((rod.x - 3.0 * 1.0 / 12.0).abs() < 1e-5 && rod.y < 1e-9, "{rod}");
        // Box: cube of side 2 and mass 6: 6·(1+1)/3 = 4 on each axis.
        assert_eq!(box_inertia(6.0, DVec3::ONE), DVec3::splat(4.0));
        assert!((capsule_volume(1.0, 0.0) - sphere_volume(1.0)).abs() < 1e-12);
    }

    #[test]
    fn principal_recovers_rotated_tensor() {
        let d = DVec3::new(1.0, 2.0, 3.5);
        let rot = DQuat::from_euler(glam::EulerRot::XYZ, 0.3, -0.7, 1.1);
        let t = tensor(d, rot);
        let (d2, rot2) = principal(&t);
        assert!(close(&tensor(d2, rot2), &t, 1e-10));
        let mut sorted = d2.to_array();
        sorted.sort_by(f64::total_cmp);
        assert!((DVec3::from_array(sorted) - d).abs().max_element() < 1e-10);
    }

    #[test]
    fn principal_of_permuted_diagonal_is_unrotated() {
        // A quarter turn about x swaps the y and z moments exactly.
        let t = tensor(DVec3::new(1.0, 2.0, 3.0), DQuat::from_rotation_x(std::f64::consts::FRAC_PI_2));
        let (d, rot) = principal(&t);
        assert_eq!(rot, DQuat::IDENTITY);
        assert!((d - DVec3::new(1.0, 3.0, 2.0)).abs().max_element() < 1e-12, "{d}");
        // Degenerate (isotropic) tensors stay unrotated too.
        let (d, rot) = principal(&tensor(DVec3::splat(2.0), DQuat::IDENTITY));
        assert_eq!((d, rot), (DVec3::splat(2.0), DQuat::IDENTITY));
    }

    #[test]
    fn parallel_axis_matches_point_mass() {
        let p = parallel_axis(2.0, DVec3::new(0.0, 3.0, 0.0));
        assert!(close(&p, &[[18.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 18.0]], 1e-12));
    }
}
