//! A CPU software rasterizer reproducing the peer's OpenGL 1.x frame: perspective-correct textured
//! triangles, a depth buffer, back-face culling, per-vertex fixed-function lighting with the
//! peer's directional light, mip-mapped textures and supersampling, and a top-down map view.

use vldac_core::Frame;

use crate::entity::{Entity, Shape};
use crate::mesh::{self, LTri};
use crate::texture::{self, Level, TexName, Texture, fast_floor};
use crate::world::World;

/// A world-space vertex with its lit colour.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Vert {
    p: [f32; 3],
    uv: [f32; 2],
    c: [f32; 3],
}

#[derive(Debug, Clone, Copy)]
struct Tri {
    v: [Vert; 3],
    tex: Option<&'static Texture>,
    cull: bool,
}

/// Rendering options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Supersampling factor per axis (1 = one sample per pixel; the peer uses 4x MSAA, which
    /// only smooths edges: one sample per pixel measured closer to the peer's frames).
    pub supersample: u32,
    /// Bilinear filtering within the chosen mip level (else the nearest texel).
    pub bilinear: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { supersample: 1, bilinear: true }
    }
}

/// The per-vertex lighting model: `clamp(kd * (0.2 + ambient) + kd * diffuse * max(0, n·L))`.
#[derive(Debug, Clone, Copy)]
struct Light {
    dir: [f32; 3],
    ambient: [f32; 3],
    diffuse: [f32; 3],
}

impl Light {
    fn of(world: &World) -> Self {
        let l = world.lighting;
        // The peer passes `light_pos + [1]` (numpy adds 1 element-wise) with w = 0: a directional light.
        let d = [l.light_pos[0] + 1.0, l.light_pos[1] + 1.0, l.light_pos[2] + 1.0];
        let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        Light {
            dir: [(d[0] / n) as f32, (d[1] / n) as f32, (d[2] / n) as f32],
            ambient: l.light_ambient.map(|a| 0.2 + a as f32),
            diffuse: l.light_color.map(|a| a as f32),
        }
    }

    /// `n` need not be unit length (scaled meshes have scaled normals, as in the peer).
    fn shade(&self, kd: [f32; 3], n: [f32; 3]) -> [f32; 3] {
        let ndl = (n[0] * self.dir[0] + n[1] * self.dir[1] + n[2] * self.dir[2]).max(0.0);
        [0, 1, 2].map(|k| (kd[k] * self.ambient[k] + kd[k] * self.diffuse[k] * ndl).clamp(0.0, 1.0))
    }
}

/// Static geometry of an episode (rooms and static entities), built at reset.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    tris: Vec<Tri>,
}

fn room_tris(world: &World, light: &Light, out: &mut Vec<Tri>) {
    for (ri, room) in world.rooms.iter().enumerate() {
        let var = world.tex_variants.get(ri).copied().unwrap_or([0; 3]);
        let st = room.style;
        let floor_tex = texture::get(st.floor_tex, var[1]);
        let (pu, pv) = st.floor_tex.period_m();
        let white = [1.0f32; 3];
        let fc = light.shade(white, [0.0, 1.0, 0.0]);
        let o = &room.outline;
        let vert = |p: [f64; 3], per: (f64, f64), c: [f32; 3]| Vert {
            p: p.map(|x| x as f32),
            uv: [(p[0] / per.0) as f32, (p[2] / per.1) as f32],
            c,
        };
        for i in 1..o.len().saturating_sub(1) {
            out.push(Tri {
                v: [vert(o[0], (pu, pv), fc), vert(o[i], (pu, pv), fc), vert(o[i + 1], (pu, pv), fc)],
                tex: Some(floor_tex),
                cull: true,
            });
        }
        if !st.no_ceiling {
            let ceil_tex = texture::get(st.ceil_tex, var[2]);
            let per = st.ceil_tex.period_m();
            let cc = light.shade(white, [0.0, -1.0, 0.0]);
            let h = st.wall_height;
            let rev: Vec<[f64; 3]> = o.iter().rev().map(|p| [p[0], h, p[2]]).collect();
            for i in 1..rev.len().saturating_sub(1) {
                out.push(Tri {
                    v: [vert(rev[0], per, cc), vert(rev[i], per, cc), vert(rev[i + 1], per, cc)],
                    tex: Some(ceil_tex),
                    cull: true,
                });
            }
        }
        let wall_tex = texture::get(st.wall_tex, var[0]);
        let (wu, wv) = st.wall_tex.period_m();
        for q in &room.wall_quads {
            let n = q.normal.map(|x| x as f32);
            let c = light.shade(white, n);
            let mk = |p: [f64; 3], y: f64, s: f64| Vert {
                p: [p[0] as f32, y as f32, p[2] as f32],
                uv: [(s / wu) as f32, (y / wv) as f32],
                c,
            };
            let v = [mk(q.p0, q.y0, q.s0), mk(q.p0, q.y1, q.s0), mk(q.p1, q.y1, q.s1), mk(q.p1, q.y0, q.s1)];
            out.push(Tri { v: [v[0], v[1], v[2]], tex: Some(wall_tex), cull: true });
            out.push(Tri { v: [v[0], v[2], v[3]], tex: Some(wall_tex), cull: true });
        }
    }
}

/// Rotation about +y by `dir` (the peer's `glRotatef(dir deg, 0, 1, 0)`): local +x → dir_vec.
fn place(e: &Entity, p: [f32; 3], s: f32) -> [f32; 3] {
    let (sn, cs) = (e.dir.sin() as f32, e.dir.cos() as f32);
    let (x, y, z) = (p[0] * s, p[1] * s, p[2] * s);
    [e.pos[0] as f32 + cs * x + sn * z, e.pos[1] as f32 + y, e.pos[2] as f32 - sn * x + cs * z]
}

fn rot_n(e: &Entity, n: [f32; 3]) -> [f32; 3] {
    let (sn, cs) = (e.dir.sin() as f32, e.dir.cos() as f32);
    [cs * n[0] + sn * n[2], n[1], -sn * n[0] + cs * n[2]]
}

fn push_local(
    e: &Entity,
    tris: &[LTri],
    size: f32,
    nscale: f32,
    tex: Option<&'static Texture>,
    light: &Light,
    out: &mut Vec<Tri>,
) {
    for t in tris {
        let v = [0, 1, 2].map(|i| {
            let n = rot_n(e, t.n[i]);
            Vert { p: place(e, t.p[i], size), uv: t.uv[i], c: light.shade(t.kd, n.map(|x| x * nscale)) }
        });
        out.push(Tri { v, tex, cull: true });
    }
}

fn entity_tris(e: &Entity, light: &Light, out: &mut Vec<Tri>) {
    match &e.shape {
        Shape::Agent => {}
        Shape::Box { size } => {
            let (hx, hz) = (size[0] as f32 / 2.0, size[2] as f32 / 2.0);
            let mut local = Vec::with_capacity(12);
            let kd = e.color_vec.map(|x| x as f32);
            mesh::push_box(&mut local, [-hx, 0.0, -hz], [hx, size[1] as f32, hz], kd, [1.0; 2]);
            push_local(e, &local, 1.0, 1.0, None, light, out);
        }
        Shape::Mesh { kind, scale } => {
            let kd = e.color.map_or([1.0; 3], |c| c.rgb().map(|x| x as f32));
            let m = mesh::cached(*kind, kd);
            let tex = m.tex.map(|t| texture::get(t, 0));
            // Normals are scaled by 1/scale in the peer (glScalef without GL_NORMALIZE).
            push_local(e, &m.tris, e.height as f32, 1.0 / *scale, tex, light, out);
        }
        Shape::ImageFrame { width, depth } => {
            frame_tris(e, *width, e.height, *depth, &[(TexSrc::Named(TexName::LogoMila), 0.0, 1.0)], light, out)
        }
        Shape::TextFrame { text, depth } => {
            let n = text.chars().count().max(1) as f64;
            let cells: Vec<(TexSrc, f64, f64)> =
                text.chars().enumerate().map(|(i, ch)| (TexSrc::Glyph(ch), i as f64 / n, (i + 1) as f64 / n)).collect();
            frame_tris(e, n * e.height, e.height, *depth, &cells, light, out)
        }
    }
}

enum TexSrc {
    Named(TexName),
    Glyph(char),
}

/// A frame on a wall: textured cells on the +x face (`(tex, from, to)` fractions of the width,
/// running towards -z as in the peer) and a black border box behind.
fn frame_tris(
    e: &Entity,
    width: f64,
    height: f64,
    depth: f64,
    cells: &[(TexSrc, f64, f64)],
    light: &Light,
    out: &mut Vec<Tri>,
) {
    let (hz, hy, sx) = (width as f32 / 2.0, height as f32 / 2.0, depth as f32);
    let white = light.shade([1.0; 3], rot_n(e, [1.0, 0.0, 0.0]));
    for (src, a, b) in cells {
        let z0 = hz - 2.0 * hz * *b as f32;
        let z1 = hz - 2.0 * hz * *a as f32;
        let tex = match src {
            TexSrc::Named(n) => texture::get(*n, 0),
            TexSrc::Glyph(c) => texture::glyph(*c),
        };
        let v = |p: [f32; 3], uv: [f32; 2]| Vert { p: place(e, p, 1.0), uv, c: white };
        let q = [
            v([sx, hy, z0], [1.0, 1.0]),
            v([sx, hy, z1], [0.0, 1.0]),
            v([sx, -hy, z1], [0.0, 0.0]),
            v([sx, -hy, z0], [1.0, 0.0]),
        ];
        out.push(Tri { v: [q[0], q[1], q[2]], tex: Some(tex), cull: true });
        out.push(Tri { v: [q[0], q[2], q[3]], tex: Some(tex), cull: true });
    }
    let mut local = Vec::new();
    mesh::push_box(&mut local, [0.0, -hy, -hz], [sx, hy, hz], [0.0; 3], [1.0; 2]);
    push_local(e, &local, 1.0, 1.0, None, light, out);
}

impl Scene {
    /// Rooms and static entities (the peer's display list).
    pub fn build(world: &World) -> Self {
        let light = Light::of(world);
        let mut tris = Vec::new();
        room_tris(world, &light, &mut tris);
        for e in world.entities.iter().filter(|e| e.is_static) {
            entity_tris(e, &light, &mut tris);
        }
        Scene { tris }
    }
}

/// A projected vertex: screen position, depth key (larger = nearer), 1/w and attributes × 1/w.
#[derive(Debug, Clone, Copy)]
struct SVert {
    x: f32,
    y: f32,
    z: f32,
    q: f32,
    u: f32,
    v: f32,
    c: [f32; 3],
}

/// View-space vertex for near-plane clipping.
#[derive(Debug, Clone, Copy)]
struct CVert {
    vx: f64,
    vy: f64,
    w: f64,
    u: f32,
    v: f32,
    c: [f32; 3],
}

const NEAR: f64 = 0.04;
const FAR: f32 = 100.0;

enum Proj {
    Persp { eye: [f64; 3], r: [f64; 3], u: [f64; 3], f: [f64; 3], sx: f64, sy: f64 },
    Ortho { min_x: f64, max_x: f64, min_z: f64, max_z: f64 },
}

/// Reusable colour and depth buffers.
#[derive(Debug, Clone, Default)]
pub struct Renderer {
    w: usize,
    h: usize,
    /// RGB8 packed little-endian (`r | g << 8 | b << 16`).
    color: Vec<u32>,
    depth: Vec<f32>,
    dynamic: Vec<Tri>,
}

impl Renderer {
    fn resize(&mut self, w: usize, h: usize, sky: u32) {
        if self.w != w || self.h != h {
            self.w = w;
            self.h = h;
            self.color = vec![sky; w * h];
            self.depth = vec![0.0; w * h];
        } else {
            self.color.fill(sky);
            self.depth.fill(0.0);
        }
    }

    /// The agent's view, `width × height`, rows top-down.
    pub fn render_obs(&mut self, world: &World, scene: &Scene, width: u32, height: u32, opts: RenderOptions) -> Frame {
        let ss = opts.supersample.clamp(1, 4) as usize;
        let (w, h) = (width as usize * ss, height as usize * ss);
        let a = &world.agent;
        let cam = world.camera;
        let dv = a.dir_vec();
        let eye = [a.pos[0] + cam.fwd_disp * dv[0], a.pos[1] + cam.height, a.pos[2] + cam.fwd_disp * dv[2]];
        let p = cam.pitch_deg.to_radians();
        let f = [p.cos() * a.dir.cos(), p.sin(), -p.cos() * a.dir.sin()];
        // right = normalize(f × up), up' = right × f (gluLookAt).
        let r0 = [-f[2], 0.0, f[0]];
        let rn = (r0[0] * r0[0] + r0[2] * r0[2]).sqrt();
        let r = [r0[0] / rn, 0.0, r0[2] / rn];
        let u = [r[1] * f[2] - r[2] * f[1], r[2] * f[0] - r[0] * f[2], r[0] * f[1] - r[1] * f[0]];
        let fy = 1.0 / (cam.fov_y_deg.to_radians() / 2.0).tan();
        let aspect = width as f64 / height as f64;
        let proj = Proj::Persp { eye, r, u, f, sx: fy / aspect, sy: fy };
        self.draw(world, scene, w, h, &proj, false, opts.bilinear);
        self.resolve(width, height, ss)
    }

    /// The top-down map (orthographic, padded by 1 m, the agent as a red triangle).
    pub fn render_top(&mut self, world: &World, scene: &Scene, width: u32, height: u32, opts: RenderOptions) -> Frame {
        let ss = opts.supersample.clamp(1, 4) as usize;
        let (w, h) = (width as usize * ss, height as usize * ss);
        let fold = |f: fn(f64, f64) -> f64, g: fn(&crate::room::Room) -> f64, init: f64| {
            world.rooms.iter().map(g).fold(init, f)
        };
        let mut min_x = fold(f64::min, |r| r.min_x, f64::INFINITY) - 1.0;
        let mut max_x = fold(f64::max, |r| r.max_x, f64::NEG_INFINITY) + 1.0;
        let mut min_z = fold(f64::min, |r| r.min_z, f64::INFINITY) - 1.0;
        let mut max_z = fold(f64::max, |r| r.max_z, f64::NEG_INFINITY) + 1.0;
        let (ww, hh) = (max_x - min_x, max_z - min_z);
        let fb_aspect = width as f64 / height as f64;
        if ww / hh > fb_aspect {
            let d = ww / fb_aspect - hh;
            min_z -= d / 2.0;
            max_z += d / 2.0;
        } else {
            let d = hh * fb_aspect - ww;
            min_x -= d / 2.0;
            max_x += d / 2.0;
        }
        self.draw(world, scene, w, h, &Proj::Ortho { min_x, max_x, min_z, max_z }, true, opts.bilinear);
        self.resolve(width, height, ss)
    }

    #[allow(clippy::too_many_arguments)]
    fn draw(&mut self, world: &World, scene: &Scene, w: usize, h: usize, proj: &Proj, agent: bool, bilinear: bool) {
        let sky = world.lighting.sky_color.map(|x| x as f32);
        self.resize(w, h, pack_rgb(sky));
        let light = Light::of(world);
        let mut dynamic = std::mem::take(&mut self.dynamic);
        dynamic.clear();
        for e in world.entities.iter().filter(|e| !e.is_static) {
            entity_tris(e, &light, &mut dynamic);
        }
        if agent {
            let a = &world.agent;
            let p = [a.pos[0], a.pos[1] + a.height, a.pos[2]];
            let (dv, rv) = (a.dir_vec(), a.right_vec());
            let r = a.radius.v;
            let at = |k: f64, m: f64| Vert {
                p: [0, 1, 2].map(|i| (p[i] + k * rv[i] * r + m * dv[i] * r) as f32),
                uv: [0.0; 2],
                c: [1.0, 0.0, 0.0],
            };
            dynamic.push(Tri { v: [at(0.0, 1.0), at(-0.75, -0.75), at(0.75, -0.75)], tex: None, cull: false });
        }
        for t in scene.tris.iter().chain(dynamic.iter()) {
            self.draw_tri(t, w, h, proj, bilinear);
        }
        self.dynamic = dynamic;
    }

    #[allow(clippy::too_many_arguments)]
    fn draw_tri(&mut self, t: &Tri, w: usize, h: usize, proj: &Proj, bilinear: bool) {
        // Walls, floors and boxes are lit flat: no colour interpolation needed.
        let flat = (t.v[0].c == t.v[1].c && t.v[1].c == t.v[2].c).then_some(t.v[0].c);
        match proj {
            Proj::Persp { eye, r, u, f, sx, sy } => {
                let cv = t.v.map(|v| {
                    let d = [v.p[0] as f64 - eye[0], v.p[1] as f64 - eye[1], v.p[2] as f64 - eye[2]];
                    let dot = |a: &[f64; 3]| a[0] * d[0] + a[1] * d[1] + a[2] * d[2];
                    CVert { vx: dot(r), vy: dot(u), w: dot(f), u: v.uv[0], v: v.uv[1], c: v.c }
                });
                // Clip against the near plane (w >= NEAR).
                let mut poly: [CVert; 4] = [cv[0]; 4];
                let mut n = 0;
                for i in 0..3 {
                    let (a, b) = (cv[i], cv[(i + 1) % 3]);
                    let (ina, inb) = (a.w >= NEAR, b.w >= NEAR);
                    if ina {
                        poly[n] = a;
                        n += 1;
                    }
                    if ina != inb {
                        let s = (NEAR - a.w) / (b.w - a.w);
                        let sf = s as f32;
                        poly[n] = CVert {
                            vx: a.vx + (b.vx - a.vx) * s,
                            vy: a.vy + (b.vy - a.vy) * s,
                            w: NEAR,
                            u: a.u + (b.u - a.u) * sf,
                            v: a.v + (b.v - a.v) * sf,
                            c: [0, 1, 2].map(|k| a.c[k] + (b.c[k] - a.c[k]) * sf),
                        };
                        n += 1;
                    }
                }
                if n < 3 {
                    return;
                }
                let (wf, hf) = (w as f64, h as f64);
                let mut sv = [SVert { x: 0.0, y: 0.0, z: 0.0, q: 0.0, u: 0.0, v: 0.0, c: [0.0; 3] }; 4];
                for (o, c) in sv.iter_mut().zip(&poly[..n]) {
                    *o = {
                        let q = 1.0 / c.w;
                        let x = (c.vx * sx * q + 1.0) * 0.5 * wf;
                        let y = (1.0 - c.vy * sy * q) * 0.5 * hf;
                        let qf = q as f32;
                        SVert {
                            x: x as f32,
                            y: y as f32,
                            z: qf,
                            q: qf,
                            u: c.u * qf,
                            v: c.v * qf,
                            c: c.c.map(|k| k * qf),
                        }
                    };
                }
                for i in 1..n - 1 {
                    self.raster([sv[0], sv[i], sv[i + 1]], t.tex, flat, t.cull, w, h, true, bilinear);
                }
            }
            Proj::Ortho { min_x, max_x, min_z, max_z } => {
                let sv = t.v.map(|v| SVert {
                    x: ((v.p[0] as f64 - min_x) / (max_x - min_x) * w as f64) as f32,
                    y: ((v.p[2] as f64 - min_z) / (max_z - min_z) * h as f64) as f32,
                    z: (v.p[1] + 100.0) / 200.0,
                    q: 1.0,
                    u: v.uv[0],
                    v: v.uv[1],
                    c: v.c,
                });
                self.raster(sv, t.tex, flat, t.cull, w, h, false, bilinear);
            }
        }
    }

    /// Scan-converts one screen triangle (pixel centres, depth test "nearer wins").
    #[allow(clippy::too_many_arguments)]
    fn raster(
        &mut self,
        mut v: [SVert; 3],
        tex: Option<&'static Texture>,
        flat: Option<[f32; 3]>,
        cull: bool,
        w: usize,
        h: usize,
        persp: bool,
        bilinear: bool,
    ) {
        // Screen y points down, so the peer's counter-clockwise front faces have negative area here.
        let det = (v[1].x - v[0].x) * (v[2].y - v[0].y) - (v[2].x - v[0].x) * (v[1].y - v[0].y);
        if !det.is_finite() || det == 0.0 || (cull && det > 0.0) {
            return;
        }
        if det > 0.0 {
            v.swap(1, 2);
        }
        let det = -det.abs();
        // Edge functions, positive inside for this winding.
        let minx = v.iter().map(|p| p.x).fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
        let maxx = (v.iter().map(|p| p.x).fold(f32::NEG_INFINITY, f32::max).ceil() as i64).clamp(0, w as i64) as usize;
        let miny = v.iter().map(|p| p.y).fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
        let maxy = (v.iter().map(|p| p.y).fold(f32::NEG_INFINITY, f32::max).ceil() as i64).clamp(0, h as i64) as usize;
        if minx >= maxx || miny >= maxy {
            return;
        }
        let inv = 1.0 / det;
        // Attribute planes: a(x, y) = a0 + dx * (x - x0) + dy * (y - y0).
        let (x0, y0) = (v[0].x, v[0].y);
        let (e1x, e1y, e2x, e2y) = (v[1].x - x0, v[1].y - y0, v[2].x - x0, v[2].y - y0);
        let plane = |a0: f32, a1: f32, a2: f32| {
            let (d1, d2) = (a1 - a0, a2 - a0);
            ((d1 * e2y - d2 * e1y) * inv, (d2 * e1x - d1 * e2x) * inv)
        };
        let pz = plane(v[0].z, v[1].z, v[2].z);
        let pq = plane(v[0].q, v[1].q, v[2].q);
        let pu = plane(v[0].u, v[1].u, v[2].u);
        let pv = plane(v[0].v, v[1].v, v[2].v);
        let pc = [0, 1, 2].map(|k| plane(v[0].c[k], v[1].c[k], v[2].c[k]));
        let edge = |a: &SVert, b: &SVert| {
            // E(x, y) = (b.x - a.x) * (y - a.y) - (b.y - a.y) * (x - a.x), sign chosen inside >= 0.
            let (ex, ey) = (b.x - a.x, b.y - a.y);
            (-ey, ex, ey * a.x - ex * a.y)
        };
        // Per edge, the span boundary on row y is x = k0 + k1 * y (one division per triangle,
        // not per row); `None` for edges parallel to x (they either keep or empty every row).
        let sgn = if det < 0.0 { -1.0 } else { 1.0 };
        let edges = [edge(&v[0], &v[1]), edge(&v[1], &v[2]), edge(&v[2], &v[0])].map(|(a, b, c)| {
            let (a, b, c) = (a * sgn, b * sgn, c * sgn);
            if a.abs() < 1e-12 { (a, b, c, None) } else { (a, b, c, Some((-c / a - 0.5, -b / a))) }
        });
        let (tw, th) = tex.map_or((1.0, 1.0), |t| t.size0());
        let far_q = if persp { 1.0 / FAR } else { f32::NEG_INFINITY };
        let base_c = v[0].c;
        let lod_at = |q: f32, uq: f32, vq: f32| {
            let iq = 1.0 / q;
            let (uu, vv) = (uq * iq, vq * iq);
            let dudx = (pu.0 - uu * pq.0) * iq * tw;
            let dvdx = (pv.0 - vv * pq.0) * iq * th;
            let dudy = (pu.1 - uu * pq.1) * iq * tw;
            let dvdy = (pv.1 - vv * pq.1) * iq * th;
            0.5 * fast_log2((dudx * dudx + dvdx * dvdx).max(dudy * dudy + dvdy * dvdy))
        };
        for py in miny..maxy {
            let yc = py as f32 + 0.5;
            let row = py * w;
            let (mut xs, mut xe) = (minx, maxx);
            let mut empty = false;
            for &(a, b, c, k) in &edges {
                match k {
                    None => empty |= b * yc + c < 0.0,
                    Some((k0, k1)) => {
                        let xr = k0 + k1 * yc; // boundary in pixel-index space
                        if a > 0.0 {
                            xs = xs.max((-fast_floor(-xr)).max(0.0) as usize);
                        } else {
                            xe = xe.min((fast_floor(xr) + 1.0).max(0.0) as usize);
                        }
                    }
                }
            }
            let xe = xe.min(w);
            if empty || xs >= xe {
                continue;
            }
            let dy = yc - y0;
            // Attribute values at the span start, then stepped by d/dx per pixel.
            let dx0 = xs as f32 + 0.5 - x0;
            let s = Span {
                z: v[0].z + pz.0 * dx0 + pz.1 * dy,
                q: v[0].q + pq.0 * dx0 + pq.1 * dy,
                uq: v[0].u + pu.0 * dx0 + pu.1 * dy,
                vq: v[0].v + pv.0 * dx0 + pv.1 * dy,
                cq: [0, 1, 2].map(|k| base_c[k] + pc[k].0 * dx0 + pc[k].1 * dy),
            };
            let d = Span { z: pz.0, q: pq.0, uq: pu.0, vq: pv.0, cq: [pc[0].0, pc[1].0, pc[2].0] };
            let (depth, color) = (&mut self.depth[row + xs..row + xe], &mut self.color[row + xs..row + xe]);
            match tex {
                Some(t) if bilinear => {
                    let lp = LodPlanes { pu, pv, pq, tw, th };
                    bilinear_span(t, &lp, &s, &d, flat, far_q, depth, color)
                }
                _ => pixel_chunk(tex, bilinear, &s, &d, flat, far_q, depth, color, |s| lod_at(s.q, s.uq, s.vq)),
            }
        }
    }

    fn resolve(&self, width: u32, height: u32, ss: usize) -> Frame {
        let (w, h) = (width as usize, height as usize);
        let mut px = vec![0u8; w * h * 3];
        if ss == 1 {
            for (o, c) in px.chunks_exact_mut(3).zip(&self.color) {
                o.copy_from_slice(&c.to_le_bytes()[..3]);
            }
            return Frame::new(width, height, px).unwrap_or_else(|_| Frame::filled(width, height, [0, 0, 0]));
        }
        let n = (ss * ss) as u32;
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0u32; 3];
                for sy in 0..ss {
                    let row = (y * ss + sy) * self.w;
                    for sx in 0..ss {
                        let c = self.color[row + x * ss + sx].to_le_bytes();
                        for k in 0..3 {
                            acc[k] += c[k] as u32;
                        }
                    }
                }
                let o = (y * w + x) * 3;
                for k in 0..3 {
                    px[o + k] = ((acc[k] + n / 2) / n) as u8;
                }
            }
        }
        Frame::new(width, height, px).unwrap_or_else(|_| Frame::filled(width, height, [0, 0, 0]))
    }
}

/// log2 from the float's bits (piecewise linear, ample for mip selection).
#[inline]
fn fast_log2(x: f32) -> f32 {
    if x <= 0.0 {
        return -126.0;
    }
    (x.to_bits() as f32) * (1.0 / (1u32 << 23) as f32) - 127.0
}

/// Pixels per chunk of a span: the mip level is chosen per chunk, and the per-pixel coordinate
/// arithmetic of a chunk is done in lanes the compiler vectorises.
const CHUNK: usize = 16;

/// Perspective-divided attributes at one pixel (or their per-pixel steps): depth key, 1/w,
/// u/w, v/w and colour/w.
#[derive(Debug, Clone, Copy)]
struct Span {
    z: f32,
    q: f32,
    uq: f32,
    vq: f32,
    cq: [f32; 3],
}

impl Span {
    fn advance(&mut self, d: &Span, n: f32) {
        self.z += d.z * n;
        self.q += d.q * n;
        self.uq += d.uq * n;
        self.vq += d.vq * n;
        for k in 0..3 {
            self.cq[k] += d.cq[k] * n;
        }
    }
}

/// What the mip-level choice needs: the screen-space gradients of u/w, v/w and 1/w, and the
/// texture's level-0 size.
#[derive(Debug, Clone, Copy)]
struct LodPlanes {
    pu: (f32, f32),
    pv: (f32, f32),
    pq: (f32, f32),
    tw: f32,
    th: f32,
}

/// Bilinear-textured pixels of one span: first, per pixel, 1/w and the mip level (the peer's LOD:
/// log2 of the larger texel-footprint axis, nearest level); then the texel coordinates; then the
/// depth test, fetch and blend.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bilinear_span(
    t: &Texture,
    lp: &LodPlanes,
    s: &Span,
    d: &Span,
    flat: Option<[f32; 3]>,
    far_q: f32,
    depth: &mut [f32],
    color: &mut [u32],
) {
    // Walls, floors and boxes are lit flat: one colour for the span.
    let flat = flat.map(|c| [c[0], c[1], c[2], 0.0]);
    let top = (t.levels.len() - 1) as f32;
    let mut s = *s;
    let mut ln = Lanes::default();
    for (depth, color) in depth.chunks_mut(CHUNK).zip(color.chunks_mut(CHUNK)) {
        let n = depth.len();
        ln.setup(&s, d, lp, top, far_q);
        let lv = ln.lv;
        if lv[..n].iter().all(|&l| l == lv[0]) {
            ln.coords(&t.levels[lv[0] as usize]);
        } else {
            for (k, &l) in lv[..n].iter().enumerate() {
                ln.coords_at(k, &t.levels[l as usize]);
            }
        }
        let Lanes { z, iq, i00, i01, i10, i11, fx, fy, .. } = &ln;
        for (k, (dp, out)) in depth.iter_mut().zip(color.iter_mut()).enumerate() {
            if z[k] <= *dp {
                continue;
            }
            let tx = &t.levels[lv[k] as usize].rgba;
            let texels = [tx[i00[k] as usize], tx[i01[k] as usize], tx[i10[k] as usize], tx[i11[k] as usize]];
            let lit = match flat {
                Some(c) => c,
                None => {
                    let c = |j: usize| (s.cq[j] + d.cq[j] * k as f32) * iq[k];
                    [c(0), c(1), c(2), 0.0]
                }
            };
            *dp = z[k];
            *out = bilerp_lit(texels, fx[k], fy[k], &lit);
        }
        s.advance(d, n as f32);
    }
}

/// Per-lane values of one chunk: 1/w, u and v (in repeats), the mip level, then the texel
/// indices of the 2x2 bilinear footprint (wrapped: level sizes are powers of two) and the weights.
#[derive(Debug, Default)]
struct Lanes {
    /// Depth key, or -inf where the pixel is beyond the far plane (it then fails the depth test).
    z: [f32; CHUNK],
    iq: [f32; CHUNK],
    uu: [f32; CHUNK],
    vv: [f32; CHUNK],
    lv: [i32; CHUNK],
    i00: [u32; CHUNK],
    i01: [u32; CHUNK],
    i10: [u32; CHUNK],
    i11: [u32; CHUNK],
    fx: [f32; CHUNK],
    fy: [f32; CHUNK],
}

impl Lanes {
    /// 1/w, u, v and the mip level (the peer's LOD: log2 of the larger texel-footprint axis,
    /// nearest level) of every lane.
    #[inline(always)]
    fn setup(&mut self, s: &Span, d: &Span, lp: &LodPlanes, top: f32, far_q: f32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 register arithmetic (x86-64 baseline); the unaligned stores write 4 lanes
        // at offsets 0, 4, 8, 12 of arrays of CHUNK = 16 elements.
        unsafe {
            use std::arch::x86_64::*;
            let set = _mm_set1_ps;
            let (tw, th) = (set(lp.tw), set(lp.th));
            for k0 in (0..CHUNK).step_by(4) {
                let kf = _mm_add_ps(set(k0 as f32), _mm_setr_ps(0.0, 1.0, 2.0, 3.0));
                let lin = |a: f32, da: f32| _mm_add_ps(set(a), _mm_mul_ps(set(da), kf));
                let q = lin(s.q, d.q);
                let near = _mm_cmpge_ps(q, set(far_q));
                let z = _mm_or_ps(_mm_and_ps(near, lin(s.z, d.z)), _mm_andnot_ps(near, set(f32::NEG_INFINITY)));
                _mm_storeu_ps(self.z.as_mut_ptr().add(k0), z);
                let r = _mm_div_ps(set(1.0), q);
                let uu = _mm_mul_ps(lin(s.uq, d.uq), r);
                let vv = _mm_mul_ps(lin(s.vq, d.vq), r);
                let grad = |p: f32, a: __m128, pq: f32, t: __m128| {
                    _mm_mul_ps(_mm_mul_ps(_mm_sub_ps(set(p), _mm_mul_ps(a, set(pq))), r), t)
                };
                let (dudx, dvdx) = (grad(lp.pu.0, uu, lp.pq.0, tw), grad(lp.pv.0, vv, lp.pq.0, th));
                let (dudy, dvdy) = (grad(lp.pu.1, uu, lp.pq.1, tw), grad(lp.pv.1, vv, lp.pq.1, th));
                let sq = |a: __m128, b: __m128| _mm_add_ps(_mm_mul_ps(a, a), _mm_mul_ps(b, b));
                let rho2 = _mm_max_ps(sq(dudx, dvdx), sq(dudy, dvdy));
                // fast_log2: the float's bits as a number, scaled; -126 for rho2 <= 0.
                let bits = _mm_cvtepi32_ps(_mm_castps_si128(rho2));
                let l2 = _mm_sub_ps(_mm_mul_ps(bits, set(1.0 / (1u32 << 23) as f32)), set(127.0));
                let pos = _mm_cmpgt_ps(rho2, _mm_setzero_ps());
                let l2 = _mm_or_ps(_mm_and_ps(pos, l2), _mm_andnot_ps(pos, set(-126.0)));
                let lod = _mm_add_ps(_mm_mul_ps(set(0.5), l2), set(0.5));
                let lod = _mm_min_ps(_mm_max_ps(lod, _mm_setzero_ps()), set(top));
                _mm_storeu_ps(self.iq.as_mut_ptr().add(k0), r);
                _mm_storeu_ps(self.uu.as_mut_ptr().add(k0), uu);
                _mm_storeu_ps(self.vv.as_mut_ptr().add(k0), vv);
                _mm_storeu_si128(self.lv.as_mut_ptr().add(k0) as *mut __m128i, _mm_cvttps_epi32(lod));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.setup_scalar(s, d, lp, top, far_q);
    }

    /// [`Lanes::setup`] without SIMD (other targets; the SIMD path is tested against it).
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    fn setup_scalar(&mut self, s: &Span, d: &Span, lp: &LodPlanes, top: f32, far_q: f32) {
        for k in 0..CHUNK {
            let kf = k as f32;
            let q = s.q + d.q * kf;
            self.z[k] = if q >= far_q { s.z + d.z * kf } else { f32::NEG_INFINITY };
            let r = 1.0 / q;
            let (uu, vv) = ((s.uq + d.uq * kf) * r, (s.vq + d.vq * kf) * r);
            let dudx = (lp.pu.0 - uu * lp.pq.0) * r * lp.tw;
            let dvdx = (lp.pv.0 - vv * lp.pq.0) * r * lp.th;
            let dudy = (lp.pu.1 - uu * lp.pq.1) * r * lp.tw;
            let dvdy = (lp.pv.1 - vv * lp.pq.1) * r * lp.th;
            let rho2 = (dudx * dudx + dvdx * dvdx).max(dudy * dudy + dvdy * dvdy);
            let lod = 0.5 * fast_log2(rho2) + 0.5;
            self.iq[k] = r;
            self.uu[k] = uu;
            self.vv[k] = vv;
            self.lv[k] = lod.max(0.0).min(top) as i32;
        }
    }

    /// Footprint indices and weights of every lane, all in level `l`.
    #[inline(always)]
    fn coords(&mut self, l: &Level) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 register arithmetic; unaligned loads/stores of 4 lanes at offsets 0, 4, 8,
        // 12 of arrays of CHUNK = 16 elements.
        unsafe {
            use std::arch::x86_64::*;
            let (lw, lh) = (_mm_set1_ps(l.w as f32), _mm_set1_ps(l.h as f32));
            let (mw, mh) = (_mm_set1_epi32(l.w as i32 - 1), _mm_set1_epi32(l.h as i32 - 1));
            let (one, half, shift) = (_mm_set1_epi32(1), _mm_set1_ps(0.5), _mm_cvtsi32_si128(l.shift as i32));
            for k0 in (0..CHUNK).step_by(4) {
                let x = _mm_sub_ps(_mm_mul_ps(_mm_loadu_ps(self.uu.as_ptr().add(k0)), lw), half);
                let y = _mm_sub_ps(_mm_mul_ps(_mm_loadu_ps(self.vv.as_ptr().add(k0)), lh), half);
                // floor: truncate, then subtract 1 (add the all-ones mask) where that rounded up.
                let floor = |v: __m128| {
                    let t = _mm_cvttps_epi32(v);
                    _mm_add_epi32(t, _mm_castps_si128(_mm_cmpgt_ps(_mm_cvtepi32_ps(t), v)))
                };
                let (tx, ty) = (floor(x), floor(y));
                _mm_storeu_ps(self.fx.as_mut_ptr().add(k0), _mm_sub_ps(x, _mm_cvtepi32_ps(tx)));
                _mm_storeu_ps(self.fy.as_mut_ptr().add(k0), _mm_sub_ps(y, _mm_cvtepi32_ps(ty)));
                let (x0, x1) = (_mm_and_si128(tx, mw), _mm_and_si128(_mm_add_epi32(tx, one), mw));
                let r0 = _mm_sll_epi32(_mm_and_si128(ty, mh), shift);
                let r1 = _mm_sll_epi32(_mm_and_si128(_mm_add_epi32(ty, one), mh), shift);
                let st = |a: &mut [u32; CHUNK], v: __m128i| _mm_storeu_si128(a.as_mut_ptr().add(k0) as *mut __m128i, v);
                st(&mut self.i00, _mm_or_si128(r0, x0));
                st(&mut self.i01, _mm_or_si128(r0, x1));
                st(&mut self.i10, _mm_or_si128(r1, x0));
                st(&mut self.i11, _mm_or_si128(r1, x1));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        self.coords_scalar(l);
    }

    /// [`Lanes::coords`] without SIMD.
    #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
    fn coords_scalar(&mut self, l: &Level) {
        for k in 0..CHUNK {
            self.coords_at(k, l);
        }
    }

    /// [`Lanes::coords`] for one lane (chunks that straddle two mip levels).
    #[inline(always)]
    fn coords_at(&mut self, k: usize, l: &Level) {
        let x = self.uu[k] * l.w as f32 - 0.5;
        let y = self.vv[k] * l.h as f32 - 0.5;
        let (tx, ty) = (x as i32, y as i32);
        let (tx, ty) = (tx - ((tx as f32) > x) as i32, ty - ((ty as f32) > y) as i32);
        self.fx[k] = x - tx as f32;
        self.fy[k] = y - ty as f32;
        let (mw, mh) = (l.w as u32 - 1, l.h as u32 - 1);
        let (x0, x1) = (tx as u32 & mw, (tx as u32).wrapping_add(1) & mw);
        let (r0, r1) = ((ty as u32 & mh) << l.shift, ((ty as u32).wrapping_add(1) & mh) << l.shift);
        self.i00[k] = r0 | x0;
        self.i01[k] = r0 | x1;
        self.i10[k] = r1 | x0;
        self.i11[k] = r1 | x1;
    }
}

/// An RGB colour in [0, 1] as packed RGB8 (`as u8` saturates).
#[inline(always)]
fn pack_rgb(c: [f32; 3]) -> u32 {
    let b = |x: f32| (x * 255.0 + 0.5) as u8 as u32;
    b(c[0]) | (b(c[1]) << 8) | (b(c[2]) << 16)
}

/// `lit * bilinear(texels, wx, wy)` as packed RGB8; texels (RGBA8) are (x0,y0), (x1,y0), (x0,y1),
/// (x1,y1).
#[inline(always)]
fn bilerp_lit(t: [u32; 4], wx: f32, wy: f32, lit: &[f32; 4]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 arithmetic (part of the x86-64 baseline) and one unaligned load of `lit`.
    unsafe {
        use std::arch::x86_64::*;
        let zero = _mm_setzero_si128();
        let ld =
            |v: u32| _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(v as i32), zero), zero));
        let (a, b, c, e) = (ld(t[0]), ld(t[1]), ld(t[2]), ld(t[3]));
        let (wx, wy) = (_mm_set1_ps(wx), _mm_set1_ps(wy));
        let top = _mm_add_ps(a, _mm_mul_ps(_mm_sub_ps(b, a), wx));
        let bot = _mm_add_ps(c, _mm_mul_ps(_mm_sub_ps(e, c), wx));
        let mix = _mm_add_ps(top, _mm_mul_ps(_mm_sub_ps(bot, top), wy));
        let v = _mm_add_ps(_mm_mul_ps(mix, _mm_loadu_ps(lit.as_ptr())), _mm_set1_ps(0.5));
        let i = _mm_cvttps_epi32(v);
        let p = _mm_packus_epi16(_mm_packs_epi32(i, i), zero);
        _mm_cvtsi128_si32(p) as u32 & 0x00ff_ffff
    }
    #[cfg(not(target_arch = "x86_64"))]
    bilerp_lit_scalar(t, wx, wy, lit)
}

/// [`bilerp_lit`] without SIMD.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn bilerp_lit_scalar(t: [u32; 4], wx: f32, wy: f32, lit: &[f32; 4]) -> u32 {
    let ch = |v: u32, j: usize| ((v >> (8 * j)) & 0xff) as f32;
    let mut out = 0u32;
    for (j, l) in lit[..3].iter().enumerate() {
        let top = ch(t[0], j) + (ch(t[1], j) - ch(t[0], j)) * wx;
        let bot = ch(t[2], j) + (ch(t[3], j) - ch(t[2], j)) * wx;
        out |= ((l * (top + (bot - top) * wy) + 0.5) as u8 as u32) << (8 * j);
    }
    out
}

/// The general per-pixel path: untextured triangles, nearest sampling, and chunks that span two
/// mip levels (the level is chosen per pixel).
#[allow(clippy::too_many_arguments)]
fn pixel_chunk(
    tex: Option<&'static Texture>,
    bilinear: bool,
    s: &Span,
    d: &Span,
    flat: Option<[f32; 3]>,
    far_q: f32,
    depth: &mut [f32],
    color: &mut [u32],
    lod: impl Fn(&Span) -> f32,
) {
    let mut p = *s;
    for (dp, out) in depth.iter_mut().zip(color.iter_mut()) {
        if p.z > *dp && p.q >= far_q {
            let iq = 1.0 / p.q;
            let mut col = flat.unwrap_or([p.cq[0] * iq, p.cq[1] * iq, p.cq[2] * iq]);
            if let Some(t) = tex {
                let (uu, vv) = (p.uq * iq, p.vq * iq);
                let l = lod(&p);
                let sm = if bilinear { t.sample(uu, vv, l) } else { t.sample_nearest(uu, vv, l) };
                col = [col[0] * sm[0], col[1] * sm[1], col[2] * sm[2]];
            }
            *dp = p.z;
            *out = pack_rgb(col);
        }
        p.advance(d, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn span() -> impl Strategy<Value = Span> {
        (0.02f32..5.0, -50.0f32..50.0, -50.0f32..50.0, 0.0f32..1.0).prop_map(|(q, uq, vq, z)| Span {
            z,
            q,
            uq,
            vq,
            cq: [q * 0.5; 3],
        })
    }

    fn step() -> impl Strategy<Value = Span> {
        (-1e-3f32..1e-3, -0.5f32..0.5, -0.5f32..0.5, -1e-3f32..1e-3).prop_map(|(q, uq, vq, z)| Span {
            z,
            q,
            uq,
            vq,
            cq: [0.0; 3],
        })
    }

    proptest! {
        /// The SIMD lane setup and texel addressing agree with the scalar definitions.
        #[test]
        fn simd_lanes_match_scalar(s in span(), d in step(), g in prop::array::uniform6(-2.0f32..2.0), lvl in 0usize..9) {
            let lp = LodPlanes { pu: (g[0], g[1]), pv: (g[2], g[3]), pq: (g[4] * 1e-3, g[5] * 1e-3), tw: 256.0, th: 256.0 };
            let (mut a, mut b) = (Lanes::default(), Lanes::default());
            a.setup(&s, &d, &lp, 8.0, 0.01);
            b.setup_scalar(&s, &d, &lp, 8.0, 0.01);
            prop_assert_eq!(a.z, b.z);
            prop_assert_eq!(a.iq, b.iq);
            prop_assert_eq!(a.uu, b.uu);
            prop_assert_eq!(a.vv, b.vv);
            prop_assert_eq!(a.lv, b.lv);
            let tex = texture::get(TexName::BrickWall, 0);
            let level = &tex.levels[lvl.min(tex.levels.len() - 1)];
            a.coords(level);
            b.coords_scalar(level);
            prop_assert_eq!((a.i00, a.i01, a.i10, a.i11), (b.i00, b.i01, b.i10, b.i11));
            prop_assert_eq!((a.fx, a.fy), (b.fx, b.fy));
        }

        /// The SIMD bilinear blend equals the scalar one (within one level of rounding).
        #[test]
        fn simd_blend_matches_scalar(t in prop::array::uniform4(0u32..0x0100_0000), wx in 0.0f32..1.0, wy in 0.0f32..1.0, lit in prop::array::uniform3(0.0f32..1.0)) {
            let lit = [lit[0], lit[1], lit[2], 0.0];
            let (a, b) = (bilerp_lit(t, wx, wy, &lit), bilerp_lit_scalar(t, wx, wy, &lit));
            for j in 0..3 {
                let (x, y) = ((a >> (8 * j)) & 0xff, (b >> (8 * j)) & 0xff);
                prop_assert!(x.abs_diff(y) <= 1, "channel {}: {} vs {}", j, x, y);
            }
        }
    }
}
