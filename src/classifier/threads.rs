//! Intra-op threads: one inference's matrix products spread over `n` cores (tract-linalg's
//! `multithread-mm`). Lambda gives a function two or more vCPUs from 1,769 MB of memory; below
//! that, or with one request per core already, one thread is best.

use tract_linalg::multithread::{set_default_executor, Executor};

/// Use `n` threads for every inference from now on (1: the calling thread only).
pub fn set(n: usize) {
    let executor = if n > 1 {
        Executor::multithread(n)
    } else {
        Executor::SingleThread
    };
    set_default_executor(executor);
}
