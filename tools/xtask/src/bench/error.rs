//! Why `cargo xtask bench` could not produce its figures. Missing targets are not
//! errors: they are reported in the table and the JSON.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum BenchError {
    /// Building or booting failed before there was a run to read.
    Runner(cloister_runner::Error),
    /// A benchmark configuration is not there.
    MissingConfig { path: PathBuf },
    /// A run did not end with the workload exiting 0.
    RunFailed { run: String, detail: String },
    /// A run's output lacks or garbles a number a figure needs.
    Output { run: String, problem: String },
    /// Some runs failed (each already reported).
    Failed { failed: usize, runs: usize },
    /// Writing the JSON or the plot.
    Write { path: PathBuf, problem: String },
}

impl BenchError {
    pub fn output(run: impl fmt::Display, problem: impl Into<String>) -> BenchError {
        BenchError::Output {
            run: run.to_string(),
            problem: problem.into(),
        }
    }

    pub fn write(path: &std::path::Path, problem: impl fmt::Display) -> BenchError {
        BenchError::Write {
            path: path.to_path_buf(),
            problem: problem.to_string(),
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Runner(e) => write!(f, "{e}"),
            BenchError::MissingConfig { path } => write!(
                f,
                "benchmark configuration {} does not exist (the bench configurations live \
                 in tools/bench/configs, beside the cloister-bench-workloads package)",
                path.display()
            ),
            BenchError::RunFailed { run, detail } => write!(f, "bench run {run}: {detail}"),
            BenchError::Output { run, problem } => write!(f, "bench run {run}: {problem}"),
            BenchError::Failed { failed, runs } => write!(
                f,
                "{failed} of {runs} bench runs failed; no JSON or plot written"
            ),
            BenchError::Write { path, problem } => {
                write!(f, "cannot write {}: {problem}", path.display())
            }
        }
    }
}

impl From<cloister_runner::Error> for BenchError {
    fn from(e: cloister_runner::Error) -> Self {
        BenchError::Runner(e)
    }
}
