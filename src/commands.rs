//! What each command does, and its exit code.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{self, Daemon};
use crate::cli::{Cli, Command, LogFormat, OutputFormat};
use crate::config::{self, Config, Target};
use crate::embedded::queue::NotifyRule;
use crate::embedded::{EmbeddedS3, FaultConfig, Lag, Rule};
use crate::s3::ClientFactory;

/// Exit code for a bad config.
pub const EXIT_BAD_CONFIG: u8 = 2;

/// The demo's config; the embedded server's endpoint is filled in at start.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Runs the command line and returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    init_logging(cli.log_format, cli.log_level.as_deref());
    match cli.command {
        Command::Durability(crate::cli::DurabilityCommand::Reseed { config, target }) => {
            match config::load(&config.config) {
                Ok(cfg) => runtime(1).map_or_else(|e| e, |rt| rt.block_on(reseed(cfg, &target))),
                Err(e) => bad_config(&e),
            }
        }
        Command::CheckConfig(c) => match config::load(&c.config) {
            Ok(cfg) => {
                if let Err(e) = web_config(&cfg) {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_BAD_CONFIG);
                }
                println!(
                    "{}: ok ({} targets, {} replications)",
                    c.config.display(),
                    cfg.targets.len(),
                    cfg.replications.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => bad_config(&e),
        },
        Command::Run { config: c, shard } => {
            let cfg = match config::load(&c.config) {
                Ok(cfg) => cfg,
                Err(e) => return bad_config(&e),
            };
            let shard = shard.unwrap_or_default();
            let rt = match runtime(cfg.targets.len()) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            rt.block_on(async {
                let factory = ClientFactory::default();
                let daemon = Daemon::sharded(cfg, Some(c.config.clone()), factory, shard);
                serve(daemon, None, None).await
            })
        }
        Command::Once { config: c, format } => {
            let cfg = match config::load(&c.config) {
                Ok(cfg) => cfg,
                Err(e) => return bad_config(&e),
            };
            let rt = match runtime(cfg.targets.len()) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let found = rt.block_on(crate::once::run(&cfg, &ClientFactory::default()));
            let (results, repls) = &found;
            match format {
                OutputFormat::Table => print!("{}", crate::once::table(results, repls)),
                OutputFormat::Json => println!("{}", crate::once::json(results, repls)),
            }
            if crate::once::passed(&found) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Demo { listen, faults } => {
            // The embedded server shares the runtime with the daemon: a worker per CPU, so a
            // request and its answer are not timed on one thread.
            runtime(usize::MAX).map_or_else(|e| e, |rt| rt.block_on(demo(listen, &faults)))
        }
        Command::IamPolicy(c) => match config::load(&c.config) {
            Ok(cfg) => {
                let policy = crate::iam::policy(&cfg);
                println!("{}", serde_json::to_string_pretty(&policy).expect("JSON"));
                ExitCode::SUCCESS
            }
            Err(e) => bad_config(&e),
        },
        Command::Plan {
            config: c,
            put_price,
            get_price,
            cw_metric_price,
            replication_lag,
            sqs_price,
        } => match config::load(&c.config) {
            Ok(cfg) => {
                let prices = crate::plan::Prices {
                    put_per_1k: put_price,
                    get_per_1k: get_price,
                    cw_metric_month: cw_metric_price,
                    sqs_per_million: sqs_price,
                    ..Default::default()
                };
                print!("{}", crate::plan::render(&cfg, &prices, replication_lag));
                ExitCode::SUCCESS
            }
            Err(e) => bad_config(&e),
        },
    }
}

/// Targets one runtime worker thread serves before another is started (up to the CPUs the
/// process may use).
pub const TARGETS_PER_WORKER: usize = 200;

/// Worker threads for `targets` targets on `cpus` CPUs: one up to [`TARGETS_PER_WORKER`]
/// targets, one more for each further [`TARGETS_PER_WORKER`], never more than the CPUs. A
/// cycle costs a few milliseconds of CPU and a scrape is written in chunks between them, so a
/// sidecar needs one; a thread per CPU on a large node would cost each its stack and
/// allocator arena and buy nothing.
pub fn worker_threads(targets: usize, cpus: usize) -> usize {
    (1 + targets / TARGETS_PER_WORKER).min(cpus).max(1)
}

/// The async runtime for a command that runs `targets` targets: [`worker_threads`] workers,
/// or `TOKIO_WORKER_THREADS` when set (tokio reads it).
fn runtime(targets: usize) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        b.worker_threads(worker_threads(targets, cpus));
    }
    b.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// The web config `cfg` names, loaded (the default when it names none).
fn web_config(
    cfg: &Config,
) -> Result<crate::http::webconfig::WebConfig, crate::http::webconfig::WebConfigError> {
    match &cfg.web_config_file {
        Some(p) => crate::http::webconfig::WebConfig::load(p),
        None => Ok(Default::default()),
    }
}

fn bad_config(e: &config::ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_BAD_CONFIG)
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            // s3s serves only the embedded S3 of `demo`, where every injected fault would be
            // an ERROR line; the fault layer logs each change of profile instead.
            EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,s3s=off,hyper=warn")
        }),
    };
    // Colour only for a person at a terminal: log files and `kubectl logs` get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `durability reseed`: writes again what is missing or corrupt in `target`'s set.
async fn reseed(cfg: Config, target: &str) -> ExitCode {
    let Some(t) = cfg.targets.iter().find(|t| t.name == target) else {
        eprintln!("error: no target named {target:?} in the config");
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    let Some(d) = t.durability.as_ref() else {
        eprintln!("error: target {target:?} has no [target.durability] set");
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    let sink: Arc<dyn crate::report::Sink> = Arc::new(crate::report::Sinks::default());
    let bucket = ClientFactory::default().bucket(t, sink).await;
    match crate::durability::reseed(&bucket, t, d.objects).await {
        Ok(r) => {
            println!(
                "target {target}: {} objects intact, {} written again {:?} under s3://{}/{}",
                r.intact,
                r.rewritten.len(),
                r.rewritten,
                t.bucket,
                crate::durability::folder(t)
            );
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("error: {}: {}", f.reason.as_str(), f.message);
            ExitCode::FAILURE
        }
    }
}

/// Starts `demo`: an embedded S3 server and the daemon against it.
async fn demo(listen: SocketAddr, faults: &str) -> ExitCode {
    let Some(profile) = FaultConfig::profile(faults) else {
        eprintln!(
            "error: unknown fault profile {faults:?} (known: {})",
            FaultConfig::PROFILES.join(", ")
        );
        return ExitCode::from(EXIT_BAD_CONFIG);
    };
    let mut cfg = match config::parse(DEMO_CONFIG, Path::new("config/demo.toml")) {
        Ok(c) => c,
        Err(e) => return bad_config(&e),
    };
    let buckets: Vec<&str> = cfg.targets.iter().map(|t| t.bucket.as_str()).collect();
    let s3 = match EmbeddedS3::start(&buckets).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the embedded S3 server: {e}");
            return ExitCode::FAILURE;
        }
    };
    s3.faults.set_all(profile);
    for r in &cfg.replications {
        s3.replication.set_rule(Rule::new(
            &r.source.bucket,
            &r.destination.bucket,
            &format!("{}replication/", r.source.prefix),
            Lag::Uniform(Duration::from_secs(1), Duration::from_secs(4)),
        ));
    }
    for t in &cfg.targets {
        if t.events.is_some() {
            s3.queues.notify(NotifyRule {
                bucket: t.bucket.clone(),
                prefix: t.canary_prefix(),
                queue: "s3canary-events".into(),
                delay: Lag::Uniform(Duration::from_millis(200), Duration::from_secs(2)),
            });
        }
    }
    let to_embedded = |t: &mut Target| {
        t.endpoint = Some(s3.endpoint.clone());
        t.path_style = true;
        if let Some(e) = &mut t.events {
            e.queue_url = format!("{}/000000000000/s3canary-events", s3.endpoint);
            e.endpoint = Some(s3.endpoint.clone());
        }
    };
    cfg.targets.iter_mut().for_each(&to_embedded);
    for r in &mut cfg.replications {
        to_embedded(&mut r.source);
        to_embedded(&mut r.destination);
    }
    cfg.listen = listen;
    let factory = EmbeddedS3::client_factory();
    let banner = format!(
        "\ns3canary demo: the daemon is probing an embedded S3 server (fault profile: {faults}),\n\
         two buckets, \"source\" and \"replica\", with simulated replication lag of 1-4 s\n\
         \n  status page   http://{listen}/\
         \n  metrics       http://{listen}/metrics\
         \n  status JSON   http://{listen}/api/v1/status\
         \n  embedded S3   {} (access key {}, path-style)\
         \n\n  try: curl -s http://{listen}/metrics | grep -E '^s3canary_(probe_success|consistency)'\
         \n  other faults: --faults {}\
         \n  switch at run time: curl -X POST http://{listen}/-/demo/faults/stale\
         \n  stop with Ctrl-C\n",
        s3.endpoint,
        crate::embedded::ACCESS_KEY,
        FaultConfig::PROFILES.join("|"),
    );
    let extra = crate::embedded::demo_router(s3.faults.clone());
    serve(Daemon::new(cfg, None, factory), Some(banner), Some(extra)).await
}

/// Runs the daemon until SIGTERM/SIGINT; SIGHUP reloads.
async fn serve(
    daemon: Arc<Daemon>,
    banner: Option<String>,
    extra_routes: Option<axum::Router>,
) -> ExitCode {
    let cfg = daemon.config();
    let listen = cfg.listen;
    let web = match web_config(&cfg) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let open_files = crate::http::server::raise_open_files_limit();
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let token = daemon.token().clone();
    let mut router = crate::http::router(daemon.clone());
    if let Some(extra) = extra_routes {
        router = router.merge(extra);
    }
    if let Some(auth) = web.auth.clone() {
        router = router.layer(axum::middleware::from_fn_with_state(
            auth,
            crate::http::webconfig::require_auth,
        ));
    }
    let limits = crate::http::server::Limits::for_open_files(open_files);
    let server = tokio::spawn(crate::http::server::serve(
        listener,
        router,
        token.clone(),
        limits,
        web.tls.clone(),
    ));
    daemon.start().await;
    tracing::info!(%listen, version = env!("CARGO_PKG_VERSION"), tls = web.tls.is_some(),
        basic_auth = web.auth.is_some(), "s3canary is running");
    if let Some(b) = banner {
        println!("{b}");
    }
    wait_for_signals(&daemon).await;
    tracing::info!("shutting down: finishing in-flight cycles and deleting their canaries");
    let clean = daemon.shutdown(app::SHUTDOWN_GRACE).await;
    if !clean {
        tracing::warn!(
            "some cycles did not finish within {}s; their canaries are left for the orphan sweep",
            app::SHUTDOWN_GRACE.as_secs()
        );
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

#[cfg(unix)]
async fn wait_for_signals(daemon: &Arc<Daemon>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            // In a task of its own: a reload never holds up SIGTERM.
            _ = hup.recv() => {
                let d = daemon.clone();
                tokio::spawn(async move { d.reload().await });
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_daemon: &Arc<Daemon>) {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_follow_the_targets_up_to_the_cpus() {
        assert_eq!(worker_threads(0, 16), 1);
        assert_eq!(worker_threads(1, 16), 1);
        assert_eq!(worker_threads(TARGETS_PER_WORKER - 1, 16), 1);
        assert_eq!(worker_threads(TARGETS_PER_WORKER, 16), 2);
        assert_eq!(worker_threads(1000, 16), 6);
        assert_eq!(worker_threads(1000, 2), 2);
        assert_eq!(worker_threads(usize::MAX, 4), 4);
        assert_eq!(worker_threads(1000, 0), 1);
    }
}
