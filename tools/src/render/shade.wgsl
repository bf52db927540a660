// `diffsim render`: instanced meshes with Lambert + ambient lighting, a grid on the ground
// and distance fog towards the sky colour. Colours are linear; the target is sRGB.

struct Globals {
    view_proj: mat4x4<f32>,
    eye: vec4<f32>,
    // Direction the light travels (unit), w unused.
    light_dir: vec4<f32>,
    sky: vec4<f32>,
    // x: fog start, y: fog end (distances from the eye), z: grid spacing (m), w: ambient.
    params: vec4<f32>,
    // rgb: the ground's colour, w: how dark the grid lines are (0..1).
    ground: vec4<f32>,
    // x: number of shadow occluders in use.
    counts: vec4<f32>,
    // Spheres (centre, radius) that cast soft shadows on the ground.
    occluders: array<vec4<f32>, MAX_OCCLUDERS>,
};

const MAX_OCCLUDERS: u32 = 64u;

@group(0) @binding(0) var<uniform> g: Globals;

// Fraction of sunlight that the occluder spheres block at ground point `p`: for each sphere,
// the distance d from its centre to the ray p + t L (L towards the sun, t > 0), turned into a
// soft edge whose penumbra widens with the distance t along the ray.
fn ground_shadow(p: vec3<f32>) -> f32 {
    let to_sun = -g.light_dir.xyz;
    var occ = 0.0;
    let n = min(u32(g.counts.x), MAX_OCCLUDERS);
    for (var i = 0u; i < n; i = i + 1u) {
        let s = g.occluders[i];
        let v = s.xyz - p;
        let t = dot(v, to_sun);
        if (t > 0.0) {
            let d = length(v - t * to_sun);
            let w = 0.25 * s.w + 0.08 * t;
            occ = max(occ, 1.0 - smoothstep(s.w - w, s.w + w, d));
        }
    }
    return occ;
}

struct VertexIn {
    @location(0) pos: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) color: vec3<f32>,
    @location(3) m0: vec4<f32>,
    @location(4) m1: vec4<f32>,
    @location(5) m2: vec4<f32>,
    @location(6) m3: vec4<f32>,
    @location(7) n0: vec3<f32>,
    @location(8) n1: vec3<f32>,
    @location(9) n2: vec3<f32>,
    // rgb: instance colour (multiplies the vertex colour); a: material, 0 a solid mesh with
    // outward normals, 1 the ground grid, 2 a two-sided surface.
    @location(10) icolor: vec4<f32>,
};

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) color: vec3<f32>,
    @location(3) @interpolate(flat) material: f32,
};

@vertex
fn vs_main(v: VertexIn) -> VertexOut {
    let model = mat4x4<f32>(v.m0, v.m1, v.m2, v.m3);
    let normal_matrix = mat3x3<f32>(v.n0, v.n1, v.n2);
    let world = model * vec4<f32>(v.pos, 1.0);
    var out: VertexOut;
    out.clip = g.view_proj * world;
    out.world = world.xyz;
    out.normal = normal_matrix * v.normal;
    out.color = v.color * v.icolor.rgb;
    out.material = v.icolor.a;
    return out;
}

@fragment
fn fs_main(f: VertexOut) -> @location(0) vec4<f32> {
    // Grid lines, anti-aliased over one pixel with screen-space derivatives. Derivatives must be
    // taken in uniform control flow, so this runs for every fragment and is selected below.
    let cell = f.world.xz / g.params.z;
    let width = max(fwidth(cell), vec2<f32>(1e-4));
    let dist = abs(fract(cell - 0.5) - 0.5) / width;
    // Fade lines out where cells shrink to a few pixels (far away), instead of a moiré.
    let fade = clamp(1.5 - 6.0 * max(width.x, width.y), 0.0, 1.0);
    let line = (1.0 - min(min(dist.x, dist.y), 1.0)) * fade;

    // Meshes carry outward normals; a two-sided surface (material 2) turns its normal to the eye.
    var n = normalize(f.normal);
    if (f.material > 1.5 && dot(n, g.eye.xyz - f.world) < 0.0) {
        n = -n;
    }
    let ambient = g.params.w;
    let diffuse = max(dot(n, -g.light_dir.xyz), 0.0);
    // A little sky light from above so faces turned from the sun keep their shape.
    let sky_light = 0.5 + 0.5 * n.y;
    let light = ambient * (0.6 + 0.4 * sky_light) + (1.0 - ambient) * diffuse;

    var base = f.color;
    var lit = light;
    if (f.material > 0.5 && f.material < 1.5) {
        base = g.ground.rgb * (1.0 - g.ground.w * line);
        lit = light - 0.8 * (1.0 - ambient) * diffuse * ground_shadow(f.world);
    }
    var color = base * lit;
    let d = distance(f.world, g.eye.xyz);
    let fog = smoothstep(g.params.x, g.params.y, d);
    color = mix(color, g.sky.rgb, fog);
    return vec4<f32>(color, 1.0);
}
