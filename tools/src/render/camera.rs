//! The camera of `diffsim render`: a perspective look-at camera (right-handed, y up, wgpu's
//! depth range [0, 1]) and `Follow`, which keeps it on the subject of a rollout.
//!
//! The camera looks at a target from a fixed direction and distance; only the target moves, an
//! exponential moving average of the subject's position, so a running robot stays in the
//! middle of the picture without the shake of its gait. It owns no GPU state: the renderer reads
//! `view_proj` and `eye`.

#[cfg(test)]
use glam::Vec2;
use glam::{Mat4, Vec3, Vec4};

/// A perspective camera looking from `eye` at `target`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    pub eye: Vec3,
    pub target: Vec3,
    /// Vertical field of view, radians.
    pub fov_y: f32,
    /// Width / height of the image.
    pub aspect: f32,
    pub near: f32,
    pub far: f32,
}

impl Camera {
    /// World → view: the camera at the origin looking down its −z with y up. Rows are the
    /// camera basis s (right), u (up), −f (back) with f = (target − eye)/|·|, s = f × ŷ, u = s × f,
    /// and the translation −(basis · eye).
    pub fn view(&self) -> Mat4 {
        let f = (self.target - self.eye).normalize();
        let s = f.cross(Vec3::Y).try_normalize().unwrap_or(Vec3::X);
        let u = s.cross(f);
        Mat4::from_cols(
            Vec4::new(s.x, u.x, -f.x, 0.0),
            Vec4::new(s.y, u.y, -f.y, 0.0),
            Vec4::new(s.z, u.z, -f.z, 0.0),
            Vec4::new(-s.dot(self.eye), -u.dot(self.eye), f.dot(self.eye), 1.0),
        )
    }
    /// View → clip, with depth in [0, 1] (near → 0, far → 1) as wgpu expects: x_c = x cot(θ/2)/a,
    /// y_c = y cot(θ/2), z_c = (f z + f n)/(n − f), w_c = −z.
    pub fn proj(&self) -> Mat4 {
        let h = 1.0 / (0.5 * self.fov_y).tan();
        let r = self.far / (self.near - self.far);
        Mat4::from_cols(
            Vec4::new(h / self.aspect, 0.0, 0.0, 0.0),
            Vec4::new(0.0, h, 0.0, 0.0),
            Vec4::new(0.0, 0.0, r, -1.0),
            Vec4::new(0.0, 0.0, r * self.near, 0.0),
        )
    }
    pub fn view_proj(&self) -> Mat4 {
        self.proj() * self.view()
    }
    /// (Used by the tests; the renderer does the same on the GPU.)
    #[cfg(test)]
    /// Pixel coordinates (x right, y down, origin at the top-left corner) and depth in [0, 1] of
    /// world point `p` in an image of `size` pixels, or `None` if `p` is behind the camera.
    pub fn project(&self, p: Vec3, size: Vec2) -> Option<(Vec2, f32)> {
        let clip = self.view_proj() * p.extend(1.0);
        if clip.w <= 0.0 {
            return None;
        }
        let ndc = clip.truncate() / clip.w;
        let px = Vec2::new((ndc.x + 1.0) * 0.5 * size.x, (1.0 - ndc.y) * 0.5 * size.y);
        Some((px, ndc.z))
    }
}

/// Keeps a camera on a moving subject: the target is an exponential moving average of the
/// subject's position with time constant `tau` (seconds), seen from `direction` (unit, from the
/// target towards the eye) at `distance`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Follow {
    pub target: Vec3,
    pub direction: Vec3,
    pub distance: f32,
    pub tau: f32,
    /// Lowest target height: the camera keeps looking over the ground as a body falls.
    pub min_height: f32,
}

/// Default view direction: in front (+z), a little to the right (+x) and above (+y), so
/// motion along x and y (cart-pole, running) is seen side-on with some depth.
pub const VIEW_DIRECTION: Vec3 = Vec3::new(0.35, 0.45, 1.0);

impl Follow {
    /// A camera on `focus` that keeps a sphere of `radius` around it in view for a vertical
    /// field of view `fov_y` (with 30% margin; at least 1 m away).
    pub fn new(focus: Vec3, radius: f32, fov_y: f32) -> Self {
        let distance = (1.3 * radius.max(0.05) / (0.5 * fov_y).sin()).max(1.0);
        Self { target: focus, direction: VIEW_DIRECTION.normalize(), distance, tau: 0.25, min_height: f32::MIN }
    }
    /// Moves the target towards `focus` over `dt` seconds: target += (1 − e^(−dt/τ)) (focus − target).
    pub fn update(&mut self, focus: Vec3, dt: f32) {
        let alpha = if self.tau > 0.0 { 1.0 - (-dt / self.tau).exp() } else { 1.0 };
        self.target += alpha * (focus - self.target);
        self.target.y = self.target.y.max(self.min_height);
    }
    pub fn camera(&self, fov_y: f32, aspect: f32) -> Camera {
        let near = (0.02 * self.distance).max(0.01);
        Camera {
            eye: self.target + self.distance * self.direction,
            target: self.target,
            fov_y,
            aspect,
            near,
            far: near + 200.0 * self.distance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> Camera {
        Camera {
            eye: Vec3::new(0.0, 0.0, 5.0),
            target: Vec3::ZERO,
            fov_y: 60f32.to_radians(),
            aspect: 4.0 / 3.0,
            near: 0.1,
            far: 100.0,
        }
    }
    const SIZE: Vec2 = Vec2::new(320.0, 240.0);

    #[test]
    fn the_target_projects_to_the_image_centre_and_axes_keep_their_sense() {
        let c = cam();
        let (centre, _) = c.project(Vec3::ZERO, SIZE).unwrap();
        assert!((centre - SIZE / 2.0).length() < 1e-3, "{centre}");
        let (right, _) = c.project(Vec3::X, SIZE).unwrap();
        let (up, _) = c.project(Vec3::Y, SIZE).unwrap();
        assert!(right.x > centre.x + 1.0 && (right.y - centre.y).abs() < 1e-3, "{right}");
        assert!(up.y < centre.y - 1.0 && (up.x - centre.x).abs() < 1e-3, "y up is up in the image: {up}");
        assert!(c.project(Vec3::new(0.0, 0.0, 6.0), SIZE).is_none(), "behind the eye");
    }

    #[test]
    fn field_of_view_and_depth_range_are_wgpus() {
        let c = cam();
        // A point at the top edge of the vertical field of view, 5 m in front, lands on row 0.
        let top = Vec3::new(0.0, 5.0 * (0.5 * c.fov_y).tan(), 0.0);
        let (px, _) = c.project(top, SIZE).unwrap();
        assert!(px.y.abs() < 1e-2, "{px}");
        // The horizontal extent follows the aspect ratio.
        let side = Vec3::new(5.0 * (0.5 * c.fov_y).tan() * c.aspect, 0.0, 0.0);
        let (px, _) = c.project(side, SIZE).unwrap();
        assert!((px.x - SIZE.x).abs() < 1e-2, "{px}");
        // Depth: 0 at the near plane, 1 at the far plane, increasing in between.
        let depth = |d: f32| c.project(Vec3::new(0.0, 0.0, 5.0 - d), SIZE).unwrap().1;
        assert!(depth(c.near).abs() < 1e-5 && (depth(c.far) - 1.0).abs() < 1e-4);
        assert!(depth(1.0) < depth(2.0) && depth(2.0) < depth(50.0));
    }

    #[test]
    fn follow_converges_geometrically_and_frames_the_subject() {
        let fov = 45f32.to_radians();
        let mut f = Follow::new(Vec3::ZERO, 1.0, fov);
        let goal = Vec3::new(3.0, 0.5, -1.0);
        let dt = 0.05;
        for _ in 0..10 {
            f.update(goal, dt);
        }
        let expected = (-10.0 * dt / f.tau).exp() * goal.length();
        assert!(((goal - f.target).length() - expected).abs() < 1e-4, "{:?}", f.target);
        let c = f.camera(fov, 1.5);
        assert!(((c.eye - c.target).length() - f.distance).abs() < 1e-4);
        // A sphere of the given radius around the target fits inside the picture.
        for d in [Vec3::X, Vec3::Y, Vec3::Z, -Vec3::X, -Vec3::Y] {
            let (px, _) = c.project(c.target + d, SIZE).unwrap();
            assert!(px.x > 0.0 && px.x < SIZE.x && px.y > 0.0 && px.y < SIZE.y, "{d}: {px}");
        }
        f.min_height = 0.2;
        f.update(Vec3::new(0.0, -5.0, 0.0), 10.0);
        assert!(f.target.y >= 0.2);
    }
}
