//! The `shaken-sensor` command line: parses the arguments and dispatches to the subcommand's
//! file in `src/cli/`. Errors are reported as one line; usage, configuration and set-up
//! problems exit with status 2, failures while running with 1.

use clap::{Parser, Subcommand};
use shaken_sensor::cli;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shaken-sensor",
    version,
    about = "Passive SIP / STIR-SHAKEN sensor: capture, verify, detect, record for traceback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture live from the configured interfaces until SIGINT/SIGTERM.
    Run(cli::run::Args),
    /// Replay capture files (pcap or pcapng) through the same pipeline, as fast as possible.
    Replay(cli::replay::Args),
    /// Verify the STIR/SHAKEN Identity of INVITEs: raw SIP message files, "-" (stdin), or
    /// pcap/pcapng captures. One JSON object per INVITE on stdout.
    Verify(cli::verify::Args),
    /// Answer a traceback request from the store, without a running daemon (read-only):
    /// the calls from ORIG to DEST around AT, each with its upstream peer and SHAKEN result.
    Traceback(cli::traceback::Args),
    /// Write a labelled scenario (scenario.pcap, labels.jsonl, campaigns.json, sensor.toml,
    /// certs/) for evaluating campaign detection. Needs the openssl CLI (it makes the PKI).
    Scenario(cli::scenario::Args),
    /// Score DetectionEvents (from `replay --detections`) against a scenario's labels; exits
    /// 1 when a campaign is missed, late, on the wrong peer, or an event fires on background.
    Evaluate(cli::evaluate::Args),
    /// Validate a configuration file: prints "ok", or the error and exits with status 2.
    CheckConfig(cli::check_config::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Run(a) => cli::run::main(a),
        Command::Replay(a) => cli::replay::main(a),
        Command::Verify(a) => cli::verify::main(a),
        Command::Traceback(a) => cli::traceback::main(a),
        Command::Scenario(a) => cli::scenario::main(a),
        Command::Evaluate(a) => cli::evaluate::main(a),
        Command::CheckConfig(a) => cli::check_config::main(a),
    };
    match result {
        Ok(code) => code,
        // `shaken-sensor replay F | head`: the reader had enough; stop quietly like other tools.
        Err(e) if cli::output_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            match cli::usage_error(&e) {
                Some(usage) => eprintln!("shaken-sensor: {usage}"),
                None => eprintln!("shaken-sensor: error: {e:#}"),
            }
            cli::exit_code(&e)
        }
    }
}
