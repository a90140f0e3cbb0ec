//! `memguard-report report <bundle-dir | snapshot> [options]` — reached as
//! `npx memguard report …` through `bin/memguard.js`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use memguard_report::{snapshot, ReportError};

#[derive(Parser)]
#[command(name = "memguard", about = "Reads a memguard crash bundle or a heap snapshot")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What took the space, what retains it, how it grew.
    Report {
        /// A bundle directory, or a `.heapsnapshot` / `.heapsnapshot.gz` file.
        input: PathBuf,
    },
    /// Every node's id and retained size, one `id retained` line each (for tests that
    /// compare with DevTools).
    #[command(hide = true)]
    Retained { snapshot: PathBuf },
}

fn run(cli: Cli) -> Result<(), ReportError> {
    match cli.command {
        Command::Report { input } => {
            let summary = snapshot::summarize(&input, &snapshot::Options::default())?;
            println!("{summary:?}");
            Ok(())
        }
        Command::Retained { snapshot: path } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            snapshot::write_retained(&path, &mut out)?;
            out.flush().map_err(|source| ReportError::Io { path: "<stdout>".into(), source })
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memguard report: error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
