//! Tier 3: Helm 3 release secrets (`type: helm.sh/release.v1`), decoded as Helm stores them:
//! the secret's `release` value is base64 text of a gzip stream of the release's JSON, whose
//! `manifest` is the rendered YAML documents Helm applies again on the next upgrade.
use std::io::Read;

use base64::Engine;
use serde::Deserialize;

/// The secret type Helm 3 stores releases as.
pub const HELM_RELEASE_TYPE: &str = "helm.sh/release.v1";

/// A decoded Helm release: who it is and the objects its manifest describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelmRelease {
    /// The release's name.
    pub name: String,
    /// Its namespace (the default for the manifest's namespaced objects).
    pub namespace: String,
    /// Its revision.
    pub version: u64,
    /// `info.status` (`deployed`, `superseded`, ...).
    pub status: String,
    /// The manifest's objects: apiVersion, kind, namespace (when the document sets one),
    /// name.
    pub objects: Vec<ManifestObject>,
}

/// One document of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestObject {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, when set.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

#[derive(Deserialize)]
struct Release {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    manifest: String,
    #[serde(default)]
    info: Option<Info>,
}

#[derive(Deserialize)]
struct Info {
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Meta,
}

#[derive(Default, Deserialize)]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// Decodes a release secret's `release` value (the secret's data, already out of the
/// API's own base64): base64, then gzip when it starts with gzip's magic bytes (Helm writes
/// gzip; older releases may be plain), then JSON. The error says which step failed.
pub fn decode_release(value: &[u8]) -> Result<HelmRelease, String> {
    let text: Vec<u8> = value
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| format!("release is not base64: {e}"))?;
    let json = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .take(256 << 20)
            .read_to_end(&mut out)
            .map_err(|e| format!("release is not valid gzip: {e}"))?;
        out
    } else {
        raw
    };
    let release: Release =
        serde_json::from_slice(&json).map_err(|e| format!("release is not Helm's JSON: {e}"))?;
    Ok(HelmRelease {
        objects: manifest_objects(&release.manifest)?,
        name: release.name,
        namespace: release.namespace,
        version: release.version,
        status: release.info.map(|i| i.status).unwrap_or_default(),
    })
}

/// The objects of a multi-document YAML manifest; empty documents (comments only) are
/// skipped; a document that is not YAML is an error naming its number.
pub(crate) fn manifest_objects(manifest: &str) -> Result<Vec<ManifestObject>, String> {
    let mut objects = Vec::new();
    for (i, doc) in split_documents(manifest).into_iter().enumerate() {
        if doc
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            continue;
        }
        let parsed: Option<Doc> = serde_yaml_ng::from_str(doc)
            .map_err(|e| format!("manifest document {}: {e}", i + 1))?;
        let Some(d) = parsed else { continue };
        if d.api_version.is_empty() || d.kind.is_empty() {
            continue;
        }
        objects.push(ManifestObject {
            api_version: d.api_version,
            kind: d.kind,
            namespace: d.metadata.namespace.filter(|n| !n.is_empty()),
            name: d.metadata.name,
        });
    }
    Ok(objects)
}

/// Splits YAML text at document separators (`---` at the start of a line).
fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") {
            docs.push(&text[start..pos]);
            start = pos + line.len();
        }
        pos += line.len();
    }
    docs.push(&text[start..]);
    docs
}
