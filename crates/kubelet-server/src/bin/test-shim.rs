//! Container shim for this crate's integration tests: the same code the ferrokube binary
//! runs for its hidden `container-shim` subcommand.

fn main() {
    std::process::exit(container_runtime::shim_main(
        std::env::args_os().skip(1).collect(),
    ));
}
