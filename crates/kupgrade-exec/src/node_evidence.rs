//! Readiness evidence from the nodes themselves, through any
//! [`CommandRunner`] (local, SSH, a pod): the facts the API cannot show.
//!
//! | fact | command (an argument list, with a timeout) |
//! |---|---|
//! | cgroup file system | `stat -fc %T /sys/fs/cgroup` (`cgroup2fs` is v2, `tmpfs` v1) |
//! | free disk | `df -P -k PATH...` for where packages and backups go |
//! | certificates | `sudo kubeadm certs check-expiration -o json` (kubeadm's `output.kubeadm.k8s.io` shape) |
//! | etcd version | `sudo grep -s -H image: MANIFESTS/etcd.yaml` (the static pod's image tag) |
//! | the kubelet's API server | `sudo grep -s -h server: /etc/kubernetes/kubelet.conf` |
//! | packages offered | `apt-cache madison P`, else `dnf list --showduplicates P`, else `zypper search -s --match-exact P` for kubeadm, kubelet, kubectl |
//! | package sources | `grep -r -s -H -F -e HOST... DIR` in the package manager's source directory |
//!
//! Control-plane facts (etcd, certificates, the kubelet's server) are read only when
//! [`NodeEvidenceOptions::control_plane`] says so. Each fact is gathered on its own and is
//! [`Gathered::Missing`] with the reason when its command cannot run (no node access, the
//! program is absent, it failed): a check that needs it then says "not checkable".
//! Paths come from the options and are validated before anything runs; nothing from a node
//! name or a version goes into a command.
use std::time::Duration;

use futures::stream::{self, StreamExt};
use kupgrade_core::plan::{PathError, validate_path};
use kupgrade_core::ports::{
    CommandOutput, CommandRunner, CommandRunnerExt, CommandSpec, ExitStatus, RunnerError,
};
use kupgrade_core::readiness::{
    CertificateExpirationInfo, CgroupFacts, DiskPurpose, DiskSpace, EtcdFacts, Evidence,
    FactTables, Gathered, KubeletServer, MissingReason, NodeFacts, PackageAvailability,
    RepositoryEntry,
};
use kupgrade_core::{KubeVersion, NodeName};

/// Nodes read at once by [`gather_nodes`].
const CONCURRENT_NODES: usize = 16;
/// The packages whose offered versions are read.
const PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];

/// What [`gather_node`] reads on one node, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEvidenceOptions {
    /// Read the control-plane facts (etcd, certificates, the kubelet's server).
    pub control_plane: bool,
    /// Directories whose free space matters, and what for.
    pub disk: Vec<(String, DiskPurpose)>,
    /// Where kubeadm writes the static pod manifests.
    pub manifests_dir: String,
    /// The kubelet's kubeconfig.
    pub kubelet_conf: String,
    /// A directory put before every file and directory read (not before `/sys/fs/cgroup`,
    /// nor the disk paths): `""` on real nodes, the sandbox's root in tests.
    pub root: String,
    /// The node's own addresses (from the API), so a kubelet server at one of them counts
    /// as local.
    pub node_addresses: Vec<String>,
    /// How long one command may take.
    pub timeout: Duration,
}

impl Default for NodeEvidenceOptions {
    fn default() -> Self {
        NodeEvidenceOptions {
            control_plane: false,
            disk: vec![
                ("/var".into(), DiskPurpose::Packages),
                ("/var/backups/kupgrade".into(), DiskPurpose::Backups),
            ],
            manifests_dir: "/etc/kubernetes/manifests".into(),
            kubelet_conf: "/etc/kubernetes/kubelet.conf".into(),
            root: String::new(),
            node_addresses: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl NodeEvidenceOptions {
    /// The defaults for a control-plane node.
    pub fn control_plane() -> Self {
        NodeEvidenceOptions {
            control_plane: true,
            ..Default::default()
        }
    }

    /// Checks every path before it is put into a command.
    pub fn validate(&self) -> Result<(), PathError> {
        for (p, _) in &self.disk {
            validate_path(p)?;
        }
        validate_path(&self.manifests_dir)?;
        validate_path(&self.kubelet_conf)?;
        if !self.root.is_empty() {
            validate_path(&self.root)?;
        }
        Ok(())
    }

    fn file(&self, path: &str) -> String {
        format!("{}{path}", self.root.trim_end_matches('/'))
    }
}

/// A command's outcome as evidence: its stdout, or why there is none.
async fn run(
    runner: &dyn CommandRunner,
    node: &NodeName,
    spec: CommandSpec,
    timeout: Duration,
) -> Result<CommandOutput, Gathered<()>> {
    let shown = spec.to_string();
    match runner.output(node, &spec.timeout(timeout)).await {
        Ok(out) => Ok(out),
        Err(e) => {
            let reason = match &e {
                RunnerError::Connect { .. } => MissingReason::Unreachable,
                RunnerError::Auth { .. } | RunnerError::HostKey { .. } => {
                    MissingReason::NoNodeAccess
                }
                RunnerError::NotFound { .. } => MissingReason::NotSupported,
                _ => MissingReason::Failed,
            };
            Err(Gathered::missing(reason, format!("{shown} on {node}: {e}")))
        }
    }
}

/// Stdout of a command that must succeed; a non-zero exit is `Failed` with its stderr.
async fn stdout(
    runner: &dyn CommandRunner,
    node: &NodeName,
    spec: CommandSpec,
    timeout: Duration,
) -> Result<String, Gathered<()>> {
    let shown = spec.to_string();
    let out = run(runner, node, spec, timeout).await?;
    succeeded(&shown, node, &out)
}

/// The stdout of `out` when it succeeded; else why not, as [`stdout`] says.
fn succeeded(shown: &str, node: &NodeName, out: &CommandOutput) -> Result<String, Gathered<()>> {
    match out.status {
        ExitStatus::Code(0) => Ok(out.stdout_text()),
        ExitStatus::Code(127) => Err(Gathered::missing(
            MissingReason::NotSupported,
            format!("{shown} on {node}: not found"),
        )),
        status => Err(Gathered::missing(
            MissingReason::Failed,
            format!(
                "{shown} on {node}: {status:?}: {}",
                first_line(&String::from_utf8_lossy(&out.stderr))
            ),
        )),
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

fn retype<T>(g: Gathered<()>) -> Gathered<T> {
    match g {
        Gathered::Missing(m) => Gathered::Missing(m),
        Gathered::Found(()) => Gathered::default(),
    }
}

fn failed<T>(node: &NodeName, what: &str, message: impl std::fmt::Display) -> Gathered<T> {
    Gathered::missing(
        MissingReason::Failed,
        format!("{what} on {node}: {message}"),
    )
}

/// Reads one node's facts (see the [module](self)); each fact on its own. An option path
/// that cannot be put into a command is an error before anything runs.
pub async fn gather_node(
    runner: &dyn CommandRunner,
    node: &NodeName,
    options: &NodeEvidenceOptions,
) -> Result<NodeFacts, PathError> {
    options.validate()?;
    let t = options.timeout;
    let mut facts = NodeFacts::new(node.clone());
    facts.cgroup = match stdout(
        runner,
        node,
        CommandSpec::new("stat").args(["-fc", "%T", "/sys/fs/cgroup"]),
        t,
    )
    .await
    {
        Ok(text) if !text.trim().is_empty() => Gathered::Found(CgroupFacts {
            fs_type: text.trim().to_string(),
            fail_cgroup_v1: None,
        }),
        Ok(_) => failed(node, "stat -fc %T /sys/fs/cgroup", "no output"),
        Err(m) => retype(m),
    };
    facts.disk = disk(runner, node, options).await;
    let (packages, repositories) = packages(runner, node, options).await;
    facts.packages = packages;
    facts.repositories = repositories;
    if !options.control_plane {
        return Ok(facts);
    }
    let certs = CommandSpec::new("kubeadm")
        .args(["certs", "check-expiration", "-o", "json"])
        .sudo();
    facts.certificates = match stdout(runner, node, certs, t).await {
        Ok(text) => parse_certificates(&text).map_or_else(
            |e| failed(node, "kubeadm certs check-expiration", e),
            Gathered::Found,
        ),
        Err(m) => retype(m),
    };
    let etcd_yaml = options.file(&format!("{}/etcd.yaml", options.manifests_dir));
    let grep = CommandSpec::new("grep")
        .args(["-s", "-h", "image:"])
        .arg(etcd_yaml.clone())
        .sudo();
    facts.etcd = match run(runner, node, grep, t).await {
        Ok(out) if out.status == ExitStatus::Code(0) => match image_version(&out.stdout_text()) {
            Some(version) => Gathered::Found(EtcdFacts {
                version,
                healthy: None,
                db_size_bytes: None,
            }),
            None => failed(node, &etcd_yaml, "no image with a version tag"),
        },
        Ok(out) if out.status == ExitStatus::Code(2) => Gathered::missing(
            MissingReason::NotSupported,
            format!("{etcd_yaml} on {node}: not readable (no etcd static pod: external etcd?)"),
        ),
        Ok(out) => failed(node, &etcd_yaml, format!("grep image: {:?}", out.status)),
        Err(m) => retype(m),
    };
    let conf = options.file(&options.kubelet_conf);
    let grep = CommandSpec::new("grep")
        .args(["-s", "-h", "server:"])
        .arg(conf.clone())
        .sudo();
    facts.kubelet_server = match stdout(runner, node, grep, t).await {
        Ok(text) => match text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server:"))
            .map(|s| s.trim().trim_matches(['"', '\'']))
            .filter(|s| !s.is_empty())
        {
            Some(server) => Gathered::Found(KubeletServer {
                server: server.to_string(),
                node_addresses: options.node_addresses.clone(),
            }),
            None => failed(node, &conf, "no server: line"),
        },
        Err(m) => retype(m),
    };
    Ok(facts)
}

/// Free space of each directory, from `df -P -k`. A directory that does not exist yet (the
/// backups' before the first run) is where it will be created: the free space of its
/// nearest existing parent.
async fn disk(
    runner: &dyn CommandRunner,
    node: &NodeName,
    options: &NodeEvidenceOptions,
) -> Gathered<Vec<DiskSpace>> {
    let mut found = Vec::new();
    for (path, purpose) in &options.disk {
        let mut at = path.as_str();
        let text = loop {
            let spec = CommandSpec::new("df").args(["-P", "-k"]).arg(at);
            let out = match run(runner, node, spec.clone(), options.timeout).await {
                Ok(out) => out,
                Err(m) => return retype(m),
            };
            let parent = at.rfind('/').map(|i| if i == 0 { "/" } else { &at[..i] });
            match (out.status, parent) {
                (ExitStatus::Code(0), _) => break out.stdout_text(),
                (ExitStatus::Code(1), Some(parent))
                    if parent != at
                        && String::from_utf8_lossy(&out.stderr).contains("No such file") =>
                {
                    at = parent;
                }
                _ => match succeeded(&spec.to_string(), node, &out) {
                    Ok(t) => break t,
                    Err(m) => return retype(m),
                },
            }
        };
        match parse_df(&text) {
            Some(free_bytes) => found.push(DiskSpace {
                path: path.clone(),
                purpose: *purpose,
                free_bytes,
            }),
            None => return failed(node, &format!("df -P -k {path}"), "unexpected output"),
        }
    }
    Gathered::Found(found)
}

/// The free bytes in `df -P -k` output (one file system): the header, then
/// `Filesystem 1024-blocks Used Available Capacity Mounted-on`.
pub fn parse_df(text: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next()?;
    if !header.starts_with("Filesystem") {
        return None;
    }
    let row: Vec<&str> = lines.next()?.split_whitespace().collect();
    // The file system's name may hold spaces: count from the end.
    let available = row.get(row.len().checked_sub(3)?)?;
    available.parse::<u64>().ok()?.checked_mul(1024)
}

/// kubeadm's `CertificateExpirationInfo` from `kubeadm certs check-expiration -o json`
/// (kubeadm may print `[check-expiration]` lines first: the JSON starts at the first `{`).
pub fn parse_certificates(text: &str) -> Result<CertificateExpirationInfo, String> {
    let start = text.find('{').ok_or("no JSON in the output")?;
    let info: CertificateExpirationInfo =
        serde_json::from_str(text[start..].trim()).map_err(|e| e.to_string())?;
    if info.certificates.is_empty() && info.certificate_authorities.is_empty() {
        return Err("no certificates listed".into());
    }
    Ok(info)
}

/// The version tag of the first `image:` line (`registry.k8s.io/etcd:3.5.21-0`).
fn image_version(text: &str) -> Option<KubeVersion> {
    text.lines().find_map(|l| {
        let image = l.trim().trim_start_matches("- ").strip_prefix("image:")?;
        let image = image.trim().trim_matches(['"', '\'']);
        let image = image.split_once('@').map_or(image, |(i, _)| i);
        let last = image.rsplit('/').next()?;
        KubeVersion::parse(last.split_once(':')?.1).ok()
    })
}

/// The package managers tried, in order: the program, how it lists a package's versions, and
/// where its sources live.
const MANAGERS: [(&str, &[&str], &str); 3] = [
    ("apt-cache", &["madison"], "/etc/apt"),
    ("dnf", &["list", "--showduplicates"], "/etc/yum.repos.d"),
    (
        "zypper",
        &[
            "--non-interactive",
            "--no-refresh",
            "search",
            "-s",
            "--match-exact",
        ],
        "/etc/zypp/repos.d",
    ),
];

/// The versions each repository offers for kubeadm, kubelet and kubectl, and the package
/// source lines naming a Kubernetes package host.
async fn packages(
    runner: &dyn CommandRunner,
    node: &NodeName,
    options: &NodeEvidenceOptions,
) -> (
    Gathered<Vec<PackageAvailability>>,
    Gathered<Vec<RepositoryEntry>>,
) {
    let mut chosen = None;
    let mut offered = Vec::new();
    for (program, args, dir) in MANAGERS {
        let spec = CommandSpec::new(program)
            .args(args.iter().copied())
            .arg(PACKAGES[0]);
        match stdout(runner, node, spec, options.timeout).await {
            Ok(text) => {
                chosen = Some((program, args, dir));
                offered.push((PACKAGES[0], text));
                break;
            }
            Err(Gathered::Missing(m)) if m.reason == MissingReason::NotSupported => continue,
            Err(m) => return (retype(m.clone()), retype(m)),
        }
    }
    let Some((program, args, dir)) = chosen else {
        let m = Gathered::missing(
            MissingReason::NotSupported,
            format!("node {node}: none of apt-cache, dnf, zypper"),
        );
        return (retype(m.clone()), retype(m));
    };
    for package in &PACKAGES[1..] {
        let spec = CommandSpec::new(program)
            .args(args.iter().copied())
            .arg(*package);
        match stdout(runner, node, spec, options.timeout).await {
            Ok(text) => offered.push((package, text)),
            Err(m) => {
                let repos = repositories(runner, node, options, dir).await;
                return (retype(m), repos);
            }
        }
    }
    let mut found = Vec::new();
    for (package, text) in &offered {
        for (minor, versions) in parse_offered(program, package, text) {
            found.push(PackageAvailability {
                minor,
                package: package.to_string(),
                versions,
            });
        }
    }
    (
        Gathered::Found(found),
        repositories(runner, node, options, dir).await,
    )
}

/// The versions a package manager lists for `package`, by minor, newest last; the package
/// revision (`-1.1`, `-150500.1.1`) and an epoch (`1:`) are dropped.
pub fn parse_offered(
    program: &str,
    package: &str,
    text: &str,
) -> Vec<(kupgrade_core::Minor, Vec<KubeVersion>)> {
    let mut versions: Vec<KubeVersion> = Vec::new();
    for line in text.lines() {
        let raw = match program {
            "apt-cache" => {
                let cols: Vec<&str> = line.split('|').map(str::trim).collect();
                (cols.len() >= 3 && cols[0] == package).then(|| cols[1])
            }
            "dnf" => {
                let cols: Vec<&str> = line.split_whitespace().collect();
                (cols.len() >= 2 && cols[0].split('.').next() == Some(package)).then(|| cols[1])
            }
            _ => {
                let cols: Vec<&str> = line.split('|').map(str::trim).collect();
                (cols.len() >= 4 && cols[1] == package).then(|| cols[3])
            }
        };
        let Some(raw) = raw else { continue };
        let upstream = raw.split_once(':').map_or(raw, |(_, v)| v);
        let upstream = upstream.split_once('-').map_or(upstream, |(v, _)| v);
        if let Ok(v) = KubeVersion::parse(upstream)
            && !versions.contains(&v)
        {
            versions.push(v);
        }
    }
    versions.sort();
    let mut out: Vec<(kupgrade_core::Minor, Vec<KubeVersion>)> = Vec::new();
    for v in versions {
        match out.last_mut() {
            Some((m, vs)) if *m == v.minor() => vs.push(v),
            _ => out.push((v.minor(), vec![v])),
        }
    }
    out
}

/// The active source lines in `dir` naming a Kubernetes package host (the new
/// `pkgs.k8s.io` and the legacy hosts of the facts table).
async fn repositories(
    runner: &dyn CommandRunner,
    node: &NodeName,
    options: &NodeEvidenceOptions,
    dir: &str,
) -> Gathered<Vec<RepositoryEntry>> {
    let mut hosts = vec!["pkgs.k8s.io".to_string()];
    hosts.extend(
        FactTables::embedded()
            .legacy_package_hosts()
            .iter()
            .map(|h| h.host.clone())
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            }),
    );
    let mut spec = CommandSpec::new("grep").args(["-r", "-s", "-H", "-F"]);
    for h in &hosts {
        spec = spec.arg("-e").arg(h.clone());
    }
    let dir = options.file(dir);
    let shown = format!("grep for package hosts in {dir}");
    let out = match run(runner, node, spec.arg(dir.clone()), options.timeout).await {
        Ok(out) => out,
        Err(m) => return retype(m),
    };
    match out.status {
        ExitStatus::Code(0 | 1) => {}
        ExitStatus::Code(127) => {
            return Gathered::missing(
                MissingReason::NotSupported,
                format!("{shown} on {node}: grep not found"),
            );
        }
        _ if out.stdout.is_empty() => {
            return failed(node, &shown, format!("{:?}", out.status));
        }
        _ => {}
    }
    let text = out.stdout_text();
    Gathered::Found(
        text.lines()
            .filter_map(|l| {
                let (file, line) = l.split_once(':')?;
                let line = line.trim();
                (!line.starts_with('#')).then(|| RepositoryEntry {
                    file: file
                        .strip_prefix(options.root.trim_end_matches('/'))
                        .unwrap_or(file)
                        .to_string(),
                    line: line.to_string(),
                })
            })
            .collect(),
    )
}

/// Reads every node's facts, 16 at a time, in the order given.
pub async fn gather_nodes(
    runner: &dyn CommandRunner,
    nodes: &[(NodeName, NodeEvidenceOptions)],
) -> Result<Vec<NodeFacts>, PathError> {
    for (_, o) in nodes {
        o.validate()?;
    }
    // The futures made first, not by a closure over the stream: a caller's future stays
    // `Send` (a closure's higher-ranked lifetimes defeat the compiler's proof of it).
    let futures: Vec<_> = nodes
        .iter()
        .map(|(n, o)| gather_node(runner, n, o))
        .collect();
    let results: Vec<_> = stream::iter(futures)
        .buffered(CONCURRENT_NODES)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Puts node facts into `evidence`: a node already there (the API's container runtime)
/// keeps what it has and gains what was missing.
pub fn merge_node_facts(evidence: &mut Evidence, facts: Vec<NodeFacts>) {
    fn fill<T>(have: &mut Gathered<T>, new: Gathered<T>) {
        if have.found().is_none()
            && (new.found().is_some()
                || matches!(have, Gathered::Missing(m) if m.reason == MissingReason::NotGathered))
        {
            *have = new;
        }
    }
    for f in facts {
        match evidence.nodes.iter_mut().find(|n| n.node == f.node) {
            None => evidence.nodes.push(f),
            Some(n) => {
                fill(&mut n.runtime, f.runtime);
                fill(&mut n.cgroup, f.cgroup);
                fill(&mut n.disk, f.disk);
                fill(&mut n.etcd, f.etcd);
                fill(&mut n.certificates, f.certificates);
                fill(&mut n.kubelet_server, f.kubelet_server);
                fill(&mut n.packages, f.packages);
                fill(&mut n.repositories, f.repositories);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_free_space_counts_from_the_end_of_the_row() {
        let out = "Filesystem     1024-blocks    Used Available Capacity Mounted on\n\
                   /dev/mapper/vg root  51474912 1234 40000 3% /var\n";
        assert_eq!(parse_df(out), Some(40000 * 1024));
        assert_eq!(parse_df("df: /nope: No such file or directory\n"), None);
        assert_eq!(parse_df("Filesystem 1024-blocks\n"), None);
    }

    #[test]
    fn offered_versions_per_manager_drop_revision_and_epoch() {
        let zypper = "Loading repository data...\n\
            S | Name    | Type    | Version           | Arch   | Repository\n\
            --+---------+---------+-------------------+--------+-----------\n\
              | kubeadm | package | 1.33.5-150500.1.1 | x86_64 | kubernetes\n\
            i | kubeadm | package | 1.33.4-150500.1.1 | x86_64 | kubernetes\n\
              | kubectl | package | 1.33.9-150500.1.1 | x86_64 | kubernetes\n";
        let offered = parse_offered("zypper", "kubeadm", zypper);
        assert_eq!(offered.len(), 1);
        assert_eq!(offered[0].0.to_string(), "1.33");
        let shown: Vec<String> = offered[0].1.iter().map(|v| v.to_string()).collect();
        assert_eq!(shown, ["v1.33.4", "v1.33.5"]);
        let apt =
            " kubeadm | 1:1.32.1-1.1 | https://pkgs.k8s.io/core:/stable:/v1.32/deb  Packages\n";
        assert_eq!(
            parse_offered("apt-cache", "kubeadm", apt)[0].1[0].to_string(),
            "v1.32.1"
        );
        let dnf = "Last metadata expiration check: 0:01:02 ago.\nAvailable Packages\n\
                   kubeadm.x86_64  1.31.0-150500.1.1  kubernetes\nkubeadm-extra.x86_64 9.9.9-1 other\n";
        let offered = parse_offered("dnf", "kubeadm", dnf);
        assert_eq!(offered.len(), 1, "{offered:?}");
        assert!(
            parse_offered(
                "apt-cache",
                "kubeadm",
                "N: Unable to locate package kubeadm\n"
            )
            .is_empty()
        );
    }

    #[test]
    fn certificates_start_at_the_json_and_need_entries() {
        let text = "[check-expiration] Reading configuration from the cluster...\n\
            {\"kind\":\"CertificateExpirationInfo\",\"apiVersion\":\"output.kubeadm.k8s.io/v1alpha3\",\
            \"certificates\":[{\"name\":\"apiserver\",\"expirationDate\":\"2027-01-01T00:00:00Z\",\
            \"residualTime\":86400,\"externallyManaged\":false,\"caName\":\"ca\",\"missing\":false}],\
            \"certificateAuthorities\":[]}\n";
        let info = parse_certificates(text).unwrap();
        assert_eq!(info.certificates[0].residual_time_seconds, 86400);
        assert_eq!(info.certificates[0].ca_name.as_deref(), Some("ca"));
        assert!(parse_certificates("error: no kubeadm-config\n").is_err());
        assert!(
            parse_certificates(r#"{"certificates":[],"certificateAuthorities":[]}"#)
                .unwrap_err()
                .contains("no certificates")
        );
    }

    #[test]
    fn etcd_version_from_the_image_tag_not_a_registry_port() {
        let v = image_version("    image: registry.local:5000/etcd:3.5.21-0@sha256:abc\n").unwrap();
        assert_eq!(v.to_string(), "v3.5.21-0");
        assert_eq!(image_version("    image: registry.local:5000/etcd\n"), None);
    }

    #[test]
    fn merging_keeps_what_the_api_found_and_adds_the_rest() {
        let node: NodeName = "w-1".parse().unwrap();
        let mut evidence = Evidence::default();
        let mut api = NodeFacts::new(node.clone());
        api.runtime = Gathered::Found("containerd://1.7.24".into());
        evidence.nodes.push(api);
        let mut from_node = NodeFacts::new(node.clone());
        from_node.runtime = Gathered::missing(MissingReason::NotSupported, "crictl absent");
        from_node.cgroup = Gathered::Found(CgroupFacts {
            fs_type: "cgroup2fs".into(),
            fail_cgroup_v1: None,
        });
        let other = NodeFacts::new("w-2".parse().unwrap());
        merge_node_facts(&mut evidence, vec![from_node, other]);
        assert_eq!(evidence.nodes.len(), 2);
        let w1 = evidence.node("w-1").unwrap();
        assert_eq!(
            w1.runtime.found().map(String::as_str),
            Some("containerd://1.7.24")
        );
        assert!(!w1.cgroup.found().unwrap().is_v1());
    }
}
