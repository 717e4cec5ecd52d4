use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = iocmon::cli::Cli::parse();
    iocmon::cli::init_logging(cli.log_level);
    match iocmon::cli::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            log::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
