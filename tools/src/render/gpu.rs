//! The headless rasterizer of `diffsim render`: draws a `Frame` with wgpu into an offscreen
//! sRGB texture (4× MSAA, 32-bit depth) and reads the pixels back as RGBA rows.
//!
//! One render pipeline with two vertex buffers: per vertex (position, normal, colour) and per
//! instance (model matrix, normal matrix = (M₃ₓ₃⁻¹)ᵀ, colour and a material: solid, ground grid or
//! two-sided). Each unit mesh
//! is drawn once with all its instances; points are low-poly sphere instances; the frame's
//! triangles are one vertex buffer with flat normals under an identity instance; the ground is a
//! large quad around the camera target, gridded in the fragment shader (`shade.wgsl`). Culling is
//! off and the frame's triangles are lit on the side facing the eye, so any winding shows. It opens its device like the GPU backend
//! (`diffsim_engine::Gpu`: any adapter, `WGPU_BACKEND` to choose; lavapipe here).

use std::sync::mpsc;

use anyhow::{Context, anyhow, bail};
use diffsim_engine::Gpu;
use glam::{Mat3, Mat4, Vec3};
use wgpu::util::DeviceExt;

use super::camera::Camera;
use super::mesh::{self, MeshData};
use super::scene::{Frame, Mesh, Rgb, srgb};

const COLOR_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8UnormSrgb;
const DEPTH_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Depth32Float;
const SAMPLES: u32 = 4;

/// Colours of the world around the subject (linear). Neutral and cool, so warm bodies stand out.
pub const SKY: Rgb = srgb(172, 186, 204);
pub const GROUND: Rgb = srgb(196, 196, 192);
/// Light direction (travelling from the sun: down, slightly from the front-left).
const LIGHT_DIR: Vec3 = Vec3::new(0.35, -1.0, -0.45);
const AMBIENT: f32 = 0.35;

/// The ground plane: its height, grid spacing and half-size around the camera target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ground {
    pub height: f32,
    pub spacing: f32,
    pub half_size: f32,
}

/// Floats per vertex: position, normal, colour.
const VERTEX_FLOATS: usize = 9;
/// Floats per instance: 4×4 model, 3×3 normal matrix, colour + ground flag.
const INSTANCE_FLOATS: usize = 16 + 9 + 4;

struct GpuMesh {
    vertices: wgpu::Buffer,
    indices: wgpu::Buffer,
    count: u32,
}

/// Offscreen renderer of `width` × `height` images.
pub struct Renderer {
    gpu: Gpu,
    pipeline: wgpu::RenderPipeline,
    globals: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    msaa: wgpu::TextureView,
    resolve: wgpu::Texture,
    resolve_view: wgpu::TextureView,
    depth: wgpu::TextureView,
    readback: wgpu::Buffer,
    padded_row: u32,
    width: u32,
    height: u32,
    sphere: GpuMesh,
    point: GpuMesh,
    cube: GpuMesh,
    cylinder: GpuMesh,
    quad: GpuMesh,
}

fn floats_to_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vertex_floats(m: &MeshData) -> Vec<f32> {
    let mut v = Vec::with_capacity(m.positions.len() * VERTEX_FLOATS);
    for (p, n) in m.positions.iter().zip(&m.normals) {
        v.extend(p.to_array());
        v.extend(n.to_array());
        v.extend([1.0, 1.0, 1.0]);
    }
    v
}

/// How the fragment shader treats an instance (`shade.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Material {
    /// A mesh with outward normals.
    Solid = 0,
    /// The ground plane: grid lines.
    Ground = 1,
    /// Triangles of any winding: lit on the side facing the eye.
    TwoSided = 2,
}

/// Instance data of `transform` in `color`.
fn instance_floats(out: &mut Vec<f32>, transform: &Mat4, color: Rgb, material: Material) {
    out.extend(transform.to_cols_array());
    let m3 = Mat3::from_mat4(*transform);
    // Normals transform by the inverse transpose; a degenerate (zero-scale) instance keeps M.
    let n = if m3.determinant().abs() > 1e-12 { m3.inverse().transpose() } else { m3 };
    out.extend(n.to_cols_array());
    out.extend(color);
    out.push(material as u8 as f32);
}

impl Renderer {
    /// Opens a device and builds the pipeline and targets. Fails with the wgpu message when no
    /// adapter can be found (`request_adapter`) or the device cannot render.
    pub fn new(width: u32, height: u32) -> anyhow::Result<Self> {
        let gpu = Gpu::new().map_err(|e| {
            anyhow!(
                "diffsim render needs a wgpu adapter (Vulkan or GL; lavapipe works), and \
                 wgpu's request_adapter found none: {e}"
            )
        })?;
        Self::with_gpu(gpu, width, height)
    }

    pub fn with_gpu(gpu: Gpu, width: u32, height: u32) -> anyhow::Result<Self> {
        let max = gpu.limits().max_texture_dimension_2d;
        if width == 0 || height == 0 || width > max || height > max {
            bail!("image size {width}×{height} is outside 1..={max} pixels per side on `{}`", gpu.adapter_name());
        }
        let device = &gpu.device;
        let built = gpu.scoped("render pipeline", || {
            let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("render.shade"),
                source: wgpu::ShaderSource::Wgsl(include_str!("shade.wgsl").into()),
            });
            let layout_bg = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("render.globals"),
                entries: &[wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::VERTEX_FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                }],
            });
            let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("render.layout"),
                bind_group_layouts: &[Some(&layout_bg)],
                immediate_size: 0,
            });
            let vertex_attrs = wgpu::vertex_attr_array![0 => Float32x3, 1 => Float32x3, 2 => Float32x3];
            let instance_attrs = wgpu::vertex_attr_array![
                3 => Float32x4, 4 => Float32x4, 5 => Float32x4, 6 => Float32x4,
                7 => Float32x3, 8 => Float32x3, 9 => Float32x3, 10 => Float32x4
            ];
            let buffers = [
                Some(wgpu::VertexBufferLayout {
                    array_stride: (VERTEX_FLOATS * 4) as u64,
                    step_mode: wgpu::VertexStepMode::Vertex,
                    attributes: &vertex_attrs,
                }),
                Some(wgpu::VertexBufferLayout {
                    array_stride: (INSTANCE_FLOATS * 4) as u64,
                    step_mode: wgpu::VertexStepMode::Instance,
                    attributes: &instance_attrs,
                }),
            ];
            let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some("render.pipeline"),
                layout: Some(&layout),
                vertex: wgpu::VertexState {
                    module: &shader,
                    entry_point: Some("vs_main"),
                    compilation_options: Default::default(),
                    buffers: &buffers,
                },
                primitive: wgpu::PrimitiveState { cull_mode: None, ..Default::default() },
                depth_stencil: Some(wgpu::DepthStencilState {
                    format: DEPTH_FORMAT,
                    depth_write_enabled: Some(true),
                    depth_compare: Some(wgpu::CompareFunction::Less),
                    stencil: Default::default(),
                    bias: Default::default(),
                }),
                multisample: wgpu::MultisampleState { count: SAMPLES, ..Default::default() },
                fragment: Some(wgpu::FragmentState {
                    module: &shader,
                    entry_point: Some("fs_main"),
                    compilation_options: Default::default(),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: COLOR_FORMAT,
                        blend: None,
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                }),
                multiview_mask: None,
                cache: None,
            });
            let globals = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("render.globals"),
                size: (GLOBALS_FLOATS * 4) as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("render.globals"),
                layout: &layout_bg,
                entries: &[wgpu::BindGroupEntry { binding: 0, resource: globals.as_entire_binding() }],
            });
            (pipeline, globals, bind_group)
        });
        let (pipeline, globals, bind_group) =
            built.map_err(|e| anyhow!("building the render pipeline on `{}`: {e}", gpu.adapter_name()))?;
        let size = wgpu::Extent3d { width, height, depth_or_array_layers: 1 };
        let texture = |label: &str, format, samples, usage| {
            device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size,
                mip_level_count: 1,
                sample_count: samples,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage,
                view_formats: &[],
            })
        };
        let targets = gpu.scoped("render targets", || {
            let msaa = texture("render.msaa", COLOR_FORMAT, SAMPLES, wgpu::TextureUsages::RENDER_ATTACHMENT);
            let resolve = texture(
                "render.color",
                COLOR_FORMAT,
                1,
                wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            );
            let depth = texture("render.depth", DEPTH_FORMAT, SAMPLES, wgpu::TextureUsages::RENDER_ATTACHMENT);
            (msaa, resolve, depth)
        });
        let (msaa, resolve, depth) = targets.map_err(|e| anyhow!("creating {width}×{height} render targets: {e}"))?;
        let padded_row = (width * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("render.readback"),
            size: u64::from(padded_row) * u64::from(height),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let upload = |label: &str, m: &MeshData| GpuMesh {
            vertices: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &floats_to_bytes(&vertex_floats(m)),
                usage: wgpu::BufferUsages::VERTEX,
            }),
            indices: device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &m.indices.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>(),
                usage: wgpu::BufferUsages::INDEX,
            }),
            count: m.indices.len() as u32,
        };
        let meshes = [
            upload("render.sphere", &mesh::sphere(24, 16)),
            upload("render.point", &mesh::sphere(8, 6)),
            upload("render.cube", &mesh::cube()),
            upload("render.cylinder", &mesh::cylinder(24)),
            upload("render.ground", &mesh::ground_quad()),
        ];
        let [sphere, point, cube, cylinder, quad] = meshes;
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        Ok(Self {
            pipeline,
            globals,
            bind_group,
            msaa: view(&msaa),
            resolve_view: view(&resolve),
            resolve,
            depth: view(&depth),
            readback,
            padded_row,
            width,
            height,
            sphere,
            point,
            cube,
            cylinder,
            quad,
            gpu,
        })
    }

    pub fn adapter_name(&self) -> &str {
        self.gpu.adapter_name()
    }

    /// Draws `frame` seen by `camera` over `ground` (if any) and returns the image as RGBA8
    /// rows, top row first (sRGB).
    pub fn render(&mut self, frame: &Frame, camera: &Camera, ground: Option<Ground>) -> anyhow::Result<Vec<u8>> {
        let eye_distance = (camera.eye - camera.target).length();
        let mut globals = Vec::with_capacity(GLOBALS_FLOATS);
        globals.extend(camera.view_proj().to_cols_array());
        globals.extend(camera.eye.extend(1.0).to_array());
        globals.extend(LIGHT_DIR.normalize().extend(0.0).to_array());
        globals.extend(SKY);
        globals.push(1.0);
        let spacing = ground.map_or(1.0, |g| g.spacing);
        globals.extend([4.0 * eye_distance, 12.0 * eye_distance, spacing, AMBIENT]);
        globals.extend(GROUND);
        globals.push(0.3);
        let shadows = if ground.is_some() { occluders(frame) } else { Vec::new() };
        globals.extend([shadows.len() as f32, 0.0, 0.0, 0.0]);
        globals.extend(shadows.iter().flatten());
        globals.resize(GLOBALS_FLOATS, 0.0);

        // Instances grouped by mesh, in the order drawn below.
        let mut data = Vec::new();
        let mut ranges = Vec::new();
        let groups: [(&GpuMesh, Option<Mesh>); 3] =
            [(&self.sphere, Some(Mesh::Sphere)), (&self.cube, Some(Mesh::Box)), (&self.cylinder, Some(Mesh::Cylinder))];
        let mut count = 0u32;
        for (_, kind) in &groups {
            let start = count;
            for i in frame.instances.iter().filter(|i| Some(i.mesh) == *kind) {
                instance_floats(&mut data, &i.transform, i.color, Material::Solid);
                count += 1;
            }
            ranges.push(start..count);
        }
        let points_start = count;
        for p in &frame.points {
            let t = Mat4::from_scale_rotation_translation(Vec3::splat(p.radius), glam::Quat::IDENTITY, p.pos);
            instance_floats(&mut data, &t, p.color, Material::Solid);
            count += 1;
        }
        let points = points_start..count;
        let tris_instance = count;
        instance_floats(&mut data, &Mat4::IDENTITY, [1.0; 3], Material::TwoSided);
        count += 1;
        let ground_instance = count;
        if let Some(g) = ground {
            // Snap the quad's centre to the grid so lines do not swim as the camera moves.
            let snap = |x: f32| (x / g.spacing).round() * g.spacing;
            let centre = Vec3::new(snap(camera.target.x), g.height, snap(camera.target.z));
            let t = Mat4::from_scale_rotation_translation(
                Vec3::new(g.half_size, 1.0, g.half_size),
                glam::Quat::IDENTITY,
                centre,
            );
            instance_floats(&mut data, &t, [1.0; 3], Material::Ground);
        }
        let mut tri_vertices = Vec::with_capacity(frame.triangles.len() * 3 * VERTEX_FLOATS);
        for t in &frame.triangles {
            let n = (t.v[1] - t.v[0]).cross(t.v[2] - t.v[0]).normalize_or_zero();
            for v in t.v {
                tri_vertices.extend(v.to_array());
                tri_vertices.extend(n.to_array());
                tri_vertices.extend(t.color);
            }
        }

        let device = &self.gpu.device;
        let queue = &self.gpu.queue;
        let submitted = self.gpu.scoped("render frame", || {
            queue.write_buffer(&self.globals, 0, &floats_to_bytes(&globals));
            let instances = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("render.instances"),
                contents: &floats_to_bytes(&data),
                usage: wgpu::BufferUsages::VERTEX,
            });
            let triangles = (!tri_vertices.is_empty()).then(|| {
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("render.triangles"),
                    contents: &floats_to_bytes(&tri_vertices),
                    usage: wgpu::BufferUsages::VERTEX,
                })
            });
            let mut encoder =
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("render.frame") });
            {
                let sky = SKY.map(f64::from);
                let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("render.pass"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &self.msaa,
                        depth_slice: None,
                        resolve_target: Some(&self.resolve_view),
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color { r: sky[0], g: sky[1], b: sky[2], a: 1.0 }),
                            store: wgpu::StoreOp::Discard,
                        },
                    })],
                    depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                        view: &self.depth,
                        depth_ops: Some(wgpu::Operations {
                            load: wgpu::LoadOp::Clear(1.0),
                            store: wgpu::StoreOp::Discard,
                        }),
                        stencil_ops: None,
                    }),
                    timestamp_writes: None,
                    occlusion_query_set: None,
                    multiview_mask: None,
                });
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, &self.bind_group, &[]);
                pass.set_vertex_buffer(1, instances.slice(..));
                let mut draw = |m: &GpuMesh, r: std::ops::Range<u32>| {
                    if !r.is_empty() {
                        pass.set_vertex_buffer(0, m.vertices.slice(..));
                        pass.set_index_buffer(m.indices.slice(..), wgpu::IndexFormat::Uint32);
                        pass.draw_indexed(0..m.count, 0, r);
                    }
                };
                if ground.is_some() {
                    draw(&self.quad, ground_instance..ground_instance + 1);
                }
                for ((m, _), r) in groups.iter().zip(ranges) {
                    draw(m, r);
                }
                draw(&self.point, points);
                if let Some(t) = &triangles {
                    pass.set_vertex_buffer(0, t.slice(..));
                    pass.draw(0..frame.triangles.len() as u32 * 3, tris_instance..tris_instance + 1);
                }
            }
            encoder.copy_texture_to_buffer(
                wgpu::TexelCopyTextureInfo {
                    texture: &self.resolve,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::TexelCopyBufferInfo {
                    buffer: &self.readback,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(self.padded_row),
                        rows_per_image: Some(self.height),
                    },
                },
                wgpu::Extent3d { width: self.width, height: self.height, depth_or_array_layers: 1 },
            );
            queue.submit([encoder.finish()]);
        });
        submitted.map_err(|e| anyhow!("rendering a frame on `{}`: {e}", self.gpu.adapter_name()))?;
        self.read_pixels()
    }

    /// Maps the readback buffer and strips the row padding.
    fn read_pixels(&self) -> anyhow::Result<Vec<u8>> {
        let (tx, rx) = mpsc::channel();
        self.readback.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.gpu
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow!("waiting for the frame: device poll failed: {e}"))?;
        rx.try_recv()
            .context("reading the frame back: the map callback did not run after the device poll")?
            .map_err(|e| anyhow!("reading the frame back: map_async failed: {e}"))?;
        let row = (self.width * 4) as usize;
        let mut pixels = Vec::with_capacity(row * self.height as usize);
        {
            let view = self
                .readback
                .get_mapped_range(..)
                .map_err(|e| anyhow!("reading the frame back: get_mapped_range failed: {e}"))?;
            for r in 0..self.height as usize {
                let start = r * self.padded_row as usize;
                pixels.extend_from_slice(&view[start..start + row]);
            }
        }
        self.readback.unmap();
        Ok(pixels)
    }
}

/// Shadow-casting spheres the shader takes (`MAX_OCCLUDERS` in `shade.wgsl`).
const MAX_OCCLUDERS: usize = 64;
/// Floats in the `Globals` uniform of `shade.wgsl`.
const GLOBALS_FLOATS: usize = 16 + 4 * 6 + 4 * MAX_OCCLUDERS;

/// Spheres (centre, radius) approximating what `frame` draws, for the ground shadows: spheres
/// and points as they are, a cylinder as spheres spaced about a radius apart along its axis
/// (its capsule's end spheres are instances of their own), a box as spheres of its middle
/// half-extent along its longest axis. At most `MAX_OCCLUDERS`, the largest kept.
pub fn occluders(frame: &Frame) -> Vec<[f32; 4]> {
    let mut out: Vec<[f32; 4]> = Vec::new();
    let along = |out: &mut Vec<[f32; 4]>, c: Vec3, axis: Vec3, r: f32, inner_only: bool| {
        let k = ((2.0 * axis.length() / r.max(1e-6)).round() as usize).clamp(1, 16);
        for j in 0..=k {
            if inner_only && (j == 0 || j == k) {
                continue;
            }
            let t = -1.0 + 2.0 * j as f32 / k as f32;
            out.push((c + t * axis).extend(r).to_array());
        }
    };
    for i in &frame.instances {
        let (scale, rot, c) = i.transform.to_scale_rotation_translation();
        match i.mesh {
            Mesh::Sphere => out.push(c.extend(scale.x.abs()).to_array()),
            Mesh::Cylinder => along(&mut out, c, rot * Vec3::new(0.0, scale.y, 0.0), scale.x.abs(), true),
            Mesh::Box => {
                let h = scale.abs().to_array();
                let long = (0..3).max_by(|&a, &b| h[a].total_cmp(&h[b])).unwrap_or(0);
                let mut rest = [h[(long + 1) % 3], h[(long + 2) % 3]];
                rest.sort_by(f32::total_cmp);
                let mut axis = Vec3::ZERO;
                axis[long] = (h[long] - rest[1]).max(0.0);
                along(&mut out, c, rot * axis, rest[1], false);
            }
        }
    }
    out.extend(frame.points.iter().map(|p| p.pos.extend(p.radius).to_array()));
    out.retain(|s| s.iter().all(|x| x.is_finite()));
    if out.len() > MAX_OCCLUDERS {
        out.sort_by(|a, b| b[3].total_cmp(&a[3]));
        out.truncate(MAX_OCCLUDERS);
    }
    out
}
