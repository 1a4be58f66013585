//! A plan's fingerprint: which plan a journal belongs to.
use std::io;

use crate::plan::UpgradePlan;

/// A short, stable fingerprint of `plan`: FNV-1a (64 bits) over its JSON form, as
/// `fnv1a64:` and 16 hex digits. The same plan (also after a round trip through its JSON or
/// YAML file) gives the same fingerprint; any change to a step, a node or an option gives
/// another, so a journal is never resumed with a plan it was not written for.
///
/// ```
/// use kupgrade_core::plan::PlanRequest;
/// use kupgrade_core::run::fingerprint;
/// # let text = "nodes:\n  - name: cp-1\n    roles: [control-plane]\n    versions: { kubelet: v1.29.10, kube-apiserver: v1.29.10 }\n";
/// # let cluster = kupgrade_core::inventory::parse(text, "c.yaml")?;
/// let plan = PlanRequest::new("1.30".parse()?, jiff::civil::date(2025, 3, 1)).plan(&cluster)?;
/// let again: kupgrade_core::plan::UpgradePlan = serde_json::from_str(&serde_json::to_string(&plan)?)?;
/// assert_eq!(fingerprint(&plan), fingerprint(&again));
/// assert!(fingerprint(&plan).starts_with("fnv1a64:"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fingerprint(plan: &UpgradePlan) -> String {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    // Serializing plain data into a hasher cannot fail; should it, the hash so far still
    // tells plans apart.
    let _ = serde_json::to_writer(&mut h, plan);
    format!("fnv1a64:{:016x}", h.0)
}

struct Fnv(u64);

impl io::Write for Fnv {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
