//! The `failgroup` binary: the command line in `failgroup::cli`.

fn main() -> std::process::ExitCode {
    failgroup::cli::main()
}
