//! `host_alloc::keep_freed_memory`: a freed block of tensor size is reused, not faulted in again.
//! Its own test binary, since the setting is process-wide.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_blocks_are_reused_without_page_faults() {
    fn minor_faults() -> i64 {
        // SAFETY: getrusage fills the struct it is given.
        unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut u), 0);
            u.ru_minflt
        }
    }
    /// Allocates, touches and frees a block `n` times; the page faults of all but the first.
    fn faults_after_first(bytes: usize, n: usize) -> i64 {
        let mut first = 0;
        let start = minor_faults();
        for i in 0..n {
            let v = std::hint::black_box(vec![1u8; bytes]);
            drop(v);
            if i == 0 {
                first = minor_faults();
            }
        }
        assert!(first > start, "the first block was faulted in");
        minor_faults() - first
    }
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some() {
        eprintln!("skipped: MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ is set, so the tuning is off");
        return;
    }
    assert!(vldac_vlm::host_alloc::keep_freed_memory(), "glibc refused the settings");
    // 40 MB: above glibc's largest automatic mmap threshold (32 MiB), so without the tuning every
    // one of these blocks is mmapped and faulted in afresh (~10k faults each).
    let pages = (40usize << 20) / 4096;
    let later = faults_after_first(40 << 20, 8);
    assert!(later < (pages / 10) as i64, "7 reused 40 MB blocks cost {later} page faults ({pages} a block)");
}
