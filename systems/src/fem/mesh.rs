//! Tetrahedral meshes for the FEM systems: a procedural "box with legs" (the shape of Rewarped's
//! SoftJumper `table.usda`, rewarped.md §5), a reader and writer for TetGen's `.node`/`.ele`
//! pair, and the spawning of a mesh into one environment as particle and tetrahedron entities.
//!
//! This module owns mesh data and its validation (indices in range, every vertex used, no
//! degenerate element, positive orientation); it knows nothing about forces.
//!
//! TetGen format (https://wias-berlin.de/software/tetgen/fformats.html): `#` starts a comment.
//! `.node`: a header `<#points> <dimension = 3> <#attributes> <#boundary markers = 0|1>`, then one
//! line per point `<index> <x> <y> <z> [attributes] [marker]`. `.ele`: a header
//! `<#tetrahedra> <nodes per tetrahedron = 4> <#attributes>`, then `<index> <n1> <n2> <n3> <n4>
//! [attributes]`. Indices start at 0 or 1, as the first point's index says. Elements with a
//! negative signed volume are reoriented (two vertices swapped) on load.

use std::fmt::Write as _;
use std::path::Path;

use diffsim_engine::EnvBuilder;
use diffsim_engine::components::Tetrahedron;
use glam::Vec3;
use hecs::Entity;

/// A mesh error naming the file, line and what was expected there.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: {field}: expected {expected}, found `{found}`")]
    Parse { path: String, line: usize, field: &'static str, expected: String, found: String },
    #[error("{path}: ends after {found} {what}, but its header (line {header_line}) declares {expected}")]
    Truncated { path: String, header_line: usize, what: &'static str, expected: usize, found: usize },
    #[error(
        "{path}:{line}: tetrahedron {tet} is degenerate (signed volume {volume:e}): expected four non-coplanar vertices"
    )]
    Degenerate { path: String, line: usize, tet: usize, volume: f64 },
    #[error("{path}: vertex {vertex} is used by no tetrahedron: expected every vertex in at least one element")]
    UnusedVertex { path: String, vertex: usize },
}

/// Vertices and tetrahedra (vertex indices, positively oriented).
#[derive(Clone, Debug, PartialEq)]
pub struct TetMesh {
    pub vertices: Vec<[f64; 3]>,
    pub tets: Vec<[u32; 4]>,
}

/// Signed volume det[x₁−x₀, x₂−x₀, x₃−x₀] / 6.
pub fn signed_volume(x: [[f64; 3]; 4]) -> f64 {
    let d = [1, 2, 3].map(|i| [0, 1, 2].map(|k| x[i][k] - x[0][k]));
    let c = [
        d[1][1] * d[2][2] - d[1][2] * d[2][1],
        d[1][2] * d[2][0] - d[1][0] * d[2][2],
        d[1][0] * d[2][1] - d[1][1] * d[2][0],
    ];
    (d[0][0] * c[0] + d[0][1] * c[1] + d[0][2] * c[2]) / 6.0
}

/// The "box with legs" body: a slab of `slab` = [x, y, z] cells on four one-cell legs of
/// `leg_height` cells at its corners, cells of size `cell` (m), each cell split into 5
/// tetrahedra. The mesh is centred in x and z and stands on y = 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoxWithLegs {
    pub slab: [usize; 3],
    pub leg_height: usize,
    pub cell: [f64; 3],
}

impl Default for BoxWithLegs {
    /// Sized like Rewarped's `table.usda` (a 2.48 × 0.71 × 2.48 m top on 1.06 m legs, 204 vertices,
    /// 444 tetrahedra): 6 × 2 × 6 slab cells and 3-cell legs give 195 vertices and 420 tetrahedra.
    fn default() -> Self {
        Self { slab: [6, 2, 6], leg_height: 3, cell: [2.48 / 6.0, 0.3545, 2.48 / 6.0] }
    }
}

impl BoxWithLegs {
    pub fn mesh(&self) -> TetMesh {
        let [nx, ns, nz] = self.slab;
        let ny = self.leg_height + ns;
        let leg = |i: usize, k: usize| (i == 0 || i + 1 == nx) && (k == 0 || k + 1 == nz);
        let filled = |i: usize, j: usize, k: usize| j >= self.leg_height || leg(i, k);
        // Lattice vertex (i, j, k) → mesh index, assigned in y, z, x order over used vertices.
        let lattice = |i: usize, j: usize, k: usize| (j * (nz + 1) + k) * (nx + 1) + i;
        let mut index = vec![u32::MAX; (nx + 1) * (ny + 1) * (nz + 1)];
        let mut used = vec![false; index.len()];
        for j in 0..ny {
            for k in 0..nz {
                for i in 0..nx {
                    if filled(i, j, k) {
                        for c in 0..8 {
                            used[lattice(i + (c & 1), j + (c >> 1 & 1), k + (c >> 2))] = true;
                        }
                    }
                }
            }
        }
        let mut vertices = Vec::new();
        let (cx, cz) = (nx as f64 * self.cell[0] / 2.0, nz as f64 * self.cell[2] / 2.0);
        for j in 0..=ny {
            for k in 0..=nz {
                for i in 0..=nx {
                    let l = lattice(i, j, k);
                    if used[l] {
                        index[l] = vertices.len() as u32;
                        let [hx, hy, hz] = self.cell;
                        vertices.push([i as f64 * hx - cx, j as f64 * hy, k as f64 * hz - cz]);
                    }
                }
            }
        }
        // Five tetrahedra per cell: the central one on the corners of even global parity
        // (i + j + k), and one per odd corner with its three neighbours. Face diagonals then
        // always join even-parity lattice points, so neighbouring cells share faces exactly.
        let mut tets = Vec::new();
        for j in 0..ny {
            for k in 0..nz {
                for i in 0..nx {
                    if !filled(i, j, k) {
                        continue;
                    }
                    let corner = |c: [usize; 3]| index[lattice(i + c[0], j + c[1], k + c[2])];
                    let even = |c: [usize; 3]| (i + j + k + c[0] + c[1] + c[2]).is_multiple_of(2);
                    let corners: Vec<[usize; 3]> = (0..8).map(|c| [c & 1, c >> 1 & 1, c >> 2]).collect();
                    let centre: Vec<[usize; 3]> = corners.iter().copied().filter(|&c| even(c)).collect();
                    tets.push(orient(&vertices, [0, 1, 2, 3].map(|a| corner(centre[a]))));
                    for &c in corners.iter().filter(|&&c| !even(c)) {
                        let nb = [0, 1, 2].map(|ax| {
                            let mut n = c;
                            n[ax] = 1 - n[ax];
                            corner(n)
                        });
                        tets.push(orient(&vertices, [corner(c), nb[0], nb[1], nb[2]]));
                    }
                }
            }
        }
        TetMesh { vertices, tets }
    }
}

/// Swaps two vertices of a negatively oriented tetrahedron.
fn orient(v: &[[f64; 3]], t: [u32; 4]) -> [u32; 4] {
    if signed_volume(t.map(|i| v[i as usize])) < 0.0 { [t[0], t[2], t[1], t[3]] } else { t }
}

/// Non-comment, non-blank lines of a file with their 1-based line numbers, split into fields.
fn records(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(n, l)| {
        let l = l.split('#').next().unwrap_or("");
        let fields: Vec<&str> = l.split_whitespace().collect();
        (!fields.is_empty()).then_some((n + 1, fields))
    })
}

fn field<T: std::str::FromStr>(
    path: &str,
    line: usize,
    fields: &[&str],
    at: usize,
    name: &'static str,
    expected: &str,
) -> Result<T, MeshError> {
    let found = fields.get(at).copied().unwrap_or("(end of line)");
    found.parse().map_err(|_| MeshError::Parse {
        path: path.to_string(),
        line,
        field: name,
        expected: expected.to_string(),
        found: found.to_string(),
    })
}

fn read(path: &Path) -> Result<String, MeshError> {
    std::fs::read_to_string(path).map_err(|source| MeshError::Io { path: path.display().to_string(), source })
}

impl TetMesh {
    /// Reads a TetGen `.node` / `.ele` pair (module docs).
    pub fn from_tetgen(node: &Path, ele: &Path) -> Result<Self, MeshError> {
        Self::parse_tetgen(&node.display().to_string(), &read(node)?, &ele.display().to_string(), &read(ele)?)
    }

    /// Parses the texts of a `.node` and an `.ele` file; the names are only for errors.
    pub fn parse_tetgen(node_name: &str, node: &str, ele_name: &str, ele: &str) -> Result<Self, MeshError> {
        // .node
        let mut lines = records(node);
        let Some((hl, h)) = lines.next() else {
            return Err(MeshError::Truncated {
                path: node_name.into(),
                header_line: 0,
                what: "lines",
                expected: 1,
                found: 0,
            });
        };
        let count: usize = field(node_name, hl, &h, 0, "number of points", "a count >= 4")?;
        let dim: usize = field(node_name, hl, &h, 1, "dimension", "3")?;
        if dim != 3 {
            return Err(MeshError::Parse {
                path: node_name.into(),
                line: hl,
                field: "dimension",
                expected: "3".into(),
                found: dim.to_string(),
            });
        }
        let attrs: usize =
            if h.len() > 2 { field(node_name, hl, &h, 2, "number of attributes", "a count")? } else { 0 };
        let markers: usize = if h.len() > 3 { field(node_name, hl, &h, 3, "boundary markers", "0 or 1")? } else { 0 };
        let mut vertices = Vec::with_capacity(count);
        let mut base = 0usize;
        for (line, f) in lines.by_ref().take(count) {
            let k = vertices.len();
            let idx: usize = field(node_name, line, &f, 0, "point index", "an integer index")?;
            if k == 0 {
                if idx > 1 {
                    return Err(MeshError::Parse {
                        path: node_name.into(),
                        line,
                        field: "point index",
                        expected: "0 or 1 for the first point".into(),
                        found: idx.to_string(),
                    });
                }
                base = idx;
            } else if idx != base + k {
                return Err(MeshError::Parse {
                    path: node_name.into(),
                    line,
                    field: "point index",
                    expected: (base + k).to_string(),
                    found: idx.to_string(),
                });
            }
            let mut x = [0.0f64; 3];
            for (c, name) in ["x", "y", "z"].into_iter().enumerate() {
                x[c] = field(node_name, line, &f, 1 + c, name, "a finite number")?;
                if !x[c].is_finite() {
                    return Err(MeshError::Parse {
                        path: node_name.into(),
                        line,
                        field: name,
                        expected: "a finite number".into(),
                        found: f[1 + c].into(),
                    });
                }
            }
            let want = 4 + attrs + markers.min(1);
            if f.len() != want {
                return Err(MeshError::Parse {
                    path: node_name.into(),
                    line,
                    field: "fields",
                    expected: format!("{want} (index, x, y, z, {attrs} attribute(s), {markers} marker(s))"),
                    found: f.len().to_string(),
                });
            }
            vertices.push(x);
        }
        if vertices.len() < count {
            return Err(MeshError::Truncated {
                path: node_name.into(),
                header_line: hl,
                what: "points",
                expected: count,
                found: vertices.len(),
            });
        }
        // .ele
        let mut lines = records(ele);
        let Some((hl, h)) = lines.next() else {
            return Err(MeshError::Truncated {
                path: ele_name.into(),
                header_line: 0,
                what: "lines",
                expected: 1,
                found: 0,
            });
        };
        let count: usize = field(ele_name, hl, &h, 0, "number of tetrahedra", "a count >= 1")?;
        let per: usize = field(ele_name, hl, &h, 1, "nodes per tetrahedron", "4")?;
        if per != 4 {
            return Err(MeshError::Parse {
                path: ele_name.into(),
                line: hl,
                field: "nodes per tetrahedron",
                expected: "4 (linear tetrahedra)".into(),
                found: per.to_string(),
            });
        }
        let attrs: usize = if h.len() > 2 { field(ele_name, hl, &h, 2, "number of attributes", "a count")? } else { 0 };
        let mut tets = Vec::with_capacity(count);
        let mut used = vec![false; vertices.len()];
        let range = format!("a point index in {base}..={}", base + vertices.len() - 1);
        for (line, f) in lines.take(count) {
            let t = tets.len();
            let idx: usize = field(ele_name, line, &f, 0, "tetrahedron index", "an integer index")?;
            if idx != base + t {
                return Err(MeshError::Parse {
                    path: ele_name.into(),
                    line,
                    field: "tetrahedron index",
                    expected: (base + t).to_string(),
                    found: idx.to_string(),
                });
            }
            let mut v = [0u32; 4];
            for (c, slot) in v.iter_mut().enumerate() {
                let p: usize = field(ele_name, line, &f, 1 + c, "node", &range)?;
                if p < base || p - base >= vertices.len() {
                    return Err(MeshError::Parse {
                        path: ele_name.into(),
                        line,
                        field: "node",
                        expected: range.clone(),
                        found: p.to_string(),
                    });
                }
                *slot = (p - base) as u32;
                used[p - base] = true;
            }
            if f.len() != 5 + attrs {
                return Err(MeshError::Parse {
                    path: ele_name.into(),
                    line,
                    field: "fields",
                    expected: format!("{} (index, 4 nodes, {attrs} attribute(s))", 5 + attrs),
                    found: f.len().to_string(),
                });
            }
            let x = v.map(|i| vertices[i as usize]);
            let vol = signed_volume(x);
            let size =
                (1..4).map(|i| (0..3).map(|k| (x[i][k] - x[0][k]).powi(2)).sum::<f64>()).fold(0.0, f64::max).sqrt();
            if vol.abs().partial_cmp(&(1e-9 * size.powi(3))) != Some(std::cmp::Ordering::Greater) {
                return Err(MeshError::Degenerate { path: ele_name.into(), line, tet: base + t, volume: vol });
            }
            tets.push(orient(&vertices, v));
        }
        if tets.len() < count {
            return Err(MeshError::Truncated {
                path: ele_name.into(),
                header_line: hl,
                what: "tetrahedra",
                expected: count,
                found: tets.len(),
            });
        }
        if let Some(vertex) = used.iter().position(|u| !u) {
            return Err(MeshError::UnusedVertex { path: node_name.into(), vertex: base + vertex });
        }
        Ok(Self { vertices, tets })
    }

    /// The `.node` and `.ele` texts of this mesh (0-based indices, no attributes or markers).
    pub fn to_tetgen(&self) -> (String, String) {
        let mut node = format!("{} 3 0 0\n", self.vertices.len());
        for (i, v) in self.vertices.iter().enumerate() {
            let _ = writeln!(node, "{i} {} {} {}", v[0], v[1], v[2]);
        }
        let mut ele = format!("{} 4 0\n", self.tets.len());
        for (i, t) in self.tets.iter().enumerate() {
            let _ = writeln!(ele, "{i} {} {} {} {}", t[0], t[1], t[2], t[3]);
        }
        (node, ele)
    }

    /// Rest volume of each tetrahedron.
    pub fn volumes(&self) -> Vec<f64> {
        self.tets.iter().map(|t| signed_volume(t.map(|i| self.vertices[i as usize]))).collect()
    }

    /// Lumped vertex masses: each tetrahedron gives density · V / 4 to each of its vertices.
    pub fn masses(&self, density: f64) -> Vec<f64> {
        let mut m = vec![0.0; self.vertices.len()];
        for (t, v) in self.tets.iter().zip(self.volumes()) {
            for &i in t {
                m[i as usize] += density * v / 4.0;
            }
        }
        m
    }

    /// Spawns the mesh, translated by `origin`, into one environment: one particle per vertex
    /// (lumped mass, `radius` for contact) and one tetrahedron per element with `material` (an
    /// entity with `Material::Elastic`) and `damping`. Returns the particle entities.
    pub fn spawn(
        &self,
        env: &mut EnvBuilder,
        origin: Vec3,
        density: f64,
        material: Entity,
        damping: f32,
        radius: f32,
    ) -> Vec<Entity> {
        let particles: Vec<Entity> = self
            .vertices
            .iter()
            .zip(self.masses(density))
            .map(|(v, m)| {
                let q = origin + Vec3::new(v[0] as f32, v[1] as f32, v[2] as f32);
                env.particle(q, Vec3::ZERO, m as f32, radius)
            })
            .collect();
        for t in &self.tets {
            env.tetrahedron(Tetrahedron { vertices: t.map(|i| particles[i as usize]), material, damping });
        }
        particles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_with_legs_counts_volume_and_orientation() {
        let m = BoxWithLegs::default().mesh();
        assert_eq!((m.vertices.len(), m.tets.len()), (195, 420));
        let vols = m.volumes();
        assert!(vols.iter().all(|&v| v > 0.0));
        let b = BoxWithLegs::default();
        let cell = b.cell[0] * b.cell[1] * b.cell[2];
        let expected = (6 * 6 * 2 + 4 * 3) as f64 * cell;
        assert!((vols.iter().sum::<f64>() - expected).abs() < 1e-9 * expected);
        // Conforming: every interior triangle is shared by exactly two tetrahedra, so each
        // boundary face appears once; an inconsistent split would leave unmatched faces inside.
        let mut faces = std::collections::HashMap::new();
        for t in &m.tets {
            for skip in 0..4 {
                let mut f: Vec<u32> = (0..4).filter(|&k| k != skip).map(|k| t[k]).collect();
                f.sort_unstable();
                *faces.entry(f).or_insert(0) += 1;
            }
        }
        assert!(faces.values().all(|&c| c <= 2));
        let boundary: f64 = faces
            .iter()
            .filter(|&(_, &c)| c == 1)
            .map(|(f, _)| {
                let [a, b, c] = [0, 1, 2].map(|k| m.vertices[f[k] as usize]);
                let (u, v) = ([0, 1, 2].map(|i| b[i] - a[i]), [0, 1, 2].map(|i| c[i] - a[i]));
                let n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
                0.5 * (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt()
            })
            .sum();
        // Surface area of the box with legs: slab surface + leg sides − leg tops covered.
        let [hx, hy, hz] = b.cell;
        let (w, d, t) = (6.0 * hx, 6.0 * hz, 2.0 * hy);
        let slab = 2.0 * (w * d + w * t + d * t);
        let legs = 4.0 * (2.0 * (hx + hz) * 3.0 * hy);
        assert!((boundary - (slab + legs)).abs() < 1e-9 * slab, "{boundary} vs {}", slab + legs);
    }

    #[test]
    fn tetgen_round_trip_and_one_based_indices() {
        let m = BoxWithLegs { slab: [2, 1, 2], leg_height: 1, cell: [1.0, 0.5, 1.0] }.mesh();
        let (node, ele) = m.to_tetgen();
        assert_eq!(TetMesh::parse_tetgen("a.node", &node, "a.ele", &ele).unwrap(), m);
        let node1 = "# comment\n4 3 0 1\n1 0 0 0 1\n2 1 0 0 0\n3 0 1 0 0 # inline\n4 0 0 1 1\n";
        let ele1 = "1 4 0\n1 1 3 2 4\n";
        let t = TetMesh::parse_tetgen("b.node", node1, "b.ele", ele1).unwrap();
        // Negative orientation (1 3 2 4) is flipped to positive on load.
        assert!(t.volumes()[0] > 0.0);
        assert_eq!(t.vertices[3], [0.0, 0.0, 1.0]);
    }

    fn err(node: &str, ele: &str) -> String {
        TetMesh::parse_tetgen("m.node", node, "m.ele", ele).unwrap_err().to_string()
    }

    #[test]
    fn tetgen_errors_name_file_line_and_expectation() {
        let node = "4 3 0 0\n0 0 0 0\n1 1 0 0\n2 0 1 0\n3 0 0 1\n";
        let ele = "1 4 0\n0 0 1 2 3\n";
        let e = err("4 2 0 0\n", ele);
        assert!(e.contains("m.node:1") && e.contains("dimension") && e.contains("expected 3"), "{e}");
        let e = err("4 3 0 0\n0 0 0 0\n1 1 zero 0\n", ele);
        assert!(e.contains("m.node:3") && e.contains("y") && e.contains("`zero`"), "{e}");
        let e = err("4 3 0 0\n0 0 0 0\n1 1 0 0\n", ele);
        assert!(e.contains("m.node") && e.contains("declares 4") && e.contains("2 points"), "{e}");
        let e = err("4 3 0 0\n0 0 0 0\n2 1 0 0\n2 0 1 0\n3 0 0 1\n", ele);
        assert!(e.contains("m.node:3") && e.contains("expected 1") && e.contains("`2`"), "{e}");
        let e = err(node, "1 10 0\n0 0 1 2 3 4 5 6 7 8 9\n");
        assert!(e.contains("m.ele:1") && e.contains("nodes per tetrahedron") && e.contains("found `10`"), "{e}");
        let e = err(node, "1 4 0\n0 0 1 2 7\n");
        assert!(e.contains("m.ele:2") && e.contains("0..=3") && e.contains("`7`"), "{e}");
        let e = err(node, "1 4 0\n0 0 1 2 2\n");
        assert!(e.contains("m.ele:2") && e.contains("degenerate"), "{e}");
        let e = err("5 3 0 0\n0 0 0 0\n1 1 0 0\n2 0 1 0\n3 0 0 1\n4 5 5 5\n", ele);
        assert!(e.contains("m.node") && e.contains("vertex 4") && e.contains("no tetrahedron"), "{e}");
        let e = err(node, "1 4 0\n0 0 1 2 3 9\n");
        assert!(e.contains("m.ele:2") && e.contains("fields") && e.contains("expected 5"), "{e}");
        let missing = TetMesh::from_tetgen(Path::new("/nonexistent/x.node"), Path::new("x.ele")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/x.node"), "{missing}");
    }
}
