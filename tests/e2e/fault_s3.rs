//! The embedded S3 server on its own, for suites that run `s3canary run` against it with a
//! config of their own: buckets given on the command line, faults switched per bucket over
//! HTTP, exactly as `demo` does (`POST /-/demo/faults/{profile}[?bucket=B[&requests=N]]`).
//!
//! usage: fault-s3 S3_ADDR CONTROL_ADDR BUCKET...
//!
//! Anyone may GET and HEAD the buckets' objects without signing, as a CDN's origin allows (the
//! cdn probe's suite puts nginx in front); everything else needs the embedded credentials.
//!
//! `GET /-/answered` on the control address lists the `x-amz-request-id` of every S3 answer.
//!
//! Prints "ready" once both listen; exits on SIGTERM or SIGINT.

use std::net::SocketAddr;

use s3canary::embedded::EmbeddedS3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(s3_addr), Some(control_addr)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
    ) else {
        eprintln!("usage: fault-s3 S3_ADDR CONTROL_ADDR BUCKET...");
        return std::process::ExitCode::from(2);
    };
    let buckets: Vec<&str> = args[2..].iter().map(String::as_str).collect();
    let s3 = EmbeddedS3::start_on(s3_addr, &buckets)
        .await
        .expect("the S3 address is free");
    for b in &buckets {
        s3.public_read(b);
    }
    let control = tokio::net::TcpListener::bind(control_addr)
        .await
        .expect("the control address is free");
    // GET /-/answered lists the x-amz-request-id of every S3 answer, one per line: what a suite
    // compares with the request IDs the daemon exports as exemplars.
    let answered = s3.answered.clone();
    let router = s3canary::embedded::demo_router(s3.faults.clone()).route(
        "/-/answered",
        axum::routing::get(move || {
            let answered = answered.clone();
            async move { answered.ids().join("\n") }
        }),
    );
    println!("ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        r = axum::serve(control, router) => r.expect("the control server runs"),
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    s3.stop();
    std::process::ExitCode::SUCCESS
}
