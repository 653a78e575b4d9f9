//! The `brace` binary: all behaviour lives in the library; see `brace --help`.

fn main() {
    std::process::exit(brace::cli::main());
}
