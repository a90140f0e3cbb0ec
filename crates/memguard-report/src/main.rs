//! `memguard-report report <bundle-dir | snapshot> [options]` — reached as
//! `npx memguard report …` through `bin/memguard.js`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use memguard_core::printable::{printable, printable_bytes, UNLIMITED};
use memguard_report::report::{Report, SCHEMA};
use memguard_report::{
    allocations, earlier, history, html, input, snapshot, sourcemaps, summary, terminal, timeline, upload, verdict, write_stdout,
    ReportError,
};

#[derive(Parser)]
#[command(name = "memguard", about = "Reads a memguard crash bundle or a heap snapshot; ships bundles to S3-compatible storage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// What took the space, what retains it, how it grew.
    Report(ReportArgs),
    /// Ship bundles to MEMGUARD_UPLOAD=s3://bucket/prefix (run detached by memguard itself).
    Upload {
        /// Bundle directories.
        #[arg(required = true)]
        bundles: Vec<PathBuf>,
    },
    /// Every crash bundle under s3://bucket/prefix, newest first, with its verdict.
    List {
        /// s3://bucket/prefix
        url: String,
        /// Only this service's bundles.
        #[arg(long, value_name = "S")]
        service: Option<String>,
        /// Only bundles started this recently (90s, 30m, 12h, 7d, 2w).
        #[arg(long, value_name = "AGE")]
        since: Option<String>,
        /// JSON (an array of the bundles' report.json records) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Download a bundle: s3://bucket/prefix/<service>/<host>/<bundle>.
    Fetch {
        url: String,
        /// The directory to put the bundle in (default: the current one).
        #[arg(long, value_name = "DIR", default_value = ".")]
        to: PathBuf,
    },
    /// Every node's id and retained size, one `id retained` line each (for tests that
    /// compare with DevTools).
    #[command(hide = true)]
    Retained {
        snapshot: PathBuf,
        /// Also write the class aggregates (DevTools' `aggregatesWithFilter({})` shape) here.
        #[arg(long)]
        classes: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct ReportArgs {
    /// A bundle directory, a `.heapsnapshot` / `.heapsnapshot.gz` file, or
    /// a bundle in S3: s3://bucket/prefix/<service>/<host>/<bundle>.
    input: PathBuf,
    /// Print the report as JSON (schema `memguard-report/1`) instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the report as one self-contained HTML page with charts.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Classes and allocation sites to list.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    top: u16,
    /// An earlier snapshot of the same process to diff the newest one against.
    #[arg(long, value_name = "SNAPSHOT")]
    baseline: Option<PathBuf>,
}

/// Retainer paths are long; five explain the top of any ranking.
const PATHS: usize = 5;

fn build_report(args: &ReportArgs) -> Result<Report, ReportError> {
    let inputs = input::resolve(&args.input)?;
    let top = usize::from(args.top);
    let opts = snapshot::Options {
        top,
        paths: top.min(PATHS),
        // The bar would garble JSON read by a program, and a pipe has no use for it.
        progress: !args.json && std::io::stderr().is_terminal(),
    };
    let mut report = Report { schema: SCHEMA, input: args.input.display().to_string(), ..Report::default() };
    if let Some(path) = &inputs.summary {
        report.bundle = Some(summary::read(path)?);
    }
    if !inputs.timeline.is_empty() {
        report.timeline = Some(timeline::read_segments(&inputs.timeline)?);
    }
    // A history that cannot be read costs only its line, not the report.
    if let Some(path) = &inputs.history {
        report.lifetime = history::read(path).ok();
    }
    if let Some(path) = &inputs.allocations {
        report.allocations = Some(allocations::read(path, top)?);
    }
    if let Some(main) = inputs.main_snapshot() {
        let pair = match &args.baseline {
            Some(baseline) => Some((baseline.as_path(), main)),
            None => inputs.diff_pair(),
        };
        match pair {
            // The usual case: the diff's later snapshot is the main one, read once.
            Some((before, after)) if after == main => {
                let (summary, diff) = snapshot::summarize_and_diff(main, before, &opts)?;
                report.snapshot = Some(summary);
                report.diff = Some(diff);
            }
            Some((before, after)) => {
                report.snapshot = Some(snapshot::summarize(main, &opts)?);
                report.diff = Some(snapshot::diff(before, after, &opts)?);
            }
            None => report.snapshot = Some(snapshot::summarize(main, &opts)?),
        }
    } else if let Some(baseline) = &args.baseline {
        return Err(ReportError::Usage(format!(
            "--baseline {}: {} has no heap snapshot to compare it with",
            baseline.display(),
            args.input.display()
        )));
    }
    // A snapshot from before the end says so, and the verdict counts the growth after it.
    let earlier = report.snapshot.as_ref().and_then(|s| earlier::find(report.bundle.as_ref(), report.timeline.as_ref(), &s.file));
    if let Some(s) = &mut report.snapshot {
        s.earlier = earlier;
    }
    report.verdict = Some(verdict::judge(&report));
    let bundle = args.input.is_dir().then_some(args.input.as_path());
    sourcemaps::locate(&mut report, bundle);
    if let Some(v) = &mut report.verdict {
        // Named after the original positions the source maps gave.
        verdict::retitle(v);
    }
    Ok(report)
}

/// A path as the user's file system spells it (maybe not UTF-8), printable.
fn printable_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    printable_bytes(path.as_os_str().as_bytes(), UNLIMITED).into_owned()
}

fn run(cli: Cli) -> Result<(), ReportError> {
    match cli.command {
        Command::Report(mut args) => {
            // A bundle in a bucket is brought into a private scratch directory first.
            let remote = args.input.to_str().filter(|s| s.starts_with("s3://")).map(str::to_owned);
            let _scratch = match &remote {
                Some(url) => {
                    let scratch = upload::fetch::Scratch::new()?;
                    args.input = upload::fetch::fetch(url, &scratch.0, !args.json && std::io::stderr().is_terminal())?;
                    Some(scratch)
                }
                None => None,
            };
            let mut report = build_report(&args)?;
            if let Some(url) = remote {
                report.input = url;
            }
            if let Some(path) = &args.html {
                std::fs::write(path, html::render(&report))
                    .map_err(|source| ReportError::Io { path: path.clone(), source })?;
                eprintln!("memguard report: wrote {}", printable_path(path));
            }
            if args.json {
                let json = serde_json::to_string_pretty(&report).expect("a Report always serializes");
                write_stdout(&(json + "\n"))
            } else {
                write_stdout(&terminal::render(&report))
            }
        }
        Command::Upload { bundles } => upload::put::run(&bundles),
        Command::List { url, service, since, json } => {
            let target = memguard_core::upload::parse_target(&url)
                .map_err(|p| ReportError::Usage(format!("{}: {p}", printable(&url, 200))))?
                .ok_or_else(|| ReportError::Usage("list needs s3://bucket/prefix".into()))?;
            let since = since
                .map(|s| upload::list::parse_since(&s).ok_or_else(|| ReportError::Usage(format!("--since {}: not an age like 30m, 12h or 7d", printable(&s, 40)))))
                .transpose()?;
            let bucket = upload::store::open(&target, &memguard_core::upload::Sse::Default)?;
            upload::list::run(&bucket, service.as_deref(), since, json)
        }
        Command::Fetch { url, to } => {
            let dest = upload::fetch::fetch(&url, &to, std::io::stderr().is_terminal())?;
            eprintln!("memguard fetch: {}", printable_path(&dest));
            Ok(())
        }
        Command::Retained { snapshot: path, classes } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            snapshot::write_retained(&path, &mut out, classes.as_deref())?;
            out.flush().map_err(|source| ReportError::Io { path: "<stdout>".into(), source })
        }
    }
}

/// Bad usage is one line and exit 2 like every other error; `--help` is not an error.
fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // clap's message runs until the first blank line (then comes usage).
        let text = e.to_string();
        let message: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
        let command = std::env::args().nth(1).filter(|c| ["list", "fetch", "upload"].contains(&c.as_str()));
        let command = command.as_deref().unwrap_or("report");
        eprintln!("memguard {command}: {} (see --help)", printable(&message.join(" "), UNLIMITED));
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let name = match &cli.command {
        Command::Upload { .. } => "upload",
        Command::List { .. } => "list",
        Command::Fetch { .. } => "fetch",
        Command::Report(_) | Command::Retained { .. } => "report",
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ReportError::Reported) => ExitCode::from(2),
        Err(e) => {
            // One line, whatever the message quotes (paths, parser errors).
            eprintln!("memguard {name}: error: {}", printable(&e.to_string(), UNLIMITED));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
