//! Fuzzes the version and minor parsers with properties, not just "no panic":
//!
//! - parsing never panics, and an error quotes its input;
//! - a parsed version prints canonically, and printing then parsing gives the same value
//!   (with and without the leading `v`), and so does serde;
//! - for every pair and triple of parsed versions the order is consistent with `==` (and with
//!   `Hash`), antisymmetric and transitive: no ordering cycles;
//! - the same for minors.
//!
//! The input is either raw text or version-shaped parts, so both the error paths and the deep
//! grammar (pre-releases, vendor builds, build metadata) are reached.
#![no_main]

use std::cmp::Ordering;
use std::hash::{BuildHasher, RandomState};

use arbitrary::Arbitrary;
use kupgrade_core::{KubeVersion, Minor};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Text {
    Raw(String),
    Shaped(Shaped),
}

#[derive(Arbitrary, Debug)]
struct Shaped {
    v: bool,
    major: u64,
    minor: u8,
    patch: u16,
    /// Pre-release or vendor suffix identifiers, each separated by the chosen separator.
    suffix: Vec<(Sep, Ident)>,
    build: Vec<Ident>,
}

#[derive(Arbitrary, Debug)]
enum Sep {
    Dot,
    Dash,
}

#[derive(Arbitrary, Debug)]
enum Ident {
    Alpha,
    Beta,
    Rc,
    Number(u32),
    Text(Vec<u8>),
}

impl Ident {
    fn write(&self, out: &mut String) {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        match self {
            Ident::Alpha => out.push_str("alpha"),
            Ident::Beta => out.push_str("beta"),
            Ident::Rc => out.push_str("rc"),
            Ident::Number(n) => out.push_str(&n.to_string()),
            Ident::Text(bytes) => {
                for b in bytes.iter().take(12) {
                    out.push(ALPHABET[*b as usize % ALPHABET.len()] as char);
                }
            }
        }
    }
}

impl Text {
    fn render(&self) -> String {
        match self {
            Text::Raw(s) => s.clone(),
            Text::Shaped(p) => {
                let mut s = String::new();
                if p.v {
                    s.push('v');
                }
                s.push_str(&format!("{}.{}.{}", p.major, p.minor, p.patch));
                for (i, (sep, ident)) in p.suffix.iter().take(5).enumerate() {
                    s.push(match (i, sep) {
                        (0, _) | (_, Sep::Dash) => '-',
                        (_, Sep::Dot) => '.',
                    });
                    ident.write(&mut s);
                }
                for (i, ident) in p.build.iter().take(3).enumerate() {
                    s.push(if i == 0 { '+' } else { '.' });
                    ident.write(&mut s);
                }
                s
            }
        }
    }
}

fn hash(v: &KubeVersion) -> u64 {
    // One fixed hasher per process is enough: equal values must hash equally.
    thread_local!(static STATE: RandomState = RandomState::new());
    STATE.with(|s| s.hash_one(v))
}

fn check_version(text: &str) -> Option<KubeVersion> {
    let v = match KubeVersion::parse(text) {
        Ok(v) => v,
        Err(e) => {
            assert_eq!(e.input(), text);
            assert!(e.offset() <= text.len(), "{e}: offset {}", e.offset());
            assert!(!e.reason().is_empty());
            return None;
        }
    };
    let printed = v.to_string();
    let again = KubeVersion::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(again, v, "{text:?} -> {printed:?}");
    assert_eq!(again.to_string(), printed, "printing is not canonical");
    assert_eq!(KubeVersion::parse(&v.to_plain_string()).as_ref(), Ok(&v));
    let json = serde_json::to_string(&v).expect("serializes");
    assert_eq!(
        serde_json::from_str::<KubeVersion>(&json).expect("deserializes"),
        v
    );
    assert_eq!(v.cmp(&v), Ordering::Equal);
    assert!(v.release() <= v, "a release sorts before its vendor builds");
    Some(v)
}

fn check_pair(a: &KubeVersion, b: &KubeVersion) {
    let ab = a.cmp(b);
    assert_eq!(ab, b.cmp(a).reverse(), "{a} vs {b}: not antisymmetric");
    assert_eq!(
        ab == Ordering::Equal,
        a == b,
        "{a} vs {b}: order disagrees with =="
    );
    assert_eq!(a.partial_cmp(b), Some(ab));
    if a == b {
        assert_eq!(hash(a), hash(b), "{a} == {b} but hashes differ");
    }
    // Minors order like the versions they come from, never the other way round.
    if a.minor() < b.minor() {
        assert_eq!(ab, Ordering::Less, "{a} vs {b}: minor order disagrees");
    }
}

fn check_triple(a: &KubeVersion, b: &KubeVersion, c: &KubeVersion) {
    if a <= b && b <= c {
        assert!(a <= c, "ordering cycle: {a} <= {b} <= {c} but {a} > {c}");
    }
    if a < b && b < c {
        assert!(a < c, "ordering cycle: {a} < {b} < {c} but not {a} < {c}");
    }
}

fn check_minor(text: &str) {
    if let Ok(m) = Minor::parse(text) {
        assert_eq!(Minor::parse(&m.to_string()), Ok(m), "{text:?}");
        assert_eq!(m.first_patch().minor(), m);
    }
}

fuzz_target!(|input: (Text, Text, Text)| {
    let texts = [input.0.render(), input.1.render(), input.2.render()];
    let versions: Vec<KubeVersion> = texts.iter().filter_map(|t| check_version(t)).collect();
    for t in &texts {
        check_minor(t);
        if let Some((head, _)) = t.rsplit_once('.') {
            check_minor(head);
        }
    }
    for a in &versions {
        for b in &versions {
            check_pair(a, b);
            for c in &versions {
                check_triple(a, b, c);
            }
        }
    }
});
