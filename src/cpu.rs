//! CPU hints: software prefetches for the read and write paths' dependent memory loads.
//!
//! A point lookup is a chain of cache misses (filter, index, cache slot, block), each known
//! only once the previous one is loaded; where several addresses are known at once (the
//! entries a block's binary search may probe), prefetching them together overlaps their
//! misses. A prefetch never faults and never changes what the program computes, so any address
//! is allowed; on other architectures these are no-ops.

/// Ask the CPU to bring the cache line holding `p` into the cache, without waiting for it.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing the program sees and cannot fault,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
