//! A CPU software rasterizer reproducing the peer's OpenGL 1.x frame: perspective-correct textured
//! convex faces, a depth buffer, back-face culling, per-vertex fixed-function lighting with the
//! peer's directional light, mip-mapped textures and supersampling, and a top-down map view.
//! Bilinear-textured spans go through SIMD kernels (AVX-512, AVX2 or SSE4.1, chosen at run time)
//! that equal a scalar definition bit for bit.

use vldac_core::Frame;

use crate::entity::{Entity, Shape};
use crate::mesh::{self, LTri};
#[cfg(target_arch = "x86_64")]
use crate::texture::LevelLanes;
use crate::texture::{self, Level, TexName, Texture};
use crate::world::World;

/// A world-space vertex with its lit colour.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Vert {
    p: [f32; 3],
    uv: [f32; 2],
    c: [f32; 3],
}

/// A planar convex face: a triangle or a quad (walls, floors and ceilings are drawn as quads, so
/// each screen row has one span per face, not two).
#[derive(Debug, Clone, Copy)]
struct Face {
    v: [Vert; 4],
    n: usize,
    tex: Option<&'static Texture>,
    cull: bool,
}

impl Face {
    fn tri(v: [Vert; 3], tex: Option<&'static Texture>, cull: bool) -> Self {
        Face { v: [v[0], v[1], v[2], v[2]], n: 3, tex, cull }
    }

    fn quad(v: [Vert; 4], tex: Option<&'static Texture>, cull: bool) -> Self {
        Face { v, n: 4, tex, cull }
    }

    fn verts(&self) -> &[Vert] {
        &self.v[..self.n]
    }
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
        arr3(|k| (kd[k] * self.ambient[k] + kd[k] * self.diffuse[k] * ndl).clamp(0.0, 1.0))
    }
}

/// Static geometry of an episode (rooms and static entities), built at reset.
#[derive(Debug, Clone, Default)]
pub struct Scene {
    tris: Vec<Face>,
}

fn room_tris(world: &World, light: &Light, out: &mut Vec<Face>) {
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
        push_polygon(o, |p| vert(p, (pu, pv), fc), Some(floor_tex), out);
        if !st.no_ceiling {
            let ceil_tex = texture::get(st.ceil_tex, var[2]);
            let per = st.ceil_tex.period_m();
            let cc = light.shade(white, [0.0, -1.0, 0.0]);
            let h = st.wall_height;
            let rev: Vec<[f64; 3]> = o.iter().rev().map(|p| [p[0], h, p[2]]).collect();
            push_polygon(&rev, |p| vert(p, per, cc), Some(ceil_tex), out);
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
            out.push(Face::quad(v, Some(wall_tex), true));
        }
    }
}

/// A convex polygon (a room's floor or ceiling outline) as one quad, or as a fan of triangles.
fn push_polygon(o: &[[f64; 3]], vert: impl Fn([f64; 3]) -> Vert, tex: Option<&'static Texture>, out: &mut Vec<Face>) {
    if let [a, b, c, d] = o {
        out.push(Face::quad([vert(*a), vert(*b), vert(*c), vert(*d)], tex, true));
        return;
    }
    for i in 1..o.len().saturating_sub(1) {
        out.push(Face::tri([vert(o[0]), vert(o[i]), vert(o[i + 1])], tex, true));
    }
}

/// `[f(0), f(1), f(2)]`, always inlined (`array::map` is not always, in the large draw loop).
#[inline(always)]
fn arr3<T>(f: impl Fn(usize) -> T) -> [T; 3] {
    [f(0), f(1), f(2)]
}

/// `[f(0), f(1), f(2), f(3)]`, always inlined.
#[inline(always)]
fn arr4<T>(f: impl Fn(usize) -> T) -> [T; 4] {
    [f(0), f(1), f(2), f(3)]
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
    out: &mut Vec<Face>,
) {
    for t in tris {
        let v = arr3(|i| {
            let n = rot_n(e, t.n[i]);
            Vert { p: place(e, t.p[i], size), uv: t.uv[i], c: light.shade(t.kd, arr3(|k| n[k] * nscale)) }
        });
        out.push(Face::tri(v, tex, true));
    }
}

fn entity_tris(e: &Entity, light: &Light, out: &mut Vec<Face>) {
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
    out: &mut Vec<Face>,
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
        out.push(Face::quad(q, Some(tex), true));
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
/// Vertices of a face after near-plane clipping (a quad gains at most one).
const MAX_VERTS: usize = 5;
const FAR: f32 = 100.0;

enum Proj {
    Persp { eye: [f64; 3], r: [f64; 3], u: [f64; 3], f: [f64; 3], sx: f64, sy: f64 },
    Ortho { min_x: f64, max_x: f64, min_z: f64, max_z: f64 },
}

/// The instruction sets the draw loop is compiled for: all draw the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Isa {
    Avx512,
    Avx2,
    Sse41,
    Scalar,
}

impl Isa {
    /// The best this CPU runs.
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if Isa::avx512_detected() {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
            if std::is_x86_feature_detected!("sse4.1") && std::is_x86_feature_detected!("ssse3") {
                return Isa::Sse41;
            }
        }
        Isa::Scalar
    }

    /// Whether the CPU runs the AVX-512 kernel (F, BW, VL and VNNI, besides AVX2).
    #[cfg(target_arch = "x86_64")]
    pub(crate) fn avx512_detected() -> bool {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
}

/// `Isa` as the draw loop's const generic parameter.
const SCALAR: u8 = 0;
#[cfg(target_arch = "x86_64")]
const SSE41: u8 = 1;
#[cfg(target_arch = "x86_64")]
const AVX2: u8 = 2;
#[cfg(target_arch = "x86_64")]
const AVX512: u8 = 3;

/// Reusable colour and depth buffers.
#[derive(Debug, Clone, Default)]
pub struct Renderer {
    w: usize,
    h: usize,
    /// RGB8 packed little-endian (`r | g << 8 | b << 16`).
    color: Vec<u32>,
    /// The depth buffer is `depth[depth_at..][..w * h]` (both buffers have [`CHUNK`] pixels of
    /// slack at the end).
    depth: Vec<f32>,
    depth_at: usize,
    /// Draw with these kernels instead of the best the CPU runs (to check they agree).
    pub(crate) isa: Option<Isa>,
    /// Faces near to far: the squared distance's bits (a non-negative float: they sort as the
    /// number) above the face index.
    order: Vec<u64>,
    dynamic: Vec<Face>,
}

impl Renderer {
    fn resize(&mut self, w: usize, h: usize, sky: u32) {
        if self.w != w || self.h != h {
            self.w = w;
            self.h = h;
            // A chunk of slack after the last pixel: spans are shaded in whole chunks.
            self.color = vec![sky; w * h + CHUNK];
            // Place depth[i] half a page away from color[i] (mod 4 KiB): loads of one buffer then
            // never wait on stores to the other through 4K aliasing.
            self.depth = vec![0.0; w * h + PAGE_F32 + CHUNK];
            let gap = (self.depth.as_ptr() as usize).wrapping_sub(self.color.as_ptr() as usize) / 4;
            self.depth_at = (PAGE_F32 / 2).wrapping_sub(gap) % PAGE_F32;
        }
        self.color.fill(sky);
        self.depth_mut().fill(0.0);
    }

    /// The depth buffer (`w × h`, rows top-down).
    fn depth_mut(&mut self) -> &mut [f32] {
        &mut self.depth[self.depth_at..self.depth_at + self.w * self.h + CHUNK]
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
                p: arr3(|i| (p[i] + k * rv[i] * r + m * dv[i] * r) as f32),
                uv: [0.0; 2],
                c: [1.0, 0.0, 0.0],
            };
            dynamic.push(Face::tri([at(0.0, 1.0), at(-0.75, -0.75), at(0.75, -0.75)], None, false));
        }
        match self.isa.unwrap_or_else(Isa::detect) {
            // SAFETY: `Isa::detect` saw these features on this CPU (and tests force an ISA only
            // where they checked it too).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { self.draw_tris_avx512(&scene.tris, &dynamic, w, h, proj, bilinear) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { self.draw_tris_avx2(&scene.tris, &dynamic, w, h, proj, bilinear) },
            #[cfg(target_arch = "x86_64")]
            Isa::Sse41 => unsafe { self.draw_tris_sse41(&scene.tris, &dynamic, w, h, proj, bilinear) },
            _ => self.draw_tris::<SCALAR>(&scene.tris, &dynamic, w, h, proj, bilinear),
        }
        self.dynamic = dynamic;
    }

    #[inline(always)]
    fn draw_tris<const ISA: u8>(
        &mut self,
        stat: &[Face],
        dynamic: &[Face],
        w: usize,
        h: usize,
        proj: &Proj,
        bilinear: bool,
    ) {
        let Proj::Persp { eye, .. } = proj else {
            for t in stat.iter().chain(dynamic) {
                self.draw_tri::<ISA>(t, w, h, proj, bilinear);
            }
            return;
        };
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        let eye = eye.map(|x| x as f32);
        order.extend(stat.iter().chain(dynamic).enumerate().map(|(i, t)| {
            let n = t.n as f32;
            let c = arr3(|k| t.verts().iter().map(|v| v.p[k]).sum::<f32>() / n - eye[k]);
            (u64::from((c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).to_bits()) << 32) | i as u64
        }));
        order.sort_unstable();
        for &key in &order {
            let i = key as u32 as usize;
            let t = if i < stat.len() { &stat[i] } else { &dynamic[i - stat.len()] };
            self.draw_tri::<ISA>(t, w, h, proj, bilinear);
        }
        self.order = order;
    }

    /// [`Renderer::draw_tris`] compiled for AVX2 machines: the AVX2 shading and mip-level kernels
    /// inlined into the whole draw loop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn draw_tris_avx2(&mut self, stat: &[Face], dynamic: &[Face], w: usize, h: usize, proj: &Proj, bilinear: bool) {
        self.draw_tris::<AVX2>(stat, dynamic, w, h, proj, bilinear);
    }

    /// [`Renderer::draw_tris`] compiled for AVX-512 machines: the AVX-512 shading kernel (one
    /// chunk per register) and the AVX2 mip-level pass inlined into the whole draw loop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn draw_tris_avx512(&mut self, stat: &[Face], dynamic: &[Face], w: usize, h: usize, proj: &Proj, bilinear: bool) {
        self.draw_tris::<AVX512>(stat, dynamic, w, h, proj, bilinear);
    }

    /// [`Renderer::draw_tris`] compiled for SSE4.1 machines (the SSE4.1 shading kernel).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "sse4.1,ssse3")]
    fn draw_tris_sse41(&mut self, stat: &[Face], dynamic: &[Face], w: usize, h: usize, proj: &Proj, bilinear: bool) {
        self.draw_tris::<SSE41>(stat, dynamic, w, h, proj, bilinear);
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn draw_tri<const ISA: u8>(&mut self, t: &Face, w: usize, h: usize, proj: &Proj, bilinear: bool) {
        // Walls, floors and boxes are lit flat: no colour interpolation needed.
        let flat = t.verts().iter().all(|v| v.c == t.v[0].c).then_some(t.v[0].c);
        match proj {
            Proj::Persp { eye, r, u, f, sx, sy } => {
                let cv = arr4(|i| {
                    let v = t.v[i];
                    let d = [v.p[0] as f64 - eye[0], v.p[1] as f64 - eye[1], v.p[2] as f64 - eye[2]];
                    let dot = |a: &[f64; 3]| a[0] * d[0] + a[1] * d[1] + a[2] * d[2];
                    CVert { vx: dot(r), vy: dot(u), w: dot(f), u: v.uv[0], v: v.uv[1], c: v.c }
                });
                if hidden(&cv[..t.n], *sx, *sy, t.cull) {
                    return;
                }
                // Clip against the near plane (w >= NEAR).
                let mut poly: [CVert; MAX_VERTS] = [cv[0]; MAX_VERTS];
                let mut n = 0;
                for i in 0..t.n {
                    let (a, b) = (cv[i], cv[(i + 1) % t.n]);
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
                            c: arr3(|k| a.c[k] + (b.c[k] - a.c[k]) * sf),
                        };
                        n += 1;
                    }
                }
                if n < 3 {
                    return;
                }
                let (wf, hf) = (w as f64, h as f64);
                let mut sv = [SVert { x: 0.0, y: 0.0, z: 0.0, q: 0.0, u: 0.0, v: 0.0, c: [0.0; 3] }; MAX_VERTS];
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
                            c: arr3(|k| c.c[k] * qf),
                        }
                    };
                }
                self.raster::<ISA>(&mut sv[..n], t.tex, flat, t.cull, w, h, true, bilinear);
            }
            Proj::Ortho { min_x, max_x, min_z, max_z } => {
                let mut sv = arr4(|i| {
                    let v = t.v[i];
                    SVert {
                        x: ((v.p[0] as f64 - min_x) / (max_x - min_x) * w as f64) as f32,
                        y: ((v.p[2] as f64 - min_z) / (max_z - min_z) * h as f64) as f32,
                        z: (v.p[1] + 100.0) / 200.0,
                        q: 1.0,
                        u: v.uv[0],
                        v: v.uv[1],
                        c: v.c,
                    }
                });
                self.raster::<ISA>(&mut sv[..t.n], t.tex, flat, t.cull, w, h, false, bilinear);
            }
        }
    }

    /// Scan-converts one convex screen polygon (pixel centres, depth test "nearer wins").
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn raster<const ISA: u8>(
        &mut self,
        v: &mut [SVert],
        tex: Option<&'static Texture>,
        flat: Option<[f32; 3]>,
        cull: bool,
        w: usize,
        h: usize,
        persp: bool,
        bilinear: bool,
    ) {
        // Screen y points down, so the peer's counter-clockwise front faces have negative area here.
        let m = v.len();
        let cross = |a: &SVert, b: &SVert, c: &SVert| (b.x - a.x) * (c.y - a.y) - (c.x - a.x) * (b.y - a.y);
        let det: f32 = (1..m - 1).map(|i| cross(&v[0], &v[i], &v[i + 1])).sum();
        if !det.is_finite() || det == 0.0 || (cull && det > 0.0) {
            return;
        }
        if det > 0.0 {
            v.reverse();
        }
        // Edge functions, positive inside for this winding.
        let minx = v.iter().map(|p| p.x).fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
        let maxx = (v.iter().map(|p| p.x).fold(f32::NEG_INFINITY, f32::max).ceil() as i64).clamp(0, w as i64) as usize;
        let miny = v.iter().map(|p| p.y).fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
        let maxy = (v.iter().map(|p| p.y).fold(f32::NEG_INFINITY, f32::max).ceil() as i64).clamp(0, h as i64) as usize;
        if minx >= maxx || miny >= maxy {
            return;
        }
        // Attribute planes from the fan triangle (v0, va, vb) of largest area (the face is planar:
        // 1/w and attributes / w are affine in screen space over all of it).
        let (area, i) = (1..m - 1)
            .map(|i| (cross(&v[0], &v[i], &v[i + 1]), i))
            .max_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))
            .unwrap_or_else(|| (cross(&v[0], &v[1], &v[2]), 1));
        let (va, vb) = (v[i], v[i + 1]);
        let inv = 1.0 / area;
        // Attribute planes: a(x, y) = a0 + dx * (x - x0) + dy * (y - y0).
        let (x0, y0) = (v[0].x, v[0].y);
        let (e1x, e1y, e2x, e2y) = (va.x - x0, va.y - y0, vb.x - x0, vb.y - y0);
        let plane = |a0: f32, a1: f32, a2: f32| {
            let (d1, d2) = (a1 - a0, a2 - a0);
            ((d1 * e2y - d2 * e1y) * inv, (d2 * e1x - d1 * e2x) * inv)
        };
        let pz = plane(v[0].z, va.z, vb.z);
        let pq = plane(v[0].q, va.q, vb.q);
        let pu = plane(v[0].u, va.u, vb.u);
        let pv = plane(v[0].v, va.v, vb.v);
        let pc = arr3(|k| plane(v[0].c[k], va.c[k], vb.c[k]));
        let edge = |a: &SVert, b: &SVert| {
            // E(x, y) = (b.x - a.x) * (y - a.y) - (b.y - a.y) * (x - a.x), sign chosen inside >= 0.
            let (ex, ey) = (b.x - a.x, b.y - a.y);
            (-ey, ex, ey * a.x - ex * a.y)
        };
        // Per edge, the span boundary on row y is x = k0 + k1 * y (one division per edge, not per
        // row), bounding the span on the left (`lefts`) or the right (`rights`); edges parallel to
        // x (`flats`: b y + c >= 0) either keep or empty every row.
        let (mut lefts, mut rights, mut flats) =
            ([(0.0, 0.0); MAX_VERTS], [(0.0, 0.0); MAX_VERTS], [(0.0, 0.0); MAX_VERTS]);
        let (mut nl, mut nr, mut nf) = (0, 0, 0);
        for k in 0..m {
            let (a, b, c) = edge(&v[k], &v[(k + 1) % m]);
            let (a, b, c) = (-a, -b, -c);
            if a.abs() < 1e-12 {
                (flats[nf], nf) = ((b, c), nf + 1);
            } else if a > 0.0 {
                (lefts[nl], nl) = ((-c / a - 0.5, -b / a), nl + 1);
            } else {
                (rights[nr], nr) = ((-c / a - 0.5, -b / a), nr + 1);
            }
        }
        let (lefts, rights, flats) = (&lefts[..nl], &rights[..nr], &flats[..nf]);
        let (tw, th) = tex.map_or((1.0, 1.0), |t| t.size0());
        let far_q = if persp { 1.0 / FAR } else { f32::NEG_INFINITY };
        let base_c = v[0].c;
        // Per face: the light and the mip-level planes.
        let lit = flat.map(Lit::of);
        let lp = LodPlanes { pu, pv, pq, tw, th };
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
            // The span [lo, hi) in pixel indices, in f32 until the end (one conversion each).
            let lo = lefts.iter().fold(minx as f32, |lo, &(k0, k1)| lo.max((k0 + k1 * yc).ceil()));
            let hi = rights.iter().fold(maxx as f32, |hi, &(k0, k1)| hi.min((k0 + k1 * yc).floor() + 1.0));
            if lo >= hi || flats.iter().any(|&(b, c)| b * yc + c < 0.0) {
                continue;
            }
            let (xs, xe) = (lo as usize, (hi as usize).min(w));
            let dy = yc - y0;
            // Attribute values at the span start, then stepped by d/dx per pixel.
            let dx0 = xs as f32 + 0.5 - x0;
            let s = Span {
                z: v[0].z + pz.0 * dx0 + pz.1 * dy,
                q: v[0].q + pq.0 * dx0 + pq.1 * dy,
                uq: v[0].u + pu.0 * dx0 + pu.1 * dy,
                vq: v[0].v + pv.0 * dx0 + pv.1 * dy,
                // (Only Gouraud faces use colours.)
                cq: if flat.is_some() { [0.0; 3] } else { arr3(|k| base_c[k] + pc[k].0 * dx0 + pc[k].1 * dy) },
            };
            let d = Span { z: pz.0, q: pq.0, uq: pu.0, vq: pv.0, cq: [pc[0].0, pc[1].0, pc[2].0] };
            let (at, n) = (self.depth_at + row + xs, xe - xs);
            // A span hidden behind what is drawn already (faces come near to far) is skipped
            // before its set-up: the depth keys along it are monotonic in the pixel index, so
            // their largest is at an end, and every pixel would fail the depth test.
            let linear_z = tex.is_some() && bilinear || tex.is_none() && flat.is_some();
            if linear_z && s.z.is_finite() && d.z.is_finite() {
                let (z0, z1) = (s.z + d.z * 0.0, s.z + d.z * (n - 1) as f32);
                if occluded(&self.depth[at..at + n], if z0 > z1 { z0 } else { z1 }) {
                    continue;
                }
            }
            match (tex, flat) {
                (Some(t), _) if bilinear => {
                    // Whole chunks: the buffers have a chunk of slack at the end.
                    let ext = n.next_multiple_of(CHUNK);
                    let (depth, color) = (&mut self.depth[at..at + ext], &mut self.color[row + xs..row + xs + ext]);
                    bilinear_span::<ISA>(t, &lp, &s, &d, lit, far_q, persp, n, depth, color)
                }
                (None, Some(c)) => {
                    flat_span(c, &s, &d, far_q, &mut self.depth[at..at + n], &mut self.color[row + xs..row + xe])
                }
                _ => pixel_chunk(
                    tex,
                    bilinear,
                    &s,
                    &d,
                    flat,
                    far_q,
                    &mut self.depth[at..at + n],
                    &mut self.color[row + xs..row + xe],
                    |s| lod_at(s.q, s.uq, s.vq),
                ),
            }
        }
    }

    fn resolve(&self, width: u32, height: u32, ss: usize) -> Frame {
        let (w, h) = (width as usize, height as usize);
        if ss == 1 {
            // Appended, not zeroed first and then overwritten.
            let mut px = Vec::with_capacity(w * h * 3);
            let color = &self.color[..w * h];
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512vbmi") && std::is_x86_feature_detected!("avx512bw") {
                // SAFETY: the CPU has AVX-512 VBMI and BW (checked just above).
                unsafe { pack_rgb16_vbmi(color, &mut px) };
            } else if std::is_x86_feature_detected!("ssse3") {
                // SAFETY: the CPU has SSSE3 (checked just above).
                unsafe { pack_rgb16_ssse3(color, &mut px) };
            }
            for c in &color[px.len() / 3..] {
                px.extend_from_slice(&c.to_le_bytes()[..3]);
            }
            return Frame::new(width, height, px).unwrap_or_else(|_| Frame::filled(width, height, [0, 0, 0]));
        }
        let mut px = vec![0u8; w * h * 3];
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

/// Appends packed RGB8 pixels (`r | g << 8 | b << 16`) to `out` as RGB bytes, 16 pixels (48
/// bytes) at a time, up to the last whole 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
fn pack_rgb16_ssse3(color: &[u32], out: &mut Vec<u8>) {
    use std::arch::x86_64::*;
    // Bytes 0-2, 4-6, 8-10, 12-14 to 0..12; the rest zero.
    let pick = _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    let (blocks, _) = color.as_chunks::<16>();
    out.reserve(blocks.len() * 48);
    let (len, spare) = (out.len(), out.spare_capacity_mut());
    for (c, o) in blocks.iter().zip(spare.as_chunks_mut::<48>().0) {
        // SAFETY: 16-byte unaligned loads from `c` (16 u32 = 64 bytes) and stores into `o` (48
        // bytes of reserved capacity) at offsets 0, 16, 32.
        unsafe {
            let ld = |k: usize| _mm_shuffle_epi8(_mm_loadu_si128(c.as_ptr().add(4 * k) as *const __m128i), pick);
            let (a, b, c, d) = (ld(0), ld(1), ld(2), ld(3));
            let o = o.as_mut_ptr() as *mut __m128i;
            _mm_storeu_si128(o, _mm_or_si128(a, _mm_slli_si128::<12>(b)));
            _mm_storeu_si128(o.add(1), _mm_or_si128(_mm_srli_si128::<4>(b), _mm_slli_si128::<8>(c)));
            _mm_storeu_si128(o.add(2), _mm_or_si128(_mm_srli_si128::<8>(c), _mm_slli_si128::<4>(d)));
        }
    }
    // SAFETY: the loop above initialised the first `blocks.len() * 48` bytes of spare capacity
    // (reserved above).
    unsafe { out.set_len(len + blocks.len() * 48) };
}

/// Whether a face (view-space vertices: right, up, forward) certainly covers no pixel: all its
/// vertices beyond one side plane of the view frustum, or (`cull`) it is seen clearly from behind
/// (the triple product of three vertices, whose sign is the projected winding's, below a margin
/// far outside rounding), so it is rejected before clipping, projection and set-up. Faces near the
/// limits go on to the rasterizer, which decides as before.
#[inline(always)]
fn hidden(v: &[CVert], sx: f64, sy: f64, cull: bool) -> bool {
    // Beyond the plane a = w, with margin: a - w > 1e-6 (|a| + |w|).
    let beyond = |a: f64, w: f64| a - w > 1e-6 * (a.abs() + w.abs());
    if v.iter().all(|c| beyond(c.vx * sx, c.w))
        || v.iter().all(|c| beyond(-c.vx * sx, c.w))
        || v.iter().all(|c| beyond(c.vy * sy, c.w))
        || v.iter().all(|c| beyond(-c.vy * sy, c.w))
    {
        return true;
    }
    if !cull {
        return false;
    }
    let p = |c: &CVert| [c.vx, c.vy, c.w];
    let (a, b, c) = (p(&v[0]), p(&v[1]), p(&v[2]));
    let triple =
        a[0] * (b[1] * c[2] - b[2] * c[1]) + a[1] * (b[2] * c[0] - b[0] * c[2]) + a[2] * (b[0] * c[1] - b[1] * c[0]);
    let norm = |x: [f64; 3]| (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
    // The rasterizer culls a positive screen-space area (y down), which is a negative triple
    // product of the view-space vertices.
    triple < -1e-3 * norm(a) * norm(b) * norm(c)
}

/// Whether every depth key in `depth` is at least `z` (then a pixel whose key is at most `z` fails
/// the depth test everywhere). Depth keys are never NaN. Sixteen lanes at a time, stopping at the
/// first chunk with a key below `z`.
#[inline(always)]
fn occluded(depth: &[f32], z: f32) -> bool {
    let (chunks, rest) = depth.as_chunks::<16>();
    for c in chunks {
        let mut below = false;
        for &x in c {
            below |= x < z;
        }
        if below {
            return false;
        }
    }
    !rest.iter().any(|&x| x < z)
}

/// [`pack_rgb16_ssse3`] with one `vpermb` per 16 pixels (AVX-512 VBMI), up to the last whole 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn pack_rgb16_vbmi(color: &[u32], out: &mut Vec<u8>) {
    use std::arch::x86_64::*;
    // Output byte 3p + c is byte 4p + c of the input (pixel p, channel c); the last 16 unused.
    let mut pick = [0u8; 64];
    for (o, p) in pick.iter_mut().enumerate().take(48) {
        *p = (o / 3 * 4 + o % 3) as u8;
    }
    let (blocks, _) = color.as_chunks::<16>();
    // 16 bytes of slack: each block stores 64 bytes, of which 48 are kept.
    out.reserve(blocks.len() * 48 + 16);
    let (len, spare) = (out.len(), out.spare_capacity_mut());
    // SAFETY: 64-byte loads from each block (16 u32) and the pick table; 64-byte stores at
    // offset 48 b of the spare capacity for block b < blocks.len(), within the reserved
    // blocks.len() * 48 + 16 bytes.
    unsafe {
        let pick = _mm512_loadu_si512(pick.as_ptr() as *const __m512i);
        let o = spare.as_mut_ptr() as *mut u8;
        for (b, c) in blocks.iter().enumerate() {
            let v = _mm512_permutexvar_epi8(pick, _mm512_loadu_si512(c.as_ptr() as *const __m512i));
            _mm512_storeu_si512(o.add(48 * b) as *mut __m512i, v);
        }
        // The loop initialised the first `blocks.len() * 48` bytes of spare capacity.
        out.set_len(len + blocks.len() * 48);
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

/// f32s per 4 KiB page.
const PAGE_F32: usize = 1024;

/// Pixels shaded together: the lanes of one SSE register.
const GROUP: usize = 4;
/// Groups per chunk: their mip levels are chosen in one pass, and all their texel addresses are
/// computed before the first texel is fetched.
const GROUPS: usize = 4;
/// Pixels per chunk.
const CHUNK: usize = GROUP * GROUPS;

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

/// Bilinear-textured pixels of one span of `n` pixels, a chunk of [`CHUNK`] pixels at a time (see
/// [`shade_chunk`]). `depth` and `color` extend to the end of the span's last chunk (the pixels
/// after the span are read and written back unchanged). The mip level is chosen per group of 4
/// pixels, at the group's centre (a GPU chooses it per 2x2 quad).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn bilinear_span<const ISA: u8>(
    t: &Texture,
    lp: &LodPlanes,
    s: &Span,
    d: &Span,
    lit: Option<Lit>,
    far_q: f32,
    persp: bool,
    n: usize,
    depth: &mut [f32],
    color: &mut [u32],
) {
    if n == 0 {
        return;
    }
    // By value: the compiler then knows the stores into the buffers cannot change them.
    let (s, d) = (&{ *s }, &{ *d });
    let lod = SpanLod::new(s, d, lp, (t.levels.len() - 1) as f32, (n - 1) as u32 as f32);
    // Levels of the groups of up to `BATCH` chunks, eight groups per pass.
    const BATCH: usize = 8;
    let mut lv = [0i32; BATCH * GROUPS];
    let (dc, _) = depth.as_chunks_mut::<CHUNK>();
    let (cc, _) = color.as_chunks_mut::<CHUNK>();
    for (c, (dp, cp)) in dc.iter_mut().zip(cc).take(n.div_ceil(CHUNK)).enumerate() {
        let k = c * CHUNK;
        if c % BATCH == 0 {
            let groups = (n - k).div_ceil(GROUP).min(BATCH * GROUPS);
            for (j, out) in lv.as_chunks_mut::<8>().0.iter_mut().enumerate().take(groups.div_ceil(8)) {
                levels8::<ISA>(&lod, (k + 8 * j * GROUP) as u32 as f32, out);
            }
        }
        let g = (c % BATCH) * GROUPS;
        let levels = arr4(|j| &t.levels[lv[g + j] as usize]);
        // Whole chunks (a constant `lanes`: no lane mask) and the span's last one.
        if n - k >= CHUNK {
            shade_chunk::<ISA>(&levels, CHUNK, s, d, k as u32 as f32, lit, far_q, persp, dp, cp);
        } else {
            shade_chunk::<ISA>(&levels, n - k, s, d, k as u32 as f32, lit, far_q, persp, dp, cp);
        }
    }
}

/// The mip-level choice along one span, in a form with no division per group. With q = 1/w, the
/// texel footprint of a pixel is `(d(u, v)/dx, d(u, v)/dy) / q²` where the x numerators are
/// constant along a row and the y numerators linear in the pixel index k (u/w, v/w and q are
/// affine in k). So rho² = max(`ax`, (`uy0` + `duy` k)² + (`vy0` + `dvy` k)²) / q(k)⁴ (in texels,
/// level 0), and the peer's LOD (log2 of the larger footprint axis, nearest level) is
/// `0.5 log2(max(..)) - 2 log2(q) + 0.5`, both logs read from the floats' bits.
#[derive(Debug, Clone, Copy)]
struct SpanLod {
    q0: f32,
    dq: f32,
    ax: f32,
    uy0: f32,
    duy: f32,
    vy0: f32,
    dvy: f32,
    /// The coarsest level.
    top: f32,
    /// The span's last pixel (group centres past it are clamped to it).
    last: f32,
}

impl SpanLod {
    fn new(s: &Span, d: &Span, lp: &LodPlanes, top: f32, last: f32) -> Self {
        let (ux, vx) = (lp.tw * (lp.pu.0 * s.q - s.uq * lp.pq.0), lp.th * (lp.pv.0 * s.q - s.vq * lp.pq.0));
        SpanLod {
            q0: s.q,
            dq: d.q,
            ax: ux * ux + vx * vx,
            uy0: lp.tw * (lp.pu.1 * s.q - s.uq * lp.pq.1),
            duy: lp.tw * (lp.pu.1 * d.q - d.uq * lp.pq.1),
            vy0: lp.th * (lp.pv.1 * s.q - s.vq * lp.pq.1),
            dvy: lp.th * (lp.pv.1 * d.q - d.vq * lp.pq.1),
            top,
            last,
        }
    }

    /// The level at pixel `k` (the definition the SIMD passes reproduce bit for bit; `max`/`min`
    /// written as `maxps`/`minps` compute them, NaN included).
    fn level(&self, k: f32) -> i32 {
        let k = if k < self.last { k } else { self.last };
        let q = self.q0 + self.dq * k;
        let (uy, vy) = (self.uy0 + self.duy * k, self.vy0 + self.dvy * k);
        let ay = uy * uy + vy * vy;
        let m = if self.ax > ay { self.ax } else { ay };
        let log2 = |x: f32| (x.to_bits() as i32 as f32) * (1.0 / (1u32 << 23) as f32) - 127.0;
        let lod = 0.5 * log2(m) - 2.0 * log2(q) + 0.5;
        let lod = if lod > 0.0 { lod } else { 0.0 };
        (if lod < self.top { lod } else { self.top }) as i32
    }
}

/// The mip levels of the eight groups from pixel `k0`, at the groups' centres: one AVX2 pass, two
/// SSE2 passes, or scalar.
#[inline(always)]
fn levels8<const ISA: u8>(lod: &SpanLod, k0: f32, lv: &mut [i32; 8]) {
    #[cfg(target_arch = "x86_64")]
    match ISA {
        // SAFETY: `ISA` is AVX2 / AVX512 only under `draw_tris_avx2` / `draw_tris_avx512`, which
        // run on AVX2 machines.
        AVX2 | AVX512 => return unsafe { levels8_avx2(lod, k0, lv) },
        SSE41 => {
            let [a, b] = lv.as_chunks_mut::<4>().0 else { unreachable!("8 = 2 x 4") };
            levels4_sse2(lod, k0, a);
            return levels4_sse2(lod, k0 + 4.0 * GROUP as f32, b);
        }
        _ => {}
    }
    for (g, l) in lv.iter_mut().enumerate() {
        *l = lod.level(k0 + (g * GROUP) as f32 + 1.5);
    }
}

/// Generates a SIMD pass of [`SpanLod::level`] over the group centres of `$centres`.
#[cfg(target_arch = "x86_64")]
macro_rules! lod_pass {
    ($lod:expr, $k0:expr, $centres:expr, $v:ty, $set:ident, $add:ident, $mul:ident, $sub:ident,
     $max:ident, $min:ident, $cvt:ident, $cast:ident, $cvtt:ident) => {{
        let l = $lod;
        let kc = $min($add($set($k0), $centres), $set(l.last));
        let lin = |a: f32, da: f32| -> $v { $add($set(a), $mul($set(da), kc)) };
        let q = lin(l.q0, l.dq);
        let (uy, vy) = (lin(l.uy0, l.duy), lin(l.vy0, l.dvy));
        let m = $max($set(l.ax), $add($mul(uy, uy), $mul(vy, vy)));
        let log2 = |x: $v| $sub($mul($cvt($cast(x)), $set(1.0 / (1u32 << 23) as f32)), $set(127.0));
        let lod = $add($sub($mul($set(0.5), log2(m)), $mul($set(2.0), log2(q))), $set(0.5));
        $cvtt($min($max(lod, $set(0.0)), $set(l.top)))
    }};
}

/// Four group levels in one SSE2 pass.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn levels4_sse2(lod: &SpanLod, k0: f32, lv: &mut [i32; 4]) {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 register arithmetic (x86-64 baseline) and one unaligned 4-lane store.
    unsafe {
        let l = lod_pass!(
            lod,
            k0,
            _mm_setr_ps(1.5, 5.5, 9.5, 13.5),
            __m128,
            _mm_set1_ps,
            _mm_add_ps,
            _mm_mul_ps,
            _mm_sub_ps,
            _mm_max_ps,
            _mm_min_ps,
            _mm_cvtepi32_ps,
            _mm_castps_si128,
            _mm_cvttps_epi32
        );
        _mm_storeu_si128(lv.as_mut_ptr() as *mut __m128i, l);
    }
}

/// Eight group levels in one AVX2 pass.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn levels8_avx2(lod: &SpanLod, k0: f32, lv: &mut [i32; 8]) {
    use std::arch::x86_64::*;
    // SAFETY: AVX2 register arithmetic (the caller guarantees the CPU has it) and one unaligned
    // 8-lane store.
    unsafe {
        let centres = _mm256_setr_ps(1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5);
        let l = lod_pass!(
            lod,
            k0,
            centres,
            __m256,
            _mm256_set1_ps,
            _mm256_add_ps,
            _mm256_mul_ps,
            _mm256_sub_ps,
            _mm256_max_ps,
            _mm256_min_ps,
            _mm256_cvtepi32_ps,
            _mm256_castps_si256,
            _mm256_cvttps_epi32
        );
        _mm256_storeu_si256(lv.as_mut_ptr() as *mut __m256i, l);
    }
}

/// Flat-coloured untextured pixels of one span (boxes): depth test and one colour.
fn flat_span(c: [f32; 3], s: &Span, d: &Span, far_q: f32, depth: &mut [f32], color: &mut [u32]) {
    let c = pack_rgb(c);
    for (k, (dp, cp)) in depth.iter_mut().zip(color).enumerate() {
        let z = lane_z(s, d, k as f32, far_q);
        if z > *dp {
            *dp = z;
            *cp = c;
        }
    }
}

/// The depth key of lane `k` (the span start plus `k` steps), or -inf beyond the far plane.
#[inline(always)]
fn lane_z(s: &Span, d: &Span, k: f32, far_q: f32) -> f32 {
    if s.q + d.q * k >= far_q { s.z + d.z * k } else { f32::NEG_INFINITY }
}

/// A light colour in 8.8 fixed point (0..=256 per channel: r, g, b), the blend's last factor.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Lit([i16; 3]);

impl Lit {
    /// `c` in [0, 1] to 0..=256 (NaN to 0, as the SIMD clamp does).
    #[inline(always)]
    fn of(c: [f32; 3]) -> Lit {
        Lit(c.map(|x| (x.clamp(0.0, 1.0) * 256.0 + 0.5) as i16))
    }
}

/// Fractional bits of the texel coordinates and bilinear weights (as GPUs, the 2x2 footprint is
/// blended in fixed point).
const WEIGHT_BITS: u32 = texture::FRACTION_BITS;
/// The blend's sums carry two weights and the light: `2 * WEIGHT_BITS + 8` fractional bits.
const BLEND_SHIFT: u32 = 2 * WEIGHT_BITS + 8;

/// One chunk of bilinear-textured pixels (lanes `k0 .. k0 + 16` of the span; group `g` in mip
/// level `levels[g]`; only the first `lanes` pixels), in two passes so that the texel fetches of
/// the four groups overlap: AVX2 or SSE4.1 under [`Renderer::draw_tris_avx2`] /
/// [`Renderer::draw_tris_sse41`], else scalar (the definition; all three give the same bytes).
///
/// Addressing, per pixel: depth test; 1/w, u and v; texel coordinates in fixed point with
/// [`WEIGHT_BITS`] fractional bits (wrapped: level sizes are powers of two). Blending: one
/// 16-byte load fetches the 2x2 footprint (see [`Level::pairs`]); `pmaddubsw` blends each column
/// vertically, `pmaddwd` the two columns horizontally with weights already multiplied by the
/// light (Gouraud when `lit` is `None`), all in integers: `(sum + half) >> BLEND_SHIFT`.
/// `persp`: the depth key is 1/w itself (`s.z == s.q`, `d.z == d.q`), so it is not interpolated
/// twice.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn shade_chunk<const ISA: u8>(
    levels: &[&Level; GROUPS],
    lanes: usize,
    s: &Span,
    d: &Span,
    k0: f32,
    lit: Option<Lit>,
    far_q: f32,
    persp: bool,
    dp: &mut [f32; CHUNK],
    cp: &mut [u32; CHUNK],
) {
    #[cfg(target_arch = "x86_64")]
    match ISA {
        // SAFETY: `ISA` is AVX2 / SSE4.1 only under `draw_tris_avx2` / `draw_tris_sse41`, which
        // run on CPUs with those features.
        // (The flat and the Gouraud kernels are compiled apart: each one keeps its registers.)
        AVX2 => unsafe {
            match lit {
                Some(l) => shade_chunk_avx2::<false>(levels, lanes, s, d, k0, l, far_q, persp, dp, cp),
                None => shade_chunk_avx2::<true>(levels, lanes, s, d, k0, Lit([0; 3]), far_q, persp, dp, cp),
            }
        },
        AVX512 => unsafe {
            match lit {
                Some(l) => shade_chunk_avx512::<false>(levels, lanes, s, d, k0, l, far_q, persp, dp, cp),
                None => shade_chunk_avx512::<true>(levels, lanes, s, d, k0, Lit([0; 3]), far_q, persp, dp, cp),
            }
        },
        SSE41 => unsafe {
            match lit {
                Some(l) => shade_chunk_sse41::<false>(levels, lanes, s, d, k0, l, far_q, persp, dp, cp),
                None => shade_chunk_sse41::<true>(levels, lanes, s, d, k0, Lit([0; 3]), far_q, persp, dp, cp),
            }
        },
        _ => shade_chunk_scalar(levels, lanes, s, d, k0, lit, far_q, dp, cp),
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = persp;
        shade_chunk_scalar(levels, lanes, s, d, k0, lit, far_q, dp, cp);
    }
}

/// [`shade_chunk`] four pixels (one group) per register, for SSE4.1 machines. Same arithmetic as
/// [`shade_chunk_scalar`], same results bit for bit (tested). `flat` is the light of a flat face;
/// `GOURAUD` faces interpolate theirs instead (`flat` unused).
///
/// # Safety
/// The CPU must have SSE4.1 and SSSE3.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn shade_chunk_sse41<const GOURAUD: bool>(
    levels: &[&Level; GROUPS],
    lanes: usize,
    s: &Span,
    d: &Span,
    k0: f32,
    flat: Lit,
    far_q: f32,
    persp: bool,
    dp: &mut [f32; CHUNK],
    cp: &mut [u32; CHUNK],
) {
    // SAFETY: SSE4.1/SSSE3 arithmetic (the caller guarantees the CPU has them); unaligned 4-lane
    // loads/stores at offsets 4g (g < GROUPS) of `dp`, `cp` and `idx` (CHUNK = 4 * GROUPS
    // elements); aligned loads of the `LevelLanes` arrays; 16-byte loads of `pairs` at entries
    // i and i + 1 for the indices i in `idx`: i <= (h - 1)(w + 1) + w - 1, and `pairs` holds
    // h (w + 1) entries.
    unsafe {
        use std::arch::x86_64::*;
        let set = _mm_set1_ps;
        let half = (1u32 << (WEIGHT_BITS - 1)) as f32;
        let one = _mm_set1_epi32(1 << WEIGHT_BITS);
        let frac = _mm_set1_epi32((1 << WEIGHT_BITS) - 1);
        let mut pass = [_mm_setzero_ps(); GROUPS];
        let mut zs = [_mm_setzero_ps(); GROUPS];
        let mut weights = [(_mm_setzero_si128(), _mm_setzero_si128()); GROUPS];
        let mut lights = [[_mm_setzero_si128(); 3]; GROUPS];
        let mut idx = [0u32; CHUNK];
        let mut live = 0u32;
        let groups = lanes.div_ceil(GROUP).min(GROUPS);
        for g in 0..groups {
            let kf = _mm_add_ps(set(k0 + (g * GROUP) as f32), _mm_setr_ps(0.0, 1.0, 2.0, 3.0));
            let lin = |a: f32, da: f32| _mm_add_ps(set(a), _mm_mul_ps(set(da), kf));
            let q = lin(s.q, d.q);
            let near = _mm_cmpge_ps(q, set(far_q));
            let z = _mm_blendv_ps(set(f32::NEG_INFINITY), if persp { q } else { lin(s.z, d.z) }, near);
            let inside = _mm_cmpgt_epi32(_mm_set1_epi32(lanes as i32 - (g * GROUP) as i32), _mm_setr_epi32(0, 1, 2, 3));
            let p = _mm_and_ps(_mm_castsi128_ps(inside), _mm_cmpgt_ps(z, _mm_loadu_ps(dp.as_ptr().add(g * GROUP))));
            if _mm_movemask_ps(p) == 0 {
                continue;
            }
            live |= 1 << g;
            (pass[g], zs[g]) = (p, z);
            let l = &levels[g].lanes;
            let r = _mm_div_ps(set(1.0), q);
            let x = _mm_sub_ps(_mm_mul_ps(_mm_mul_ps(lin(s.uq, d.uq), r), _mm_load_ps(l.wf.as_ptr())), set(half));
            let y = _mm_sub_ps(_mm_mul_ps(_mm_mul_ps(lin(s.vq, d.vq), r), _mm_load_ps(l.hf.as_ptr())), set(half));
            let (xi, yi) = (_mm_cvttps_epi32(_mm_floor_ps(x)), _mm_cvttps_epi32(_mm_floor_ps(y)));
            let (fx, fy) = (_mm_and_si128(xi, frac), _mm_and_si128(yi, frac));
            // Horizontal weights as 16-bit pairs, vertical ones as byte pairs (twice).
            let wy = _mm_or_si128(_mm_sub_epi32(one, fy), _mm_slli_epi32(fy, 8));
            weights[g] = (
                _mm_or_si128(_mm_sub_epi32(one, fx), _mm_slli_epi32(fx, 16)),
                _mm_or_si128(wy, _mm_slli_epi32(wy, 16)),
            );
            let ld = |a: &[i32; 4]| _mm_load_si128(a.as_ptr() as *const __m128i);
            let tx = _mm_and_si128(_mm_srai_epi32(xi, WEIGHT_BITS as i32), ld(&l.w_mask));
            let ty = _mm_and_si128(_mm_srai_epi32(yi, WEIGHT_BITS as i32), ld(&l.h_mask));
            let row = _mm_add_epi32(_mm_sll_epi32(ty, _mm_cvtsi32_si128(l.shift[0])), ty);
            _mm_storeu_si128(idx.as_mut_ptr().add(g * GROUP) as *mut __m128i, _mm_add_epi32(row, tx));
            if GOURAUD {
                lights[g] = [0, 1, 2].map(|j| {
                    let v = _mm_mul_ps(lin(s.cq[j], d.cq[j]), r);
                    let v = _mm_min_ps(_mm_max_ps(v, _mm_setzero_ps()), set(1.0));
                    _mm_cvttps_epi32(_mm_add_ps(_mm_mul_ps(v, set(256.0)), set(0.5)))
                });
            }
        }
        let Lit([lr, lg, lb]) = flat;
        let flat = _mm_setr_epi16(lr, lr, lg, lg, lb, lb, 0, 0);
        // Per pixel, (top, bottom) sums of the two columns to (left, right) pairs per channel.
        let pick = _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
        let round = _mm_set1_epi32(1 << (BLEND_SHIFT - 1));
        for g in 0..groups {
            if live & (1 << g) == 0 {
                continue;
            }
            let base = levels[g].pairs.as_ptr();
            let (wx, wy) = weights[g];
            // The light of each pixel as 16-bit (r, r, g, g, b, b, 0, 0).
            let lp = if GOURAUD {
                let [r, gr, b] = lights[g].map(|c| _mm_or_si128(c, _mm_slli_epi32(c, 16)));
                let (lo, hi) = (_mm_unpacklo_epi32(r, gr), _mm_unpackhi_epi32(r, gr));
                let zero = _mm_setzero_si128();
                let (blo, bhi) = (_mm_unpacklo_epi32(b, zero), _mm_unpackhi_epi32(b, zero));
                [
                    _mm_unpacklo_epi64(lo, blo),
                    _mm_unpackhi_epi64(lo, blo),
                    _mm_unpacklo_epi64(hi, bhi),
                    _mm_unpackhi_epi64(hi, bhi),
                ]
            } else {
                [flat; 4]
            };
            macro_rules! pixel {
                ($j:literal) => {{
                    let t = _mm_loadu_si128(base.add(idx[g * GROUP + $j] as usize) as *const __m128i);
                    let v = _mm_maddubs_epi16(t, _mm_shuffle_epi32::<{ $j * 0x55 }>(wy));
                    let w = _mm_mullo_epi16(_mm_shuffle_epi32::<{ $j * 0x55 }>(wx), lp[$j]);
                    let sum = _mm_madd_epi16(_mm_shuffle_epi8(v, pick), w);
                    _mm_srli_epi32(_mm_add_epi32(sum, round), BLEND_SHIFT as i32)
                }};
            }
            let (a, b, c, e) = (pixel!(0), pixel!(1), pixel!(2), pixel!(3));
            let out = _mm_packus_epi16(_mm_packus_epi32(a, b), _mm_packus_epi32(c, e));
            let (c, z) = (cp.as_mut_ptr().add(g * GROUP) as *mut __m128i, dp.as_mut_ptr().add(g * GROUP));
            // Fully covered groups need not read the buffers back (which also avoids stalls when
            // the colour, depth and texel addresses alias modulo 4 KiB).
            let p = pass[g];
            if _mm_movemask_ps(p) == 0xf {
                _mm_storeu_si128(c, out);
                _mm_storeu_ps(z, zs[g]);
            } else {
                _mm_storeu_si128(c, _mm_blendv_epi8(_mm_loadu_si128(c), out, _mm_castps_si128(p)));
                _mm_storeu_ps(z, _mm_blendv_ps(_mm_loadu_ps(z), zs[g], p));
            }
        }
    }
}

/// [`shade_chunk`] eight pixels (two groups) per register, for AVX2 machines. Same arithmetic,
/// same results bit for bit (tested against [`shade_chunk_scalar`]); `flat` and `GOURAUD` as in
/// [`shade_chunk_sse41`]. Not a `target_feature` function, so that it can be inlined into one
/// ([`Renderer::draw_tris_avx2`]).
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn shade_chunk_avx2<const GOURAUD: bool>(
    levels: &[&Level; GROUPS],
    lanes: usize,
    s: &Span,
    d: &Span,
    k0: f32,
    flat: Lit,
    far_q: f32,
    persp: bool,
    dp: &mut [f32; CHUNK],
    cp: &mut [u32; CHUNK],
) {
    // SAFETY: unaligned 8-lane loads/stores at offsets 0 and 8 of `dp` and `cp` (CHUNK = 16
    // elements); 16-byte loads of the `LevelLanes` arrays; 16-byte loads of `pairs` at entries i
    // and i + 1 for the computed indices i: i <= (h - 1)(w + 1) + w - 1, and `pairs` holds
    // h (w + 1) entries.
    unsafe {
        use std::arch::x86_64::*;
        let set = _mm256_set1_ps;
        let half = (1u32 << (WEIGHT_BITS - 1)) as f32;
        let one = _mm256_set1_epi32(1 << WEIGHT_BITS);
        let frac = _mm256_set1_epi32((1 << WEIGHT_BITS) - 1);
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        // Per-lane level constants: group 2p in the low half, 2p + 1 in the high half.
        let per = |p: usize, f: fn(&LevelLanes) -> &[i32; 4]| {
            let (a, b) = (f(&levels[2 * p].lanes), f(&levels[2 * p + 1].lanes));
            _mm256_loadu2_m128i(b.as_ptr() as *const __m128i, a.as_ptr() as *const __m128i)
        };
        let per_f = |p: usize, f: fn(&LevelLanes) -> &[f32; 4]| {
            let (a, b) = (f(&levels[2 * p].lanes), f(&levels[2 * p + 1].lanes));
            _mm256_loadu2_m128(b.as_ptr(), a.as_ptr())
        };
        const { assert!(GROUPS == 4, "two pairs of groups per chunk") };
        let (dptr, cptr) = (dp.as_mut_ptr(), cp.as_mut_ptr());
        type Addressed = (__m256, __m256, (__m256i, __m256i), [__m256i; 3], __m256i);
        // Addressing of pair `p` (pixels 8p .. 8p + 8): `None` when no lane passes the depth test;
        // else the pass mask, depth, weights, Gouraud light and the footprint indices. Both pairs
        // are addressed before either is fetched, so that the fetches overlap. (Loops, not
        // closures: a closure called twice may not be inlined, and outside this AVX2 context its
        // intrinsics would become calls.)
        let mut addressed: [Option<Addressed>; 2] = [None, None];
        for (p, slot) in addressed.iter_mut().enumerate().take(lanes.div_ceil(2 * GROUP)) {
            let kf =
                _mm256_add_ps(set(k0 + (p * 2 * GROUP) as f32), _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0));
            let lin = |a: f32, da: f32| _mm256_add_ps(set(a), _mm256_mul_ps(set(da), kf));
            let q = lin(s.q, d.q);
            let near = _mm256_cmp_ps::<_CMP_GE_OS>(q, set(far_q));
            let z = _mm256_blendv_ps(set(f32::NEG_INFINITY), if persp { q } else { lin(s.z, d.z) }, near);
            let ps = _mm256_cmp_ps::<_CMP_GT_OS>(z, _mm256_loadu_ps(dptr.add(p * 2 * GROUP)));
            let ps = if lanes >= CHUNK {
                ps
            } else {
                let inside = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32 - (p * 2 * GROUP) as i32), lane);
                _mm256_and_ps(_mm256_castsi256_ps(inside), ps)
            };
            if _mm256_movemask_ps(ps) == 0 {
                continue;
            }
            let r = _mm256_div_ps(set(1.0), q);
            let x = _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(lin(s.uq, d.uq), r), per_f(p, |l| &l.wf)), set(half));
            let y = _mm256_sub_ps(_mm256_mul_ps(_mm256_mul_ps(lin(s.vq, d.vq), r), per_f(p, |l| &l.hf)), set(half));
            let (xi, yi) = (_mm256_cvttps_epi32(_mm256_floor_ps(x)), _mm256_cvttps_epi32(_mm256_floor_ps(y)));
            let (fx, fy) = (_mm256_and_si256(xi, frac), _mm256_and_si256(yi, frac));
            // Horizontal weights as 16-bit pairs, vertical ones as byte pairs (twice).
            let wy = _mm256_or_si256(_mm256_sub_epi32(one, fy), _mm256_slli_epi32(fy, 8));
            let weights = (
                _mm256_or_si256(_mm256_sub_epi32(one, fx), _mm256_slli_epi32(fx, 16)),
                _mm256_or_si256(wy, _mm256_slli_epi32(wy, 16)),
            );
            let tx = _mm256_and_si256(_mm256_srai_epi32(xi, WEIGHT_BITS as i32), per(p, |l| &l.w_mask));
            let ty = _mm256_and_si256(_mm256_srai_epi32(yi, WEIGHT_BITS as i32), per(p, |l| &l.h_mask));
            let idx = _mm256_add_epi32(_mm256_add_epi32(_mm256_sllv_epi32(ty, per(p, |l| &l.shift)), ty), tx);
            let mut light = [_mm256_setzero_si256(); 3];
            if GOURAUD {
                light = [0, 1, 2].map(|j| {
                    let v = _mm256_mul_ps(lin(s.cq[j], d.cq[j]), r);
                    let v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), set(1.0));
                    _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v, set(256.0)), set(0.5)))
                });
            }
            *slot = Some((ps, z, weights, light, idx));
        }
        let Lit([r, g, b]) = flat;
        let flat = _mm256_setr_epi16(r, r, g, g, b, b, 0, 0, r, r, g, g, b, b, 0, 0);
        // Per pixel, (top, bottom) sums of the two columns to (left, right) pairs per channel.
        let pick = _mm256_setr_epi8(
            0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15, 0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15,
        );
        let round = _mm256_set1_epi32(1 << (BLEND_SHIFT - 1));
        // Fetch, blend, light and store each addressed pair. Register j holds pixel j in its low
        // half and pixel j + 4 in its high half, so `pshufd` broadcasts each pixel's weights.
        for (p, a) in addressed.into_iter().enumerate() {
            let Some((ps, z, (wx, wy), light, idx)) = a else { continue };
            let mut i = [0u32; 8];
            _mm256_storeu_si256(i.as_mut_ptr() as *mut __m256i, idx);
            let (b0, b1) = (levels[2 * p].pairs.as_ptr(), levels[2 * p + 1].pairs.as_ptr());
            // The light of each pixel as 16-bit (r, r, g, g, b, b, 0, 0).
            let lp = if GOURAUD {
                let [r, g, b] = light.map(|c| _mm256_or_si256(c, _mm256_slli_epi32(c, 16)));
                let (lo, hi) = (_mm256_unpacklo_epi32(r, g), _mm256_unpackhi_epi32(r, g));
                let zero = _mm256_setzero_si256();
                let (blo, bhi) = (_mm256_unpacklo_epi32(b, zero), _mm256_unpackhi_epi32(b, zero));
                [
                    _mm256_unpacklo_epi64(lo, blo),
                    _mm256_unpackhi_epi64(lo, blo),
                    _mm256_unpacklo_epi64(hi, bhi),
                    _mm256_unpackhi_epi64(hi, bhi),
                ]
            } else {
                [flat; 4]
            };
            macro_rules! pixels {
                ($j:literal) => {{
                    let t = _mm256_loadu2_m128i(
                        b1.add(i[$j + 4] as usize) as *const __m128i,
                        b0.add(i[$j] as usize) as *const __m128i,
                    );
                    let v = _mm256_maddubs_epi16(t, _mm256_shuffle_epi32::<{ $j * 0x55 }>(wy));
                    let w = _mm256_mullo_epi16(_mm256_shuffle_epi32::<{ $j * 0x55 }>(wx), lp[$j]);
                    let sum = _mm256_madd_epi16(_mm256_shuffle_epi8(v, pick), w);
                    _mm256_srli_epi32(_mm256_add_epi32(sum, round), BLEND_SHIFT as i32)
                }};
            }
            let (a, b, c, e) = (pixels!(0), pixels!(1), pixels!(2), pixels!(3));
            let out = _mm256_packus_epi16(_mm256_packus_epi32(a, b), _mm256_packus_epi32(c, e));
            let (c, zp) = (cptr.add(p * 2 * GROUP) as *mut __m256i, dptr.add(p * 2 * GROUP));
            // Fully covered pairs need not read the buffers back (which also avoids stalls when
            // the colour, depth and texel addresses alias modulo 4 KiB).
            if _mm256_movemask_ps(ps) == 0xff {
                _mm256_storeu_si256(c, out);
                _mm256_storeu_ps(zp, z);
            } else {
                _mm256_storeu_si256(c, _mm256_blendv_epi8(_mm256_loadu_si256(c), out, _mm256_castps_si256(ps)));
                _mm256_storeu_ps(zp, _mm256_blendv_ps(_mm256_loadu_ps(zp), z, ps));
            }
        }
    }
}

/// [`shade_chunk`] sixteen pixels (the whole chunk) per register, for AVX-512 machines: the
/// addressing in one pass, the blend four pixels (one of each group) per register. Same arithmetic
/// as [`shade_chunk_scalar`], same results bit for bit (tested); `flat` and `GOURAUD` as in
/// [`shade_chunk_sse41`]. `vpdpwssd` adds the rounding term in the horizontal blend.
///
/// # Safety
/// The CPU must have AVX-512 F, BW, VL and VNNI.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn shade_chunk_avx512<const GOURAUD: bool>(
    levels: &[&Level; GROUPS],
    lanes: usize,
    s: &Span,
    d: &Span,
    k0: f32,
    flat: Lit,
    far_q: f32,
    persp: bool,
    dp: &mut [f32; CHUNK],
    cp: &mut [u32; CHUNK],
) {
    // SAFETY: AVX-512 arithmetic (the caller guarantees the CPU has it); 16-lane loads/stores of
    // `dp`, `cp` and `idx` (CHUNK = 16 elements; stores masked to the passing lanes); 16-byte
    // loads of the `LevelLanes` arrays; 16-byte loads of `quads` entry i for the computed
    // indices i = (ty << shift) + tx with tx < w, ty < h: i < w h, the length of `quads`.
    unsafe {
        use std::arch::x86_64::*;
        const { assert!(GROUPS == 4 && CHUNK == 16, "one chunk per 16-lane register") };
        let set = _mm512_set1_ps;
        let half = (1u32 << (WEIGHT_BITS - 1)) as f32;
        let one = _mm512_set1_epi32(1 << WEIGHT_BITS);
        let frac = _mm512_set1_epi32((1 << WEIGHT_BITS) - 1);
        let kf = _mm512_add_ps(
            set(k0),
            _mm512_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0),
        );
        let lin = |a: f32, da: f32| _mm512_add_ps(set(a), _mm512_mul_ps(set(da), kf));
        let q = lin(s.q, d.q);
        let near = _mm512_cmp_ps_mask::<_CMP_GE_OS>(q, set(far_q));
        let z = _mm512_mask_blend_ps(near, set(f32::NEG_INFINITY), if persp { q } else { lin(s.z, d.z) });
        let (dptr, cptr) = (dp.as_mut_ptr(), cp.as_mut_ptr());
        let ps = _mm512_cmp_ps_mask::<_CMP_GT_OS>(z, _mm512_loadu_ps(dptr));
        let ps = if lanes >= CHUNK { ps } else { ps & ((1u32 << lanes) - 1) as u16 };
        if ps == 0 {
            return;
        }
        // Per-lane level constants: group g in lanes 4g .. 4g + 4 (one broadcast when the four
        // groups share a level, as most chunks do).
        let uniform = std::ptr::eq(levels[0], levels[1])
            && std::ptr::eq(levels[0], levels[2])
            && std::ptr::eq(levels[0], levels[3]);
        let per = |f: fn(&LevelLanes) -> &[i32; 4]| {
            let l = |g: usize| _mm_load_si128(f(&levels[g].lanes).as_ptr() as *const __m128i);
            if uniform {
                return _mm512_broadcast_i32x4(l(0));
            }
            let v = _mm512_inserti32x4::<1>(_mm512_castsi128_si512(l(0)), l(1));
            _mm512_inserti32x4::<3>(_mm512_inserti32x4::<2>(v, l(2)), l(3))
        };
        let per_f = |f: fn(&LevelLanes) -> &[f32; 4]| {
            let l = |g: usize| _mm_load_ps(f(&levels[g].lanes).as_ptr());
            if uniform {
                return _mm512_broadcast_f32x4(l(0));
            }
            let v = _mm512_insertf32x4::<1>(_mm512_castps128_ps512(l(0)), l(1));
            _mm512_insertf32x4::<3>(_mm512_insertf32x4::<2>(v, l(2)), l(3))
        };
        let r = _mm512_div_ps(set(1.0), q);
        let x = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(lin(s.uq, d.uq), r), per_f(|l| &l.wf)), set(half));
        let y = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(lin(s.vq, d.vq), r), per_f(|l| &l.hf)), set(half));
        // Round towards -inf, no exceptions: floor.
        let floor = |v: __m512| _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(v);
        let (xi, yi) = (_mm512_cvttps_epi32(floor(x)), _mm512_cvttps_epi32(floor(y)));
        let (fx, fy) = (_mm512_and_si512(xi, frac), _mm512_and_si512(yi, frac));
        // Horizontal weights as byte pairs (twice), vertical ones as 16-bit pairs: the transpose
        // of the other kernels' weights, for the `quads` layout.
        let wx = _mm512_or_si512(_mm512_sub_epi32(one, fx), _mm512_slli_epi32::<8>(fx));
        let (wx, wy) = (
            _mm512_or_si512(wx, _mm512_slli_epi32::<16>(wx)),
            _mm512_or_si512(_mm512_sub_epi32(one, fy), _mm512_slli_epi32::<16>(fy)),
        );
        let tx = _mm512_and_si512(_mm512_srai_epi32::<{ WEIGHT_BITS }>(xi), per(|l| &l.w_mask));
        let ty = _mm512_and_si512(_mm512_srai_epi32::<{ WEIGHT_BITS }>(yi), per(|l| &l.h_mask));
        let idx = _mm512_add_epi32(_mm512_sllv_epi32(ty, per(|l| &l.shift)), tx);
        let mut i = [0u32; CHUNK];
        _mm512_storeu_si512(i.as_mut_ptr() as *mut __m512i, idx);
        // Read back from memory (loads), not extracted from the register (shuffles, which the
        // blend below needs).
        let i = std::hint::black_box(&i);
        // The light of each pixel as 16-bit (r, r, g, g, b, b, 0, 0): register j holds pixel
        // 4g + j in its 128-bit block g.
        let lp = if GOURAUD {
            let [r, g, b] = [0, 1, 2].map(|j| {
                let v = _mm512_mul_ps(lin(s.cq[j], d.cq[j]), r);
                let v = _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), set(1.0));
                let c = _mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(v, set(256.0)), set(0.5)));
                _mm512_or_si512(c, _mm512_slli_epi32::<16>(c))
            });
            let (lo, hi) = (_mm512_unpacklo_epi32(r, g), _mm512_unpackhi_epi32(r, g));
            let zero = _mm512_setzero_si512();
            let (blo, bhi) = (_mm512_unpacklo_epi32(b, zero), _mm512_unpackhi_epi32(b, zero));
            [
                _mm512_unpacklo_epi64(lo, blo),
                _mm512_unpackhi_epi64(lo, blo),
                _mm512_unpacklo_epi64(hi, bhi),
                _mm512_unpackhi_epi64(hi, bhi),
            ]
        } else {
            let Lit([r, g, b]) = flat;
            [_mm512_broadcast_i32x4(_mm_setr_epi16(r, r, g, g, b, b, 0, 0)); 4]
        };
        let round = _mm512_set1_epi32(1 << (BLEND_SHIFT - 1));
        let b = [0, 1, 2, 3].map(|g| levels[g].quads.as_ptr());
        macro_rules! pixels {
            ($j:literal) => {{
                let ld = |g: usize| _mm_loadu_si128(b[g].add(i[4 * g + $j] as usize) as *const __m128i);
                let t = _mm512_inserti32x4::<1>(_mm512_castsi128_si512(ld(0)), ld(1));
                let t = _mm512_inserti32x4::<3>(_mm512_inserti32x4::<2>(t, ld(2)), ld(3));
                // Each row blended horizontally: (top, bottom) per channel, then vertically with
                // the light folded into the weights, plus the rounding term.
                let v = _mm512_maddubs_epi16(t, _mm512_shuffle_epi32::<{ $j * 0x55 }>(wx));
                let w = _mm512_mullo_epi16(_mm512_shuffle_epi32::<{ $j * 0x55 }>(wy), lp[$j]);
                let sum = _mm512_dpwssd_epi32(round, v, w);
                _mm512_srli_epi32::<{ BLEND_SHIFT }>(sum)
            }};
        }
        let (a, b1, c, e) = (pixels!(0), pixels!(1), pixels!(2), pixels!(3));
        let out = _mm512_packus_epi16(_mm512_packus_epi32(a, b1), _mm512_packus_epi32(c, e));
        if ps == 0xffff {
            _mm512_storeu_si512(cptr as *mut __m512i, out);
            _mm512_storeu_ps(dptr, z);
        } else {
            _mm512_mask_storeu_epi32(cptr as *mut i32, ps, out);
            _mm512_mask_storeu_ps(dptr, ps, z);
        }
    }
}

/// [`shade_chunk`] one pixel at a time: the definition the SIMD kernels reproduce bit for bit
/// (and the path on CPUs without SSE4.1).
#[allow(clippy::too_many_arguments)]
fn shade_chunk_scalar(
    levels: &[&Level; GROUPS],
    lanes: usize,
    s: &Span,
    d: &Span,
    k0: f32,
    lit: Option<Lit>,
    far_q: f32,
    dp: &mut [f32; CHUNK],
    cp: &mut [u32; CHUNK],
) {
    // `cvttps2dq`: truncation, i32::MIN when out of range or NaN.
    let cvtt = |x: f32| if (-2_147_483_648.0..2_147_483_648.0).contains(&x) { x as i32 } else { i32::MIN };
    let half = (1u32 << (WEIGHT_BITS - 1)) as f32;
    let (one, frac) = (1i32 << WEIGHT_BITS, (1i32 << WEIGHT_BITS) - 1);
    for k in 0..lanes.min(CHUNK) {
        let level = levels[k / GROUP];
        let kf = k0 + (k / GROUP * GROUP) as f32 + (k % GROUP) as f32;
        let z = lane_z(s, d, kf, far_q);
        // The depth test, failing for NaN as `cmpgt` does.
        if z.partial_cmp(&dp[k]) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let r = 1.0 / (s.q + d.q * kf);
        let xi = cvtt(((s.uq + d.uq * kf) * r * level.lanes.wf[0] - half).floor());
        let yi = cvtt(((s.vq + d.vq * kf) * r * level.lanes.hf[0] - half).floor());
        let (fx, fy) = (xi & frac, yi & frac);
        let tx = (xi >> WEIGHT_BITS) & (level.w as i32 - 1);
        let ty = ((yi >> WEIGHT_BITS) & (level.h as i32 - 1)) as usize;
        let i = (ty << level.shift) + ty + tx as usize;
        let (left, right) = (level.pairs[i], level.pairs[i + 1]);
        let Lit(l) = lit.unwrap_or_else(|| Lit::of([0, 1, 2].map(|c| (s.cq[c] + d.cq[c] * kf) * r)));
        let mut out = 0u32;
        for (c, &l) in l.iter().enumerate() {
            // A column's texel and the one below it, blended vertically.
            let col = |e: u64| {
                let (t, b) = ((e >> (16 * c)) as u8 as i32, (e >> (16 * c + 8)) as u8 as i32);
                t * (one - fy) + b * fy
            };
            let sum = col(left) * ((one - fx) * l as i32) + col(right) * (fx * l as i32);
            out |= (((sum + (1 << (BLEND_SHIFT - 1))) >> BLEND_SHIFT) as u32) << (8 * c);
        }
        dp[k] = z;
        cp[k] = out;
    }
}

/// An RGB colour in [0, 1] as packed RGB8 (`as u8` saturates).
#[inline(always)]
fn pack_rgb(c: [f32; 3]) -> u32 {
    let b = |x: f32| (x * 255.0 + 0.5) as u8 as u32;
    b(c[0]) | (b(c[1]) << 8) | (b(c[2]) << 16)
}

/// The general per-pixel path: untextured faces with per-vertex colours (meshes), and nearest
/// sampling (`RenderOptions::bilinear = false`).
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

    fn lod_planes() -> impl Strategy<Value = LodPlanes> {
        prop::array::uniform6(-2.0f32..2.0).prop_map(|g| LodPlanes {
            pu: (g[0], g[1]),
            pv: (g[2], g[3]),
            pq: (g[4] * 1e-3, g[5] * 1e-3),
            tw: 256.0,
            th: 256.0,
        })
    }

    /// A chunk's worth of inputs: texture levels per group, light, prior depth and colour.
    #[allow(clippy::type_complexity)]
    fn chunk_inputs() -> impl Strategy<Value = ([usize; GROUPS], usize, Option<[f32; 3]>, [f32; CHUNK], [u32; CHUNK])> {
        (
            prop::array::uniform4(0usize..9),
            1usize..=CHUNK,
            prop::option::of(prop::array::uniform3(0.0f32..1.0)),
            prop::array::uniform16(prop_oneof![Just(0.0f32), 0.0f32..1.0, Just(f32::INFINITY)]),
            prop::array::uniform16(0u32..0x0100_0000),
        )
    }

    fn levels_of(tex: &'static Texture, lv: [usize; GROUPS]) -> [&'static Level; GROUPS] {
        lv.map(|l| &tex.levels[l.min(tex.levels.len() - 1)])
    }

    proptest! {
        /// The SSSE3 packing writes the same bytes as the plain loop.
        #[test]
        fn packed_pixels_to_rgb_bytes(c in prop::collection::vec(0u32..0x0100_0000, 0..100)) {
            let want: Vec<u8> = c.iter().flat_map(|p| p.to_le_bytes().into_iter().take(3)).collect();
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("ssse3") {
                let mut got = Vec::new();
                // SAFETY: the CPU has SSSE3.
                unsafe { pack_rgb16_ssse3(&c, &mut got) };
                let n = c.len() / 16 * 16;
                prop_assert_eq!(&got[..], &want[..n * 3]);
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx512vbmi") && std::is_x86_feature_detected!("avx512bw") {
                let mut got = vec![7u8];
                // SAFETY: the CPU has AVX-512 VBMI and BW.
                unsafe { pack_rgb16_vbmi(&c, &mut got) };
                let n = c.len() / 16 * 16;
                prop_assert_eq!(got[0], 7);
                prop_assert_eq!(&got[1..], &want[..n * 3]);
            }
            let r = Renderer { w: c.len(), h: 1, color: c.clone(), ..Default::default() };
            let f = r.resolve(c.len() as u32, 1, 1);
            if !c.is_empty() {
                prop_assert_eq!(f.pixels(), &want[..]);
            }
        }

        /// The SSE2 and AVX2 level passes reproduce `SpanLod::level` bit for bit.
        #[test]
        fn simd_levels_match_scalar(s in span(), d in step(), lp in lod_planes(), k0 in 0u32..300, last in 0.0f32..300.0) {
            let lod = SpanLod::new(&s, &d, &lp, 8.0, last);
            let k0 = k0 as f32;
            let want: Vec<i32> = (0..8).map(|g| lod.level(k0 + (g * GROUP) as f32 + 1.5)).collect();
            let mut got = [0i32; 8];
            levels8::<SCALAR>(&lod, k0, &mut got);
            prop_assert_eq!(&got[..], &want[..]);
            #[cfg(target_arch = "x86_64")]
            {
                let mut got = [0i32; 8];
                levels8::<SSE41>(&lod, k0, &mut got);
                prop_assert_eq!(&got[..], &want[..]);
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                let mut got = [0i32; 8];
                // SAFETY: the CPU has AVX2.
                unsafe { levels8_avx2(&lod, k0, &mut got) };
                prop_assert_eq!(&got[..], &want[..]);
            }
        }

        /// The division-free form is the peer's LOD: within one level of log2 of the larger
        /// texel-footprint axis computed directly (1/w per pixel, exact log2).
        #[test]
        fn span_lod_is_the_footprint(s in span(), lp in lod_planes(), k in 0.0f32..200.0) {
            // Along a span the per-pixel steps are the planes' x gradients.
            let d = Span { z: lp.pq.0, q: lp.pq.0, uq: lp.pu.0, vq: lp.pv.0, cq: [0.0; 3] };
            prop_assume!(s.q + d.q * k > 0.01);
            let lod = SpanLod::new(&s, &d, &lp, 8.0, 1000.0);
            let r = 1.0 / (s.q + d.q * k);
            let (uu, vv) = ((s.uq + d.uq * k) * r, (s.vq + d.vq * k) * r);
            let fx = [(lp.pu.0 - uu * lp.pq.0) * r * lp.tw, (lp.pv.0 - vv * lp.pq.0) * r * lp.th];
            let fy = [(lp.pu.1 - uu * lp.pq.1) * r * lp.tw, (lp.pv.1 - vv * lp.pq.1) * r * lp.th];
            let rho = (fx[0] * fx[0] + fx[1] * fx[1]).max(fy[0] * fy[0] + fy[1] * fy[1]).sqrt();
            let want = (rho.log2() + 0.5).clamp(0.0, 8.0).floor() as i32;
            prop_assume!(rho.is_finite() && rho > 0.0);
            prop_assert!((lod.level(k) - want).abs() <= 1, "{} vs {} (rho {})", lod.level(k), want, rho);
        }

        /// The SSE4.1, AVX2 and AVX-512 chunks (addressing, depth test, fixed-point blend, light) equal the
        /// scalar one bit for bit.
        #[test]
        fn simd_chunk_matches_scalar(s in span(), d in step(), k0 in 0.0f32..200.0, (lv, lanes, lit, dp, cp) in chunk_inputs(), persp in prop::bool::ANY) {
            // In perspective the depth key is 1/w.
            let (s, d) = if persp { (Span { z: s.q, ..s }, Span { z: d.q, ..d }) } else { (s, d) };
            let levels = levels_of(texture::get(TexName::BrickWall, 0), lv);
            let lit = lit.map(Lit::of);
            let (mut db, mut cb) = (dp, cp);
            shade_chunk_scalar(&levels, lanes, &s, &d, k0, lit, 0.01, &mut db, &mut cb);
            // Lanes past `lanes` and lanes that failed the depth test are untouched.
            for k in 0..CHUNK {
                if k >= lanes || db[k] == dp[k] {
                    prop_assert_eq!(cb[k], cp[k]);
                }
            }
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("sse4.1") && std::is_x86_feature_detected!("ssse3") {
                    let (mut da, mut ca) = (dp, cp);
                    shade_chunk::<SSE41>(&levels, lanes, &s, &d, k0, lit, 0.01, persp, &mut da, &mut ca);
                    prop_assert_eq!(da.map(f32::to_bits), db.map(f32::to_bits));
                    prop_assert_eq!(ca, cb);
                }
                if std::is_x86_feature_detected!("avx2") {
                    let (mut da, mut ca) = (dp, cp);
                    shade_chunk::<AVX2>(&levels, lanes, &s, &d, k0, lit, 0.01, persp, &mut da, &mut ca);
                    prop_assert_eq!(da.map(f32::to_bits), db.map(f32::to_bits));
                    prop_assert_eq!(ca, cb);
                }
                if Isa::avx512_detected() {
                    let (mut da, mut ca) = (dp, cp);
                    shade_chunk::<AVX512>(&levels, lanes, &s, &d, k0, lit, 0.01, persp, &mut da, &mut ca);
                    prop_assert_eq!(da.map(f32::to_bits), db.map(f32::to_bits));
                    prop_assert_eq!(ca, cb);
                }
            }
        }

        /// The fixed-point blend is the bilinear filter: each channel within 6 levels of the
        /// float definition (`Level::bilinear` of the unquantised texels, times the light).
        #[test]
        fn chunk_blend_is_bilinear(s in span(), d in step(), lv in 0usize..9, lit in prop::array::uniform3(0.0f32..1.0)) {
            let tex = texture::get(TexName::ConcreteTiles, 0);
            let level = &tex.levels[lv.min(tex.levels.len() - 1)];
            let (mut dp, mut cp) = ([f32::NEG_INFINITY; CHUNK], [0u32; CHUNK]);
            shade_chunk::<SCALAR>(&[level; GROUPS], CHUNK, &s, &d, 0.0, Some(Lit::of(lit)), 0.01, false, &mut dp, &mut cp);
            for (k, px) in cp.iter().enumerate() {
                let kf = k as f32;
                if s.q + d.q * kf < 0.01 {
                    continue;
                }
                let r = 1.0 / (s.q + d.q * kf);
                let want = level.bilinear((s.uq + d.uq * kf) * r, (s.vq + d.vq * kf) * r);
                for c in 0..3 {
                    let got = ((px >> (8 * c)) & 0xff) as f32;
                    let exp = want[c] * lit[c] * 255.0;
                    prop_assert!((got - exp).abs() <= 6.0, "pixel {} channel {}: {} vs {}", k, c, got, exp);
                }
            }
        }
    }

    /// Whole frames drawn by the AVX-512, AVX2 and SSE4.1 paths equal the scalar path's, byte for byte,
    /// for the four VL-DAC envs at both sizes, through a walk that turns and moves.
    #[test]
    fn simd_and_scalar_frames_are_identical() {
        use crate::{MiniWorld, MiniWorldConfig};
        use vldac_core::{Action, Environment};
        #[allow(unused_mut)]
        let mut isas = vec![];
        #[cfg(target_arch = "x86_64")]
        {
            if Isa::avx512_detected() {
                isas.push(Isa::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") {
                isas.push(Isa::Avx2);
            }
            if std::is_x86_feature_detected!("sse4.1") && std::is_x86_feature_detected!("ssse3") {
                isas.push(Isa::Sse41);
            }
        }
        for id in ["MiniWorld-OneRoom-v0", "MiniWorld-Hallway-v0", "MiniWorld-FourRooms-v0", "MiniWorld-WallGap-v0"] {
            for (w, h) in [(80, 60), (224, 224)] {
                let cfg = MiniWorldConfig { obs_width: w, obs_height: h, ..MiniWorldConfig::default() };
                let mut env = MiniWorld::with_config(id, cfg).expect("env");
                env.reset(Some(3)).expect("reset");
                for k in 0..12 {
                    env.renderer_mut().isa = Some(Isa::Scalar);
                    let want = env.render_obs();
                    for &isa in &isas {
                        env.renderer_mut().isa = Some(isa);
                        let got = env.render_obs();
                        assert!(
                            got.pixels() == want.pixels(),
                            "{id} {w}x{h} step {k}: {isa:?} and scalar frames differ"
                        );
                    }
                    env.renderer_mut().isa = None;
                    if env.step(&Action::Discrete([0, 2, 2, 1][k % 4])).expect("step").done() {
                        env.reset(None).expect("reset");
                    }
                }
            }
        }
    }
}
