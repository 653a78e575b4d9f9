//! The `brace` binary: all behaviour lives in the library; see `brace --help`.

/// mimalloc rather than glibc's malloc: allocation and free were about 12% of a request's CPU
/// under load with glibc (the commit that made this change has the figures). Built without it:
/// `cargo build --release --no-default-features`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(brace::cli::main());
}
