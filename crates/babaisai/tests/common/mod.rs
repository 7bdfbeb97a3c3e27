//! Encodings shared by the parity tests: they must equal what `fixtures/gen_fixtures.py` writes.

use vldac_babaisai::engine::{Grid, Tile};

/// FNV-1a 64, first 12 hex digits (as the fixture script writes it).
pub fn fnv1a(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")[..12].to_string()
}

fn tile_code(t: &Tile) -> String {
    match t {
        Tile::Border => "#".to_string(),
        Tile::Word(w) => format!("w:{}", w.text()),
        Tile::Thing(th) => format!("t:{}:{}:{}", th.noun.name(), th.color.name(), th.dir),
    }
}

/// Every cell's stack, row by row: `tile,tile|tile|...`.
pub fn grid_code(g: &Grid) -> String {
    let mut cells = Vec::with_capacity(g.width * g.height);
    for y in 0..g.height as i32 {
        for x in 0..g.width as i32 {
            cells.push(g.stack(x, y).iter().map(tile_code).collect::<Vec<_>>().join(","));
        }
    }
    cells.join("|")
}
