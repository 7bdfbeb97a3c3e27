//! Frozen bf16 weights packed once for the `vdpbf16ps` kernel.
//!
//! A product with many rows packs its weight into the kernel's panels as it goes: ~5% of the
//! 2b:4 bf16 vision tower's time, paid again for every image. A weight passed to [`keep`] (the
//! vision tower's, which nothing trains) is packed at its first such product instead, and the
//! panels are kept for as long as the weight lives: +1 copy of the vision weights in memory
//! (0.16 GB at 2b:4, 1.3 GB at 2B).
//!
//! The panels are mapped on their own (anonymous pages), not taken from the C heap: blocks that
//! live on, allocated in the middle of a forward pass's activations, kept glibc from reusing the
//! space around them (the 2b:4 bf16 bench's peak RSS rose 0.41 GB for 0.16 GB of panels).
//!
//! An entry names the weight by its flex storage (a `Weak`, so the address cannot be reused by
//! another tensor while the entry exists) and its view (offset, shape, layout). A `Weak` also
//! makes flex copy the bytes before writing them in place (`Arc::make_mut`), so a changed weight
//! never meets stale panels: its old entry just stops matching and is dropped.

use super::{WeightLayout, dpbf16};
use burn::backend::flex::FlexTensor;
use burn::tensor::{Bytes, bf16};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// (offset, k, n, layout) of the view inside the storage.
type View = (usize, usize, usize, WeightLayout);

struct Entry {
    storage: Weak<Bytes>,
    view: View,
    panels: OnceLock<Arc<Panels>>,
}

/// Packed words in an anonymous mapping of their own, read-only once written.
pub(super) struct Panels {
    map: memmap2::Mmap,
    words: usize,
}

impl Panels {
    fn pack(w: &[bf16], view: View) -> Self {
        let (_, k, n, layout) = view;
        let words = dpbf16::packed_len(k, n);
        let Ok(mut map) = memmap2::MmapMut::map_anon((4 * words).max(1)) else {
            panic!("mapping {} bytes for a {k} x {n} weight's packed panels", 4 * words);
        };
        // SAFETY: the mapping is page-aligned and holds `words` u32s (all bit patterns valid).
        let buf = unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<u32>(), words) };
        dpbf16::pack_all(w, k, n, layout, buf);
        let Ok(map) = map.make_read_only() else { panic!("protecting a {k} x {n} weight's packed panels") };
        Panels { map, words }
    }

    pub(super) fn words(&self) -> &[u32] {
        // SAFETY: as in `pack`: aligned, `words` u32s, and now never written.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<u32>(), self.words) }
    }
}

static KEPT: Mutex<Vec<Arc<Entry>>> = Mutex::new(Vec::new());

fn kept() -> std::sync::MutexGuard<'static, Vec<Arc<Entry>>> {
    // A panic while the lock was held cannot leave the list inconsistent (pushes and retains).
    let mut list = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|e| e.storage.strong_count() > 0);
    list
}

/// Registers the `[k, n]` bf16 weight `w` (its view `view`) for panels packed once.
pub(super) fn keep(w: &FlexTensor, view: View) {
    let storage = w.data_arc();
    let mut list = kept();
    if !list.iter().any(|e| Weak::as_ptr(&e.storage) == Arc::as_ptr(&storage) && e.view == view) {
        list.push(Arc::new(Entry { storage: Arc::downgrade(&storage), view, panels: OnceLock::new() }));
    }
}

/// The panels of a kept weight (packed now if this is its first product), `None` for others.
pub(super) fn panels(w: &FlexTensor, view: View) -> Option<Arc<Panels>> {
    let storage = w.data_arc();
    let entry = kept().iter().find(|e| Weak::as_ptr(&e.storage) == Arc::as_ptr(&storage) && e.view == view).cloned()?;
    let (off, k, n, _) = view;
    Some(entry.panels.get_or_init(|| Arc::new(Panels::pack(&w.storage::<bf16>()[off..off + k * n], view))).clone())
}

/// How many weights are kept and how many of them have been packed.
pub(super) fn counts() -> (usize, usize) {
    let list = kept();
    (list.len(), list.iter().filter(|e| e.panels.get().is_some()).count())
}
