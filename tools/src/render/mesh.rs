//! Unit meshes the renderer instances: a UV sphere, a cube, a capped cylinder and the ground
//! quad, as indexed triangle lists with per-vertex normals (smooth on curved surfaces, flat on
//! faces and caps). Sizes match `scene::Mesh`: radius 1, half-extents 1, half-height 1.

use std::f32::consts::{PI, TAU};

use glam::Vec3;

/// An indexed triangle list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeshData {
    pub positions: Vec<Vec3>,
    pub normals: Vec<Vec3>,
    pub indices: Vec<u32>,
}

impl MeshData {
    fn vertex(&mut self, p: Vec3, n: Vec3) -> u32 {
        self.positions.push(p);
        self.normals.push(n);
        (self.positions.len() - 1) as u32
    }
    fn quad(&mut self, a: u32, b: u32, c: u32, d: u32) {
        self.indices.extend([a, b, c, a, c, d]);
    }
}

/// A UV sphere with `slices` around y and `stacks` from pole to pole.
pub fn sphere(slices: u32, stacks: u32) -> MeshData {
    let mut m = MeshData::default();
    for i in 0..=stacks {
        let theta = PI * i as f32 / stacks as f32;
        for j in 0..=slices {
            let phi = TAU * j as f32 / slices as f32;
            let n = Vec3::new(theta.sin() * phi.cos(), theta.cos(), theta.sin() * phi.sin());
            m.vertex(n, n);
        }
    }
    let row = slices + 1;
    for i in 0..stacks {
        for j in 0..slices {
            let (a, b) = (i * row + j, (i + 1) * row + j);
            m.quad(a, a + 1, b + 1, b);
        }
    }
    m
}

/// The cube [−1, 1]³ with one flat normal per face.
pub fn cube() -> MeshData {
    let mut m = MeshData::default();
    for axis in 0..3 {
        for sign in [-1.0f32, 1.0] {
            let mut n = Vec3::ZERO;
            n[axis] = sign;
            let (mut u, mut v) = (Vec3::ZERO, Vec3::ZERO);
            u[(axis + 1) % 3] = 1.0;
            v[(axis + 2) % 3] = 1.0;
            let c = [n - u - v, n + u - v, n + u + v, n - u + v].map(|p| m.vertex(p, n));
            // Counter-clockwise seen from outside: u × v = +n on the positive face.
            if sign > 0.0 {
                m.quad(c[0], c[1], c[2], c[3]);
            } else {
                m.quad(c[0], c[3], c[2], c[1]);
            }
        }
    }
    m
}

/// A cylinder of radius 1 along y from −1 to 1, with flat caps.
pub fn cylinder(slices: u32) -> MeshData {
    let mut m = MeshData::default();
    let ring = |j: u32| {
        let phi = TAU * j as f32 / slices as f32;
        Vec3::new(phi.cos(), 0.0, phi.sin())
    };
    for j in 0..=slices {
        let r = ring(j);
        m.vertex(r - Vec3::Y, r);
        m.vertex(r + Vec3::Y, r);
    }
    for j in 0..slices {
        let a = 2 * j;
        m.quad(a, a + 1, a + 3, a + 2);
    }
    for y in [-1.0f32, 1.0] {
        let n = Vec3::new(0.0, y, 0.0);
        let centre = m.vertex(n, n);
        let first = m.positions.len() as u32;
        for j in 0..=slices {
            m.vertex(ring(j) + n, n);
        }
        for j in 0..slices {
            // The ring runs from +x towards +z: counter-clockwise seen from below.
            if y < 0.0 {
                m.indices.extend([centre, first + j, first + j + 1]);
            } else {
                m.indices.extend([centre, first + j + 1, first + j]);
            }
        }
    }
    m
}

/// The square [−1, 1]² in the plane y = 0, normal +y.
pub fn ground_quad() -> MeshData {
    let mut m = MeshData::default();
    let c = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)].map(|(x, z)| m.vertex(Vec3::new(x, 0.0, z), Vec3::Y));
    // Counter-clockwise seen from above.
    m.quad(c[0], c[3], c[2], c[1]);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meshes_are_closed_unit_solids_with_unit_normals() {
        for (name, m, radius) in
            [("sphere", sphere(16, 12), 1.0), ("cube", cube(), 3f32.sqrt()), ("cylinder", cylinder(16), 2f32.sqrt())]
        {
            assert_eq!(m.indices.len() % 3, 0, "{name}");
            assert!(m.indices.iter().all(|&i| (i as usize) < m.positions.len()), "{name}");
            assert!(m.normals.iter().all(|n| (n.length() - 1.0).abs() < 1e-5), "{name}");
            let far = m.positions.iter().map(|p| p.length()).fold(0.0, f32::max);
            assert!((far - radius).abs() < 1e-5, "{name}: {far}");
            // Closed and wound counter-clockwise seen from outside: the signed volume (sum of
            // a · (b × c) / 6 over triangles) is the solid's, and positive.
            let vol: f32 = m
                .indices
                .chunks_exact(3)
                .map(|t| {
                    let [a, b, c] = [0, 1, 2].map(|k| m.positions[t[k] as usize]);
                    a.dot(b.cross(c)) / 6.0
                })
                .sum();
            let expected = match name {
                "sphere" => 4.0 / 3.0 * PI,
                "cube" => 8.0,
                _ => 2.0 * PI,
            };
            assert!((vol - expected).abs() < 0.1 * expected, "{name}: volume {vol}");
        }
        assert_eq!(ground_quad().indices.len(), 6);
    }
}
