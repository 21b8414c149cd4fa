//! The `failgroup` binary: the command line in `failgroup::cli`.

/// Counts allocated bytes for INFO's `used_memory` and `maxmemory`.
#[global_allocator]
static ALLOC: failgroup::mem::Counting = failgroup::mem::Counting;

fn main() -> std::process::ExitCode {
    failgroup::mem::Counting::installed();
    failgroup::cli::main()
}
