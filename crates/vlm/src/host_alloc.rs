//! The process's C allocator, tuned for burn's CPU tensors.
//!
//! Every flex op returns a fresh tensor, and at the real Qwen2-VL width most are megabytes
//! (a 334 x 8,960 f32 activation is 12 MB, the prompt's logits 200 MB). glibc hands blocks over its
//! mmap threshold (at most 32 MiB, adjusted at run time) straight back to the kernel when freed,
//! and trims the heap's top, so the next op of the same size page-faults its memory in again: at
//! 2b:4 in bf16 that was 2 million faults and 4.5 s of system time in a bench run of prefill and
//! the LoRA step. [`keep_freed_memory`] keeps freed blocks for reuse instead, as a caching
//! allocator does: 0.43 million faults and 1.2-1.5 s in that run. Memory freed inside the heap
//! stays with the process: its peak RSS is the high-water mark plus fragmentation (trimming the
//! heap's top past 256 MiB free kept the f32 bench's peak lower but cost the bf16 LoRA step
//! 10-25% in back-to-back runs).

/// Keeps freed memory in the process for reuse: no mmap for blocks under 1 GiB, no trimming of
/// the heap's top. Call once, early (the `vldac` binary does, in `main`); it is process-wide. Returns
/// whether the allocator took the settings: false on non-glibc targets, or when the user set
/// `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_` (their choice is kept).
pub fn keep_freed_memory() -> bool {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some() {
        return false;
    }
    glibc::tune()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    pub fn tune() -> bool {
        // SAFETY: mallopt only sets allocator parameters; any value is accepted or refused
        // (returns 0), and it is thread-safe in glibc.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    pub fn tune() -> bool {
        false
    }
}
