//! The upstream Kubernetes version skew policy.

use smol_str::{SmolStr, ToSmolStr, format_smolstr};

use super::{Context, LabelKeys, MinorRange, Severity, SkewPolicy, Summary, Violation};
use crate::{ClusterState, Component, EtcdTopology, KubeVersion, Minor, Node};

/// The Kubernetes version skew policy, as documented at a given Kubernetes release.
///
/// Rules (ids in brackets), as documented since 1.28:
/// - `upstream/ha-apiserver`: the newest and oldest kube-apiserver are within one minor.
/// - `upstream/control-plane`: kube-controller-manager, kube-scheduler and
///   cloud-controller-manager are not newer than the oldest kube-apiserver and at most one
///   minor older than the newest.
/// - `upstream/kubelet`: not newer than the oldest kube-apiserver, at most three minors older
///   than the newest (two when the kubelet is older than 1.25).
/// - `upstream/kube-proxy`: the same bounds against kube-apiserver; and
///   `upstream/kube-proxy-kubelet`: within three minors of the kubelet on its node, either way
///   (two when kube-proxy is older than 1.25).
/// - `upstream/kubectl`: the cluster's kubectl within one minor of every kube-apiserver (an
///   error); kubectl installed on a node outside that range is a warning, since node agents do
///   not use it.
/// - `upstream/etcd`, `upstream/coredns`: older than what kubeadm ships for the control
///   plane's minor is a warning.
/// - `upstream/kubeadm`: a node's kubeadm older than its control plane or kubelet, or more than
///   one minor newer, is a warning (kubeadm supports its own minor and the one before).
///
/// Before 1.28 the page allowed kubelets and kube-proxy two minors behind, and required
/// kube-proxy to match its kubelet's minor: [`UpstreamPolicy::as_documented_in`] gives those
/// editions.
///
/// On large clusters (from [`UpstreamPolicy::PARALLEL_FROM`] nodes) `evaluate` and `errors`
/// share the nodes out to several threads, as many as the machine has (at most
/// [`UpstreamPolicy::MAX_THREADS`]); [`UpstreamPolicy::with_threads`] sets the number. The
/// result is the same, in the same order, however many threads there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamPolicy {
    edition: Minor,
    endpoint: ControlPlaneEndpoint,
    threads: Option<usize>,
}

/// Which API servers the controller manager, scheduler and cloud controller manager talk to.
///
/// The upstream page says these components must not be newer than the API servers *they
/// communicate with*. kubeadm points their kubeconfigs at the API server on their own node, which
/// is what lets `kubeadm upgrade apply` move one control-plane node at a time; behind a load
/// balancer, every API server counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ControlPlaneEndpoint {
    /// Each talks to the API server on its own node (kubeadm's layout).
    #[default]
    Local,
    /// Each may reach any API server (a load-balanced endpoint): judged against all of them.
    LoadBalanced,
}

impl Default for UpstreamPolicy {
    fn default() -> Self {
        UpstreamPolicy::new()
    }
}

const V1_25: Minor = Minor::new(1, 25);
const V1_28: Minor = Minor::new(1, 28);

impl UpstreamPolicy {
    /// The policy as documented today.
    pub fn new() -> Self {
        UpstreamPolicy {
            edition: V1_28,
            endpoint: ControlPlaneEndpoint::Local,
            threads: None,
        }
    }

    /// The same policy for control planes whose components use the given endpoint.
    pub fn with_endpoint(mut self, endpoint: ControlPlaneEndpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// The policy as documented for Kubernetes `minor` (editions differ before 1.28).
    pub fn as_documented_in(minor: Minor) -> Self {
        UpstreamPolicy {
            edition: if minor >= V1_28 {
                V1_28
            } else {
                Minor::new(1, 27)
            },
            endpoint: ControlPlaneEndpoint::Local,
            threads: None,
        }
    }

    /// The number of nodes from which `evaluate` and `errors` use several threads.
    pub const PARALLEL_FROM: usize = 16_384;
    /// The most threads `evaluate` and `errors` use by default.
    pub const MAX_THREADS: usize = 4;

    /// The same policy, judging large clusters with `threads` threads (1: on the caller's
    /// thread only). By default: the machine's parallelism, at most
    /// [`UpstreamPolicy::MAX_THREADS`].
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads.max(1));
        self
    }

    /// How many threads judge `nodes` nodes.
    fn threads_for(&self, nodes: usize) -> usize {
        static MACHINE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        if nodes < Self::PARALLEL_FROM {
            return 1;
        }
        self.threads.unwrap_or_else(|| {
            *MACHINE.get_or_init(|| {
                std::thread::available_parallelism()
                    .map_or(1, usize::from)
                    .min(Self::MAX_THREADS)
            })
        })
    }

    /// How many minors a kubelet or kube-proxy at `m` may lag the API server.
    fn node_lag(&self, m: Minor) -> i64 {
        if self.edition >= V1_28 && m >= V1_25 {
            3
        } else {
            2
        }
    }
}

fn range(min: Minor, lag_from: Minor, lag: i64) -> MinorRange {
    let lo = Minor::new(
        lag_from.major(),
        lag_from.minor().saturating_sub(lag as u64),
    );
    MinorRange::new(lo, min)
}

fn minors(n: i64) -> String {
    if n == 1 {
        "1 minor".into()
    } else {
        format!("{n} minors")
    }
}

impl SkewPolicy for UpstreamPolicy {
    fn name(&self) -> &str {
        "upstream"
    }

    /// The upstream policy reads no labels.
    fn label_keys(&self) -> LabelKeys {
        LabelKeys::none()
    }

    fn check_cluster(&self, cx: &Context<'_>, out: &mut Vec<Violation>) {
        let s = cx.summary;
        let (Some(lo), Some(hi)) = (&s.apiserver_min, &s.apiserver_max) else {
            return;
        };
        let (lo_m, hi_m) = (lo.minor(), hi.minor());
        if lo_m.skew_to(hi_m) > 1 {
            for n in s.control_plane_nodes(cx.state) {
                if let Some(v) = &n.versions.kube_apiserver
                    && v.minor() == lo_m
                {
                    out.push(Violation::new("upstream/ha-apiserver", Severity::Error, Component::KubeApiserver, v.clone(), MinorRange::new(hi_m.prev().unwrap_or(hi_m), hi_m).to_smolstr(), format!(
                                "kube-apiserver on node {:?} is {v}, {} older than the newest kube-apiserver ({hi}); API servers of one cluster must be within 1 minor",
                                n.name.as_str(),
                                minors(v.minor().skew_to(hi_m)),
                            )).on_node(n.name.clone()));
                }
            }
        }
        if let Some(kubectl) = &cx.state.kubectl
            && let Some(v) = kubectl_violation(kubectl, lo, hi, None, Severity::Error, None)
        {
            out.push(v);
        }
        if let Some(kp) = &cx.state.addons.kube_proxy {
            self.kube_proxy_vs_apiserver(kp, lo, hi, None, out);
        }
        let bundle = crate::bundled::bundled(lo_m);
        if let (Some(b), Some(found)) = (bundle, &cx.state.addons.coredns)
            && let Some(want) = &b.coredns
            && found.release() < want.release()
        {
            out.push(bundled_warning(Component::CoreDns, None, found, want, lo_m));
        }
        if let Some(want) = bundle.and_then(|b| b.etcd.as_ref()) {
            match &cx.state.etcd {
                EtcdTopology::Stacked => {
                    for n in s.control_plane_nodes(cx.state) {
                        if let Some(found) = &n.versions.etcd
                            && found < want
                        {
                            out.push(bundled_warning(Component::Etcd, Some(n), found, want, lo_m));
                        }
                    }
                }
                EtcdTopology::External {
                    version: Some(found),
                    ..
                } if found < want => {
                    out.push(bundled_warning(Component::Etcd, None, found, want, lo_m));
                }
                EtcdTopology::External { .. } => {}
            }
        }
    }

    fn check_node(&self, cx: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
        self.node_rules(cx, node, node.is_control_plane(), None, true, out);
    }

    /// The same violations as the default: cluster-wide ones, then node by node.
    ///
    /// On a large cluster the cost is reading the nodes, not judging them, so this saves reads:
    /// it does not read each node's roles a second time ([`Summary::of`] already found the
    /// control plane), and for each node outside the control plane it first computes the
    /// verdicts alone, without words, in a loop short enough that the processor overlaps the
    /// memory reads of several nodes. Only the nodes that break a rule go through the rules
    /// that write violations.
    fn evaluate(&self, state: &ClusterState) -> Vec<Violation> {
        self.evaluate_with(state, true)
    }

    /// The same errors as the default, without building the warnings first (a run checks the
    /// live cluster's errors before every step; on large clusters kubectl warnings are many).
    fn errors(&self, state: &ClusterState) -> Vec<Violation> {
        let mut v = self.evaluate_with(state, false);
        v.retain(|v| v.severity == Severity::Error);
        v
    }
}

impl UpstreamPolicy {
    /// [`SkewPolicy::evaluate`]; without `warnings`, the per-node warning rules (kubectl,
    /// kubeadm) are skipped.
    fn evaluate_with(&self, state: &ClusterState, warnings: bool) -> Vec<Violation> {
        let nodes = &state.nodes[..];
        let threads = self.threads_for(nodes.len());
        // Equal parts, in order: part `k` holds the nodes from `starts[k]`.
        let part = nodes.len().div_ceil(threads).max(1);
        let parts: Vec<(usize, &[Node])> = nodes
            .chunks(part)
            .enumerate()
            .map(|(k, c)| (k * part, c))
            .collect();
        let summary = in_parts(&parts, |&(at, c)| Summary::of_nodes(c, at))
            .into_iter()
            .reduce(Summary::merge)
            .unwrap_or_default();
        let cx = Context {
            state,
            summary: &summary,
        };
        let mut out = Vec::new();
        self.check_cluster(&cx, &mut out);
        let (Some(lo), Some(hi)) = (&summary.apiserver_min, &summary.apiserver_max) else {
            // No API server: the per-node rules have nothing to compare with.
            return out;
        };
        let bounds = Bounds::new(self, lo.minor(), hi.minor(), kubectl_range(lo, hi));
        let found = in_parts(&parts, |&(at, c)| {
            // Texts of its own for each thread: sharing one would make the threads take turns
            // at its reference count.
            let texts = KubectlTexts::new(lo, hi);
            let mut out = Vec::new();
            let first = summary.control_plane.partition_point(|&i| i < at);
            let mut control_plane = summary.control_plane[first..].iter().peekable();
            for (i, node) in c.iter().enumerate() {
                let is_cp = control_plane.next_if(|&&cp| cp == at + i).is_some();
                if !is_cp && self.node_is_clean(state, node, &bounds, warnings) {
                    continue;
                }
                // While the node is in cache: the words.
                self.node_rules(&cx, node, is_cp, Some(&texts), warnings, &mut out);
            }
            out
        });
        let mut parts = found.into_iter();
        let mut all = parts.next().unwrap_or_default();
        if !out.is_empty() {
            // Cluster-wide violations (rare) go first.
            all.splice(0..0, out);
        }
        all.reserve(parts.as_slice().iter().map(Vec::len).sum());
        for mut part in parts {
            all.append(&mut part);
        }
        all
    }
}

/// `f` of each part, in order: the first on this thread, the others each on a thread of its
/// own.
fn in_parts<P: Sync, R: Send>(parts: &[P], f: impl Fn(&P) -> R + Sync) -> Vec<R> {
    let Some((first, rest)) = parts.split_first() else {
        return Vec::new();
    };
    if rest.is_empty() {
        return vec![f(first)];
    }
    std::thread::scope(|s| {
        let f = &f;
        let others: Vec<_> = rest.iter().map(|p| s.spawn(move || f(p))).collect();
        let mut out = Vec::with_capacity(parts.len());
        out.push(f(first));
        for t in others {
            // A part's panic is the caller's (as on one thread).
            out.push(t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}

/// A minor as one number that orders as [`Minor`] does (major first), for comparisons
/// without branches.
#[inline]
fn key(m: Minor) -> u128 {
    (u128::from(m.major()) << 64) | u128::from(m.minor())
}

/// `lo <= k <= hi`, both tested.
#[inline]
fn within(k: u128, (lo, hi): (u128, u128)) -> bool {
    (k >= lo) & (k <= hi)
}

/// What [`UpstreamPolicy::node_is_clean`] compares a node with, computed once per summary.
struct Bounds {
    /// Where kubelets and kube-proxies may be: at 1.25 or newer under today's edition (three
    /// minors of lag), and otherwise (two).
    agent_new: (u128, u128),
    agent_old: (u128, u128),
    /// 1.25, when today's edition applies (else past every minor).
    new_from: u128,
    /// Where kubectl may be.
    kubectl: (u128, u128),
    /// Whether kube-proxy may be three minors from its kubelet (else it matches its minor).
    proxy_lag: bool,
}

impl Bounds {
    fn new(p: &UpstreamPolicy, lo_m: Minor, hi_m: Minor, kubectl: MinorRange) -> Self {
        let keys = |r: MinorRange| match (r.min, r.max) {
            (Some(a), Some(b)) => (key(a), key(b)),
            (a, b) => (a.map_or(0, key), b.map_or(u128::MAX, key)),
        };
        let new_edition = p.edition >= V1_28;
        Bounds {
            agent_new: keys(range(lo_m, hi_m, 3)),
            agent_old: keys(range(lo_m, hi_m, 2)),
            new_from: if new_edition { key(V1_25) } else { u128::MAX },
            kubectl: keys(kubectl),
            proxy_lag: new_edition,
        }
    }

    /// Whether a kubelet or kube-proxy at `m` is within the API servers' bounds.
    #[inline]
    fn agent_ok(&self, m: Minor) -> bool {
        let k = key(m);
        let r = if k >= self.new_from {
            self.agent_new
        } else {
            self.agent_old
        };
        within(k, r)
    }
}

impl UpstreamPolicy {
    /// Whether [`UpstreamPolicy::node_rules`] finds nothing on `node` as a node outside the
    /// control plane, given the API servers' bounds: the same verdicts, without their words
    /// (every test is made, without branching on the outcome). (The tests
    /// compare `evaluate` with `check_node`, which never takes this path, on generated
    /// clusters.)
    #[inline]
    fn node_is_clean(&self, state: &ClusterState, node: &Node, b: &Bounds, warnings: bool) -> bool {
        let v = &node.versions;
        let kubelet = v.kubelet.as_ref().map(KubeVersion::minor);
        let mut ok = kubelet.is_none_or(|m| b.agent_ok(m));
        ok &= v
            .kube_proxy
            .as_ref()
            .is_none_or(|kp| b.agent_ok(kp.minor()));
        if let (Some(kp), Some(km)) = (state.kube_proxy_on(node), kubelet) {
            let pm = kp.minor();
            ok &= if b.proxy_lag {
                km.skew_to(pm).abs() <= self.node_lag(pm)
            } else {
                pm == km
            };
        }
        if warnings {
            ok &= v
                .kubectl
                .as_ref()
                .is_none_or(|c| within(key(c.minor()), b.kubectl));
            if let Some(kubeadm) = &v.kubeadm
                && let Some(base) = v
                    .kube_apiserver
                    .as_ref()
                    .map(KubeVersion::minor)
                    .or(kubelet)
            {
                ok &= within(key(kubeadm.minor()), (key(base), key(base.next())));
            }
        }
        ok
    }
}

impl UpstreamPolicy {
    /// Controller-manager, scheduler and cloud-controller-manager on a control-plane node:
    /// at most one minor older than the API servers they talk to (`lo`..`hi`, or the node's
    /// own with a local endpoint) and never newer.
    #[inline]
    fn control_plane_components(
        &self,
        node: &Node,
        lo: &KubeVersion,
        hi: &KubeVersion,
        out: &mut Vec<Violation>,
    ) {
        let v = &node.versions;
        // The API servers these components talk to.
        let (lo, hi) = match (self.endpoint, &v.kube_apiserver) {
            (ControlPlaneEndpoint::Local, Some(local)) => (local, local),
            _ => (lo, hi),
        };
        let (lo_m, hi_m) = (lo.minor(), hi.minor());
        for c in [
            Component::KubeControllerManager,
            Component::KubeScheduler,
            Component::CloudControllerManager,
        ] {
            let Some(found) = v.get(c) else { continue };
            let m = found.minor();
            let allowed = MinorRange::new(hi_m.prev().unwrap_or(hi_m), lo_m);
            if !allowed.contains(m) {
                let which = match self.endpoint {
                    ControlPlaneEndpoint::Local => "the kube-apiserver on its node",
                    ControlPlaneEndpoint::LoadBalanced if m > lo_m => "the oldest kube-apiserver",
                    ControlPlaneEndpoint::LoadBalanced => "the newest kube-apiserver",
                };
                let why = if m > lo_m {
                    format!("newer than {which} ({lo})")
                } else {
                    format!("{} older than {which} ({hi})", minors(m.skew_to(hi_m)))
                };
                out.push(Violation::new("upstream/control-plane", Severity::Error, c, found.clone(), allowed.to_smolstr(), format!(
                            "{c} on node {:?} is {found}, {why}; it may be at most 1 minor older than kube-apiserver and never newer (allowed: {allowed})",
                            node.name.as_str()
                        )).on_node(node.name.clone()));
            }
        }
    }

    /// The per-node rules; `is_cp` says whether `node` is a control-plane node, `texts` are
    /// the kubectl texts of this summary when already built; without `warnings`, only the
    /// rules that can give errors.
    fn node_rules(
        &self,
        cx: &Context<'_>,
        node: &Node,
        is_cp: bool,
        texts: Option<&KubectlTexts>,
        warnings: bool,
        out: &mut Vec<Violation>,
    ) {
        let s = cx.summary;
        let (Some(lo), Some(hi)) = (&s.apiserver_min, &s.apiserver_max) else {
            return;
        };
        let (lo_m, hi_m) = (lo.minor(), hi.minor());
        let v = &node.versions;
        if is_cp {
            self.control_plane_components(node, lo, hi, out);
        }
        if let Some(kubelet) = &v.kubelet {
            let m = kubelet.minor();
            let lag = self.node_lag(m);
            let allowed = range(lo_m, hi_m, lag);
            if !allowed.contains(m) {
                let why = off_the_apiservers(m, lo, hi);
                out.push(Violation::new("upstream/kubelet", Severity::Error, Component::Kubelet, kubelet.clone(), allowed.to_smolstr(), format!(
                        "kubelet on node {:?} is {kubelet}, {why}; a kubelet at {m} may be at most {} older and never newer (allowed: {allowed})",
                        node.name.as_str(),
                        minors(lag)
                    )).on_node(node.name.clone()));
            }
        }
        if let Some(kp) = &v.kube_proxy {
            self.kube_proxy_vs_apiserver(kp, lo, hi, Some(node), out);
        }
        if let (Some(kp), Some(kubelet)) = (cx.state.kube_proxy_on(node), &v.kubelet) {
            let (pm, km) = (kp.minor(), kubelet.minor());
            // Only the verdict is computed for every node; the words only for a violation.
            let (ok, allowed, lag) = if self.edition >= V1_28 {
                let lag = self.node_lag(pm);
                let d = km.skew_to(pm).abs();
                let lo = Minor::new(km.major(), km.minor().saturating_sub(lag as u64));
                let hi = Minor::new(km.major(), km.minor() + lag as u64);
                (d <= lag, MinorRange::new(lo, hi), Some(lag))
            } else {
                (pm == km, MinorRange::new(km, km), None)
            };
            if !ok {
                let said = match lag {
                    Some(lag) => format!("within {} of", minors(lag)),
                    None => "the same minor as".to_string(),
                };
                out.push(Violation::new("upstream/kube-proxy-kubelet", Severity::Error, Component::KubeProxy, kp.clone(), allowed.to_smolstr(), format!(
                        "kube-proxy on node {:?} is {kp} but its kubelet is {kubelet}; kube-proxy must be {said} the kubelet beside it (allowed: {allowed})",
                        node.name.as_str()
                    )).on_node(node.name.clone()));
            }
        }
        if !warnings {
            return;
        }
        if let Some(kubectl) = &v.kubectl
            && let Some(v) =
                kubectl_violation(kubectl, lo, hi, Some(node), Severity::Warning, texts)
        {
            out.push(v);
        }
        if let Some(kubeadm) = &v.kubeadm {
            let km = kubeadm.minor();
            let base = v
                .kube_apiserver
                .as_ref()
                .or(v.kubelet.as_ref())
                .map(KubeVersion::minor);
            if let Some(base) = base {
                let allowed = MinorRange::new(base, base.next());
                if !allowed.contains(km) {
                    out.push(Violation::new("upstream/kubeadm", Severity::Warning, Component::Kubeadm, kubeadm.clone(), allowed.to_smolstr(), format!(
                            "kubeadm on node {:?} is {kubeadm}; kubeadm manages components of its own minor and the one before, and this node runs {base} (allowed: {allowed})",
                            node.name.as_str()
                        )).on_node(node.name.clone()));
                }
            }
        }
    }
}

impl UpstreamPolicy {
    fn kube_proxy_vs_apiserver(
        &self,
        kp: &KubeVersion,
        lo: &KubeVersion,
        hi: &KubeVersion,
        node: Option<&Node>,
        out: &mut Vec<Violation>,
    ) {
        let (lo_m, hi_m) = (lo.minor(), hi.minor());
        let m = kp.minor();
        let lag = self.node_lag(m);
        let allowed = range(lo_m, hi_m, lag);
        if allowed.contains(m) {
            return;
        }
        let why = off_the_apiservers(m, lo, hi);
        let where_ = match node {
            Some(n) => format!("kube-proxy on node {:?}", n.name.as_str()),
            None => "the kube-proxy DaemonSet".to_string(),
        };
        out.push(Violation::new("upstream/kube-proxy", Severity::Error, Component::KubeProxy, kp.clone(), allowed.to_smolstr(), format!(
                "{where_} is {kp}, {why}; kube-proxy at {m} may be at most {} older and never newer (allowed: {allowed})",
                minors(lag)
            )).on_node(node.map(|n| n.name.clone())));
    }
}

/// Why a node component at minor `m` is outside what the kube-apiservers (`lo` the oldest,
/// `hi` the newest) allow: newer than the oldest, or too far behind the newest.
fn off_the_apiservers(m: Minor, lo: &KubeVersion, hi: &KubeVersion) -> String {
    if m > lo.minor() {
        format!("newer than the oldest kube-apiserver ({lo})")
    } else {
        format!(
            "{} older than the newest kube-apiserver ({hi})",
            minors(m.skew_to(hi.minor()))
        )
    }
}

/// The minors kubectl may be at: within one minor of every API server.
fn kubectl_range(lo: &KubeVersion, hi: &KubeVersion) -> MinorRange {
    let (lo_m, hi_m) = (lo.minor(), hi.minor());
    MinorRange::new(hi_m.prev().unwrap_or(hi_m), lo_m.next())
}

/// The parts of a kubectl violation that depend only on the API servers. On a large fleet
/// this warning is frequent, so [`UpstreamPolicy`]'s `evaluate` builds them once and every
/// warning shares them (the sentence is written when someone reads it).
struct KubectlTexts {
    allowed: SmolStr,
    /// Everything after the version in the message.
    tail: SmolStr,
}

const KUBECTL_RULE: SmolStr = SmolStr::new_static("upstream/kubectl");

impl KubectlTexts {
    fn new(lo: &KubeVersion, hi: &KubeVersion) -> Self {
        let allowed = kubectl_range(lo, hi).to_smolstr();
        let tail = format_smolstr!(
            "; kubectl must be within 1 minor of every kube-apiserver ({lo} to {hi}) (allowed: {allowed})"
        );
        KubectlTexts { allowed, tail }
    }
}

fn kubectl_violation(
    kubectl: &KubeVersion,
    lo: &KubeVersion,
    hi: &KubeVersion,
    node: Option<&Node>,
    severity: Severity,
    texts: Option<&KubectlTexts>,
) -> Option<Violation> {
    if kubectl_range(lo, hi).contains(kubectl.minor()) {
        return None;
    }
    let built;
    let texts = match texts {
        Some(t) => t,
        None => {
            built = KubectlTexts::new(lo, hi);
            &built
        }
    };
    Some(match node {
        Some(node) => Violation::kubectl_on_node(
            KUBECTL_RULE,
            severity,
            node.name.clone(),
            kubectl.clone(),
            texts.allowed.clone(),
            texts.tail.clone(),
        ),
        None => Violation::new(
            KUBECTL_RULE,
            severity,
            Component::Kubectl,
            kubectl.clone(),
            texts.allowed.clone(),
            format!("the cluster's kubectl is {kubectl}{}", texts.tail),
        ),
    })
}

fn bundled_warning(
    c: Component,
    node: Option<&Node>,
    found: &KubeVersion,
    want: &KubeVersion,
    minor: Minor,
) -> Violation {
    let where_ = match node {
        Some(n) => format!("{c} on node {:?}", n.name.as_str()),
        None => c.to_string(),
    };
    Violation::new(
        format_smolstr!("upstream/{}", c.name()),
        Severity::Warning,
        c,
        found.clone(),
        format_smolstr!("{} or newer", want.to_plain_string()),
        format!(
            "{where_} is {}, older than the {} kubeadm ships for Kubernetes {minor}",
            found.to_plain_string(),
            want.to_plain_string()
        ),
    )
    .on_node(node.map(|n| n.name.clone()))
}

#[cfg(test)]
mod tests;
