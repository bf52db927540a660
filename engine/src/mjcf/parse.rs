//! MJCF text → [`MjcfModel`]. Every element and attribute is checked against the supported
//! subset (see the module docs of `mjcf`); anything else is an error with its position.

use std::collections::HashMap;

use glam::{DMat3, DQuat, DVec3, Vec3};
use roxmltree::{Document, Node};

use super::inertia::{self, Sym3};
use super::{
    ContactParams, MjcfActuator, MjcfBody, MjcfError, MjcfGeom, MjcfGround, MjcfJoint, MjcfJointKind, MjcfModel,
    MjcfOptions, z_to_y, z_to_y_conj, z_to_y_quat,
};
use crate::components::Geometry;

/// Deepest body / default nesting accepted (guards the recursion).
const MAX_DEPTH: usize = 128;

/// Attributes ignored everywhere (purely visual or grouping).
const VISUAL: &[&str] = &["rgba", "material", "group"];
/// Elements ignored inside bodies, the world body and defaults (not physical).
const IGNORED_IN_BODY: &[&str] = &["site", "camera", "light"];
const ORIENTATION: &[&str] = &["quat", "axisangle", "euler", "xyaxes", "zaxis"];
const BODY_ATTRS: &[&str] = &["name", "childclass", "pos", "quat", "axisangle", "euler", "xyaxes", "zaxis"];
const JOINT_ATTRS: &[&str] = &[
    "name",
    "class",
    "type",
    "pos",
    "axis",
    "range",
    "limited",
    "armature",
    "damping",
    "stiffness",
    "springref",
    "ref",
    "frictionloss",
];
const GEOM_ATTRS: &[&str] = &[
    "name",
    "class",
    "type",
    "size",
    "fromto",
    "pos",
    "quat",
    "axisangle",
    "euler",
    "xyaxes",
    "zaxis",
    "density",
    "mass",
    "friction",
    "condim",
    "contype",
    "conaffinity",
];
const MOTOR_ATTRS: &[&str] = &["name", "class", "joint", "gear", "ctrlrange", "ctrllimited"];
const INERTIAL_ATTRS: &[&str] =
    &["pos", "mass", "diaginertia", "fullinertia", "quat", "axisangle", "euler", "xyaxes", "zaxis"];

type Result<T> = std::result::Result<T, MjcfError>;

/// An attribute value with where it was written (its own element or a default class).
#[derive(Clone, Debug)]
struct AttrVal {
    value: String,
    /// Byte offset of the value in the text.
    pos: usize,
    element: String,
    class: Option<String>,
}

type AttrMap = HashMap<String, AttrVal>;

#[derive(Clone, Debug, Default)]
struct Class {
    joint: AttrMap,
    geom: AttrMap,
    motor: AttrMap,
}

#[derive(Clone, Copy)]
enum Kind {
    Joint,
    Geom,
    Motor,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InertiaFromGeom {
    Auto,
    True,
    False,
}

struct Compiler {
    radian: bool,
    eulerseq: [u8; 3],
    inertia_from_geom: InertiaFromGeom,
    autolimits: bool,
    boundmass: f64,
    boundinertia: f64,
}

/// An element with the attributes of its default class.
struct El<'a, 'i> {
    node: Node<'a, 'i>,
    defaults: AttrMap,
}

impl<'a, 'i> El<'a, 'i> {
    fn plain(node: Node<'a, 'i>) -> Self {
        Self { node, defaults: AttrMap::new() }
    }
    fn get(&self, name: &str) -> Option<AttrVal> {
        match self.node.attributes().find(|a| a.name() == name && a.namespace().is_none()) {
            Some(a) => Some(AttrVal {
                value: a.value().to_string(),
                pos: a.range_value().start,
                element: tag(self.node).to_string(),
                class: None,
            }),
            None => self.defaults.get(name).cloned(),
        }
    }
}

fn tag<'a>(n: Node<'a, '_>) -> &'a str {
    n.tag_name().name()
}

fn elements<'a, 'i>(n: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

/// Geom data in MJCF coordinates, before conversion.
struct RawGeom {
    name: String,
    kind: &'static str,
    geometry: Geometry,
    /// Shape frame in the body frame (capsule axis = local y).
    pos: DVec3,
    rot: DQuat,
    mass: f64,
    /// Principal moments in the shape frame.
    inertia: DVec3,
    contact: ContactParams,
    contype: u32,
    conaffinity: u32,
    line: u32,
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, pos: usize) -> (u32, u32) {
    let before = &text[..pos];
    let line = before.bytes().filter(|c| *c == b'\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, col as u32)
}

/// A geom's solid for its mass properties (f64).
#[derive(Clone, Copy)]
enum Solid {
    Sphere(f64),
    /// Radius, cylinder half-length.
    Capsule(f64, f64),
    Box(DVec3),
    Plane,
}

impl Solid {
    /// Principal moments in the shape frame for mass `m`.
    fn inertia(self, m: f64) -> DVec3 {
        match self {
            Solid::Sphere(r) => inertia::sphere_inertia(m, r),
            Solid::Capsule(r, h) => inertia::capsule_inertia(m, r, h),
            Solid::Box(e) => inertia::box_inertia(m, e),
            Solid::Plane => DVec3::ZERO,
        }
    }
}

struct Parser<'a, 'i> {
    file: &'a str,
    doc: &'a Document<'i>,
    opts: MjcfOptions,
    compiler: Compiler,
    classes: HashMap<String, Class>,
    top_class: Option<String>,
    bodies: Vec<MjcfBody>,
    joints: Vec<MjcfJoint>,
    geoms: Vec<MjcfGeom>,
    actuators: Vec<MjcfActuator>,
    ground: Option<MjcfGround>,
    gravity: DVec3,
    timestep: f64,
    integrator: Option<String>,
    names: HashMap<(&'static str, String), u32>,
}

/// Deepest XML element nesting handed to roxmltree, whose tokenizer recurses once per level.
const MAX_XML_DEPTH: usize = MAX_DEPTH + 16;

/// Byte offset of the first start tag nested deeper than `limit`, by a quote-aware scan of the
/// tags (comments, CDATA, processing instructions and declarations skipped). An over-estimate
/// on malformed text is harmless: the scan only guards the parser's recursion.
fn too_deep(text: &str, limit: usize) -> Option<usize> {
    let b = text.as_bytes();
    let find = |from: usize, pat: &[u8]| -> usize {
        b[from.min(b.len())..].windows(pat.len()).position(|w| w == pat).map_or(b.len(), |k| from + k + pat.len())
    };
    let (mut i, mut depth) = (0, 0usize);
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = find(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = find(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = find(i + 2, b"?>");
        } else if rest.starts_with(b"<!") {
            i = find(i + 2, b">");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = find(i + 2, b">");
        } else {
            let start = i;
            let mut quote = None;
            let mut j = i + 1;
            while j < b.len() {
                match (quote, b[j]) {
                    (None, b'"' | b'\'') => quote = Some(b[j]),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            if !(j < b.len() && j > 0 && b[j - 1] == b'/') {
                depth += 1;
                if depth > limit {
                    return Some(start);
                }
            }
            i = j + 1;
        }
    }
    None
}

pub(super) fn parse(text: &str, file: &str, opts: &MjcfOptions) -> Result<MjcfModel> {
    if let Some(pos) = too_deep(text, MAX_XML_DEPTH) {
        let (line, column) = line_col(text, pos);
        return Err(MjcfError {
            file: file.to_string(),
            line,
            column,
            element: "xml".into(),
            message: format!("elements nested deeper than {MAX_XML_DEPTH}"),
        });
    }
    let doc = Document::parse(text).map_err(|e| {
        let p = e.pos();
        MjcfError {
            file: file.to_string(),
            line: p.row,
            column: p.col,
            element: "xml".into(),
            message: format!("malformed XML: {e}"),
        }
    })?;
    let mut p = Parser {
        file,
        doc: &doc,
        opts: *opts,
        compiler: Compiler {
            radian: false,
            eulerseq: *b"xyz",
            inertia_from_geom: InertiaFromGeom::Auto,
            autolimits: true,
            boundmass: 0.0,
            boundinertia: 0.0,
        },
        classes: HashMap::new(),
        top_class: None,
        bodies: Vec::new(),
        joints: Vec::new(),
        geoms: Vec::new(),
        actuators: Vec::new(),
        ground: None,
        gravity: DVec3::new(0.0, 0.0, -9.81),
        timestep: 0.002,
        integrator: None,
        names: HashMap::new(),
    };
    let name = p.run()?;
    let gravity = if opts.z_up_to_y_up { z_to_y(p.gravity) } else { p.gravity };
    Ok(MjcfModel {
        name,
        file: file.to_string(),
        bodies: p.bodies,
        joints: p.joints,
        geoms: p.geoms,
        actuators: p.actuators,
        ground: p.ground,
        gravity: gravity.as_vec3(),
        timestep: p.timestep as f32,
        integrator: p.integrator,
        options: *opts,
    })
}

impl<'a, 'i> Parser<'a, 'i> {
    // ---------------------------------------------------------------- errors and values

    fn err_at(&self, pos: usize, element: &str, message: impl Into<String>) -> MjcfError {
        let p = self.doc.text_pos_at(pos);
        MjcfError {
            file: self.file.to_string(),
            line: p.row,
            column: p.col,
            element: element.to_string(),
            message: message.into(),
        }
    }

    fn err(&self, node: Node, message: impl Into<String>) -> MjcfError {
        self.err_at(node.range().start, tag(node), message)
    }

    fn line(&self, node: Node) -> u32 {
        self.doc.text_pos_at(node.range().start).row
    }

    fn err_attr(&self, a: &AttrVal, name: &str, expected: &str) -> MjcfError {
        let from = a.class.as_ref().map(|c| format!(" (from default class `{c}`)")).unwrap_or_default();
        self.err_at(a.pos, &a.element, format!("attribute `{name}` = \"{}\"{from}: expected {expected}", a.value))
    }

    fn unsupported(&self, node: Node, parent: &str) -> MjcfError {
        let t = tag(node);
        let why = match t {
            "tendon" | "spatial" | "fixed" => " (tendons are not modelled)",
            "equality" | "connect" | "weld" => " (equality constraints are not modelled)",
            "contact" | "exclude" | "pair" => " (explicit contact pairs/exclusions are not modelled)",
            "keyframe" => " (keyframes are not supported: set initial states in the task)",
            "include" => " (includes are not supported: inline the file)",
            "frame" => " (frames are not supported: use nested bodies)",
            "general" | "position" | "velocity" | "intvelocity" | "damper" | "cylinder" | "muscle" | "adhesion" => {
                " (only <motor> actuators are supported)"
            }
            "mesh" | "hfield" | "skin" => " (mesh and height-field geoms are not supported)",
            _ => "",
        };
        self.err(node, format!("unsupported element <{t}> inside <{parent}>{why}"))
    }

    fn check_attrs(&self, node: Node, allowed: &[&str], ignored: &[&str]) -> Result<()> {
        for a in node.attributes() {
            let n = a.name();
            if a.namespace().is_none() && (allowed.contains(&n) || ignored.contains(&n)) {
                continue;
            }
            let ign = if ignored.is_empty() { String::new() } else { format!("; ignored: {}", ignored.join(", ")) };
            return Err(self.err_at(
                a.range().start,
                tag(node),
                format!("unsupported attribute `{n}` (supported: {}{ign})", allowed.join(", ")),
            ));
        }
        Ok(())
    }

    fn no_children(&self, node: Node) -> Result<()> {
        match elements(node).next() {
            Some(c) => Err(self.err(c, format!("unexpected element <{}> inside <{}>", tag(c), tag(node)))),
            None => Ok(()),
        }
    }

    fn numbers(&self, a: &AttrVal, name: &str, min: usize, max: usize) -> Result<Vec<f64>> {
        let expected = if min == max {
            format!("{min} number{}", if min == 1 { "" } else { "s" })
        } else {
            format!("{min} to {max} numbers")
        };
        let mut out = Vec::new();
        for tok in a.value.split_whitespace() {
            match tok.parse::<f64>() {
                Ok(x) if x.is_finite() => out.push(x),
                _ => {
                    return Err(self.err_attr(
                        a,
                        name,
                        &format!("{expected}, found `{tok}` which is not a finite number"),
                    ));
                }
            }
        }
        if out.len() < min || out.len() > max {
            return Err(self.err_attr(a, name, &format!("{expected}, found {}", out.len())));
        }
        Ok(out)
    }

    fn floats(&self, el: &El, name: &str, min: usize, max: usize) -> Result<Option<Vec<f64>>> {
        el.get(name).map(|a| self.numbers(&a, name, min, max)).transpose()
    }

    fn nonneg(&self, el: &El, name: &str) -> Result<Option<f64>> {
        match el.get(name) {
            None => Ok(None),
            Some(a) => {
                let x = self.numbers(&a, name, 1, 1)?[0];
                if x < 0.0 {
                    return Err(self.err_attr(&a, name, "a number >= 0"));
                }
                Ok(Some(x))
            }
        }
    }

    fn vec3(&self, el: &El, name: &str) -> Result<Option<DVec3>> {
        Ok(self.floats(el, name, 3, 3)?.map(|v| DVec3::new(v[0], v[1], v[2])))
    }

    fn choice(&self, el: &El, name: &str, options: &[&str]) -> Result<Option<String>> {
        match el.get(name) {
            None => Ok(None),
            Some(a) if options.contains(&a.value.as_str()) => Ok(Some(a.value)),
            Some(a) => Err(self.err_attr(&a, name, &format!("one of {}", options.join(", ")))),
        }
    }

    fn uint(&self, el: &El, name: &str) -> Result<Option<u32>> {
        match el.get(name) {
            None => Ok(None),
            Some(a) => a.value.trim().parse::<u32>().map(Some).map_err(|_| self.err_attr(&a, name, "an integer >= 0")),
        }
    }

    fn zero_only(&self, el: &El, name: &str, why: &str) -> Result<()> {
        if let Some(a) = el.get(name)
            && self.numbers(&a, name, 1, 1)?[0] != 0.0
        {
            return Err(self.err_attr(&a, name, &format!("0 ({why})")));
        }
        Ok(())
    }

    fn angle(&self, x: f64) -> f64 {
        if self.compiler.radian { x } else { x.to_radians() }
    }

    /// The orientation given by one of quat/axisangle/euler/xyaxes/zaxis (own attributes first,
    /// then the default class), in MJCF coordinates.
    fn orientation(&self, el: &El) -> Result<Option<DQuat>> {
        let own: Vec<&str> = ORIENTATION.iter().copied().filter(|k| el.node.attribute(*k).is_some()).collect();
        if own.len() > 1 {
            return Err(self.err(el.node, format!("several orientations given ({}): use one", own.join(", "))));
        }
        let key = match own.first() {
            Some(k) => *k,
            None => match ORIENTATION.iter().find(|k| el.defaults.contains_key(**k)) {
                Some(k) => k,
                None => return Ok(None),
            },
        };
        let a = el.get(key).expect("present");
        let q = match key {
            "quat" => {
                let v = self.numbers(&a, key, 4, 4)?;
                let q = DQuat::from_xyzw(v[1], v[2], v[3], v[0]);
                if q.length() < 1e-12 {
                    return Err(self.err_attr(&a, key, "a nonzero quaternion (w x y z)"));
                }
                q.normalize()
            }
            "axisangle" => {
                let v = self.numbers(&a, key, 4, 4)?;
                let axis = DVec3::new(v[0], v[1], v[2]);
                if axis.length() < 1e-12 {
                    return Err(self.err_attr(&a, key, "a nonzero axis followed by an angle"));
                }
                DQuat::from_axis_angle(axis.normalize(), self.angle(v[3]))
            }
            "euler" => {
                let v = self.numbers(&a, key, 3, 3)?;
                let mut q = DQuat::IDENTITY;
                for (i, &c) in self.compiler.eulerseq.iter().enumerate() {
                    let axis = match c.to_ascii_lowercase() {
                        b'x' => DVec3::X,
                        b'y' => DVec3::Y,
                        _ => DVec3::Z,
                    };
                    let r = DQuat::from_axis_angle(axis, self.angle(v[i]));
                    // Lower case: axes rotating with the frame (intrinsic); upper case: fixed axes.
                    q = if c.is_ascii_lowercase() { q * r } else { r * q };
                }
                q.normalize()
            }
            "xyaxes" => {
                let v = self.numbers(&a, key, 6, 6)?;
                let x = DVec3::new(v[0], v[1], v[2]);
                let y = DVec3::new(v[3], v[4], v[5]);
                let xn = x.normalize_or_zero();
                let yo = y - xn * y.dot(xn);
                if x.length() < 1e-12 || yo.length() < 1e-12 {
                    return Err(self.err_attr(&a, key, "two nonzero, non-parallel axes"));
                }
                let yn = yo.normalize();
                DQuat::from_mat3(&DMat3::from_cols(xn, yn, xn.cross(yn))).normalize()
            }
            _ => {
                let v = self.numbers(&a, key, 3, 3)?;
                let z = DVec3::new(v[0], v[1], v[2]);
                if z.length() < 1e-12 {
                    return Err(self.err_attr(&a, key, "a nonzero axis"));
                }
                DQuat::from_rotation_arc(DVec3::Z, z.normalize())
            }
        };
        Ok(Some(q))
    }

    fn name(&mut self, el: &El, kind: &'static str) -> Result<String> {
        let Some(a) = el.get("name") else { return Ok(String::new()) };
        if let Some(line) = self.names.get(&(kind, a.value.clone())) {
            return Err(self.err_at(
                a.pos,
                &a.element,
                format!("duplicate {kind} name `{}` (first at line {line})", a.value),
            ));
        }
        let line = self.line(el.node);
        self.names.insert((kind, a.value.clone()), line);
        Ok(a.value)
    }

    fn defaults_for(&self, node: Node, childclass: Option<&str>, kind: Kind) -> Result<AttrMap> {
        let class = match node.attributes().find(|a| a.name() == "class") {
            Some(a) => {
                if !self.classes.contains_key(a.value()) {
                    return Err(self.err_at(
                        a.range_value().start,
                        tag(node),
                        format!("attribute `class` = \"{}\": no such default class", a.value()),
                    ));
                }
                Some(a.value())
            }
            None => childclass.or(self.top_class.as_deref()),
        };
        Ok(class
            .and_then(|c| self.classes.get(c))
            .map(|c| match kind {
                Kind::Joint => c.joint.clone(),
                Kind::Geom => c.geom.clone(),
                Kind::Motor => c.motor.clone(),
            })
            .unwrap_or_default())
    }

    // ------------------------------------------------------------------ coordinates

    fn cv(&self, v: DVec3) -> Vec3 {
        if self.opts.z_up_to_y_up { z_to_y(v).as_vec3() } else { v.as_vec3() }
    }

    /// A body orientation (frame re-expressed on both sides).
    fn cq_body(&self, q: DQuat) -> DQuat {
        if self.opts.z_up_to_y_up { z_to_y_conj(q) } else { q }
    }

    /// A shape or principal-axes rotation (its own local frame kept).
    fn cq_frame(&self, q: DQuat) -> DQuat {
        if self.opts.z_up_to_y_up { (z_to_y_quat() * q).normalize() } else { q }
    }

    fn ct(&self, t: &Sym3) -> Sym3 {
        if !self.opts.z_up_to_y_up {
            return *t;
        }
        // C T Cᵀ with C rows (1,0,0), (0,0,1), (0,−1,0): exact.
        let c = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]];
        let mut out = [[0.0; 3]; 3];
        for (i, row) in out.iter_mut().enumerate() {
            for (j, x) in row.iter_mut().enumerate() {
                let mut s = 0.0;
                for k in 0..3 {
                    for l in 0..3 {
                        s += c[i][k] * t[k][l] * c[j][l];
                    }
                }
                *x = s;
            }
        }
        out
    }

    // ------------------------------------------------------------------ document

    fn run(&mut self) -> Result<String> {
        let root = self.doc.root_element();
        if tag(root) != "mujoco" {
            return Err(self.err(root, format!("the root element must be <mujoco>, found <{}>", tag(root))));
        }
        self.check_attrs(root, &["model"], &[])?;
        let name = root.attribute("model").unwrap_or("").to_string();
        let children: Vec<Node> = elements(root).collect();
        for &c in children.iter().filter(|c| tag(**c) == "compiler") {
            self.compiler(c)?;
        }
        for &c in &children {
            match tag(c) {
                "compiler" | "worldbody" | "actuator" => {}
                "option" => self.option(c)?,
                "default" => self.default_class(c, None, 0)?,
                "asset" => self.asset(c)?,
                "size" | "visual" | "statistic" | "sensor" | "custom" => {}
                _ => return Err(self.unsupported(c, "mujoco")),
            }
        }
        for &c in children.iter().filter(|c| tag(**c) == "worldbody") {
            self.worldbody(c)?;
        }
        for &c in children.iter().filter(|c| tag(**c) == "actuator") {
            self.actuator(c)?;
        }
        Ok(name)
    }

    fn compiler(&mut self, node: Node) -> Result<()> {
        self.check_attrs(
            node,
            &["angle", "coordinate", "eulerseq", "inertiafromgeom", "autolimits", "boundmass", "boundinertia"],
            &["meshdir", "texturedir", "assetdir", "discardvisual", "strippath"],
        )?;
        self.no_children(node)?;
        let el = El::plain(node);
        if let Some(a) = self.choice(&el, "angle", &["degree", "radian"])? {
            self.compiler.radian = a == "radian";
        }
        if let Some(a) = el.get("coordinate")
            && a.value != "local"
        {
            return Err(self.err_attr(&a, "coordinate", "`local` (global coordinates are not supported)"));
        }
        if let Some(a) = el.get("eulerseq") {
            let b = a.value.as_bytes();
            if b.len() != 3 || !b.iter().all(|c| b"xyzXYZ".contains(c)) {
                return Err(self.err_attr(&a, "eulerseq", "three of the letters x, y, z, X, Y, Z"));
            }
            self.compiler.eulerseq = [b[0], b[1], b[2]];
        }
        if let Some(a) = self.choice(&el, "inertiafromgeom", &["auto", "true", "false"])? {
            self.compiler.inertia_from_geom = match a.as_str() {
                "true" => InertiaFromGeom::True,
                "false" => InertiaFromGeom::False,
                _ => InertiaFromGeom::Auto,
            };
        }
        if let Some(a) = self.choice(&el, "autolimits", &["true", "false"])? {
            self.compiler.autolimits = a == "true";
        }
        if let Some(x) = self.nonneg(&el, "boundmass")? {
            self.compiler.boundmass = x;
        }
        if let Some(x) = self.nonneg(&el, "boundinertia")? {
            self.compiler.boundinertia = x;
        }
        Ok(())
    }

    fn option(&mut self, node: Node) -> Result<()> {
        self.check_attrs(node, &["timestep", "gravity", "integrator"], &[])?;
        self.no_children(node)?;
        let el = El::plain(node);
        if let Some(a) = el.get("timestep") {
            let x = self.numbers(&a, "timestep", 1, 1)?[0];
            if x <= 0.0 {
                return Err(self.err_attr(&a, "timestep", "a time step > 0"));
            }
            self.timestep = x;
        }
        if let Some(g) = self.vec3(&el, "gravity")? {
            self.gravity = g;
        }
        if let Some(i) = self.choice(&el, "integrator", &["Euler", "RK4", "implicit", "implicitfast"])? {
            self.integrator = Some(i);
        }
        Ok(())
    }

    fn asset(&mut self, node: Node) -> Result<()> {
        self.check_attrs(node, &[], &[])?;
        for c in elements(node) {
            if !matches!(tag(c), "texture" | "material") {
                return Err(self.unsupported(c, "asset"));
            }
        }
        Ok(())
    }

    fn default_class(&mut self, node: Node, parent: Option<&Class>, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err(node, format!("<default> nested deeper than {MAX_DEPTH}")));
        }
        self.check_attrs(node, &["class"], &[])?;
        let name = match (node.attribute("class"), parent) {
            (Some(n), _) => n.to_string(),
            (None, None) => "main".to_string(),
            (None, Some(_)) => return Err(self.err(node, "a nested <default> needs a `class` attribute")),
        };
        let mut class = parent.cloned().unwrap_or_default();
        let mut nested = Vec::new();
        for c in elements(node) {
            let (map, allowed) = match tag(c) {
                "joint" => (&mut class.joint, JOINT_ATTRS),
                "geom" => (&mut class.geom, GEOM_ATTRS),
                "motor" => (&mut class.motor, MOTOR_ATTRS),
                "default" => {
                    nested.push(c);
                    continue;
                }
                t if IGNORED_IN_BODY.contains(&t) => continue,
                _ => return Err(self.unsupported(c, "default")),
            };
            let allowed: Vec<&str> = allowed.iter().copied().filter(|a| *a != "name" && *a != "class").collect();
            self.check_attrs(c, &allowed, VISUAL)?;
            self.no_children(c)?;
            for a in c.attributes() {
                map.insert(
                    a.name().to_string(),
                    AttrVal {
                        value: a.value().to_string(),
                        pos: a.range_value().start,
                        element: tag(c).to_string(),
                        class: Some(name.clone()),
                    },
                );
            }
        }
        if self.classes.contains_key(&name) {
            return Err(self.err(node, format!("duplicate default class `{name}`")));
        }
        if parent.is_none() {
            self.top_class = Some(name.clone());
        }
        self.classes.insert(name, class.clone());
        for c in nested {
            self.default_class(c, Some(&class), depth + 1)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------------ bodies

    fn worldbody(&mut self, node: Node) -> Result<()> {
        self.check_attrs(node, &[], &[])?;
        for c in elements(node) {
            match tag(c) {
                "body" => self.body(c, None, None, 1)?,
                "geom" => self.world_geom(c)?,
                t if IGNORED_IN_BODY.contains(&t) => {}
                "joint" | "freejoint" | "inertial" => {
                    return Err(self.err(c, format!("<{}> cannot be attached to <worldbody>", tag(c))));
                }
                _ => return Err(self.unsupported(c, "worldbody")),
            }
        }
        Ok(())
    }

    fn world_geom(&mut self, node: Node) -> Result<()> {
        let el = El { node, defaults: self.defaults_for(node, None, Kind::Geom)? };
        let g = self.geom(&el, true)?;
        if g.kind != "plane" {
            return Err(self.err(
                node,
                format!("static <geom type=\"{}\"> in <worldbody> is not supported (only a ground plane)", g.kind),
            ));
        }
        let normal = self.cv(g.rot * DVec3::Z);
        let pos = self.cv(g.pos);
        if (normal - Vec3::Y).length() > 1e-5 || pos.y.abs() > 1e-6 {
            let conv = if self.opts.z_up_to_y_up { " after the z-up → y-up conversion" } else { "" };
            return Err(self.err(
                node,
                format!(
                    "the ground plane must be y = 0 with normal +y{conv} (the simulator's Ground), got normal {normal} through {pos}"
                ),
            ));
        }
        if let Some(g0) = &self.ground {
            return Err(self.err(node, format!("a second ground plane (the first is at line {})", g0.line)));
        }
        self.ground = Some(MjcfGround { name: g.name, contact: g.contact, line: g.line });
        Ok(())
    }

    fn body(&mut self, node: Node, parent: Option<usize>, childclass: Option<String>, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err(node, format!("bodies nested deeper than {MAX_DEPTH}")));
        }
        self.check_attrs(node, BODY_ATTRS, &[])?;
        let el = El::plain(node);
        let childclass = match el.get("childclass") {
            Some(a) if !self.classes.contains_key(&a.value) => {
                return Err(self.err_attr(&a, "childclass", "the name of a default class"));
            }
            Some(a) => Some(a.value),
            None => childclass,
        };
        let name = self.name(&el, "body")?;
        let pos = self.vec3(&el, "pos")?.unwrap_or(DVec3::ZERO);
        let rot = self.orientation(&el)?.unwrap_or(DQuat::IDENTITY);
        let index = self.bodies.len();
        let line = self.line(node);
        self.bodies.push(MjcfBody {
            name: name.clone(),
            parent,
            pos: self.cv(pos),
            rot: self.cq_body(rot).as_quat(),
            mass: 0.0,
            inertia: Vec3::ZERO,
            inertia_rot: glam::Quat::IDENTITY,
            com: Vec3::ZERO,
            joints: Vec::new(),
            geoms: Vec::new(),
            line,
        });
        let mut inertial: Option<(Node, f64, DVec3, Sym3)> = None;
        let mut geoms = Vec::new();
        let mut joint_nodes = Vec::new();
        let mut children = Vec::new();
        for c in elements(node) {
            match tag(c) {
                "inertial" => {
                    if let Some((first, ..)) = inertial {
                        return Err(
                            self.err(c, format!("a second <inertial> (the first is at line {})", self.line(first)))
                        );
                    }
                    let (m, com, t) = self.inertial(c)?;
                    inertial = Some((c, m, com, t));
                }
                "joint" | "freejoint" => {
                    let j = self.joint(c, index, childclass.as_deref())?;
                    joint_nodes.push(c);
                    self.bodies[index].joints.push(self.joints.len());
                    self.joints.push(j);
                }
                "geom" => {
                    let el = El { node: c, defaults: self.defaults_for(c, childclass.as_deref(), Kind::Geom)? };
                    let g = self.geom(&el, false)?;
                    geoms.push(g);
                }
                "body" => children.push(c),
                t if IGNORED_IN_BODY.contains(&t) => {}
                _ => return Err(self.unsupported(c, "body")),
            }
        }
        // A free joint: the only joint of a root body.
        let nj = self.bodies[index].joints.len();
        for (k, &ji) in self.bodies[index].joints.iter().enumerate() {
            if self.joints[ji].kind == MjcfJointKind::Free && (parent.is_some() || nj > 1) {
                return Err(self
                    .err(joint_nodes[k], "a free joint must be the only joint of a body directly inside <worldbody>"));
            }
        }
        // Mass properties (MJCF body frame), then converted.
        let from_geoms = |geoms: &[RawGeom]| -> (f64, DVec3, Sym3) {
            let m: f64 = geoms.iter().map(|g| g.mass).sum();
            if m <= 0.0 {
                return (0.0, DVec3::ZERO, [[0.0; 3]; 3]);
            }
            let com = geoms.iter().map(|g| g.pos * g.mass).sum::<DVec3>() / m;
            let mut t = [[0.0; 3]; 3];
            for g in geoms {
                inertia::add(&mut t, &inertia::tensor(g.inertia, g.rot));
                inertia::add(&mut t, &inertia::parallel_axis(g.mass, g.pos - com));
            }
            (m, com, t)
        };
        let (mass, com, t) = match (self.compiler.inertia_from_geom, inertial) {
            (InertiaFromGeom::True, _) | (InertiaFromGeom::Auto, None) => from_geoms(&geoms),
            (_, Some((_, m, c, t))) => (m, c, t),
            (InertiaFromGeom::False, None) => (0.0, DVec3::ZERO, [[0.0; 3]; 3]),
        };
        if !mass.is_finite() || !com.is_finite() || t.iter().flatten().any(|x| !x.is_finite()) {
            return Err(self.err(node, format!("the mass properties of body `{name}` overflow")));
        }
        let (mut moments, axes) = inertia::principal(&self.ct(&t));
        let mass = mass.max(self.compiler.boundmass);
        moments = moments.max(DVec3::splat(self.compiler.boundinertia));
        if nj > 0 && mass <= 0.0 {
            return Err(self.err(
                node,
                format!("body `{name}` has joints but no mass: give it geoms with volume or an <inertial mass=>"),
            ));
        }
        {
            let com = self.cv(com);
            let b = &mut self.bodies[index];
            b.mass = mass as f32;
            b.inertia = moments.as_vec3();
            b.inertia_rot = axes.as_quat();
            b.com = com;
        }
        for g in geoms {
            let gi = self.geoms.len();
            self.bodies[index].geoms.push(gi);
            self.geoms.push(MjcfGeom {
                name: g.name,
                body: index,
                geometry: g.geometry,
                pos: self.cv(g.pos),
                rot: self.cq_frame(g.rot).as_quat(),
                mass: g.mass as f32,
                contact: g.contact,
                contype: g.contype,
                conaffinity: g.conaffinity,
                line: g.line,
            });
        }
        for c in children {
            self.body(c, Some(index), childclass.clone(), depth + 1)?;
        }
        Ok(())
    }

    fn inertial(&self, node: Node) -> Result<(f64, DVec3, Sym3)> {
        self.check_attrs(node, INERTIAL_ATTRS, &[])?;
        self.no_children(node)?;
        let el = El::plain(node);
        let pos = self.vec3(&el, "pos")?.ok_or_else(|| self.err(node, "missing attribute `pos`"))?;
        let mass = self.nonneg(&el, "mass")?.ok_or_else(|| self.err(node, "missing attribute `mass`"))?;
        let rot = self.orientation(&el)?;
        let t = match (el.get("diaginertia"), el.get("fullinertia")) {
            (Some(_), Some(_)) => return Err(self.err(node, "both `diaginertia` and `fullinertia` given: use one")),
            (None, None) => return Err(self.err(node, "missing attribute `diaginertia` or `fullinertia`")),
            (Some(a), None) => {
                let v = self.numbers(&a, "diaginertia", 3, 3)?;
                if v.iter().any(|x| *x < 0.0) {
                    return Err(self.err_attr(&a, "diaginertia", "3 numbers >= 0"));
                }
                inertia::tensor(DVec3::new(v[0], v[1], v[2]), rot.unwrap_or(DQuat::IDENTITY))
            }
            (None, Some(a)) => {
                if rot.is_some() {
                    return Err(self.err(node, "`fullinertia` cannot be combined with an orientation"));
                }
                let v = self.numbers(&a, "fullinertia", 6, 6)?;
                let t = [[v[0], v[3], v[4]], [v[3], v[1], v[5]], [v[4], v[5], v[2]]];
                let (d, _) = inertia::principal(&t);
                let scale = d.abs().max_element().max(1e-300);
                if d.min_element() < -1e-9 * scale
                    || d.x + d.y < d.z * (1.0 - 1e-9)
                    || d.y + d.z < d.x * (1.0 - 1e-9)
                    || d.x + d.z < d.y * (1.0 - 1e-9)
                {
                    return Err(self.err_attr(
                        &a,
                        "fullinertia",
                        "a positive semi-definite inertia whose principal moments satisfy the triangle inequality (ixx iyy izz ixy ixz iyz)",
                    ));
                }
                t
            }
        };
        Ok((mass, pos, t))
    }

    fn joint(&mut self, node: Node, body: usize, childclass: Option<&str>) -> Result<MjcfJoint> {
        let line = self.line(node);
        if tag(node) == "freejoint" {
            self.check_attrs(node, &["name"], VISUAL)?;
            self.no_children(node)?;
            let name = self.name(&El::plain(node), "joint")?;
            return Ok(MjcfJoint {
                name,
                body,
                kind: MjcfJointKind::Free,
                pos: Vec3::ZERO,
                axis: Vec3::ZERO,
                limit: None,
                armature: 0.0,
                damping: 0.0,
                gear: 0.0,
                line,
            });
        }
        self.check_attrs(node, JOINT_ATTRS, VISUAL)?;
        self.no_children(node)?;
        let el = El { node, defaults: self.defaults_for(node, childclass, Kind::Joint)? };
        let name = self.name(&el, "joint")?;
        let kind = match self.choice(&el, "type", &["hinge", "slide", "ball", "free"])?.as_deref() {
            Some("slide") => MjcfJointKind::Slide,
            Some("ball") => MjcfJointKind::Ball,
            Some("free") => MjcfJointKind::Free,
            _ => MjcfJointKind::Hinge,
        };
        let pos = self.vec3(&el, "pos")?.unwrap_or(DVec3::ZERO);
        let axis = match el.get("axis") {
            None => DVec3::Z,
            Some(a) => {
                let v = self.numbers(&a, "axis", 3, 3)?;
                let v = DVec3::new(v[0], v[1], v[2]);
                if v.length() < 1e-12 {
                    return Err(self.err_attr(&a, "axis", "a nonzero vector"));
                }
                v.normalize()
            }
        };
        let range = match el.get("range") {
            None => None,
            Some(a) => {
                let v = self.numbers(&a, "range", 2, 2)?;
                if v[0] > v[1] {
                    return Err(self.err_attr(&a, "range", "lower <= upper"));
                }
                Some((a, v[0], v[1]))
            }
        };
        let limited = match self.choice(&el, "limited", &["true", "false", "auto"])?.as_deref() {
            Some("true") => {
                if range.is_none() {
                    return Err(self.err(node, "limited=\"true\" needs a `range`"));
                }
                true
            }
            Some("false") => false,
            _ => range.is_some() && self.compiler.autolimits,
        };
        let limit = match (limited, range) {
            (true, Some((a, lo, hi))) => match kind {
                MjcfJointKind::Hinge => Some((self.angle(lo) as f32, self.angle(hi) as f32)),
                MjcfJointKind::Slide => Some((lo as f32, hi as f32)),
                _ => {
                    return Err(self.err_attr(
                        &a,
                        "range",
                        "no range: limits of ball and free joints are not supported",
                    ));
                }
            },
            _ => None,
        };
        let armature = self.nonneg(&el, "armature")?.unwrap_or(0.0) * self.opts.armature_scale as f64;
        let damping = self.nonneg(&el, "damping")?.unwrap_or(0.0);
        self.zero_only(&el, "stiffness", "joint springs are not supported")?;
        self.zero_only(&el, "springref", "joint springs are not supported")?;
        self.zero_only(&el, "ref", "joint reference positions are not supported")?;
        self.zero_only(&el, "frictionloss", "dry joint friction is not supported")?;
        let (pos, axis) = match kind {
            MjcfJointKind::Free => (Vec3::ZERO, Vec3::ZERO),
            MjcfJointKind::Ball => (self.cv(pos), Vec3::ZERO),
            _ => (self.cv(pos), self.cv(axis)),
        };
        Ok(MjcfJoint {
            name,
            body,
            kind,
            pos,
            axis,
            limit,
            armature: armature as f32,
            damping: damping as f32,
            gear: 0.0,
            line,
        })
    }

    fn geom(&mut self, el: &El, in_world: bool) -> Result<RawGeom> {
        let node = el.node;
        self.check_attrs(node, GEOM_ATTRS, VISUAL)?;
        self.no_children(node)?;
        let line = self.line(node);
        let name = self.name(el, "geom")?;
        let kind: &'static str = match el.get("type") {
            None => "sphere",
            Some(a) => match a.value.as_str() {
                "sphere" => "sphere",
                "capsule" => "capsule",
                "box" => "box",
                "plane" => "plane",
                "cylinder" | "ellipsoid" | "mesh" | "hfield" | "sdf" => {
                    return Err(self.err_attr(
                        &a,
                        "type",
                        &format!("one of sphere, capsule, box, plane (`{}` is not supported)", a.value),
                    ));
                }
                _ => return Err(self.err_attr(&a, "type", "one of sphere, capsule, box, plane")),
            },
        };
        if kind == "plane" && !in_world {
            return Err(self.err(node, "planes are only supported directly in <worldbody> (as the ground)"));
        }
        let size_attr = el.get("size");
        let size = match &size_attr {
            Some(a) => self.numbers(a, "size", 1, 3)?,
            None => Vec::new(),
        };
        let need = |n: usize, what: &str| -> Result<()> {
            match &size_attr {
                None => Err(self.err(node, format!("missing attribute `size` ({what})"))),
                Some(a) if size.len() < n || size[..n].iter().any(|x| *x <= 0.0) => {
                    Err(self.err_attr(a, "size", &format!("{what}, all > 0")))
                }
                _ => Ok(()),
            }
        };
        let fromto = match el.get("fromto") {
            None => None,
            Some(a) if kind != "capsule" => {
                return Err(self.err_attr(&a, "fromto", "no `fromto`: it is supported on capsules only"));
            }
            Some(a) => Some((self.numbers(&a, "fromto", 6, 6)?, a)),
        };
        let pos = self.vec3(el, "pos")?.unwrap_or(DVec3::ZERO);
        let rot = self.orientation(el)?.unwrap_or(DQuat::IDENTITY);
        // The solid for mass properties, in f64; its shape frame has a capsule's axis along y.
        let (solid, pos, rot) = match kind {
            "sphere" => {
                need(1, "a sphere needs its radius")?;
                (Solid::Sphere(size[0]), pos, rot)
            }
            "capsule" => {
                need(1, "a capsule needs its radius")?;
                let (h, pos, rot) = match &fromto {
                    Some((v, a)) => {
                        let from = DVec3::new(v[0], v[1], v[2]);
                        let to = DVec3::new(v[3], v[4], v[5]);
                        let len = from.distance(to);
                        if len < 1e-12 {
                            return Err(self.err_attr(a, "fromto", "two distinct end points"));
                        }
                        (len / 2.0, (from + to) / 2.0, DQuat::from_rotation_arc(DVec3::Y, (to - from) / len))
                    }
                    None => {
                        need(2, "a capsule without `fromto` needs radius and half-length")?;
                        // MJCF capsules lie along the geom's z; ours along the shape's y.
                        (size[1], pos, rot * DQuat::from_rotation_x(std::f64::consts::FRAC_PI_2))
                    }
                };
                (Solid::Capsule(size[0], h), pos, rot)
            }
            "box" => {
                need(3, "a box needs 3 half extents")?;
                (Solid::Box(DVec3::new(size[0], size[1], size[2])), pos, rot)
            }
            _ => (Solid::Plane, pos, rot),
        };
        let (geometry, volume) = match solid {
            Solid::Sphere(r) => (Geometry::Sphere { radius: r as f32 }, inertia::sphere_volume(r)),
            Solid::Capsule(r, h) => {
                (Geometry::Capsule { radius: r as f32, half_height: h as f32 }, inertia::capsule_volume(r, h))
            }
            Solid::Box(e) => (Geometry::Box { half_extents: e.as_vec3() }, inertia::box_volume(e)),
            Solid::Plane => (Geometry::Sphere { radius: 0.0 }, 0.0),
        };
        let mass = match (self.nonneg(el, "mass")?, self.nonneg(el, "density")?) {
            (Some(m), _) => m,
            (None, d) => d.unwrap_or(1000.0) * volume,
        };
        if !mass.is_finite() || !solid.inertia(mass).is_finite() {
            return Err(self.err(node, format!("the mass properties of this geom overflow (mass {mass})")));
        }
        let mut contact = self.opts.contact;
        if let Some(a) = el.get("friction") {
            let v = self.numbers(&a, "friction", 1, 3)?;
            if v[0] < 0.0 {
                return Err(self.err_attr(&a, "friction", "a sliding friction coefficient >= 0"));
            }
            contact.mu = v[0] as f32;
        }
        if let Some(a) = el.get("condim") {
            match a.value.trim() {
                "3" => {}
                "1" => contact.mu = 0.0,
                _ => {
                    return Err(self.err_attr(
                        &a,
                        "condim",
                        "1 (frictionless) or 3 (sliding friction); torsional and rolling friction are not supported",
                    ));
                }
            }
        }
        let contype = self.uint(el, "contype")?.unwrap_or(1);
        let conaffinity = self.uint(el, "conaffinity")?.unwrap_or(1);
        Ok(RawGeom {
            name,
            kind,
            geometry,
            pos,
            rot,
            mass,
            inertia: solid.inertia(mass),
            contact,
            contype,
            conaffinity,
            line,
        })
    }

    // ------------------------------------------------------------------ actuators

    fn actuator(&mut self, node: Node) -> Result<()> {
        self.check_attrs(node, &[], &[])?;
        for c in elements(node) {
            if tag(c) != "motor" {
                return Err(self.unsupported(c, "actuator"));
            }
            self.check_attrs(c, MOTOR_ATTRS, VISUAL)?;
            self.no_children(c)?;
            let el = El { node: c, defaults: self.defaults_for(c, None, Kind::Motor)? };
            let name = self.name(&el, "actuator")?;
            let a =
                el.get("joint").ok_or_else(|| self.err(c, "missing attribute `joint` (the driven joint's name)"))?;
            let ji = self
                .joints
                .iter()
                .position(|j| j.name == a.value && !a.value.is_empty())
                .ok_or_else(|| self.err_attr(&a, "joint", "the name of a joint"))?;
            let j = &self.joints[ji];
            if !matches!(j.kind, MjcfJointKind::Hinge | MjcfJointKind::Slide) {
                return Err(self.err_attr(
                    &a,
                    "joint",
                    "a hinge or slide joint (motors on ball and free joints are not supported)",
                ));
            }
            if let Some(other) = self.actuators.iter().find(|x| x.joint == ji) {
                return Err(self.err(c, format!("joint `{}` already has a motor (line {})", a.value, other.line)));
            }
            let gear = match el.get("gear") {
                None => 1.0,
                Some(g) => {
                    let v = self.numbers(&g, "gear", 1, 6)?;
                    if v[1..].iter().any(|x| *x != 0.0) {
                        return Err(self.err_attr(&g, "gear", "one number (the joint gear; further components 0)"));
                    }
                    v[0]
                }
            };
            let range = match el.get("ctrlrange") {
                None => None,
                Some(r) => {
                    let v = self.numbers(&r, "ctrlrange", 2, 2)?;
                    if v[0] > v[1] {
                        return Err(self.err_attr(&r, "ctrlrange", "lower <= upper"));
                    }
                    Some((v[0] as f32, v[1] as f32))
                }
            };
            let ctrlrange = match self.choice(&el, "ctrllimited", &["true", "false", "auto"])?.as_deref() {
                Some("true") => Some(range.ok_or_else(|| self.err(c, "ctrllimited=\"true\" needs a `ctrlrange`"))?),
                Some("false") => None,
                _ if self.compiler.autolimits => range,
                _ => None,
            };
            self.joints[ji].gear = gear as f32;
            let line = self.line(c);
            self.actuators.push(MjcfActuator { name, joint: ji, gear: gear as f32, ctrlrange, line });
        }
        Ok(())
    }
}
