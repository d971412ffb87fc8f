//! The command line: `cargo xtask <build|run|test|lint|bench|fuzz|config> [options]`.

use cloister_runner::{BootProtocol, Machine};
use std::ffi::OsString;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  build [--config FILE]   build the image for FILE and print its path
  run [--config FILE] [--machine microvm|pc] [--boot pvh|multiboot] [--icount] [--gdb]
      [--timeout SECS] [--memory MIB]
                          build the image and boot it in QEMU: the console on stdout,
                          the decoded log on stderr, the summary line last
  lint                    cargo fmt --check and clippy (warnings denied) on every package
  bench [--json FILE] [--plot FILE.png] [--quick]
                          boot the benchmark configurations (tools/bench/configs) under
                          -icount and print the figures and targets as a table; --json
                          writes them as JSON, --plot the launch chart (by default
                          target/bench/launch.png); --quick runs only launch-64m-demand
                          and exits, as a smoke check, and plots only with --plot
  test                    lint, host tests (`cargo test`), then every image (config/default.toml,
                          config/edge-gateway.toml, the default's selftest images and
                          tests/configs/*.toml), then the QEMU tests (cloister-tests),
                          then `bench --quick`, then `fuzz --time 15`
  fuzz [--time SECONDS] [--target NAME]
                          run the cargo-fuzz targets (fuzz/: hypercall, config, mmu_ops,
                          privmem_ops), each for SECONDS (default 60), or only NAME;
                          installs cargo-fuzz if missing (tools/install-fuzz.sh, needs the
                          nightly toolchain); prints the inputs each executed and
                          `no finding` or the crash artifact
  config check [FILE]     check FILE without building: every problem, or
                          `FILE: ok (N pools placed)`
  config explain [FILE]   check FILE, then show what it resolves to: the hypervisor's
                          settings, the host-physical map (reserved range, pools, RAM),
                          the workload's guest-physical map and its image

FILE defaults to config/default.toml. `run` boots by PVH unless --boot multiboot, stops
QEMU after --timeout (default 60) s, except with --gdb, which waits for a debugger on
:1234; --memory is used as given, even below what the configuration declares.
docs/xtask.md has the details.

exit status of `run`: the workload's exit status (255 if larger), 125 if the workload
was stopped, 126 on a hypervisor failure, 124 on a timeout, 2 if QEMU is missing and
cannot be installed, 1 on a usage, configuration or build error. `config` exits 0 if
FILE is valid, 1 if not. `fuzz` exits 0 if no target found anything, 1 on a finding,
2 if the nightly toolchain is missing.";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Build { config: Option<PathBuf> },
    Run(RunArgs),
    Test,
    Lint,
    Bench(BenchArgs),
    Fuzz(FuzzArgs),
    Config(ConfigCommand),
    Help,
}

/// `config check|explain [FILE]`: about a configuration, without building.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigCommand {
    Check { config: Option<PathBuf> },
    Explain { config: Option<PathBuf> },
}

#[derive(Debug, PartialEq, Eq)]
pub struct RunArgs {
    pub config: Option<PathBuf>,
    pub machine: Machine,
    pub boot: BootProtocol,
    pub icount: bool,
    pub gdb: bool,
    pub timeout_secs: u64,
    pub memory_mib: Option<u64>,
}

/// `bench [--json FILE] [--plot FILE.png] [--quick]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BenchArgs {
    pub json: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub quick: bool,
}

/// `fuzz [--time SECONDS] [--target NAME]`.
#[derive(Debug, PartialEq, Eq)]
pub struct FuzzArgs {
    /// How long each target runs.
    pub seconds: u64,
    /// Only this target (one of `fuzz_command::TARGETS`); all of them when `None`.
    pub target: Option<String>,
}

const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// Parse the arguments after `cargo xtask`. Errors are one line for the user, shown
/// with the usage.
pub fn parse(args: Vec<OsString>) -> Result<Command, String> {
    let mut args = Args::new(args);
    let Some(command) = args.next_text()? else {
        return Ok(Command::Help);
    };
    let command = match command.as_str() {
        "build" => parse_build(&mut args)?,
        "run" => Command::Run(parse_run(&mut args)?),
        "test" => Command::Test,
        "lint" => Command::Lint,
        "bench" => Command::Bench(parse_bench(&mut args)?),
        "fuzz" => Command::Fuzz(parse_fuzz(&mut args)?),
        "config" => Command::Config(parse_config(&mut args)?),
        "help" | "-h" | "--help" => Command::Help,
        other => return Err(format!("unknown command {other:?}")),
    };
    if let Some(extra) = args.next_text()? {
        return Err(format!("unexpected argument {extra:?}"));
    }
    Ok(command)
}

fn parse_build(args: &mut Args) -> Result<Command, String> {
    let mut config = None;
    while let Some(option) = args.next_option()? {
        match option.as_str() {
            "--config" => config = Some(args.value_of(&option)?.into()),
            _ => return Err(format!("unknown option {option:?} for build")),
        }
    }
    Ok(Command::Build { config })
}

fn parse_bench(args: &mut Args) -> Result<BenchArgs, String> {
    let mut bench = BenchArgs::default();
    while let Some(option) = args.next_option()? {
        match option.as_str() {
            "--json" => bench.json = Some(args.value_of(&option)?.into()),
            "--plot" => bench.plot = Some(args.value_of(&option)?.into()),
            "--quick" => bench.quick = true,
            _ => return Err(format!("unknown option {option:?} for bench")),
        }
    }
    Ok(bench)
}

fn parse_fuzz(args: &mut Args) -> Result<FuzzArgs, String> {
    let mut fuzz = FuzzArgs {
        seconds: crate::fuzz_command::DEFAULT_SECONDS,
        target: None,
    };
    while let Some(option) = args.next_option()? {
        match option.as_str() {
            "--time" => fuzz.seconds = positive(&option, &args.text_value_of(&option)?)?,
            "--target" => {
                let name = args.text_value_of(&option)?;
                if !crate::fuzz_command::TARGETS.contains(&name.as_str()) {
                    return Err(format!(
                        "unknown fuzz target {name:?} (targets: {})",
                        crate::fuzz_command::TARGETS.join(", ")
                    ));
                }
                fuzz.target = Some(name);
            }
            _ => return Err(format!("unknown option {option:?} for fuzz")),
        }
    }
    Ok(fuzz)
}

fn parse_config(args: &mut Args) -> Result<ConfigCommand, String> {
    let Some(action) = args.next_text()? else {
        return Err("config needs `check` or `explain`".to_owned());
    };
    let config = args.next_operand()?.map(PathBuf::from);
    match action.as_str() {
        "check" => Ok(ConfigCommand::Check { config }),
        "explain" => Ok(ConfigCommand::Explain { config }),
        other => Err(format!(
            "unknown config command {other:?} (expected `check` or `explain`)"
        )),
    }
}

fn parse_run(args: &mut Args) -> Result<RunArgs, String> {
    let mut run = RunArgs {
        config: None,
        machine: Machine::Microvm,
        boot: BootProtocol::Pvh,
        icount: false,
        gdb: false,
        timeout_secs: DEFAULT_TIMEOUT_SECS,
        memory_mib: None,
    };
    while let Some(option) = args.next_option()? {
        match option.as_str() {
            "--config" => run.config = Some(args.value_of(&option)?.into()),
            "--machine" => run.machine = args.text_value_of(&option)?.parse()?,
            "--boot" => run.boot = args.text_value_of(&option)?.parse()?,
            "--icount" => run.icount = true,
            "--gdb" => run.gdb = true,
            "--timeout" => run.timeout_secs = positive(&option, &args.text_value_of(&option)?)?,
            "--memory" => run.memory_mib = Some(positive(&option, &args.text_value_of(&option)?)?),
            _ => return Err(format!("unknown option {option:?} for run")),
        }
    }
    Ok(run)
}

fn positive(option: &str, text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{option} needs a whole number above 0, not {text:?}"
        )),
    }
}

/// The arguments as a stream of options (`--name`, `--name=value`) and values.
struct Args {
    rest: std::vec::IntoIter<OsString>,
    /// The value of a `--name=value` just split off.
    inline_value: Option<OsString>,
}

impl Args {
    fn new(args: Vec<OsString>) -> Args {
        Args {
            rest: args.into_iter(),
            inline_value: None,
        }
    }

    fn next_text(&mut self) -> Result<Option<String>, String> {
        self.rest
            .next()
            .map(|arg| {
                arg.into_string()
                    .map_err(|arg| format!("argument {arg:?} is not valid UTF-8"))
            })
            .transpose()
    }

    /// The next option name; anything else is an error (there are no positional
    /// arguments after the command).
    fn next_option(&mut self) -> Result<Option<String>, String> {
        if let Some(value) = self.inline_value.take() {
            return Err(format!("unexpected value {value:?}"));
        }
        let Some(arg) = self.next_text()? else {
            return Ok(None);
        };
        if !arg.starts_with("--") {
            return Err(format!("unexpected argument {arg:?}"));
        }
        match arg.split_once('=') {
            Some((name, value)) => {
                self.inline_value = Some(value.into());
                Ok(Some(name.to_owned()))
            }
            None => Ok(Some(arg)),
        }
    }

    /// The next argument if it is an operand (a file, say), which may be any bytes;
    /// an option there is an error, since the commands that take operands have none.
    fn next_operand(&mut self) -> Result<Option<OsString>, String> {
        let Some(arg) = self.rest.next() else {
            return Ok(None);
        };
        match arg.to_str() {
            Some(text) if text.starts_with("--") => Err(format!("unexpected option {text:?}")),
            _ => Ok(Some(arg)),
        }
    }

    fn value_of(&mut self, option: &str) -> Result<OsString, String> {
        self.inline_value
            .take()
            .or_else(|| self.rest.next())
            .ok_or_else(|| format!("{option} needs a value"))
    }

    fn text_value_of(&mut self, option: &str) -> Result<String, String> {
        self.value_of(option)?
            .into_string()
            .map_err(|v| format!("{option}: {v:?} is not valid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Result<Command, String> {
        parse(words.split_whitespace().map(OsString::from).collect())
    }

    #[test]
    fn run_defaults() {
        let Command::Run(run) = parse_words("run").unwrap() else {
            panic!()
        };
        assert_eq!(run.config, None);
        assert_eq!(
            (
                run.machine,
                run.boot,
                run.icount,
                run.gdb,
                run.timeout_secs,
                run.memory_mib
            ),
            (Machine::Microvm, BootProtocol::Pvh, false, false, 60, None)
        );
    }

    #[test]
    fn run_takes_every_option_in_both_spellings() {
        let Command::Run(run) = parse_words(
            "run --config a.toml --machine=pc --boot multiboot --icount --gdb --timeout 5 \
             --memory=128",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(run.config, Some(PathBuf::from("a.toml")));
        assert_eq!(
            (
                run.machine,
                run.boot,
                run.icount,
                run.gdb,
                run.timeout_secs,
                run.memory_mib
            ),
            (
                Machine::Pc,
                BootProtocol::Multiboot,
                true,
                true,
                5,
                Some(128)
            )
        );
    }

    #[test]
    fn build_test_and_help() {
        assert_eq!(
            parse_words("build --config=x.toml"),
            Ok(Command::Build {
                config: Some("x.toml".into())
            })
        );
        assert_eq!(parse_words("test"), Ok(Command::Test));
        assert_eq!(parse_words(""), Ok(Command::Help));
        assert_eq!(parse_words("--help"), Ok(Command::Help));
    }

    #[test]
    fn bench_takes_its_files_and_quick() {
        assert_eq!(
            parse_words("bench"),
            Ok(Command::Bench(BenchArgs::default()))
        );
        assert_eq!(
            parse_words("bench --json out.json --plot=l.png --quick"),
            Ok(Command::Bench(BenchArgs {
                json: Some("out.json".into()),
                plot: Some("l.png".into()),
                quick: true,
            }))
        );
    }

    #[test]
    fn fuzz_takes_a_time_and_a_target() {
        assert_eq!(
            parse_words("fuzz"),
            Ok(Command::Fuzz(FuzzArgs {
                seconds: 60,
                target: None
            }))
        );
        assert_eq!(
            parse_words("fuzz --time=600 --target config"),
            Ok(Command::Fuzz(FuzzArgs {
                seconds: 600,
                target: Some("config".into())
            }))
        );
    }

    #[test]
    fn config_commands_take_an_optional_file() {
        assert_eq!(
            parse_words("config check config/tdx.toml"),
            Ok(Command::Config(ConfigCommand::Check {
                config: Some("config/tdx.toml".into())
            }))
        );
        assert_eq!(
            parse_words("config explain"),
            Ok(Command::Config(ConfigCommand::Explain { config: None }))
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for (words, message) in [
            ("frobnicate", "unknown command \"frobnicate\""),
            (
                "run --timeout 0",
                "--timeout needs a whole number above 0, not \"0\"",
            ),
            ("run --timeout", "--timeout needs a value"),
            (
                "run --memory lots",
                "--memory needs a whole number above 0, not \"lots\"",
            ),
            ("run --machine q35", "unknown machine \"q35\""),
            ("run --boot linux", "unknown boot protocol \"linux\""),
            ("run --boot", "--boot needs a value"),
            ("run --icount=yes", "unexpected value \"yes\""),
            ("build --gdb", "unknown option \"--gdb\" for build"),
            ("bench --json", "--json needs a value"),
            ("bench --quick=1", "unexpected value \"1\""),
            ("bench --icount", "unknown option \"--icount\" for bench"),
            (
                "fuzz --time 0",
                "--time needs a whole number above 0, not \"0\"",
            ),
            ("fuzz --time", "--time needs a value"),
            ("fuzz --target vm", "unknown fuzz target \"vm\""),
            ("fuzz --jobs 2", "unknown option \"--jobs\" for fuzz"),
            ("test extra", "unexpected argument \"extra\""),
            ("run stray", "unexpected argument \"stray\""),
            ("config", "config needs `check` or `explain`"),
            ("config lint a.toml", "unknown config command \"lint\""),
            (
                "config check --config a.toml",
                "unexpected option \"--config\"",
            ),
            (
                "config check a.toml b.toml",
                "unexpected argument \"b.toml\"",
            ),
        ] {
            let err = parse_words(words).unwrap_err();
            assert!(err.contains(message), "{words:?}: {err}");
        }
    }

    #[test]
    fn non_utf8_arguments_are_errors_but_paths_may_be_anything() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(b"\xff.toml".to_vec());
        let args = vec!["build".into(), "--config".into(), odd.clone()];
        assert_eq!(
            parse(args),
            Ok(Command::Build {
                config: Some(odd.clone().into())
            })
        );
        assert!(
            parse(vec!["run".into(), odd])
                .unwrap_err()
                .contains("not valid UTF-8")
        );
    }
}
