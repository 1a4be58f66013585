//! Which workers move to a goal now, and their groups: nodes that need the same steps, under
//! one [`Head`], the groups in the order they go.
//!
//! Nodes are read in the model's order (zone, then inventory or name order), and a class of
//! equal nodes is judged once: most clusters have few classes and many nodes.
use foldhash::{HashMap, HashMapExt, HashSet};

use crate::{KubeVersion, Minor, Node, NodeName, OsFamily};

use super::Planner;
use super::names::{replacement_suffix, replacement_with};
use crate::plan::Strategy;
use crate::plan::batch::Item;
use crate::plan::fleet::Fleet;

/// A worker to batch: its position and OS family.
pub(super) type Worker = Item<(usize, OsFamily)>;

/// How far the nodes of a group got already (an interrupted plan). The order is the order the
/// groups go in: nodes under way first, so that planning again mid-way continues with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Progress {
    /// Cordoned: a window was interrupted.
    Cordoned,
    /// In place: kubeadm runs the goal already, the nodes are not cordoned yet.
    KubeadmDone,
    /// Nothing done yet.
    Untouched,
}

impl Progress {
    /// Where a group starts: cordoned already (an interrupted window), or untouched.
    fn start(cordoned: bool) -> Self {
        if cordoned {
            Progress::Cordoned
        } else {
            Progress::Untouched
        }
    }
}

/// What the nodes of a batch have in common: everything that decides their steps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Head {
    /// How far the nodes got already.
    pub(super) progress: Progress,
    /// Cordoned nodes (an interrupted upgrade) go first.
    pub(super) cordoned: bool,
    /// Replace strategy: the replacement already exists.
    pub(super) has_replacement: bool,
    /// In place: the kubelet's release (none when replacing: new nodes join at the goal).
    pub(super) kubelet: Option<KubeVersion>,
    /// In place: kubeadm's release.
    pub(super) kubeadm: Option<KubeVersion>,
}

impl Head {
    /// The head of `n`'s class, its nodes cordoned or not.
    pub(super) fn of(n: &Node, cordoned: bool) -> Self {
        Head {
            progress: Progress::start(cordoned),
            cordoned,
            has_replacement: false,
            kubelet: n.kubelet().map(KubeVersion::release),
            kubeadm: n.versions.kubeadm.as_ref().map(KubeVersion::release),
        }
    }

    /// In place: the head of `n`'s class on its way to `goal`; kubeadm at `goal` already on
    /// nodes not cordoned is progress.
    fn in_place(n: &Node, cordoned: bool, goal: &KubeVersion) -> Self {
        let mut head = Head::of(n, cordoned);
        if !head.cordoned && head.kubeadm.as_ref().is_some_and(|k| k >= goal) {
            head.progress = Progress::KubeadmDone;
        }
        head
    }

    /// Replacing: only whether the nodes are cordoned and whether their replacements exist
    /// decide their steps.
    fn replacing(cordoned: bool, has_replacement: bool) -> Self {
        Head {
            progress: Progress::start(cordoned),
            cordoned,
            has_replacement,
            kubelet: None,
            kubeadm: None,
        }
    }

    /// The minor the nodes' package repository points at: the minor of their kubeadm (or
    /// kubelet). Derived from the state alone, so planning again agrees with the plan.
    pub(super) fn repo(&self) -> Minor {
        self.kubeadm
            .as_ref()
            .or(self.kubelet.as_ref())
            .map_or(Minor::new(0, 0), KubeVersion::minor)
    }

    /// The order groups go in: progress, existing replacements first, then by versions.
    fn order(&self) -> (Progress, bool, &Option<KubeVersion>, &Option<KubeVersion>) {
        (
            self.progress,
            !self.has_replacement,
            &self.kubelet,
            &self.kubeadm,
        )
    }
}

/// Where a class of workers stands against the goal (judged once per class).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// No kubelet: nothing for the plan to move.
    NoKubelet,
    /// Behind the goal, and picked to move now.
    Picked,
    /// Behind the goal, not picked: its nodes move now only to finish what was started.
    Behind,
    /// At the goal already.
    Current,
}

impl Standing {
    /// The standing of a class like `node`; `picked`: whether the caller picks the class.
    fn of(node: &Node, goal: &KubeVersion, picked: impl FnOnce() -> bool) -> Self {
        match node.kubelet() {
            None => Standing::NoKubelet,
            Some(kubelet) if kubelet.release() < *goal => {
                if picked() {
                    Standing::Picked
                } else {
                    Standing::Behind
                }
            }
            Some(_) => Standing::Current,
        }
    }

    /// Whether a node of this standing (with a kubelet) moves now: picked, or under way
    /// (cordoned, or its replacement exists); replacing, never a node at the goal that is not
    /// cordoned.
    fn moves(self, cordoned: bool, has_replacement: bool, replace: bool) -> bool {
        (cordoned || has_replacement || self == Standing::Picked)
            && !(replace && self == Standing::Current && !cordoned)
    }
}

/// Replacements at the goal that exist already: nodes whose name carries the goal's suffix
/// (none, unless a run was interrupted mid-way).
struct Existing<'f> {
    suffix: String,
    names: HashSet<&'f str>,
}

impl<'f> Existing<'f> {
    /// The replacements at `goal` in `fleet` (none looked for unless replacing).
    fn find(fleet: &'f Fleet, goal: &KubeVersion, replace: bool) -> Self {
        let suffix = replacement_suffix(goal);
        let names = if replace {
            (0..fleet.len())
                .map(|i| fleet.name(i).as_str())
                .filter(|n| n.contains(suffix.as_str()))
                .collect()
        } else {
            HashSet::default()
        };
        Existing { suffix, names }
    }

    /// Whether the replacement of the node called `name` exists.
    fn has_replacement(&self, name: &NodeName) -> bool {
        !self.names.is_empty()
            && replacement_with(name, &self.suffix).is_some_and(|r| self.names.contains(r.as_str()))
    }
}

/// Groups of workers in the order their first node came, found by head.
struct Groups {
    list: Vec<(Head, Vec<Worker>)>,
    index: HashMap<Head, usize>,
    /// In place, per class: the group of its nodes not cordoned (0) and cordoned (1), so
    /// that a class's head is made once. None when replacing: there a node's head depends on
    /// the node (whether its replacement exists), not only on its class.
    by_class: Option<Vec<[Option<usize>; 2]>>,
}

impl Groups {
    /// No groups yet, for `classes` classes; `by_class`: whether a class's nodes that are
    /// cordoned alike share a head.
    fn new(classes: usize, by_class: bool) -> Self {
        Groups {
            list: Vec::new(),
            index: HashMap::new(),
            by_class: by_class.then(|| vec![[None; 2]; classes]),
        }
    }

    /// Adds a worker of class `k` to its group, made with `head` if it is the first.
    fn add(&mut self, k: u32, cordoned: bool, item: Worker, head: impl FnOnce() -> Head) {
        let slot = (k as usize, usize::from(cordoned));
        if let Some(g) = self.by_class.as_ref().and_then(|c| c[slot.0][slot.1]) {
            self.list[g].1.push(item);
            return;
        }
        let head = head();
        let g = *self.index.entry(head.clone()).or_insert_with(|| {
            self.list.push((head, Vec::new()));
            self.list.len() - 1
        });
        if let Some(by_class) = &mut self.by_class {
            by_class[slot.0][slot.1] = Some(g);
        }
        self.list[g].1.push(item);
    }

    /// The groups in the order they go (stable: groups with equal order keep theirs).
    fn into_sorted(mut self) -> Vec<(Head, Vec<Worker>)> {
        self.list.sort_by(|a, b| a.0.order().cmp(&b.0.order()));
        self.list
    }
}

impl Planner<'_, '_> {
    /// The workers that move to `goal` now, grouped by head, the groups in the order they
    /// go: those whose kubelet is behind `goal` and whose class `select` picks, and those
    /// under way (cordoned, or replaced already).
    pub(super) fn worker_groups(
        &self,
        goal: &KubeVersion,
        select: impl Fn(u32) -> bool,
    ) -> Vec<(Head, Vec<Worker>)> {
        let replace = self.opts().strategy == Strategy::Replace;
        let fleet = &self.sim;
        let existing = Existing::find(fleet, goal, replace);
        let mut standing: Vec<Option<Standing>> = vec![None; fleet.class_count()];
        let mut groups = Groups::new(fleet.class_count(), !replace);
        let mut cp = fleet.control_plane_positions().iter().copied().peekable();
        for at in 0..fleet.len() {
            // Control-plane positions come in order: no need to look at the node's roles.
            if cp.peek() == Some(&at) {
                cp.next();
                continue;
            }
            let k = fleet.class_of(at);
            let class = fleet.class(k);
            let node = &class.rep;
            let s =
                *standing[k as usize].get_or_insert_with(|| Standing::of(node, goal, || select(k)));
            if s == Standing::NoKubelet {
                continue;
            }
            let cordoned = fleet.is_cordoned(at);
            let has_replacement = existing.has_replacement(fleet.name(at));
            if !s.moves(cordoned, has_replacement, replace) {
                continue;
            }
            let item = Item {
                zone: class.zone,
                node: (at, node.os.family),
            };
            groups.add(k, cordoned, item, || {
                if replace {
                    Head::replacing(cordoned, has_replacement)
                } else {
                    Head::in_place(node, cordoned, goal)
                }
            });
        }
        groups.into_sorted()
    }
}
