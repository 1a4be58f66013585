//! Checking declarative rules against a cluster state.
use super::*;

/// Where a checked version was found.
#[derive(Clone, Copy)]
enum Place<'a> {
    Node(&'a Node),
    Cluster,
}

impl Place<'_> {
    fn subject(self, c: Component) -> String {
        match self {
            Place::Node(n) => format!("{c} on node {:?}", n.name.as_str()),
            Place::Cluster => match c {
                Component::Kubectl => "the cluster's kubectl".into(),
                Component::KubeProxy => "the kube-proxy DaemonSet".into(),
                Component::CoreDns => "the CoreDNS Deployment".into(),
                Component::Etcd => "the external etcd".into(),
                other => other.to_string(),
            },
        }
    }
    fn node(self) -> Option<crate::NodeName> {
        match self {
            Place::Node(n) => Some(n.name.clone()),
            Place::Cluster => None,
        }
    }
}

fn minors(n: i64) -> String {
    if n == 1 {
        "1 minor".into()
    } else {
        format!("{n} minors")
    }
}

fn minus(m: Minor, n: u32) -> Minor {
    Minor::new(m.major(), m.minor().saturating_sub(u64::from(n)))
}

impl Rule {
    /// The components the rule checks (the one at fault in its violations).
    pub fn components(&self) -> &[Component] {
        match &self.check {
            Check::MaxLag(r) => std::slice::from_ref(&r.component),
            Check::SameMinor(r) => std::slice::from_ref(&r.component),
            Check::NodeSkew(r) => std::slice::from_ref(&r.component),
            Check::MinorRange(r) => std::slice::from_ref(&r.component),
            Check::NotEndOfLife(r) if r.components.is_empty() => KUBERNETES_LINE,
            Check::NotEndOfLife(r) => &r.components,
        }
    }

    fn violation(
        &self,
        place: Place<'_>,
        c: Component,
        found: &KubeVersion,
        fact: String,
        requirement: String,
        allowed: String,
    ) -> Violation {
        let requirement = self.description.as_deref().unwrap_or(&requirement);
        let message = format!(
            "{} is {found}, {fact}; {requirement} (allowed: {allowed})",
            place.subject(c)
        );
        Violation::new(
            self.id.as_str(),
            self.severity,
            c,
            found.clone(),
            allowed,
            message,
        )
        .on_node(place.node())
    }

    /// Checks the version of component `c` found at `place`.
    fn check(
        &self,
        cx: &Context<'_>,
        place: Place<'_>,
        c: Component,
        found: &KubeVersion,
        out: &mut Vec<Violation>,
    ) {
        let s = cx.summary;
        let apiserver = |which: Apiserver| match which {
            Apiserver::Newest => s.apiserver_max.as_ref(),
            Apiserver::Oldest => s.apiserver_min.as_ref(),
        };
        let m = found.minor();
        let finding = match &self.check {
            Check::MaxLag(r) => apiserver(r.apiserver).and_then(|api| max_lag(r, m, api)),
            Check::SameMinor(r) => apiserver(r.apiserver).and_then(|api| same_minor(r, m, api)),
            Check::NodeSkew(r) => match place {
                Place::Node(node) => node_skew(r, cx, node, m),
                _ => None,
            },
            Check::MinorRange(r) => minor_range(r, m),
            Check::NotEndOfLife(r) => not_end_of_life(r, c, m),
        };
        if let Some(f) = finding {
            out.push(self.violation(place, c, found, f.fact, f.requirement, f.allowed));
        }
    }
}

/// What one check found wrong: the fact, the requirement it breaks (unless the rule has its
/// own description) and what is allowed.
struct Finding {
    fact: String,
    requirement: String,
    allowed: String,
}

/// `max-lag`: `m` at most `r.minors` behind the API server `api`.
fn max_lag(r: &MaxLag, m: Minor, api: &KubeVersion) -> Option<Finding> {
    let lag = m.skew_to(api.minor());
    if lag <= i64::from(r.minors) {
        return None;
    }
    let allowed = MinorRange {
        min: Some(minus(api.minor(), r.minors)),
        max: None,
    };
    Some(Finding {
        fact: format!(
            "{} behind the {} kube-apiserver ({api})",
            minors(lag),
            r.apiserver
        ),
        requirement: if r.minors == 0 {
            format!(
                "{} may not be behind the {} kube-apiserver",
                r.component, r.apiserver
            )
        } else {
            format!(
                "{} may be at most {} behind the {} kube-apiserver",
                r.component,
                minors(r.minors.into()),
                r.apiserver
            )
        },
        allowed: allowed.to_string(),
    })
}

/// `same-minor`: `m` at the minor of the API server `api`.
fn same_minor(r: &SameMinor, m: Minor, api: &KubeVersion) -> Option<Finding> {
    if m == api.minor() {
        return None;
    }
    let d = m.skew_to(api.minor());
    let (n, way) = if d > 0 {
        (d, "behind")
    } else {
        (-d, "ahead of")
    };
    Some(Finding {
        fact: format!(
            "{} {way} the {} kube-apiserver ({api})",
            minors(n),
            r.apiserver
        ),
        requirement: format!(
            "{} must be at the minor of the {} kube-apiserver",
            r.component, r.apiserver
        ),
        allowed: api.minor().to_string(),
    })
}

/// `node-skew`: `m` within `r.max` minors of the other component on `node`.
fn node_skew(r: &NodeSkew, cx: &Context<'_>, node: &Node, m: Minor) -> Option<Finding> {
    let other = if r.other == Component::KubeProxy {
        cx.state.kube_proxy_on(node)
    } else {
        node.versions.get(r.other)
    }?;
    let om = other.minor();
    let d = om.skew_to(m);
    if d.abs() <= i64::from(r.max) {
        return None;
    }
    let allowed = MinorRange::new(
        minus(om, r.max),
        Minor::new(om.major(), om.minor() + u64::from(r.max)),
    );
    let (n, way) = if d > 0 { (d, "newer") } else { (-d, "older") };
    let requirement = if r.max == 0 {
        format!(
            "{} must be at the minor of the {} on its node",
            r.component, r.other
        )
    } else {
        format!(
            "{} must be within {} of the {} on its node",
            r.component,
            minors(r.max.into()),
            r.other
        )
    };
    Some(Finding {
        fact: format!(
            "{} {way} than the {} beside it ({other})",
            minors(n),
            r.other
        ),
        requirement,
        allowed: allowed.to_string(),
    })
}

/// `minor-range`: `m` within the rule's range.
fn minor_range(r: &MinorRangeRule, m: Minor) -> Option<Finding> {
    let range = r.range();
    if range.contains(m) {
        return None;
    }
    let fact = match (r.min, r.max) {
        (Some(lo), _) if m < lo => format!("older than {lo}"),
        _ => format!("newer than {}", r.max.unwrap_or(m)),
    };
    Some(Finding {
        fact,
        requirement: format!("{} must be at {range}", r.component),
        allowed: range.to_string(),
    })
}

/// `not-end-of-life`: `m` (of component `c`) still supported on the rule's date.
fn not_end_of_life(r: &NotEndOfLife, c: Component, m: Minor) -> Option<Finding> {
    let calendar = ReleaseCalendar::embedded();
    let answer = calendar.status(m, r.date);
    let SupportStatus::EndOfLife { since } = answer.status else {
        return None;
    };
    let estimated = if answer.estimated { " (estimated)" } else { "" };
    let supported = calendar.supported_minors(r.date);
    let allowed = match (supported.first(), supported.last()) {
        (Some(lo), Some(hi)) => MinorRange::new(*lo, *hi).to_string(),
        _ => "none known".to_string(),
    };
    Some(Finding {
        fact: format!("and {m} reached its end of life on {since}{estimated}"),
        requirement: if r.components.is_empty() {
            format!("no component may run an end-of-life minor on {}", r.date)
        } else {
            format!("{c} may not run an end-of-life minor on {}", r.date)
        },
        allowed,
    })
}

impl SkewPolicy for RulePolicy {
    fn name(&self) -> &str {
        &self.name
    }

    /// The label keys of the rules' node selectors.
    fn label_keys(&self) -> LabelKeys {
        LabelKeys::only(
            self.rules
                .iter()
                .filter_map(|r| r.nodes.as_ref())
                .flat_map(|n| n.labels.keys().cloned()),
        )
    }

    fn check_cluster(&self, cx: &Context<'_>, out: &mut Vec<Violation>) {
        let state = cx.state;
        for rule in &self.rules {
            if rule.nodes.is_some() {
                continue;
            }
            for &c in rule.components() {
                let found = match c {
                    Component::Kubectl => state.kubectl.as_ref(),
                    Component::KubeProxy => state.addons.kube_proxy.as_ref(),
                    Component::CoreDns => state.addons.coredns.as_ref(),
                    Component::Etcd => match &state.etcd {
                        EtcdTopology::External { version, .. } => version.as_ref(),
                        EtcdTopology::Stacked => None,
                    },
                    _ => None,
                };
                if let Some(found) = found {
                    rule.check(cx, Place::Cluster, c, found, out);
                }
            }
        }
    }

    fn check_node(&self, cx: &Context<'_>, node: &Node, out: &mut Vec<Violation>) {
        for rule in &self.rules {
            if rule.nodes.as_ref().is_some_and(|sel| !sel.matches(node)) {
                continue;
            }
            for &c in rule.components() {
                let found = match &rule.check {
                    // Skew on a node is about what runs there, the add-on's kube-proxy included.
                    Check::NodeSkew(_) if c == Component::KubeProxy => cx.state.kube_proxy_on(node),
                    _ => node.versions.get(c),
                };
                if let Some(found) = found {
                    rule.check(cx, Place::Node(node), c, found, out);
                }
            }
        }
    }
}
