//! A kubelet for node-command pods on the test API server: it runs each pod's command as a
//! local process and serves its log the way a kubelet does, so the API server's
//! `pods/log` works (the test server has no kubelet).
//!
//! - It answers the command pods of one namespace bound to one node: it runs the shell line
//!   (the `sh -c` argument after `nsenter ... --`) with the local `sh`, as the node's shell
//!   would, in its own process group, stdout and stderr into one log file (in the order they
//!   are written, as a container runtime keeps them), stdin empty.
//! - It reports the container running, then terminated with the exit code (`128 + signal`
//!   for a command killed by a signal, as containerd reports it), and for a failed command
//!   the log's tail as the termination message (`FallbackToLogsOnError`: the last 80 lines,
//!   at most 2048 bytes).
//! - It kills the process group when the pod is deleted, as the kubelet stops a container.
//! - It serves `GET /containerLogs/{namespace}/{pod}/{container}` over HTTPS on a port of
//!   127.0.0.1 that it writes into the node's status (`daemonEndpoints.kubeletEndpoint`,
//!   address `InternalIP` 127.0.0.1), where the API server looks for the kubelet. Without
//!   `--kubelet-certificate-authority` the API server does not check the kubelet's
//!   certificate; this one is a throwaway made with `openssl` at start.
//!
//! Separate from `support/mod.rs` (which kupgrade-exec's tests share) because it needs TLS.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node as KNode, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use kupgrade_core::NodeName;
use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::support::{Result, next_event};

/// The command pods' running processes, by pod name: `None` while starting.
type Running = Arc<Mutex<HashMap<String, Option<Pid>>>>;

/// One node's kubelet, until dropped.
pub struct ProcessKubelet {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    running: Running,
    _dir: tempfile::TempDir,
}

impl ProcessKubelet {
    /// Starts answering the command pods of namespace `ns` bound to `node`, and points the
    /// node's status at this kubelet.
    pub async fn start(client: &Client, ns: &str, node: &NodeName) -> Result<ProcessKubelet> {
        let dir = tempfile::tempdir()?;
        let acceptor = tls_acceptor(dir.path())?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs)?;
        let nodes: Api<KNode> = Api::all(client.clone());
        let status = json!({ "status": {
            "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": port } },
        }});
        nodes
            .patch_status(
                node.as_str(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await?;
        let running = Running::default();
        let tasks = vec![
            tokio::spawn(serve_logs(listener, acceptor, logs.clone())),
            tokio::spawn(run_pods(
                Api::namespaced(client.clone(), ns),
                node.to_string(),
                logs,
                running.clone(),
            )),
        ];
        Ok(ProcessKubelet {
            tasks,
            running,
            _dir: dir,
        })
    }
}

impl Drop for ProcessKubelet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for pid in self.running.lock().unwrap().values().flatten() {
            let _ = kill_process_group(*pid, Signal::KILL);
        }
    }
}

/// A TLS acceptor with a throwaway self-signed certificate made in `dir`.
fn tls_acceptor(dir: &Path) -> Result<TlsAcceptor> {
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=kupgrade-test-kubelet"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "openssl req: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let certs = CertificateDer::pem_slice_iter(&std::fs::read(&cert)?)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(&std::fs::read(&key)?)?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The log file of pod `name` in `logs`.
fn log_file(logs: &Path, name: &str) -> PathBuf {
    logs.join(format!("{name}.log"))
}

/// Answers the API server's log requests: `GET /containerLogs/{ns}/{pod}/{container}`.
async fn serve_logs(listener: TcpListener, acceptor: TlsAcceptor, logs: PathBuf) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, logs) = (acceptor.clone(), logs.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_one(acceptor, tcp, &logs).await {
                eprintln!("test kubelet: serving a log request: {e}");
            }
        });
    }
}

async fn serve_one(acceptor: TlsAcceptor, tcp: tokio::net::TcpStream, logs: &Path) -> Result<()> {
    let mut tls = acceptor.accept(tcp).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    // containerLogs / namespace / pod / container
    let pod = match path.trim_start_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["containerLogs", _, pod, _] => Some(pod),
        _ => None,
    };
    match pod.map(|p| log_file(logs, p)).filter(|f| f.is_file()) {
        Some(file) => {
            let mut file = tokio::fs::File::open(file).await?;
            let len = file.metadata().await?.len();
            tls.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
            tokio::io::copy(&mut file, &mut tls).await?;
        }
        None => {
            tls.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await?;
        }
    }
    tls.shutdown().await?;
    Ok(())
}

/// Watches the namespace's command pods on `node`: starts new ones, kills deleted ones.
async fn run_pods(api: Api<Pod>, node: String, logs: PathBuf, running: Running) {
    let config = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/component={}",
        kupgrade_kube::COMPONENT_LABEL_VALUE
    ));
    let mut events = watcher(api.clone(), config).boxed();
    loop {
        let (pod, deleted) =
            match next_event(&mut events, "test kubelet: watching command pods").await {
                Some(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    let deleted = p.metadata.deletion_timestamp.is_some();
                    (p, deleted)
                }
                Some(watcher::Event::Delete(p)) => (p, true),
                Some(_) => continue,
                None => return,
            };
        let name = pod.name_any();
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node.as_str()) {
            continue;
        }
        if deleted {
            if let Some(Some(pid)) = running.lock().unwrap().remove(&name) {
                let _ = kill_process_group(pid, Signal::KILL);
            }
            continue;
        }
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| !cs.is_empty());
        let line = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers[0].command.as_ref()?.last().cloned());
        let (Some(line), false) = (line, started) else {
            continue;
        };
        {
            let mut running = running.lock().unwrap();
            if running.contains_key(&name) {
                continue;
            }
            running.insert(name.clone(), None);
        }
        let (api, file, running) = (api.clone(), log_file(&logs, &name), running.clone());
        tokio::spawn(async move {
            if let Err(e) = run_pod(&api, &name, &line, &file, &running).await {
                eprintln!("test kubelet: running pod {name}: {e}");
            }
        });
    }
}

/// Runs one pod's line and reports it through the pod's status.
async fn run_pod(
    api: &Api<Pod>,
    name: &str,
    line: &str,
    file: &Path,
    running: &Running,
) -> Result<()> {
    let log = std::fs::File::create(file)?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    let pid = child.id().and_then(|id| Pid::from_raw(id as i32));
    {
        let mut running = running.lock().unwrap();
        match running.get_mut(name) {
            Some(slot) => *slot = pid,
            // Deleted while starting.
            None => {
                if let Some(pid) = pid {
                    let _ = kill_process_group(pid, Signal::KILL);
                }
            }
        }
    }
    let container = |state: serde_json::Value| {
        json!([{ "name": kupgrade_kube::CONTAINER, "ready": false, "restartCount": 0,
            "image": "test", "imageID": "", "state": state }])
    };
    let status = json!({ "status": { "phase": "Running", "containerStatuses": container(
        json!({ "running": { "startedAt": "2026-01-01T00:00:00Z" } })) } });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let exit = child.wait().await?;
    running.lock().unwrap().remove(name);
    use std::os::unix::process::ExitStatusExt;
    let code = exit
        .code()
        .unwrap_or_else(|| 128 + exit.signal().unwrap_or(0));
    let message = if code == 0 {
        String::new()
    } else {
        tail(&std::fs::read(file)?)
    };
    let status = json!({ "status": {
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "containerStatuses": container(json!({ "terminated": {
            "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
            "message": message,
            "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"
        } })),
    }});
    // The pod may be gone already (a timed-out command's pod is deleted at once).
    let _ = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await;
    Ok(())
}

/// The kubelet's `FallbackToLogsOnError` message: the log's last 80 lines, at most 2048
/// bytes.
fn tail(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut tail = lines[lines.len().saturating_sub(80)..].concat();
    if tail.len() > 2048 {
        let mut cut = tail.len() - 2048;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail.drain(..cut);
    }
    tail
}
