//! `classifier::pages::trim_heap` hands freed heap memory back to the system. Alone in its
//! own test binary, so that no other test's allocations move this process's resident set.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

#[path = "support/proc_status.rs"]
mod proc_status;

fn anonymous_mb() -> f64 {
    proc_status::status_mb("self", "RssAnon")
}

#[test]
fn freed_heap_memory_leaves_the_resident_set_once_trimmed() {
    // 64 MB in chunks under glibc's mmap threshold, so they come from the heap, written so
    // that they are resident; then one more allocation above them, which keeps glibc from
    // giving the freed space back on its own when the chunks are freed.
    let chunks: Vec<Vec<u8>> = (0..1024).map(|i| vec![i as u8 | 1; 64 * 1024]).collect();
    let fence = vec![1u8; 1024];
    let with_chunks = anonymous_mb();
    drop(chunks);
    let freed = anonymous_mb();
    assert!(
        with_chunks - freed < 16.0,
        "glibc returned the chunks by itself ({with_chunks:.0} -> {freed:.0} MB): the test \
         measures nothing"
    );
    tagbeez::classifier::pages::trim_heap();
    let trimmed = anonymous_mb();
    assert!(
        freed - trimmed > 48.0,
        "trim_heap returned {:.0} of 64 MB freed ({freed:.0} -> {trimmed:.0} MB)",
        freed - trimmed
    );
    assert_eq!(fence.iter().map(|&b| b as usize).sum::<usize>(), 1024);
}
