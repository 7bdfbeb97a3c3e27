//! Procedural textures standing in for the peer's PNGs (no third-party assets): each one has the
//! peer texture's repeat period in metres and its mean colour and structure (checker, bricks,
//! slabs, noise), with a box-filtered mip pyramid.

use std::sync::OnceLock;

/// Texture names used by the environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TexName {
    Concrete,
    FloorTilesBw,
    ConcreteTiles,
    BrickWall,
    Asphalt,
    CinderBlocks,
    Slime,
    LogoMila,
    Building,
}

impl TexName {
    const ALL: [TexName; 9] = [
        TexName::Concrete,
        TexName::FloorTilesBw,
        TexName::ConcreteTiles,
        TexName::BrickWall,
        TexName::Asphalt,
        TexName::CinderBlocks,
        TexName::Slime,
        TexName::LogoMila,
        TexName::Building,
    ];

    /// Number of variants the peer ships (`<name>_1..N.png`), drawn with domain randomisation.
    pub fn variants(self) -> u64 {
        if self == TexName::Concrete { 4 } else { 1 }
    }

    /// The peer's repeat period in metres (image size / 512 texels per metre), (u, v).
    pub fn period_m(self) -> (f64, f64) {
        match self {
            TexName::ConcreteTiles => (1.5, 1.5),
            TexName::BrickWall | TexName::CinderBlocks => (2.0, 2.0),
            TexName::LogoMila => (2.0, 510.0 / 512.0),
            _ => (1.0, 1.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TexName::Concrete => "concrete",
            TexName::FloorTilesBw => "floor_tiles_bw",
            TexName::ConcreteTiles => "concrete_tiles",
            TexName::BrickWall => "brick_wall",
            TexName::Asphalt => "asphalt",
            TexName::CinderBlocks => "cinder_blocks",
            TexName::Slime => "slime",
            TexName::LogoMila => "logo_mila",
            TexName::Building => "building",
        }
    }
}

/// Fractional bits of the renderer's texel coordinates (and of its bilinear weights: 6 bits, so
/// that a weight, at most 64, fits the signed byte `pmaddubsw` multiplies by).
pub const FRACTION_BITS: u32 = 6;

/// One mip level: `w × h` RGB texels in [0, 1], row 0 at the bottom (t = 0), as GL loads them.
#[derive(Debug, Clone)]
pub struct Level {
    pub w: usize,
    pub h: usize,
    /// log2(w).
    pub shift: u32,
    /// The texels as RGBA8 for the renderer, laid out so that one 16-byte load fetches a texel's
    /// whole 2x2 bilinear footprint, its bytes already paired for `pmaddubsw`: entry (x, y) holds
    /// texel (x, y) and the texel below it (row y + 1, wrapped) interleaved byte by byte
    /// (r, r', g, g', b, b', a, a'); rows have `w + 1` entries, the last a copy of the first, so
    /// the right neighbour (wrapped) is the next entry. Entry (x, y) is at `(y << shift) + y + x`.
    pub pairs: Vec<u64>,
    /// The same footprints for the AVX-512 kernel, one 16-byte entry per texel (x, y), at
    /// `(y << shift) + x`: per channel the bytes (top-left, top-right, bottom-left, bottom-right)
    /// of texels (x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1) (wrapped), then four zero bytes.
    /// `pmaddubsw` then blends each row horizontally and leaves the two rows' sums paired per
    /// channel for `pmaddwd` (no byte shuffle in between).
    pub quads: Vec<Quad>,
    pub texels: Vec<[f32; 4]>,
    /// The renderer's per-level constants, four lanes each.
    pub lanes: LevelLanes,
}

/// A texel's 2x2 footprint as [`Level::quads`] lays it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C, align(16))]
pub struct Quad(pub [u8; 16]);

/// A level's constants for the renderer's SIMD kernels, each repeated in four lanes (one 16-byte
/// load per group of four pixels).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
pub struct LevelLanes {
    /// w and h in texel-coordinate fixed point (times 2^[`FRACTION_BITS`]).
    pub wf: [f32; 4],
    pub hf: [f32; 4],
    /// w - 1 and h - 1: the wrap masks.
    pub w_mask: [i32; 4],
    pub h_mask: [i32; 4],
    /// log2(w).
    pub shift: [i32; 4],
}

impl Level {
    fn new(w: usize, h: usize, texels: Vec<[f32; 4]>) -> Self {
        let b = |x: f32| (x * 255.0 + 0.5) as u8 as u64;
        let shift = w.trailing_zeros();
        let mut pairs = Vec::with_capacity(h * (w + 1));
        for y in 0..h {
            let (row, below) = (&texels[y * w..][..w], &texels[(y + 1) % h * w..][..w]);
            for x in 0..=w {
                let (t, u) = (row[x % w], below[x % w]);
                pairs.push((0..3).fold(0, |e, c| e | b(t[c]) << (16 * c) | b(u[c]) << (16 * c + 8)));
            }
        }
        let t8 = |x: usize, y: usize| {
            let t = texels[(y % h) * w + x % w];
            [0, 1, 2].map(|c| (t[c] * 255.0 + 0.5) as u8)
        };
        let mut quads = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (tl, tr, bl, br) = (t8(x, y), t8(x + 1, y), t8(x, y + 1), t8(x + 1, y + 1));
                let mut q = [0u8; 16];
                for c in 0..3 {
                    q[4 * c..4 * c + 4].copy_from_slice(&[tl[c], tr[c], bl[c], br[c]]);
                }
                quads.push(Quad(q));
            }
        }
        let lanes = LevelLanes {
            wf: [(w << FRACTION_BITS) as f32; 4],
            hf: [(h << FRACTION_BITS) as f32; 4],
            w_mask: [w as i32 - 1; 4],
            h_mask: [h as i32 - 1; 4],
            shift: [shift as i32; 4],
        };
        Level { w, h, shift, pairs, quads, texels, lanes }
    }

    /// Bilinear sample at (u, v) in repeats, wrapping (sizes are powers of two).
    #[inline(always)]
    pub fn bilinear(&self, u: f32, v: f32) -> [f32; 3] {
        let x = u * self.w as f32 - 0.5;
        let y = v * self.h as f32 - 0.5;
        let (xf, yf) = (fast_floor(x), fast_floor(y));
        let (fx, fy) = (x - xf, y - yf);
        let (mw, mh) = (self.w - 1, self.h - 1);
        let x0 = (xf as i64 as usize) & mw;
        let y0 = (yf as i64 as usize) & mh;
        let x1 = (x0 + 1) & mw;
        let y1 = (y0 + 1) & mh;
        let t = &self.texels;
        let (a, b, c, d) = (t[y0 * self.w + x0], t[y0 * self.w + x1], t[y1 * self.w + x0], t[y1 * self.w + x1]);
        let mut out = [0.0; 4];
        for k in 0..4 {
            let top = a[k] + (b[k] - a[k]) * fx;
            let bot = c[k] + (d[k] - c[k]) * fx;
            out[k] = top + (bot - top) * fy;
        }
        [out[0], out[1], out[2]]
    }

    /// Nearest-texel sample.
    #[inline(always)]
    pub fn nearest(&self, u: f32, v: f32) -> [f32; 3] {
        let x = (fast_floor(u * self.w as f32) as i64 as usize) & (self.w - 1);
        let y = (fast_floor(v * self.h as f32) as i64 as usize) & (self.h - 1);
        let t = self.texels[y * self.w + x];
        [t[0], t[1], t[2]]
    }
}

/// A texture with its mip pyramid (level 0 is the full resolution).
#[derive(Debug, Clone)]
pub struct Texture {
    pub levels: Vec<Level>,
}

impl Texture {
    fn from_fn(w: usize, h: usize, f: impl Fn(usize, usize) -> [f32; 3]) -> Self {
        let mut texels = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let c = f(x, y);
                texels.push([c[0].clamp(0.0, 1.0), c[1].clamp(0.0, 1.0), c[2].clamp(0.0, 1.0), 0.0]);
            }
        }
        assert!(w.is_power_of_two() && h.is_power_of_two(), "texture sizes are powers of two");
        let mut levels = vec![Level::new(w, h, texels)];
        loop {
            let l = levels.last().expect("level 0 exists");
            if l.w == 1 && l.h == 1 {
                break;
            }
            let (nw, nh) = ((l.w / 2).max(1), (l.h / 2).max(1));
            let mut t = Vec::with_capacity(nw * nh);
            for y in 0..nh {
                for x in 0..nw {
                    let mut acc = [0.0f32; 4];
                    let mut n = 0.0;
                    for dy in 0..(l.h / nh) {
                        for dx in 0..(l.w / nw) {
                            let c = l.texels[(y * (l.h / nh) + dy) * l.w + x * (l.w / nw) + dx];
                            for k in 0..3 {
                                acc[k] += c[k];
                            }
                            n += 1.0;
                        }
                    }
                    t.push([acc[0] / n, acc[1] / n, acc[2] / n, 0.0]);
                }
            }
            levels.push(Level::new(nw, nh, t));
        }
        Texture { levels }
    }

    /// The mip level for a LOD (nearest level, `lod + 0.5` truncated).
    #[inline(always)]
    pub fn level_index(&self, lod: f32) -> usize {
        let li = if lod > -0.5 { (lod + 0.5) as usize } else { 0 };
        li.min(self.levels.len() - 1)
    }

    /// Mean colour (the 1x1 mip).
    pub fn mean(&self) -> [f32; 3] {
        self.levels.last().map_or([0.0; 3], |l| [l.texels[0][0], l.texels[0][1], l.texels[0][2]])
    }

    /// Bilinear sample of mip `lod` (nearest level) at (u, v) in repeats, wrapping. Level sizes
    /// are powers of two, so wrapping is a mask.
    #[inline(always)]
    pub fn sample(&self, u: f32, v: f32, lod: f32) -> [f32; 3] {
        self.levels[self.level_index(lod)].bilinear(u, v)
    }

    /// Nearest-texel sample of mip `lod` (nearest level): `GL_NEAREST_MIPMAP_NEAREST`. At
    /// 80x60 every surface is minified, so this is close to trilinear at a quarter of the cost.
    #[inline(always)]
    pub fn sample_nearest(&self, u: f32, v: f32, lod: f32) -> [f32; 3] {
        let li = if lod > -1.0 { (lod + 1.0) as usize } else { 0 };
        let l = &self.levels[li.min(self.levels.len() - 1)];
        let x = (fast_floor(u * l.w as f32) as i64 as usize) & (l.w - 1);
        let y = (fast_floor(v * l.h as f32) as i64 as usize) & (l.h - 1);
        let t = l.texels[y * l.w + x];
        [t[0], t[1], t[2]]
    }

    /// Texels per repeat at level 0 along u (for the LOD computation).
    pub fn size0(&self) -> (f32, f32) {
        (self.levels[0].w as f32, self.levels[0].h as f32)
    }
}

/// `floor` without a libm call (the default x86-64 target has no SSE4.1 `roundps`).
#[inline]
pub fn fast_floor(x: f32) -> f32 {
    let t = x as i64 as f32;
    if t > x { t - 1.0 } else { t }
}

/// A 2-D integer hash in [-1, 1].
fn hash(x: i64, y: i64, seed: u64) -> f32 {
    let mut z = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed.wrapping_mul(0x1656_67B1_9E37_79F9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Smooth value noise with a lattice every `cx × cy` texels, tiling with period `w × h`.
fn value_noise(x: usize, y: usize, cx: usize, cy: usize, w: usize, h: usize, seed: u64) -> f32 {
    let (gw, gh) = ((w / cx).max(1) as i64, (h / cy).max(1) as i64);
    let (fx, fy) = (x as f32 / cx as f32, y as f32 / cy as f32);
    let (ix, iy) = (fx.floor() as i64, fy.floor() as i64);
    let (tx, ty) = (fx - ix as f32, fy - iy as f32);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let g = |a: i64, b: i64| hash(a.rem_euclid(gw), b.rem_euclid(gh), seed);
    let top = g(ix, iy) + (g(ix + 1, iy) - g(ix, iy)) * sx;
    let bot = g(ix, iy + 1) + (g(ix + 1, iy + 1) - g(ix, iy + 1)) * sx;
    top + (bot - top) * sy
}

fn rgb(r: f32, g: f32, b: f32) -> [f32; 3] {
    [r / 255.0, g / 255.0, b / 255.0]
}

fn shade(c: [f32; 3], d: f32) -> [f32; 3] {
    [c[0] + d / 255.0, c[1] + d / 255.0, c[2] + d / 255.0]
}

fn generate(name: TexName, variant: u64) -> Texture {
    let seed = name as u64 * 31 + variant;
    match name {
        TexName::FloorTilesBw => Texture::from_fn(128, 128, |x, y| {
            let light = (x / 32 + y / 32) % 2 == 0;
            let n = 6.0 * value_noise(x, y, 8, 8, 128, 128, seed) + 3.0 * hash(x as i64, y as i64, seed);
            if light { shade(rgb(222.0, 219.0, 214.0), n) } else { shade(rgb(51.0, 51.0, 49.0), n) }
        }),
        TexName::Concrete => {
            let tint = [0.0, 3.0, -4.0, 6.0][variant as usize % 4];
            Texture::from_fn(128, 128, move |x, y| {
                let streak = 6.0 * value_noise(x, y, 64, 4, 128, 128, seed);
                let grain = 3.0 * hash(x as i64, y as i64, seed);
                shade(rgb(153.0 + tint, 152.0 + tint, 148.0 + tint), streak + grain)
            })
        }
        TexName::ConcreteTiles => Texture::from_fn(256, 256, |x, y| {
            let grout = x % 85 < 2 || y % 85 < 2;
            let slab = hash((x / 85) as i64, (y / 85) as i64, seed) * 6.0;
            let n = 5.0 * value_noise(x, y, 16, 16, 256, 256, seed) + 3.0 * hash(x as i64, y as i64, seed);
            let base = if grout { 121.0 } else { 162.5 + slab };
            shade(rgb(base, base, base), n)
        }),
        TexName::BrickWall => Texture::from_fn(256, 256, |x, y| {
            // 24 courses per 2 m; bricks 0.25 m (32 texels) long in running bond.
            let course_h = 256.0 / 24.0;
            let fy = y as f32 / course_h;
            let row = fy.floor() as i64;
            let in_row = (fy - fy.floor()) * course_h;
            let offset = if row % 2 == 0 { 0 } else { 16 };
            let bx = (x + offset) % 32;
            let mortar = in_row < 1.6 || bx < 2;
            let brick_id = ((x + offset) / 32) as i64;
            let j = 10.0 * hash(brick_id, row, seed);
            let n = 4.0 * hash(x as i64, y as i64, seed);
            if mortar {
                shade(rgb(148.0, 140.0, 127.0), n)
            } else {
                shade(rgb(117.0 + j, 84.0 + j * 0.7, 71.0 + j * 0.6), n)
            }
        }),
        TexName::Asphalt => Texture::from_fn(128, 128, |x, y| {
            let n = 26.0 * hash(x as i64, y as i64, seed) * 1.7;
            shade(rgb(108.0, 110.0, 111.0), n)
        }),
        TexName::CinderBlocks => Texture::from_fn(256, 256, |x, y| {
            // blocks 0.5 m x 0.25 m (64 x 32 texels at 128 texels per metre), running bond.
            let row = y / 32;
            let offset = if row % 2 == 0 { 0 } else { 32 };
            let joint = y % 32 < 2 || (x + offset) % 64 < 2;
            let n = 6.0 * value_noise(x, y, 8, 8, 256, 256, seed) + 4.0 * hash(x as i64, y as i64, seed);
            if joint { shade(rgb(80.0, 79.0, 75.0), n) } else { shade(rgb(118.0, 117.0, 111.0), n) }
        }),
        TexName::Slime => Texture::from_fn(128, 128, |x, y| {
            let blob = value_noise(x, y, 16, 16, 128, 128, seed);
            let d = if blob > 0.3 { -40.0 } else { 8.0 };
            let n = 5.0 * hash(x as i64, y as i64, seed);
            [(126.0 + d * 0.6 + n) / 255.0, (172.0 + d + n) / 255.0, (11.0 + n * 0.3) / 255.0]
        }),
        TexName::LogoMila => Texture::from_fn(256, 128, |x, y| {
            // A dark wordmark-like band on a light card.
            let inside = (20..236).contains(&x) && (40..88).contains(&y) && (x / 12) % 3 != 2;
            if inside { rgb(30.0, 30.0, 35.0) } else { rgb(235.0, 235.0, 235.0) }
        }),
        TexName::Building => Texture::from_fn(256, 256, |x, y| {
            // Light facade with rows of dark windows.
            let win = (y % 32) >= 10 && (y % 32) < 24 && (x % 32) >= 8 && (x % 32) < 24;
            let n = 3.0 * hash(x as i64, y as i64, seed);
            if win { shade(rgb(70.0, 80.0, 90.0), n) } else { shade(rgb(188.0, 189.0, 188.0), n) }
        }),
    }
}

/// The shared texture of a name and variant (generated once per process).
pub fn get(name: TexName, variant: u8) -> &'static Texture {
    static CACHE: OnceLock<Vec<Vec<Texture>>> = OnceLock::new();
    let all = CACHE
        .get_or_init(|| TexName::ALL.iter().map(|&n| (0..n.variants()).map(|v| generate(n, v)).collect()).collect());
    let per = &all[TexName::ALL.iter().position(|&n| n == name).unwrap_or(0)];
    &per[(variant as usize).min(per.len() - 1)]
}

/// A glyph texture (white card, black letter) for the Sign env's text, from a 5x7 bitmap font of
/// the letters it needs.
pub fn glyph(ch: char) -> &'static Texture {
    static CACHE: OnceLock<Vec<(char, Texture)>> = OnceLock::new();
    let all = CACHE.get_or_init(|| {
        GLYPHS
            .iter()
            .map(|(c, rows)| {
                let t = Texture::from_fn(64, 64, |x, y| {
                    // 5x7 cells of 8 texels, centred; row 0 of the bitmap is the top.
                    let (gx, gy) = (x as i64 - 12, 63 - y as i64 - 4);
                    let on = (0..40).contains(&gx)
                        && (0..56).contains(&gy)
                        && rows[(gy / 8) as usize] >> (4 - gx / 8) & 1 == 1;
                    if on { [0.0; 3] } else { [1.0; 3] }
                });
                (*c, t)
            })
            .collect()
    });
    all.iter().find(|(c, _)| *c == ch.to_ascii_uppercase()).map_or(&all[0].1, |(_, t)| t)
}

const GLYPHS: [(char, [u8; 7]); 8] = [
    ('B', [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110]),
    ('D', [0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110]),
    ('E', [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111]),
    ('G', [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111]),
    ('L', [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111]),
    ('N', [0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0b10001]),
    ('R', [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001]),
    ('U', [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110]),
];
