//! The `ferrokube` binary: argument parsing and wiring of the component crates.

fn main() -> anyhow::Result<()> {
    Ok(())
}
