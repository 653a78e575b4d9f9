//! The `brace` binary: all behaviour lives in the library; see `brace --help`.

/// mimalloc rather than glibc's malloc: allocation and free were about 12% of a request's CPU
/// under load with glibc (the commit that made this change has the figures). Built without it:
/// `cargo build --release --no-default-features`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
