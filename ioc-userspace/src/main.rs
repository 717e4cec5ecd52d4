use std::process::ExitCode;

fn main() -> ExitCode {
    iocmon::cli::main(std::env::args_os().collect())
}
