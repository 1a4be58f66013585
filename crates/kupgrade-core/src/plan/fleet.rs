//! The planner's model of the cluster: every node as a class of equal content.
//!
//! [`Simulation`](super::Simulation) keeps every node whole, which is what tests and executors
//! replay plans on. The planner keeps instead, per node, its name, whether it is cordoned or
//! Ready, and its *class*: the content a policy judges (versions, roles, labels, OS; see the
//! contract on [`SkewPolicy`](crate::skew::SkewPolicy)). A step moves its nodes of one class to
//! one new class, found once per class and step, so applying a step to thousands of nodes is a
//! few integer writes per node, and a policy judges one node per class. Of the labels, only
//! those the policy reads ([`LabelKeys`]) and the zone count, so the 65,000 nodes of the plan
//! bench, each with its own hostname label, are a few hundred classes.
//!
//! Policies see a state that holds the cluster-wide fields and the control-plane nodes (their
//! [`Summary`] indexes those), which is all the contract lets them read besides the node they
//! judge. Both models apply a step's [`Change`] in one `apply_change` each, over their own
//! storage; the property tests replay every plan on both and check each state in full, so
//! they are held to the same answers.
use std::cell::OnceCell;
use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::{HashMap, HashMapExt};

use crate::skew::{LabelKeys, Summary};
use crate::{ClusterState, KubeVersion, Labels, Node, NodeName};

use super::change::{Change, install, move_addon_versions, set_control_plane, upgrade_kubectl};
use super::label_ids::LabelIds;
use super::simulate::{Effect, SimulationError, positions_of};
use super::step::{AddonVersions, Step};

/// The end of a chain of classes with one hash.
const END: u32 = u32::MAX;

/// Nodes alike in everything a policy may judge.
pub(crate) struct Class {
    /// A node with the class's content (its name, readiness and schedulability are any
    /// member's and mean nothing; its labels agree with every member's in the labels the
    /// policy reads and the zone).
    pub rep: Node,
    /// Members now.
    pub count: usize,
    /// The zone (an index into [`Fleet::zone_names`]).
    pub zone: u32,
    /// The number of the class's label map (equal maps, equal numbers).
    labels: u32,
    /// The hash of its content, its key in `Fleet::by_hash`.
    hash: u64,
    /// The next class with the same hash ([`END`]: none).
    next: u32,
    /// Whether it is in `Fleet::by_hash` (not freed).
    linked: bool,
    /// How many classes had this number before (numbers of classes left without members are
    /// used again).
    pub generation: u32,
    /// A class of the start, kept for the plan's summary even without members.
    pinned: bool,
}

/// A cluster state as classes: see the module documentation.
pub(crate) struct Fleet {
    /// The cluster-wide fields, with the control-plane nodes (whole) as its nodes.
    shell: ClusterState,
    /// The positions of `shell.nodes`, ascending.
    cp_at: Vec<usize>,
    names: Vec<NodeName>,
    /// Whether the node at a position is a control-plane node (a copy of it is in `shell`).
    is_cp: Vec<bool>,
    class: Vec<u32>,
    /// Where each node's own labels are (its class's are another member's, alike only in
    /// what the policy reads): below the start's node count, that node of the start; above,
    /// a provisioned node's in `added_labels`.
    origin: Vec<u32>,
    /// The nodes of the start (shared, not copied).
    start_nodes: crate::Nodes,
    /// The labels of provisioned nodes.
    added_labels: Vec<Labels>,
    cordoned: Vec<bool>,
    ready: Vec<bool>,
    /// Name to position, built when first needed (in-place plans look up only the control
    /// plane).
    index: OnceCell<HashMap<NodeName, usize>>,
    classes: Vec<Class>,
    /// The first class with a content hash; the others follow through [`Class::next`] (no
    /// list to allocate as classes come and go).
    by_hash: HashMap<u64, u32>,
    /// Numbers of classes without members, to use again (nodes that each have a class of
    /// their own would otherwise leave one dead class per node and step).
    free: Vec<u32>,
    zone_key: String,
    zone_names: Vec<Option<String>>,
    cordoned_count: usize,
    /// The classes and their member counts at the start.
    start: Vec<(u32, usize)>,
    /// How many nodes were cordoned at the start.
    start_cordoned: usize,
    /// The zone of each node at the start, in inventory order.
    start_zones: Vec<u32>,
    /// The classes the last step's nodes are in now, each with the position of one of them.
    touched: Vec<(u32, usize)>,
}

/// The part of a node a policy may judge (not its name, readiness, schedulability or SSH),
/// the labels by their map's number.
fn same(class: &Class, n: &Node, labels: u32) -> bool {
    class.labels == labels
        && class.rep.versions == n.versions
        && class.rep.roles == n.roles
        && class.rep.os == n.os
}

fn hash(n: &Node, labels: u32) -> u64 {
    // A fixed seed: the same classes in the same order on every run.
    let mut h = foldhash::fast::FixedState::with_seed(0).build_hasher();
    n.roles.hash(&mut h);
    labels.hash(&mut h);
    n.os.family.hash(&mut h);
    n.os.release.hash(&mut h);
    for (c, v) in n.versions.iter() {
        c.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

impl Fleet {
    /// The nodes of `state` by zone (the value of label `zone_key`), within a zone by name
    /// (`by_name`) or in inventory order; of their labels, the policy reads those `keys`
    /// names (nodes that differ in others are one class).
    pub(crate) fn new(
        state: &ClusterState,
        zone_key: &str,
        by_name: bool,
        keys: &LabelKeys,
    ) -> Fleet {
        let mut fleet = Fleet {
            shell: ClusterState {
                name: state.name.clone(),
                etcd: state.etcd.clone(),
                addons: state.addons.clone(),
                kubectl: state.kubectl.clone(),
                nodes: Vec::new().into(),
            },
            cp_at: Vec::new(),
            names: Vec::with_capacity(state.nodes.len()),
            is_cp: Vec::with_capacity(state.nodes.len()),
            class: Vec::with_capacity(state.nodes.len()),
            origin: Vec::with_capacity(state.nodes.len()),
            start_nodes: state.nodes.clone(),
            added_labels: Vec::new(),
            cordoned: Vec::with_capacity(state.nodes.len()),
            ready: Vec::with_capacity(state.nodes.len()),
            index: OnceCell::new(),
            classes: Vec::new(),
            by_hash: HashMap::new(),
            free: Vec::new(),
            zone_key: zone_key.to_string(),
            zone_names: Vec::new(),
            cordoned_count: 0,
            start: Vec::new(),
            start_cordoned: 0,
            start_zones: Vec::with_capacity(state.nodes.len()),
            touched: Vec::new(),
        };
        // Classes in inventory order. Classes are keyed by a hash that takes each distinct
        // label map's number instead of the map.
        let mut of = Vec::with_capacity(state.nodes.len());
        // What the model keeps of each node, read in this one pass over the nodes in their
        // order (reading them again in zone order would jump around memory).
        let mut names: Vec<NodeName> = Vec::with_capacity(state.nodes.len());
        let mut flags: Vec<(bool, bool)> = Vec::with_capacity(state.nodes.len());
        {
            let mut labels = LabelIds::new(keys, zone_key);
            let mut last: Option<u32> = None;
            // The zone of each label map.
            let mut zones: Vec<u32> = Vec::new();
            for n in &state.nodes {
                let (id, new) = labels.id(&n.labels);
                if new {
                    zones.push(fleet.zone_id(&n.labels));
                }
                fleet.start_zones.push(zones[id as usize]);
                let k = match last {
                    Some(k) if same(&fleet.classes[k as usize], n, id) => k,
                    _ => fleet.find_or_add(n, id),
                };
                of.push(k);
                last = Some(k);
                names.push(n.name.clone());
                flags.push((n.unschedulable, n.ready));
            }
        }
        // Zones in order of their names (nodes without the label first).
        let mut rank: Vec<u32> = (0..fleet.zone_names.len() as u32).collect();
        rank.sort_by(|&a, &b| fleet.zone_names[a as usize].cmp(&fleet.zone_names[b as usize]));
        let mut place = vec![0u32; rank.len()];
        for (r, &z) in rank.iter().enumerate() {
            place[z as usize] = r as u32;
        }
        let zone_of = |i: usize| place[fleet.classes[of[i] as usize].zone as usize];
        let mut order: Vec<usize> = (0..state.nodes.len()).collect();
        if by_name {
            order.sort_by(|&a, &b| {
                zone_of(a)
                    .cmp(&zone_of(b))
                    .then_with(|| names[a].cmp(&names[b]))
                    .then(a.cmp(&b))
            });
        } else {
            // Stable: inventory order within a zone.
            order.sort_by_key(|&i| zone_of(i));
        }
        for i in order {
            let k = of[i];
            let (cordoned, ready) = flags[i];
            fleet.classes[k as usize].count += 1;
            if cordoned {
                fleet.cordoned_count += 1;
            }
            let cp = fleet.classes[k as usize].rep.is_control_plane();
            if cp {
                fleet.cp_at.push(fleet.names.len());
                fleet.shell.nodes.push(state.nodes[i].clone());
            }
            fleet.is_cp.push(cp);
            fleet.names.push(names[i].clone());
            fleet.class.push(k);
            fleet.origin.push(i as u32);
            fleet.cordoned.push(cordoned);
            fleet.ready.push(ready);
        }
        for class in &mut fleet.classes {
            class.pinned = true;
        }
        fleet.start = fleet.present().map(|(k, c)| (k, c.count)).collect();
        fleet.start_cordoned = fleet.cordoned_count;
        fleet
    }

    /// The class with `n`'s content (hash `h`, label map number `labels`), if any.
    fn find(&self, h: u64, n: &Node, labels: u32) -> Option<u32> {
        let mut k = *self.by_hash.get(&h)?;
        while k != END {
            let class = &self.classes[k as usize];
            if same(class, n, labels) {
                return Some(k);
            }
            k = class.next;
        }
        None
    }

    /// Puts class `k` into the chain of its hash.
    fn link(&mut self, k: u32) {
        let h = self.classes[k as usize].hash;
        let next = self.by_hash.insert(h, k).unwrap_or(END);
        let class = &mut self.classes[k as usize];
        class.next = next;
        class.linked = true;
    }

    /// Takes class `k` out of the chain of its hash; false when it was not in it.
    fn unlink(&mut self, k: u32) -> bool {
        let class = &self.classes[k as usize];
        if !class.linked {
            return false;
        }
        let (h, next) = (class.hash, class.next);
        let head = self.by_hash.get(&h).copied().unwrap_or(END);
        if head == k {
            if next == END {
                self.by_hash.remove(&h);
            } else {
                self.by_hash.insert(h, next);
            }
        } else {
            let mut prev = head;
            while prev != END && self.classes[prev as usize].next != k {
                prev = self.classes[prev as usize].next;
            }
            if prev != END {
                self.classes[prev as usize].next = next;
            }
        }
        let class = &mut self.classes[k as usize];
        class.linked = false;
        class.next = END;
        true
    }

    /// The class of `n`, whose label map has number `labels`.
    fn find_or_add(&mut self, n: &Node, labels: u32) -> u32 {
        let h = hash(n, labels);
        if let Some(k) = self.find(h, n, labels) {
            return k;
        }
        let zone = self.zone_id(&n.labels);
        let mut rep = n.clone();
        rep.ready = true;
        rep.unschedulable = false;
        rep.ssh = None;
        let mut class = Class {
            rep,
            count: 0,
            zone,
            labels,
            hash: h,
            next: END,
            linked: false,
            generation: 0,
            pinned: false,
        };
        let k = match self.free.pop() {
            Some(k) => {
                class.generation = self.classes[k as usize].generation + 1;
                self.classes[k as usize] = class;
                k
            }
            None => {
                self.classes.push(class);
                (self.classes.len() - 1) as u32
            }
        };
        self.link(k);
        k
    }

    /// Applies `change` to class `k`, which has one member: returns the class that member is
    /// in now (`k`, or an existing class with the new content, `k` then freed) and whether
    /// `k` itself changed.
    fn change_own_class(&mut self, k: u32, change: impl Fn(&mut Node) -> bool) -> (u32, bool) {
        if !change(&mut self.classes[k as usize].rep) {
            return (k, false);
        }
        // Out of the chain of its old content.
        self.unlink(k);
        let class = &self.classes[k as usize];
        let h = hash(&class.rep, class.labels);
        if let Some(x) = self.find(h, &class.rep, class.labels) {
            // The caller moves the member to `x`, which leaves `k` empty.
            self.free.push(k);
            return (x, false);
        }
        let class = &mut self.classes[k as usize];
        class.hash = h;
        class.generation += 1;
        self.link(k);
        (k, true)
    }

    /// Frees those of `classes` that have no members left (and are not the start's).
    fn free_empty(&mut self, classes: &[u32]) {
        for &k in classes {
            let class = &self.classes[k as usize];
            if class.count > 0 || class.pinned {
                continue;
            }
            // A class freed already is out of its chain.
            if self.unlink(k) {
                self.free.push(k);
            }
        }
    }

    /// The number of the zone these labels name.
    fn zone_id(&mut self, labels: &Labels) -> u32 {
        let zone = labels.get(&self.zone_key);
        match self.zone_names.iter().position(|z| z.as_ref() == zone) {
            Some(z) => z as u32,
            None => {
                self.zone_names.push(zone.cloned());
                (self.zone_names.len() - 1) as u32
            }
        }
    }

    // ---- reading -------------------------------------------------------------------------

    /// The zone of node `i` of the state this model started from (inventory order).
    pub(crate) fn start_zone(&self, i: usize) -> Option<&String> {
        self.zone_names[self.start_zones[i] as usize].as_ref()
    }

    /// The cluster-wide fields and the control-plane nodes: the state policies judge against.
    pub(crate) fn shell(&self) -> &ClusterState {
        &self.shell
    }

    /// How many nodes there are.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The name of the node at `i`.
    pub(crate) fn name(&self, i: usize) -> &NodeName {
        &self.names[i]
    }

    /// The class of the node at `i`.
    pub(crate) fn class_of(&self, i: usize) -> u32 {
        self.class[i]
    }

    /// Class `k`.
    pub(crate) fn class(&self, k: u32) -> &Class {
        &self.classes[k as usize]
    }

    /// How many classes were ever made (class numbers are below this).
    pub(crate) fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// The content of the node at `i` (its name is another member's).
    pub(crate) fn rep(&self, i: usize) -> &Node {
        &self.classes[self.class[i] as usize].rep
    }

    /// Whether the node at `i` is cordoned.
    pub(crate) fn is_cordoned(&self, i: usize) -> bool {
        self.cordoned[i]
    }

    /// The zone names; classes refer to them by index.
    pub(crate) fn zone_names(&self) -> &[Option<String>] {
        &self.zone_names
    }

    /// The classes with members now.
    pub(crate) fn present(&self) -> impl Iterator<Item = (u32, &Class)> + '_ {
        self.classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.count > 0)
            .map(|(k, c)| (k as u32, c))
    }

    /// The classes at the start, with their member counts then.
    pub(crate) fn start(&self) -> impl Iterator<Item = (&Node, usize)> + '_ {
        self.start
            .iter()
            .map(|&(k, n)| (&self.classes[k as usize].rep, n))
    }

    /// How many nodes were cordoned at the start.
    pub(crate) fn start_cordoned(&self) -> usize {
        self.start_cordoned
    }

    /// The classes the last step's nodes are in now, each with one of those nodes' position.
    pub(crate) fn touched(&self) -> &[(u32, usize)] {
        &self.touched
    }

    /// How many nodes are cordoned now.
    pub(crate) fn cordoned(&self) -> usize {
        self.cordoned_count
    }

    /// The control-plane nodes (whole), in position order.
    pub(crate) fn control_plane(&self) -> &[Node] {
        &self.shell.nodes
    }

    /// The positions of the control-plane nodes, ascending.
    pub(crate) fn control_plane_positions(&self) -> &[usize] {
        &self.cp_at
    }

    /// The policy summary now (its control-plane indices point into [`Fleet::shell`]).
    pub(crate) fn summary(&self) -> Summary {
        Summary::of(&self.shell)
    }

    fn index(&self) -> &HashMap<NodeName, usize> {
        self.index.get_or_init(|| {
            let mut index = HashMap::with_capacity(self.names.len());
            for (i, n) in self.names.iter().enumerate() {
                index.entry(n.clone()).or_insert(i);
            }
            index
        })
    }

    /// The position of the node called `name`. Control-plane nodes are found without the
    /// name index (which plans that never look up a worker by name do not build).
    pub(crate) fn position(&self, name: &NodeName) -> Option<usize> {
        if let Some(index) = self.index.get() {
            return index.get(name).copied();
        }
        match self.shell.nodes.iter().position(|n| n.name == *name) {
            Some(j) => Some(self.cp_at[j]),
            None => self.index().get(name).copied(),
        }
    }

    /// The labels of the node at `i`.
    fn labels(&self, i: usize) -> &Labels {
        let o = self.origin[i] as usize;
        match self.start_nodes.get(o) {
            Some(n) => &n.labels,
            None => &self.added_labels[o - self.start_nodes.len()],
        }
    }

    /// The node at `i`, whole (without its SSH target).
    pub(crate) fn node_at(&self, i: usize) -> Node {
        let mut n = self.rep(i).clone();
        n.name = self.names[i].clone();
        n.labels = self.labels(i).clone();
        n.ready = self.ready[i];
        n.unschedulable = self.cordoned[i];
        n
    }

    /// The node called `name`, whole (without its SSH target).
    pub(crate) fn node(&self, name: &NodeName) -> Option<Node> {
        self.position(name).map(|i| self.node_at(i))
    }

    /// The whole state (without SSH targets), nodes in position order.
    pub(crate) fn to_state(&self) -> ClusterState {
        ClusterState {
            nodes: (0..self.len()).map(|i| self.node_at(i)).collect(),
            ..self.shell.clone()
        }
    }

    // ---- changing ------------------------------------------------------------------------

    /// Moves the nodes at `at` (or every node) to the classes `change` makes of theirs, once
    /// per class. `change` says whether it changed anything. Returns whether any node moved.
    fn remap(&mut self, at: Option<&[usize]>, change: impl Fn(&mut Node) -> bool) -> bool {
        const NONE: u32 = u32::MAX;
        let mut memo = vec![NONE; self.classes.len()];
        let mut moved = false;
        let mut seen = vec![false; self.classes.len()];
        let mut left: Vec<u32> = Vec::new();
        self.touched.clear();
        let mut visit = |fleet: &mut Fleet, i: usize| {
            let old = fleet.class[i];
            let mut new = memo[old as usize];
            // The node's own class changed under its number.
            let mut in_place = false;
            if new == NONE {
                let class = &fleet.classes[old as usize];
                if class.count == 1 && !class.pinned {
                    // A class of one node (nodes that each have their own labels): change it
                    // rather than copy it.
                    (new, in_place) = fleet.change_own_class(old, &change);
                } else {
                    let mut n = class.rep.clone();
                    // Steps change versions, never labels.
                    new = if change(&mut n) {
                        fleet.find_or_add(&n, fleet.classes[old as usize].labels)
                    } else {
                        old
                    };
                    if new != old {
                        left.push(old);
                    }
                }
                memo[old as usize] = new;
            }
            if in_place {
                moved = true;
                if fleet.is_cp[i]
                    && let Ok(j) = fleet.cp_at.binary_search(&i)
                {
                    fleet.shell.nodes[j].versions =
                        fleet.classes[new as usize].rep.versions.clone();
                }
            } else if new != old {
                fleet.classes[old as usize].count -= 1;
                fleet.classes[new as usize].count += 1;
                fleet.class[i] = new;
                moved = true;
                if fleet.is_cp[i]
                    && let Ok(j) = fleet.cp_at.binary_search(&i)
                {
                    fleet.shell.nodes[j].versions =
                        fleet.classes[new as usize].rep.versions.clone();
                }
            }
            if seen.len() <= new as usize {
                seen.resize(new as usize + 1, false);
            }
            if !seen[new as usize] {
                seen[new as usize] = true;
                fleet.touched.push((new, i));
            }
        };
        match at {
            Some(at) => {
                for &i in at {
                    visit(self, i);
                }
            }
            None => {
                for i in 0..self.len() {
                    visit(self, i);
                }
            }
        }
        self.free_empty(&left);
        moved
    }

    /// Applies `step` to the nodes at positions `at` (its nodes, in order, for changes made at
    /// the nodes; see [`Fleet::apply_change`]).
    pub(crate) fn apply_at(
        &mut self,
        step: &Step,
        at: &[usize],
    ) -> Result<Effect, SimulationError> {
        if at.iter().any(|&i| i >= self.len()) {
            let message = "a node position is out of range".into();
            return Err(SimulationError::of(step, message));
        }
        self.apply_change(step, &step.action.change(), at)
    }

    /// Applies `step` to its nodes, found by name.
    pub(crate) fn apply(&mut self, step: &Step) -> Result<Effect, SimulationError> {
        let change = step.action.change();
        let at = positions_of(step, &change, |n| self.position(n))?;
        self.apply_change(step, &change, &at)
    }

    /// Applies `change`, `step`'s, to the nodes at positions `at` (the step's nodes, in
    /// order, for changes made at the nodes), as the whole-node
    /// [`Simulation`](super::Simulation) does; provisioning and removal go by the step's names.
    fn apply_change(
        &mut self,
        step: &Step,
        change: &Change<'_>,
        at: &[usize],
    ) -> Result<Effect, SimulationError> {
        let mut effect = Effect::default();
        let bad = |message: String| SimulationError::of(step, message);
        self.touched.clear();
        match *change {
            Change::Nothing | Change::KubeletRestart | Change::AwaitReady => {}
            Change::Install { packages, version } => {
                let moved = self.remap(Some(at), |n| install(&mut n.versions, packages, version));
                if moved {
                    effect.nodes = true;
                    effect.control_plane = at.iter().any(|&i| self.is_cp[i]);
                }
            }
            Change::ControlPlane {
                version,
                etcd,
                addons,
            } => {
                if let Some(&i) = at.iter().find(|&&i| !self.rep(i).is_control_plane()) {
                    return Err(bad(format!(
                        "node {} is not a control-plane node",
                        self.names[i]
                    )));
                }
                self.remap(Some(at), |n| {
                    let before = n.versions.clone();
                    set_control_plane(&mut n.versions, version, etcd);
                    n.versions != before
                });
                if !at.is_empty() {
                    effect.nodes = true;
                    effect.control_plane = true;
                }
                effect.addons |= self.move_addons(addons);
            }
            Change::Addons(addons) => {
                effect.addons |= self.move_addons(addons);
            }
            Change::Schedulable(schedulable) => {
                let cordon = !schedulable;
                for &i in at {
                    if self.cordoned[i] != cordon {
                        self.cordoned[i] = cordon;
                        if cordon {
                            self.cordoned_count += 1;
                        } else {
                            self.cordoned_count -= 1;
                        }
                        if self.is_cp[i]
                            && let Ok(j) = self.cp_at.binary_search(&i)
                        {
                            self.shell.nodes[j].unschedulable = cordon;
                        }
                        effect.schedulability = true;
                    }
                }
            }
            Change::RollOutKubeProxy => {
                effect.addons |= self.roll_out_kube_proxy();
            }
            Change::Kubectl(version) => {
                effect.cluster_fields |= upgrade_kubectl(&mut self.shell.kubectl, version);
            }
            Change::Provision { version, templates } => {
                if templates.len() != step.nodes.len() {
                    return Err(bad(format!(
                        "{} nodes to provision but {} templates",
                        step.nodes.len(),
                        templates.len()
                    )));
                }
                for (name, template) in step.nodes.iter().zip(templates) {
                    if self.position(name).is_some() {
                        return Err(bad(format!("node {name} already exists")));
                    }
                    let t = self
                        .position(template)
                        .ok_or_else(|| bad(format!("node {template} is not in the cluster")))?;
                    effect.control_plane |= self.provision(name, t, version);
                    effect.nodes = true;
                }
            }
            Change::Remove => {
                for name in &step.nodes {
                    let i = self
                        .position(name)
                        .ok_or_else(|| bad(format!("node {name} is not in the cluster")))?;
                    self.remove_at(i);
                    effect.removed = true;
                }
            }
        }
        Ok(effect)
    }

    /// Adds node `name`, made like the node at `t` at `version`, at the end; true when it is
    /// a control-plane node.
    fn provision(&mut self, name: &NodeName, t: usize, version: &KubeVersion) -> bool {
        let labels = self.classes[self.class[t] as usize].labels;
        let node = Node::provisioned(name, &self.node_at(t), version);
        let k = self.find_or_add(&node, labels);
        let i = self.len();
        self.classes[k as usize].count += 1;
        let cp = node.is_control_plane();
        let node_labels = node.labels.clone();
        if cp {
            self.cp_at.push(i);
            self.shell.nodes.push(node);
        }
        self.is_cp.push(cp);
        self.names.push(name.clone());
        self.class.push(k);
        self.origin
            .push((self.start_nodes.len() + self.added_labels.len()) as u32);
        self.added_labels.push(node_labels);
        self.cordoned.push(false);
        self.ready.push(true);
        if let Some(index) = self.index.get_mut() {
            index.insert(name.clone(), i);
        }
        if !self.touched.iter().any(|t| t.0 == k) {
            self.touched.push((k, i));
        }
        cp
    }

    fn remove_at(&mut self, i: usize) {
        let name = self.names.swap_remove(i);
        self.is_cp.swap_remove(i);
        let k = self.class.swap_remove(i);
        self.origin.swap_remove(i);
        let cordoned = self.cordoned.swap_remove(i);
        self.ready.swap_remove(i);
        self.classes[k as usize].count -= 1;
        self.free_empty(&[k]);
        if cordoned {
            self.cordoned_count -= 1;
        }
        let last = self.names.len();
        if let Some(index) = self.index.get_mut() {
            index.remove(&name);
            if i < last {
                index.insert(self.names[i].clone(), i);
            }
        }
        if let Ok(j) = self.cp_at.binary_search(&i) {
            self.cp_at.remove(j);
            self.shell.nodes.remove(j);
        }
        if i < last
            && let Ok(j) = self.cp_at.binary_search(&last)
        {
            // The former last node, a control-plane node, now lives at `i`: keep the order.
            self.cp_at.remove(j);
            let node = self.shell.nodes.remove(j);
            let at = self.cp_at.partition_point(|&c| c < i);
            self.cp_at.insert(at, i);
            self.shell.nodes.insert(at, node);
        }
    }

    /// Every kube-proxy pod runs the DaemonSet's version; true when some did not.
    fn roll_out_kube_proxy(&mut self) -> bool {
        if !self
            .present()
            .any(|(_, c)| c.rep.versions.kube_proxy.is_some())
        {
            return false;
        }
        self.remap(None, |n| n.versions.kube_proxy.take().is_some());
        self.touched.clear();
        true
    }

    /// Moves the add-ons; true when something changed.
    fn move_addons(&mut self, addons: &AddonVersions) -> bool {
        let mut changed = move_addon_versions(&mut self.shell.addons, addons);
        if addons.kube_proxy.is_some() {
            // The DaemonSet rolls out to every node.
            changed |= self.roll_out_kube_proxy();
        }
        changed
    }
}

#[cfg(all(test, feature = "proptest"))]
mod tests;

#[cfg(test)]
mod chain_tests;
