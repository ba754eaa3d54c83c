//! The `strumlab` binary: parse arguments, run, print. All logic lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = strumlab::cli::Cli::parse();
    match strumlab::cli::run(cli).map_err(anyhow::Error::from) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
