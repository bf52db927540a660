//! What `diffsim render` draws, built per env step from a task's packed Model and State:
//! `Frame { instances, points, triangles }`.
//!
//! - `instances`: unit meshes (sphere, box, cylinder) placed by a transform, for rigid shapes
//!   (a capsule is a cylinder and two spheres);
//! - `points`: small spheres, for particles (chains now, MPM point clouds later);
//! - `triangles`: world-space triangles with flat normals, for surfaces (the boundary of
//!   tetrahedral meshes now, any triangle list later).
//!
//! A [`Layer`] reads the columns of one kind of physics and pushes into a frame; [`layers`] is
//! the list `diffsim render` runs, each skipping a scene without its columns. A new kind of
//! physics adds a layer here (e.g. MPM: push `particle` positions of its block as points). This
//! module only reads the mirrors; it never writes Model or State.

use anyhow::Context;
use diffsim_engine::articulation::{SHAPE_BOX, SHAPE_CAPSULE, SHAPE_SPHERE};
use diffsim_engine::{Columns, Model};
use diffsim_systems::articulation::kinematics::{ArticulationModel, kinematics};
use glam::{Mat3, Mat4, Quat, Vec3};

/// A linear RGB colour (the renderer writes sRGB).
pub type Rgb = [f32; 3];

/// sRGB (0–255, as colour pickers give it) to linear RGB.
pub const fn srgb(r: u8, g: u8, b: u8) -> Rgb {
    // A 1/2.2 power curve is close enough for a palette and keeps this a const fn.
    [lin(r), lin(g), lin(b)]
}

const fn lin(c: u8) -> f32 {
    // (c/255)^2.2 by a cubic fit of the power curve on [0, 1] (error < 0.01), const-evaluable.
    let x = c as f32 / 255.0;
    0.008 * x + 0.43 * x * x + 0.562 * x * x * x
}

/// Colours of rigid bodies, by body index: warm hues, so bodies stand out from the grey ground
/// and the blue-grey sky (the render tests find the subject by them: red well above blue).
pub const BODY_PALETTE: [Rgb; 4] = [srgb(232, 118, 38), srgb(214, 84, 52), srgb(240, 160, 40), srgb(200, 110, 60)];
/// Particles, springs and surfaces.
pub const PARTICLE_COLOR: Rgb = srgb(235, 90, 60);
pub const SPRING_COLOR: Rgb = srgb(170, 120, 90);
pub const SURFACE_COLOR: Rgb = srgb(225, 120, 70);
/// MPM material points and the kinematic collider that shapes them.
pub const MPM_COLOR: Rgb = srgb(230, 150, 70);
pub const COLLIDER_COLOR: Rgb = srgb(150, 150, 165);

/// A unit mesh the renderer instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mesh {
    /// Radius 1 around the origin.
    Sphere,
    /// Half-extents 1 (the cube [−1, 1]³).
    Box,
    /// Radius 1, axis y, from y = −1 to y = 1.
    Cylinder,
}

/// A unit mesh placed by `transform` (scale included), in colour `color`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Instance {
    pub mesh: Mesh,
    pub transform: Mat4,
    pub color: Rgb,
}

/// A particle, drawn as a small sphere.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub pos: Vec3,
    pub radius: f32,
    pub color: Rgb,
}

/// A world-space triangle (either side is lit).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Triangle {
    pub v: [Vec3; 3],
    pub color: Rgb,
}

/// Everything drawn in one image, plus where the camera should look.
#[derive(Clone, Debug, Default)]
pub struct Frame {
    pub instances: Vec<Instance>,
    pub points: Vec<Point>,
    pub triangles: Vec<Triangle>,
    /// Positions whose mean the camera follows (e.g. each env's root body).
    pub focus: Vec<Vec3>,
}

impl Frame {
    pub fn sphere(&mut self, center: Vec3, radius: f32, color: Rgb) {
        let transform = Mat4::from_scale_rotation_translation(Vec3::splat(radius), Quat::IDENTITY, center);
        self.instances.push(Instance { mesh: Mesh::Sphere, transform, color });
    }
    pub fn cuboid(&mut self, center: Vec3, rot: Quat, half_extents: Vec3, color: Rgb) {
        let transform = Mat4::from_scale_rotation_translation(half_extents, rot, center);
        self.instances.push(Instance { mesh: Mesh::Box, transform, color });
    }
    /// A flat-capped cylinder of `radius`, ± `half_height` along the local y axis.
    pub fn cylinder(&mut self, center: Vec3, rot: Quat, radius: f32, half_height: f32, color: Rgb) {
        let scale = Vec3::new(radius, half_height.max(1e-6), radius);
        let transform = Mat4::from_scale_rotation_translation(scale, rot, center);
        self.instances.push(Instance { mesh: Mesh::Cylinder, transform, color });
    }
    /// A capsule of `radius` whose segment runs ± `half_height` along the local y axis.
    pub fn capsule(&mut self, center: Vec3, rot: Quat, radius: f32, half_height: f32, color: Rgb) {
        self.cylinder(center, rot, radius, half_height, color);
        let axis = rot * Vec3::Y * half_height;
        self.sphere(center + axis, radius, color);
        self.sphere(center - axis, radius, color);
    }
    /// A capsule from `a` to `b`.
    pub fn segment(&mut self, a: Vec3, b: Vec3, radius: f32, color: Rgb) {
        let d = b - a;
        let rot = Quat::from_rotation_arc(Vec3::Y, d.try_normalize().unwrap_or(Vec3::Y));
        self.capsule(0.5 * (a + b), rot, radius, 0.5 * d.length(), color);
    }
    /// Axis-aligned bounds (min, max) of everything drawn, or `None` for an empty frame.
    pub fn bounds(&self) -> Option<(Vec3, Vec3)> {
        let mut pts: Vec<(Vec3, f32)> = Vec::new();
        for i in &self.instances {
            let (s, _, t) = i.transform.to_scale_rotation_translation();
            pts.push((t, s.abs().max_element() * if i.mesh == Mesh::Box { 3f32.sqrt() } else { 1.0 }));
        }
        pts.extend(self.points.iter().map(|p| (p.pos, p.radius)));
        pts.extend(self.triangles.iter().flat_map(|t| t.v.map(|v| (v, 0.0))));
        let mut it = pts.into_iter().filter(|(p, r)| p.is_finite() && r.is_finite());
        let (p, r) = it.next()?;
        let init = (p - Vec3::splat(r), p + Vec3::splat(r));
        Some(it.fold(init, |(lo, hi), (p, r)| (lo.min(p - Vec3::splat(r)), hi.max(p + Vec3::splat(r)))))
    }
    /// The point the camera follows: the mean of `focus`, else the centre of the bounds.
    pub fn subject(&self) -> Option<Vec3> {
        let f: Vec<Vec3> = self.focus.iter().copied().filter(|p| p.is_finite()).collect();
        if !f.is_empty() {
            return Some(f.iter().sum::<Vec3>() / f.len() as f32);
        }
        self.bounds().map(|(lo, hi)| 0.5 * (lo + hi))
    }
}

/// Draws one kind of physics of environment `env` of a packed scene, shifted by `offset`.
pub trait Layer {
    fn draw(
        &mut self,
        model: &Model,
        state: &Columns<f32>,
        env: usize,
        offset: Vec3,
        frame: &mut Frame,
    ) -> anyhow::Result<()>;
}

/// The layers `diffsim render` runs, in drawing order.
pub fn layers() -> Vec<Box<dyn Layer>> {
    vec![Box::new(Articulations), Box::new(TetSurfaces::default()), Box::new(Particles), Box::new(MpmMaterial)]
}

/// Per-env rows `[count, width]` of a model column, if the model has it.
fn param_rows<'a>(model: &'a Model, name: &str, env: usize) -> Option<&'a [f64]> {
    model.params.env(name, env).ok()
}
fn topo_rows<'a>(model: &'a Model, name: &str, env: usize) -> Option<&'a [u32]> {
    model.topology.env(name, env).ok()
}
fn v3(s: &[f64], k: usize) -> Vec3 {
    Vec3::new(s[3 * k] as f32, s[3 * k + 1] as f32, s[3 * k + 2] as f32)
}

/// Rigid bodies: their shapes (`shape_*` model columns) at the poses forward kinematics gives
/// from `joint_q` (computed here, so a task without an FK system in its Post stage still draws
/// the current poses). A body without shapes is drawn as its equivalent-inertia box (the box of
/// uniform density with the body's mass and principal moments, centred on its COM), as
/// MuJoCo's inertia view does; cart-pole's bodies have no collision shapes.
pub struct Articulations;

impl Layer for Articulations {
    fn draw(
        &mut self,
        model: &Model,
        state: &Columns<f32>,
        env: usize,
        offset: Vec3,
        frame: &mut Frame,
    ) -> anyhow::Result<()> {
        let view = model.view(env..env + 1);
        let nb = ArticulationModel::bodies(&view);
        if nb == 0 {
            return Ok(());
        }
        let m = ArticulationModel::all(&view);
        let q = state.env("joint_q", env).context("articulated scene without `joint_q`")?;
        let qd = vec![0.0f32; state.env("joint_qd", env).map_or(0, <[f32]>::len)];
        let kin = kinematics(&m, q, &qd);
        let pose = |k: usize| {
            let r = kin.rot[k];
            let rot = Mat3::from_cols(
                Vec3::new(r[0][0], r[1][0], r[2][0]),
                Vec3::new(r[0][1], r[1][1], r[2][1]),
                Vec3::new(r[0][2], r[1][2], r[2][2]),
            );
            (Quat::from_mat3(&rot).normalize(), Vec3::from_array(kin.pos[k]) + offset)
        };
        let color = |k: usize| BODY_PALETTE[k % BODY_PALETTE.len()];
        let (kinds, bodies) = (topo_rows(model, "shape_kind", env), topo_rows(model, "shape_body", env));
        let (sizes, poses) = (param_rows(model, "shape_size", env), param_rows(model, "shape_pose", env));
        let mut has_shape = vec![false; nb];
        if let (Some(kinds), Some(bodies), Some(sizes), Some(poses)) = (kinds, bodies, sizes, poses) {
            for (s, (&kind, &body)) in kinds.iter().zip(bodies).enumerate() {
                let b = body as usize;
                if b >= nb {
                    continue;
                }
                has_shape[b] = true;
                let (rot, pos) = pose(b);
                let p = &poses[7 * s..7 * s + 7];
                let local_rot = Quat::from_xyzw(p[3] as f32, p[4] as f32, p[5] as f32, p[6] as f32).normalize();
                let center = pos + rot * Vec3::new(p[0] as f32, p[1] as f32, p[2] as f32);
                let rot = rot * local_rot;
                let size = v3(sizes, s);
                match kind {
                    SHAPE_SPHERE => frame.sphere(center, size.x, color(b)),
                    SHAPE_CAPSULE => frame.capsule(center, rot, size.x, size.y, color(b)),
                    SHAPE_BOX => frame.cuboid(center, rot, size, color(b)),
                    _ => {}
                }
            }
        }
        for (k, _) in has_shape.iter().enumerate().filter(|(_, h)| !**h) {
            let mass = m.mass[k] as f32;
            if mass <= 0.0 {
                continue;
            }
            // Uniform box with half-extents h: I_x = m/3 (h_y² + h_z²), etc. Inverted per axis
            // from the diagonal of the body-frame tensor (exact when its axes are principal).
            let i = [m.inertia[9 * k], m.inertia[9 * k + 4], m.inertia[9 * k + 8]].map(|x| x as f32);
            let h2 = |a: usize, b: usize, c: usize| (1.5 / mass * (i[b] + i[c] - i[a])).max(0.0);
            let half = Vec3::new(h2(0, 1, 2), h2(1, 0, 2), h2(2, 0, 1)).map(|x| x.sqrt().max(0.02));
            let (rot, pos) = pose(k);
            frame.cuboid(pos + rot * v3(m.com, k), rot, half, color(k));
        }
        // The camera follows the first body (the root: a torso, a cart).
        frame.focus.push(pose(0).1);
        Ok(())
    }
}

/// Free particles (`particle_q`, `particle_radius`) as points, and springs between them as thin
/// capsules. Particles that are vertices of tetrahedra are left to [`TetSurfaces`].
pub struct Particles;

impl Layer for Particles {
    fn draw(
        &mut self,
        model: &Model,
        state: &Columns<f32>,
        env: usize,
        offset: Vec3,
        frame: &mut Frame,
    ) -> anyhow::Result<()> {
        let Ok(q) = state.env("particle_q", env) else { return Ok(()) };
        let np = q.len() / 3;
        if np == 0 {
            return Ok(());
        }
        let radius = param_rows(model, "particle_radius", env);
        let mut in_tet = vec![false; np];
        for &v in topo_rows(model, "tet_indices", env).unwrap_or(&[]) {
            if let Some(t) = in_tet.get_mut(v as usize) {
                *t = true;
            }
        }
        let pos = |i: usize| Vec3::new(q[3 * i], q[3 * i + 1], q[3 * i + 2]) + offset;
        let r = |i: usize| radius.map_or(0.02, |r| r[i] as f32).max(0.005);
        let springs = topo_rows(model, "spring_indices", env).unwrap_or(&[]);
        for s in springs.chunks_exact(2) {
            let (a, b) = (s[0] as usize, s[1] as usize);
            if a < np && b < np && !(in_tet[a] && in_tet[b]) {
                frame.segment(pos(a), pos(b), 0.4 * r(a).min(r(b)), SPRING_COLOR);
            }
        }
        let mut sum = Vec3::ZERO;
        let mut count = 0;
        for i in (0..np).filter(|&i| !in_tet[i]) {
            frame.points.push(Point { pos: pos(i), radius: r(i), color: PARTICLE_COLOR });
            sum += pos(i);
            count += 1;
        }
        if count > 0 {
            frame.focus.push(sum / count as f32);
        }
        Ok(())
    }
}

/// MPM material points (`mpm_x`, radius from the particle volume `mpm_mass_vol`) and the
/// kinematic collider (`collider_q` = (x, y, z, θ about +y), shapes from `collider_shapes`).
pub struct MpmMaterial;

impl Layer for MpmMaterial {
    fn draw(
        &mut self,
        model: &Model,
        state: &Columns<f32>,
        env: usize,
        offset: Vec3,
        frame: &mut Frame,
    ) -> anyhow::Result<()> {
        let Ok(x) = state.env("mpm_x", env) else { return Ok(()) };
        let mass_vol = param_rows(model, "mpm_mass_vol", env);
        let mut sum = Vec3::ZERO;
        for (i, p) in x.chunks_exact(3).enumerate() {
            // The radius of a sphere of the particle's volume, a little shrunk so points separate.
            let vol = mass_vol.map_or(1e-6, |mv| mv[2 * i + 1]);
            let radius = (0.8 * (3.0 * vol / (4.0 * std::f64::consts::PI)).cbrt()) as f32;
            let pos = Vec3::new(p[0], p[1], p[2]) + offset;
            frame.points.push(Point { pos, radius: radius.max(0.002), color: MPM_COLOR });
            sum += pos;
        }
        if !x.is_empty() {
            frame.focus.push(sum / (x.len() / 3) as f32);
        }
        let (Ok(q), Some(shapes)) = (state.env("collider_q", env), param_rows(model, "collider_shapes", env)) else {
            return Ok(());
        };
        let rot = Quat::from_rotation_y(q[3]);
        let at = Vec3::new(q[0], q[1], q[2]) + offset;
        // Capsules and cylinders run along the body's local z; the unit meshes along y.
        let z_axis = rot * Quat::from_rotation_x(std::f32::consts::FRAC_PI_2);
        for sh in shapes.chunks_exact(8) {
            let [kind, cx, cy, cz, a, b, c, _] = std::array::from_fn(|k| sh[k] as f32);
            let center = at + rot * Vec3::new(cx, cy, cz);
            match kind as u32 {
                0 => frame.capsule(center, z_axis, a, b, COLLIDER_COLOR),
                1 => frame.cylinder(center, z_axis, a, b, COLLIDER_COLOR),
                _ => frame.cuboid(center, rot, Vec3::new(a, b, c), COLLIDER_COLOR),
            }
        }
        Ok(())
    }
}

/// A boundary face: its vertices and the fourth vertex of its tetrahedron.
pub type Face = ([u32; 3], u32);

/// The boundary of tetrahedral meshes (`tet_indices` over `particle_q`): the faces that belong
/// to exactly one tetrahedron, each wound so its normal points away from the tet's fourth
/// vertex (outwards). The face list is found once and cached (topology is constant).
#[derive(Default)]
pub struct TetSurfaces {
    /// Boundary faces per env: (vertices, the opposite vertex of their tet).
    faces: Vec<Option<Vec<Face>>>,
}

/// Faces of `tets` (`[T, 4]`) that no other tet shares.
pub fn boundary_faces(tets: &[u32]) -> Vec<Face> {
    let mut all: Vec<([u32; 3], [u32; 3], u32)> = Vec::with_capacity(tets.len());
    for t in tets.chunks_exact(4) {
        for (skip, &opposite) in t.iter().enumerate() {
            let f: Vec<u32> = (0..4).filter(|&i| i != skip).map(|i| t[i]).collect();
            let face = [f[0], f[1], f[2]];
            let mut key = face;
            key.sort_unstable();
            all.push((key, face, opposite));
        }
    }
    all.sort_unstable_by_key(|x| x.0);
    let mut out = Vec::new();
    let mut i = 0;
    while i < all.len() {
        let mut j = i + 1;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        if j - i == 1 {
            out.push((all[i].1, all[i].2));
        }
        i = j;
    }
    out
}

impl Layer for TetSurfaces {
    fn draw(
        &mut self,
        model: &Model,
        state: &Columns<f32>,
        env: usize,
        offset: Vec3,
        frame: &mut Frame,
    ) -> anyhow::Result<()> {
        let tets = topo_rows(model, "tet_indices", env).unwrap_or(&[]);
        let Ok(q) = state.env("particle_q", env) else { return Ok(()) };
        if tets.is_empty() {
            return Ok(());
        }
        if self.faces.len() <= env {
            self.faces.resize(env + 1, None);
        }
        let faces = self.faces[env].get_or_insert_with(|| boundary_faces(tets));
        let np = q.len() / 3;
        let pos = |i: u32| {
            let i = i as usize;
            (i < np).then(|| Vec3::new(q[3 * i], q[3 * i + 1], q[3 * i + 2]) + offset)
        };
        let mut sum = Vec3::ZERO;
        for (f, opposite) in faces.iter() {
            let (Some(a), Some(b), Some(c), Some(o)) = (pos(f[0]), pos(f[1]), pos(f[2]), pos(*opposite)) else {
                continue;
            };
            let outward = (b - a).cross(c - a).dot(a - o) >= 0.0;
            frame.triangles.push(Triangle { v: if outward { [a, b, c] } else { [a, c, b] }, color: SURFACE_COLOR });
            sum += a;
        }
        if !faces.is_empty() {
            frame.focus.push(sum / faces.len() as f32);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mpm_layer_draws_every_material_point_and_the_rollers_shapes() {
        use diffsim_engine::{Sim, SimFactory};
        use diffsim_tasks::{RollingFlat, RollingFlatConfig};
        let sim: Sim<f32> = RollingFlat::new(RollingFlatConfig::default()).sim().unwrap();
        let mut frame = Frame::default();
        MpmMaterial.draw(&sim.model, &sim.state, 0, Vec3::ZERO, &mut frame).unwrap();
        assert_eq!(frame.points.len(), sim.state.env("mpm_x", 0).unwrap().len() / 3);
        // Two capsules (roller and handle): a cylinder and two end spheres each, in grey.
        assert_eq!(frame.instances.len(), 6);
        assert!(frame.instances.iter().all(|i| i.color == COLLIDER_COLOR));
        let cylinders = frame.instances.iter().filter(|i| i.mesh == Mesh::Cylinder).count();
        assert_eq!(cylinders, 2);
        // The roller's axis (local z, rotated by θ about y) is horizontal.
        let axis = frame.instances[0].transform.transform_vector3(Vec3::Y).normalize();
        assert!(axis.y.abs() < 1e-6, "{axis:?}");
    }

    #[test]
    fn two_tets_sharing_a_face_have_six_outward_boundary_faces() {
        // Vertices 0..3 and 1..4: tets (0,1,2,3) and (4,1,2,3) share face {1,2,3}.
        let faces = boundary_faces(&[0, 1, 2, 3, 4, 1, 2, 3]);
        assert_eq!(faces.len(), 6);
        assert!(faces.iter().all(|(f, _)| { !(f.contains(&1) && f.contains(&2) && f.contains(&3)) }));
    }

    #[test]
    fn a_capsule_is_a_cylinder_and_two_end_spheres_and_bounds_cover_them() {
        let mut f = Frame::default();
        f.segment(Vec3::ZERO, Vec3::new(2.0, 0.0, 0.0), 0.1, PARTICLE_COLOR);
        assert_eq!(
            f.instances.iter().map(|i| i.mesh).collect::<Vec<_>>(),
            [Mesh::Cylinder, Mesh::Sphere, Mesh::Sphere]
        );
        let ends: Vec<Vec3> = f.instances[1..].iter().map(|i| i.transform.w_axis.truncate()).collect();
        assert!(ends.iter().any(|e| (*e - Vec3::new(2.0, 0.0, 0.0)).length() < 1e-5), "{ends:?}");
        let (lo, hi) = f.bounds().unwrap();
        assert!(lo.x <= -0.1 + 1e-5 && hi.x >= 2.1 - 1e-5, "{lo} {hi}");
        assert!((f.subject().unwrap() - Vec3::new(1.0, 0.0, 0.0)).length() < 1e-3);
    }

    #[test]
    fn palette_colours_are_warm_after_srgb_to_linear() {
        for c in BODY_PALETTE.iter().chain([&PARTICLE_COLOR, &SURFACE_COLOR]) {
            assert!(c[0] > 2.0 * c[2], "{c:?}");
        }
        assert!((srgb(255, 255, 255)[0] - 1.0).abs() < 0.01 && srgb(0, 0, 0)[0] == 0.0);
    }
}
