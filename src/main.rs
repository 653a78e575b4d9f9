//! The `brace` binary: all behaviour lives in the library; see `brace --help`.

/// mimalloc rather than glibc's malloc: allocation and free were about 12% of a request's CPU
/// under load with glibc (the commit that made this change has the figures). Built without it:
/// `cargo build --release --no-default-features`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: allocator::Mimalloc = allocator::Mimalloc;

/// The `mimalloc` crate's `MiMalloc` passes every allocation to `mi_malloc_aligned`. In
/// mimalloc 3, that call takes a slow path for any block over 1 KiB whose size is not a power
/// of two (it over-allocates and aligns by hand), even for an alignment of 8 that every
/// mimalloc block already has: 15 of a proxied request's ~60 allocations went that way,
/// about 2k instructions. Alignments up to 16 go to `mi_malloc` with the size rounded up to a
/// multiple of the alignment: every mimalloc block is 8-aligned, and a block whose size is a
/// multiple of 16 is 16-aligned (size classes over 64 bytes are all multiples of 16; this is
/// mimalloc 2's own shortcut, `MI_MAX_ALIGN_SIZE`). Larger alignments still go to
/// `mi_malloc_aligned`. The test below checks the alignment of every size up to 64 KiB.
#[cfg(feature = "mimalloc")]
mod allocator {
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::c_void;

    extern "C" {
        /// From the mimalloc library the `mimalloc` crate links (mimalloc.h).
        fn mi_malloc(size: usize) -> *mut c_void;
        fn mi_zalloc(size: usize) -> *mut c_void;
        fn mi_realloc(p: *mut c_void, newsize: usize) -> *mut c_void;
        fn mi_free(p: *mut c_void);
    }

    /// `MI_MAX_ALIGN_SIZE` in mimalloc's types.h.
    const GUARANTEED: usize = 16;

    pub struct Mimalloc;

    /// `size` rounded up to a multiple of `align` (a power of two of at most 16).
    #[inline]
    fn rounded(size: usize, align: usize) -> usize {
        (size + align - 1) & !(align - 1)
    }

    // SAFETY: each method keeps GlobalAlloc's contract: for an alignment of at most 16 the
    // block from `mi_malloc` has a size that is a multiple of it, which mimalloc aligns to it
    // (see above and the test); other layouts go to the aligned calls of `MiMalloc`.
    unsafe impl GlobalAlloc for Mimalloc {
        #[inline]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.align() <= GUARANTEED {
                mi_malloc(rounded(layout.size(), layout.align())).cast()
            } else {
                mimalloc::MiMalloc.alloc(layout)
            }
        }

        #[inline]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if layout.align() <= GUARANTEED {
                mi_zalloc(rounded(layout.size(), layout.align())).cast()
            } else {
                mimalloc::MiMalloc.alloc_zeroed(layout)
            }
        }

        #[inline]
        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            mi_free(ptr.cast());
        }

        #[inline]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if layout.align() <= GUARANTEED {
                mi_realloc(ptr.cast(), rounded(new_size, layout.align())).cast()
            } else {
                mimalloc::MiMalloc.realloc(ptr, layout, new_size)
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_block_is_aligned_as_asked() {
            for align in [1, 2, 4, 8, 16, 32, 64, 128] {
                for size in 1..=65_536 {
                    let layout = Layout::from_size_align(size, align).unwrap();
                    // SAFETY: a non-zero size; each block is freed with its layout.
                    unsafe {
                        let p = Mimalloc.alloc(layout);
                        assert!(
                            !p.is_null() && (p as usize).is_multiple_of(align),
                            "{size} / {align}"
                        );
                        let grown = Mimalloc.realloc(p, layout, size * 2 + 3);
                        assert!(
                            (grown as usize).is_multiple_of(align),
                            "realloc {size} / {align}"
                        );
                        Mimalloc
                            .dealloc(grown, Layout::from_size_align(size * 2 + 3, align).unwrap());
                        let z = Mimalloc.alloc_zeroed(layout);
                        assert!(
                            (z as usize).is_multiple_of(align) && *z == 0,
                            "zeroed {size} / {align}"
                        );
                        Mimalloc.dealloc(z, layout);
                    }
                }
            }
        }
    }
}

/// mimalloc commits its arenas eagerly on Linux and hands freed pages back with MADV_FREE,
/// which the kernel keeps counting in RSS. Committing on demand makes it decommit instead:
/// with 1,000 idle keep-alive connections RSS went from 125 MiB to 58 MiB. This is what
/// `MIMALLOC_ARENA_EAGER_COMMIT=0` does, and that variable, when set, still decides.
///
/// The option is read when the first arena is reserved, at the first allocation, which comes
/// before `main`; so it is set from a constructor that runs before mimalloc's own and before
/// anything allocates (it reads the environment through libc, without allocating).
#[cfg(all(feature = "mimalloc", target_os = "linux"))]
mod mimalloc_options {
    use std::os::raw::{c_char, c_int, c_long};

    extern "C" {
        /// From the mimalloc library the `mimalloc` crate links (mimalloc.h).
        fn mi_option_set(option: c_int, value: c_long);
        fn getenv(name: *const c_char) -> *mut c_char;
    }

    /// `mi_option_arena_eager_commit` in mimalloc.h's `mi_option_e`.
    const MI_OPTION_ARENA_EAGER_COMMIT: c_int = 4;

    extern "C" fn set() {
        // SAFETY: getenv reads the environment libc set up before any constructor ran;
        // mi_option_set only stores a value, and any value is valid for this option.
        unsafe {
            if getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
                mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
            }
        }
    }

    // Constructors with a priority run before those without (mimalloc's has none).
    #[used]
    #[link_section = ".init_array.00101"]
    static SET: extern "C" fn() = set;
}

fn main() {
    std::process::exit(brace::cli::main());
}
