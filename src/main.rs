//! The `authdeck` binary: everything lives in the library; see `authdeck::cli`.

fn main() -> std::process::ExitCode {
    authdeck::cli::main()
}
