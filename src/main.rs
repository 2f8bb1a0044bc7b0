//! The `shaken-sensor` command line: `run` (live capture), `replay` (capture files),
//! `check-config`. Errors are reported with their context and a non-zero exit status.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use shaken_sensor::clock::{Clock, ManualClock, SystemClock, Timestamp};
use shaken_sensor::config::{self, Config, LogFormat};
use shaken_sensor::pipeline::{self, Input, RunOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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
    Run {
        #[arg(long, short, default_value = "/etc/shaken-sensor/sensor.toml")]
        config: PathBuf,
        /// CallRecords output (JSON lines): a path or "-" for stdout; overrides output.records.
        #[arg(long)]
        out: Option<String>,
        /// Write the Prometheus metrics text here at exit.
        #[arg(long)]
        metrics_out: Option<PathBuf>,
    },
    /// Replay capture files (pcap or pcapng) through the same pipeline, as fast as possible.
    Replay {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Configuration file (defaults to the built-in defaults, as in config/sensor.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// CallRecords output (JSON lines): a path or "-" for stdout; overrides output.records.
        #[arg(long)]
        out: Option<String>,
        /// No progress line and no summary on stderr.
        #[arg(long, short)]
        quiet: bool,
        /// Also write the summary as JSON to this path.
        #[arg(long)]
        summary_json: Option<PathBuf>,
        /// Write the Prometheus metrics text here at the end.
        #[arg(long)]
        metrics_out: Option<PathBuf>,
        /// Keep the replayed calls in a traceback store in DIR. Without it a replay never
        /// writes a store, so investigating a capture cannot pollute the production one.
        #[arg(long)]
        store: Option<PathBuf>,
        /// Serve /metrics, /healthz (and the traceback API over --store) on ADDR while
        /// replaying, e.g. 127.0.0.1:9465 (port 0 picks one; the log line names it).
        #[arg(long)]
        http: Option<String>,
        /// After the replay, keep serving --http until SIGINT/SIGTERM (to inspect the metrics).
        #[arg(long, requires = "http")]
        hold: bool,
        /// DetectionEvents output (JSON lines): a path or "-" for stdout; overrides
        /// output.detections.
        #[arg(long)]
        detections: Option<String>,
    },
    /// Verify the STIR/SHAKEN Identity of INVITEs: raw SIP message files, "-" (stdin), or
    /// pcap/pcapng captures. One JSON object per INVITE on stdout.
    Verify {
        #[arg(required = true)]
        inputs: Vec<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// STI-CA trust anchors: PEM file or directory (repeatable; added to the config's).
        #[arg(long = "trust-anchors")]
        trust_anchors: Vec<String>,
        /// Serve an x5u URL from a local PEM file instead of fetching it: URL=FILE (repeatable).
        #[arg(long = "cert")]
        certs: Vec<String>,
        /// Allow an x5u host (or host:port) that resolves to a private or loopback address.
        #[arg(long = "x5u-allow")]
        x5u_allow: Vec<String>,
        /// Verify as of this time (Unix seconds) instead of now: for old captures and tokens.
        #[arg(long)]
        now: Option<i64>,
        /// Largest |now - iat| accepted, seconds (default: the config's, 60).
        #[arg(long = "max-iat-age")]
        max_iat_age: Option<u64>,
    },
    /// Answer a traceback request from the store, without a running daemon (read-only):
    /// the calls from ORIG to DEST around AT, each with its upstream peer and SHAKEN result.
    Traceback {
        /// The store directory (traceback.dir).
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        orig: Option<String>,
        #[arg(long)]
        dest: String,
        /// RFC 3339 time of the call, e.g. 2026-11-29T14:03:07Z.
        #[arg(long)]
        at: String,
        /// Seconds either side of AT (default 300).
        #[arg(long = "window-s")]
        window_s: Option<String>,
    },
    /// Write a labelled scenario (scenario.pcap, labels.jsonl, campaigns.json, sensor.toml,
    /// certs/) for evaluating campaign detection. Needs the openssl CLI (it makes the PKI).
    Scenario {
        #[arg(long)]
        out: PathBuf,
        /// small: 16,000 background calls over 20 min, the 8 campaign kinds; full: 200,000
        /// over an hour and 16 campaigns (two of each kind).
        #[arg(long, value_enum, default_value = "small")]
        scale: ScaleArg,
        /// Background calls (default: the scale's).
        #[arg(long)]
        background: Option<u32>,
        /// Capture time, seconds (default: the scale's).
        #[arg(long = "duration-s")]
        duration_s: Option<u32>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Capture start, Unix seconds.
        #[arg(long, default_value_t = 1_795_000_000)]
        start: i64,
        /// What the campaigns' originators vary: stable-origid, fresh-origid, ua-rotate,
        /// ua-copy, slow-start, fast, busiest-peer (docs/detection-evaluation.md).
        #[arg(long, default_value = "stable-origid")]
        variant: String,
    },
    /// Score DetectionEvents (from `replay --detections`) against a scenario's labels; exits
    /// 1 when a campaign is missed, late, on the wrong peer, or an event fires on background.
    Evaluate {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long)]
        detections: PathBuf,
        /// Print the evaluation as JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long = "max-latency-s", default_value_t = 60.0)]
        max_latency_s: f64,
    },
    /// Validate a configuration file: prints "ok", or the error and exits with status 2.
    CheckConfig {
        #[arg(long, short, default_value = "/etc/shaken-sensor/sensor.toml")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ScaleArg {
    Small,
    Full,
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("installing signal handler")?;
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handler")?;
    }
    Ok(stop)
}

/// SIGHUP sets the returned flag; the reload thread clears it.
fn reload_flag() -> Result<Arc<AtomicBool>> {
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing SIGHUP handler")?;
    Ok(hup)
}

/// Re-reads `path` on every SIGHUP until `stop`; never touches the capture threads.
fn spawn_reloader(
    path: PathBuf,
    live: Arc<pipeline::LiveConfig>,
    metrics: Arc<shaken_sensor::metrics::Metrics>,
    hup: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if hup.swap(false, Ordering::Relaxed) {
                    tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
                    live.reload(&path, &metrics);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        })
        .context("starting the reload thread")
}

fn http_state(opts: &RunOptions, cfg: &Config) -> shaken_sensor::http::HttpState {
    shaken_sensor::http::HttpState {
        metrics: opts.metrics.clone(),
        health: opts.health.clone(),
        store: cfg
            .traceback
            .enabled
            .then(|| PathBuf::from(&cfg.traceback.dir)),
        token: Some(cfg.http.token.clone()).filter(|t| !t.is_empty()),
    }
}

fn write_metrics(
    path: Option<&Path>,
    opts_metrics: &shaken_sensor::metrics::Metrics,
) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, opts_metrics.render())
            .with_context(|| format!("writing metrics to {}", p.display()))?;
    }
    Ok(())
}

fn output_closed(e: &anyhow::Error) -> bool {
    use shaken_sensor::export::jsonl::JsonlError;
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<JsonlError>(),
            Some(JsonlError::Closed { .. })
        ) || matches!(
            c.downcast_ref::<pipeline::PipelineError>(),
            Some(pipeline::PipelineError::Output(JsonlError::Closed { .. }))
        )
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        // `shaken-sensor replay F | head`: the reader had enough; stop quietly like other tools.
        Err(e) if output_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shaken-sensor: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::CheckConfig { config } => match config::load(&config) {
            Ok(_) => {
                println!("ok");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::from(2))
            }
        },
        Command::Run {
            config,
            out,
            metrics_out,
        } => {
            let cfg = config::load(&config).context("loading configuration")?;
            init_logging(&cfg);
            let hup = reload_flag()?;
            let stop = stop_flag()?;
            let mut opts = RunOptions::new(stop.clone());
            opts.records_out = out;
            let live = pipeline::LiveConfig::new(&cfg);
            opts.live = Some(live.clone());
            let metrics = opts.metrics.clone();
            let reloader =
                spawn_reloader(config.clone(), live, metrics.clone(), hup, stop.clone())?;
            tracing::info!(
                interfaces = ?cfg.capture.interfaces,
                filter = %cfg.bpf_filter(),
                workers = cfg.worker_count(),
                "capture starting"
            );
            let http = if cfg.http.bind.is_empty() {
                None
            } else {
                let bind = cfg.http.bind.parse().context("http.bind")?;
                let state = http_state(&opts, &cfg);
                Some(
                    shaken_sensor::http::spawn(bind, state, stop.clone())
                        .context("starting the HTTP server")?,
                )
            };
            let result = pipeline::run(&cfg, Input::Live, opts).context("live capture");
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Some(server) = http {
                let _ = server.thread.join();
            }
            let _ = reloader.join();
            let summary = result?;
            tracing::info!(
                packets = summary.packets,
                sip_messages = summary.sip_messages,
                calls = summary.calls,
                "capture stopped"
            );
            write_metrics(metrics_out.as_deref(), &metrics)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Traceback {
            store,
            orig,
            dest,
            at,
            window_s,
        } => {
            use shaken_sensor::traceback::query::{answer, Reader, TracebackQuery};
            let q =
                TracebackQuery::parse(orig.as_deref(), Some(&dest), Some(&at), window_s.as_deref())
                    .context("traceback query")?;
            let reader = Reader::open(&store)
                .with_context(|| format!("opening store {}", store.display()))?;
            let json = answer(&reader, &q).context("traceback query")?;
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            inputs,
            config,
            trust_anchors,
            certs,
            x5u_allow,
            now,
            max_iat_age,
        } => {
            let mut cfg = config::load::load_or_default(config.as_deref())
                .context("loading configuration")?;
            init_logging(&cfg);
            let sh = &mut cfg.shaken;
            sh.trust_anchors.extend(trust_anchors);
            for c in certs {
                let (url, file) = c
                    .split_once('=')
                    .with_context(|| format!("--cert {c:?}: expected URL=FILE"))?;
                sh.certs.push(config::SeededCert {
                    url: url.to_string(),
                    file: file.to_string(),
                });
            }
            sh.x5u.allowed_hosts.extend(x5u_allow);
            if let Some(age) = max_iat_age {
                sh.max_iat_age_s = age;
            }
            cfg.validate("command line").context("verify options")?;
            let clock: Arc<dyn Clock> = match now {
                Some(t) => Arc::new(ManualClock::new(Timestamp::from_secs(t))),
                None => Arc::new(SystemClock),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            shaken_sensor::shaken::offline::verify_inputs(&cfg, &inputs, clock, &mut out)
                .map_err(|e| anyhow::anyhow!(e))
                .context("verify")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scenario {
            out,
            scale,
            background,
            duration_s,
            seed,
            start,
            variant,
        } => {
            use shaken_sensor::scenario::{
                generate,
                plan::{Scale, Variant, VARIANTS},
            };
            let Some(variant) = Variant::parse(&variant) else {
                let names: Vec<&str> = VARIANTS.iter().map(|v| v.name()).collect();
                anyhow::bail!("--variant {variant:?} is not one of {}", names.join(", "));
            };
            let scale = match scale {
                ScaleArg::Small => Scale::Small,
                ScaleArg::Full => Scale::Full,
            };
            let mut o = generate::ScenarioOptions::for_scale(out, scale);
            o.background = background.unwrap_or(o.background);
            o.duration_s = duration_s.unwrap_or(o.duration_s);
            o.seed = seed;
            o.start_unix = start;
            o.variant = variant;
            let summary = generate::generate(&o).context("scenario")?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate {
            scenario,
            detections,
            json,
            max_latency_s,
        } => {
            let e =
                shaken_sensor::scenario::evaluate::evaluate(&scenario, &detections, max_latency_s)
                    .context("evaluate")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print!("{}", e.to_text());
            }
            Ok(if e.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Replay {
            files,
            config,
            out,
            quiet,
            summary_json,
            metrics_out,
            store,
            http,
            hold,
            detections,
        } => {
            let mut cfg = config::load::load_or_default(config.as_deref())
                .context("loading configuration")?;
            cfg.traceback.enabled = store.is_some();
            if let Some(dir) = store {
                cfg.traceback.dir = dir.display().to_string();
            }
            init_logging(&cfg);
            let stop = stop_flag()?;
            let mut opts = RunOptions::new(stop.clone());
            opts.records_out = out;
            opts.detections_out = detections;
            opts.progress = !quiet && std::io::stderr().is_terminal();
            let metrics = opts.metrics.clone();
            // The server has its own stop flag: a replay that ends must not end it under --hold.
            let http_stop = Arc::new(AtomicBool::new(false));
            let server = match &http {
                Some(addr) => {
                    let bind = addr
                        .parse()
                        .with_context(|| format!("--http {addr}: expected IP:PORT"))?;
                    Some(
                        shaken_sensor::http::spawn(
                            bind,
                            http_state(&opts, &cfg),
                            http_stop.clone(),
                        )
                        .context("starting the HTTP server")?,
                    )
                }
                None => None,
            };
            let summary = pipeline::run(&cfg, Input::Files(files), opts).context("replay")?;
            if !quiet {
                eprint!("{}", summary.to_text());
            }
            if let Some(p) = summary_json {
                let json = serde_json::to_string_pretty(&summary)?;
                std::fs::write(&p, json)
                    .with_context(|| format!("writing summary to {}", p.display()))?;
            }
            write_metrics(metrics_out.as_deref(), &metrics)?;
            if let Some(server) = server {
                if hold {
                    tracing::info!(addr = %server.addr, "replay done; serving until SIGINT/SIGTERM (--hold)");
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
                http_stop.store(true, std::sync::atomic::Ordering::Relaxed);
                let _ = server.thread.join();
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
