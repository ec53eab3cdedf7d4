//! `tarnkappe demo`: the proxy in front of the bundled demo shop (SQLite on disk), with
//! a fresh keyring, and the curl commands that show ciphertext at rest in a minute.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::server::{self, Server, DEFAULT_GRACE};

/// `demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Folder for the shop database, keyring, config and flow log.
    #[arg(long, default_value = "tarnkappe-demo")]
    pub dir: PathBuf,
    /// Port of the proxy on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
}

/// `demo-backend` options: the demo shop alone (for docker compose).
#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: std::net::SocketAddr,
    /// The SQLite file.
    #[arg(long, default_value = "shop.db")]
    pub db: PathBuf,
}

/// Runs the demo shop backend alone until SIGTERM/SIGINT.
pub fn run_backend(args: BackendArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let backend = crate::demo::start_backend(listener, args.db.clone()).await?;
        println!(
            "demo shop backend on http://{} storing to {}",
            backend.addr,
            args.db.display()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        backend.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The demo config, with the backend address and paths filled in.
pub fn demo_config(backend: std::net::SocketAddr, port: u16) -> String {
    include_str!("../../config/demo.toml")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace(
            "127.0.0.1:9090",
            &format!("127.0.0.1:{}", port.wrapping_add(1010)),
        )
        .replace("http://127.0.0.1:3000", &format!("http://{backend}"))
}

/// Runs the demo until Ctrl-C.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("creating {}", args.dir.display()))?;
        let dir = args.dir.canonicalize()?;
        let keyring = dir.join("keyring.toml");
        if !keyring.exists() {
            crate::crypto::Keyring::generate()?.write_new(&keyring)?;
        }
        let db = dir.join("shop.db");
        let backend_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let backend = crate::demo::start_backend(backend_listener, db.clone()).await?;
        let config_path = dir.join("tarnkappe.toml");
        std::fs::write(&config_path, demo_config(backend.addr, args.port))?;
        let loaded = match super::load_or_exit(&config_path) {
            Ok(l) => l,
            Err(code) => return Ok(code),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
            .await
            .with_context(|| {
                format!(
                    "binding 127.0.0.1:{} (choose another with --port)",
                    args.port
                )
            })?;
        let recorder = server::recorder(&loaded)?;
        let server = Server::start(loaded, listener, recorder, DEFAULT_GRACE)?;
        let admin = server
            .admin_addr
            .map_or_else(|| "-".to_owned(), |a| a.to_string());
        print_guide(server.addr, backend.addr, &admin, &db, &dir);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        server.shutdown().await;
        backend.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

fn print_guide(
    proxy: std::net::SocketAddr,
    backend: std::net::SocketAddr,
    admin: &str,
    db: &std::path::Path,
    dir: &std::path::Path,
) {
    println!(
        r#"tarnkappe demo
  proxy    http://{proxy}   (what your frontend talks to)
  backend  http://{backend}   (the shop API; stores to {db})
  metrics  http://{admin}/metrics
  config   {dir}/tarnkappe.toml, keyring {dir}/keyring.toml, flow log {dir}/flow.jsonl

1. Create a customer through the proxy:
   curl -s http://{proxy}/api/customers -H 'content-type: application/json' \
     -d '{{"email":"jane@example.com","name":"Jane Doe","address":{{"street":"1 Main St","city":"Berlin"}},"phone":"+49 30 1234567","plan":"gold","payment":{{"card_number":"4111111111111111"}}}}'

2. Read it back through the proxy (plaintext again):
   curl -s http://{proxy}/api/customers/1

3. Ask the backend directly (what its database, backups and logs hold):
   curl -s http://{backend}/api/customers/1
   sqlite3 {db} 'select doc from customers'

4. Look a customer up by email (deterministic encryption: the backend compares ciphertexts):
   curl -s 'http://{proxy}/api/customers?email=jane@example.com'

5. Check the audit trail:  tarnkappe audit verify {dir}/flow.jsonl
   and draw the data-flow map:  tarnkappe report {dir}/flow.jsonl --config {dir}/tarnkappe.toml --out report.html

Ctrl-C stops the demo; the data stays in {dir}."#,
        db = db.display(),
        dir = dir.display()
    );
}
