//! `cargo xtask`: build Cloister images, boot them in QEMU, run every test, fuzz.
//! See `cargo xtask help` (cli.rs) for the commands and exit statuses.

mod bench;
mod build_command;
mod cli;
mod config_command;
mod exit_status;
mod explain;
mod fuzz_command;
mod lint_command;
mod run_command;
mod shipped_configs;
mod tally;
mod terminal;
mod test_command;
mod workspace;

use cli::{Command, ConfigCommand};
use std::process::ExitCode;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(command) => command,
        Err(message) => {
            terminal::stderr_line(&format!("error: {message}\n\n{}", cli::USAGE));
            return ExitCode::from(exit_status::FAILURE);
        }
    };
    let result = match command {
        Command::Help => {
            terminal::stdout_line(cli::USAGE);
            Ok(0)
        }
        Command::Build { config } => build_command::build(config).map(|()| 0),
        Command::Run(args) => run_command::run_image(args),
        Command::Test => test_command::test_all(),
        Command::Bench(args) => bench::bench(&args),
        Command::Fuzz(args) => fuzz_command::fuzz(&args),
        Command::Lint => {
            lint_command::lint().map(|clean| if clean { 0 } else { exit_status::FAILURE })
        }
        Command::Config(ConfigCommand::Check { config }) => {
            config_command::check(&config.unwrap_or_else(workspace::default_config)).map(|()| 0)
        }
        Command::Config(ConfigCommand::Explain { config }) => {
            config_command::explain(&config.unwrap_or_else(workspace::default_config)).map(|()| 0)
        }
    };
    if let Err(error) = &result {
        // A configuration report already says `error:` before each problem.
        let text = match error {
            cloister_runner::Error::Config(report) => report.to_string(),
            other => format!("error: {other}"),
        };
        terminal::stderr_line(&text);
    }
    ExitCode::from(exit_status::for_result(&result))
}
