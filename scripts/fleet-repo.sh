# shellcheck shell=bash disable=SC2154  # sourced by scripts/fleet.sh, whose globals it reads
# fleet-repo.sh - the pkgs.k8s.io-shaped repositories of scripts/fleet.sh: signed deb and rpm
# repositories for each minor of MINORS, with stub payloads (`scripts/fleet.sh repo`).

# -------------------------------------------------------------------------------- repo
# Upstream-shaped versions: kubeadm, kubelet, kubectl at the last three patches of each minor
# the calendar knows (`1.29.15-1.1`), kubernetes-cni and cri-tools as pkgs.k8s.io ships them.
patches() { # patches MINOR: the last three patch versions of MINOR known to the calendar
  python3 - "$1" "$ROOT_DIR/crates/kupgrade-core/data/k8s-releases.json" <<'EOF'
import json, sys
minor, path = sys.argv[1], sys.argv[2]
data = json.load(open(path))
for m in data.get("minors") or data.get("releases"):
    if m["minor"] == minor:
        last = int(m["latest_known_patch"].split(".")[2])
        print(" ".join("%s.%d" % (minor, p) for p in range(max(0, last - 2), last + 1)))
EOF
}
cni_version() { case $1 in 1.28) echo 1.2.0 ;; 1.29) echo 1.3.0 ;; 1.30) echo 1.4.0 ;; *) echo 1.5.1 ;; esac; }

# deb OUT NAME VERSION DEPENDS PAYLOAD-PATH PAYLOAD: one package with one executable file.
deb() {
  local out=$1 name=$2 version=$3 depends=$4 path=$5 payload=$6 tree
  tree=$(mktemp -d)
  mkdir -p "$tree/DEBIAN" "$tree$(dirname "$path")"
  printf '%s\n' "$payload" >"$tree$path" && chmod 755 "$tree$path"
  {
    echo "Package: $name"
    echo "Version: $version"
    echo "Architecture: amd64"
    echo "Maintainer: kupgrade fleet <fleet@kupgrade.invalid>"
    [[ -n $depends ]] && echo "Depends: $depends"
    echo "Section: admin"
    echo "Priority: optional"
    echo "Description: $name stub for kupgrade's test fleet (scripts/fleet.sh)"
  } >"$tree/DEBIAN/control"
  dpkg-deb --root-owner-group -Zgzip -b "$tree" "$out/${name}_${version}_amd64.deb" >/dev/null
  rm -rf "$tree"
}

# rpm OUT NAME VERSION-RELEASE REQUIRES PAYLOAD-PATH PAYLOAD: the same as an rpm (unsigned;
# signed with the whole repository). No automatic requirements: the node's rpm database knows
# only what dnf installed (its /bin/sh is dpkg's).
rpm_pkg() {
  local out=$1 name=$2 version=${3%-*} release=${3##*-} requires=$4 path=$5 payload=$6 top
  top=$(mktemp -d)
  mkdir -p "$top/SOURCES"
  printf '%s\n' "$payload" >"$top/SOURCES/payload"
  {
    echo "Name: $name"
    echo "Version: $version"
    echo "Release: $release"
    echo "Summary: $name stub for kupgrade's test fleet (scripts/fleet.sh)"
    echo "License: Apache-2.0"
    echo "BuildArch: x86_64"
    echo "AutoReqProv: no"
    echo "Source0: payload"
    [[ -n $requires ]] && echo "Requires: $requires"
    echo '%global debug_package %{nil}'
    echo '%global __os_install_post %{nil}'
    echo '%description'
    echo "$name stub for kupgrade's test fleet"
    echo '%install'
    echo "install -D -m 755 %{SOURCE0} %{buildroot}$path"
    echo '%files'
    echo "$path"
  } >"$top/$name.spec"
  rpmbuild --quiet -bb --define "_topdir $top" "$top/$name.spec" >/dev/null 2>&1 ||
    die "rpmbuild $name $version-$release failed"
  mv "$top"/RPMS/x86_64/*.rpm "$out/"
  rm -rf "$top"
}

# pkg MINOR-DIR NAME VERSION DEPENDS PAYLOAD-PATH PAYLOAD: NAME at VERSION (upstream's, without
# the packaging revision) in the minor's deb (VERSION-1.1) and rpm (VERSION-150500.1.1)
# repositories; DEPENDS as "NAME >= VERSION, ...".
pkg() {
  local dir=$1 name=$2 version=$3 depends=$4 path=$5 payload=$6 debdeps
  debdeps=$(sed -E 's/([a-z-]+) >= ([0-9.]+)/\1 (>= \2)/g' <<<"$depends")
  deb "$dir/deb/amd64" "$name" "$version-1.1" "$debdeps" "$path" "$payload"
  rpm_pkg "$dir/rpm/x86_64" "$name" "$version-150500.1.1" "$depends" "$path" "$payload"
}

# The payloads: what kubeadm and a kubelet would make the API show, through the node's stub
# library (/usr/local/lib/kupgrade-fleet/stub.sh, written by `up`).
kubeadm_payload() {
  printf '#!/bin/sh\nV=v%s\n' "$1"
  cat <<'EOS'
. /usr/local/lib/kupgrade-fleet/stub.sh
case "$1 ${2:-}" in
"version -o") echo "$V" ;;
"version ") echo "kubeadm version: &version.Info{GitVersion:\"$V\"}" ;;
"upgrade plan") echo "[upgrade/versions] kubeadm version: $V" ;;
"certs check-expiration") certs ;;
"config images")
  # Pre-staging: this kubeadm lists the images of the version asked for (nothing is pulled here).
  [ "${3:-} ${4:-}" = "pull --kubernetes-version" ] && [ -n "${5:-}" ] ||
    { echo "kubeadm (fleet stub): $*" >&2; exit 1; }
  echo "[config/images] Pulled registry.k8s.io/kube-apiserver:$5" ;;
"upgrade apply")
  [ "${3:-}" = "$V" ] || { echo "[upgrade/version] FATAL: the kubeadm version is $V, not ${3:-}" >&2; exit 1; }
  static_pods "$V"
  addons "$V"
  echo "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"$V\". Enjoy!" ;;
"upgrade node")
  if [ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]; then static_pods "$V"; addons "$V"; fi
  echo "[upgrade] The configuration for this node was successfully updated!" ;;
*) echo "kubeadm (fleet stub): $*" >&2; exit 1 ;;
esac
EOS
}

cmd_repo() {
  [[ -f $REPO.done ]] && { log "repositories cached: $REPO"; return; }
  mkdir -p "$FLEET_CACHE"
  exec 6>"$FLEET_CACHE/repo.lock"
  flock -n 6 || { log "another build holds the lock; waiting"; flock 6; }
  [[ -f $REPO.done ]] && { log "repositories built by a concurrent run"; return; }
  local tool
  for tool in apt-ftparchive rpmbuild rpmsign createrepo_c; do
    command -v "$tool" >/dev/null || die "$tool not found; run: $0 packages"
  done
  local start=$SECONDS tmp=$REPO.tmp minor dir v cni gh
  rm -rf "$tmp" "$REPO" && mkdir -p "$tmp/keys" "$tmp/www"
  gh=$(mktemp -d) && chmod 700 "$gh"
  # shellcheck disable=SC2064
  trap "gpgconf --homedir '$gh' --kill all 2>/dev/null; rm -rf '$gh'" RETURN

  # The test signing key (the same for every minor, as upstream's), and the keyring the nodes
  # keep at /etc/apt/keyrings/kubernetes-apt-keyring.gpg (binary, as `gpg --dearmor` makes it).
  gpg --homedir "$gh" --batch --quiet --passphrase '' \
    --quick-gen-key 'kupgrade fleet test repository <fleet@kupgrade.invalid>' ed25519 sign never
  gpg --homedir "$gh" --batch --armor --export >"$tmp/keys/Release.key"
  gpg --homedir "$gh" --batch --export >"$tmp/keys/kubernetes-apt-keyring.gpg"
  # The test CA the nodes trust for https://pkgs.k8s.io, and the server's certificate.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 \
    -subj '/CN=kupgrade fleet test CA' -keyout "$tmp/keys/ca.key" -out "$tmp/keys/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=pkgs.k8s.io' \
    -keyout "$tmp/keys/server.key" -out "$tmp/keys/server.csr" 2>/dev/null
  openssl x509 -req -in "$tmp/keys/server.csr" -CA "$tmp/keys/ca.crt" -CAkey "$tmp/keys/ca.key" \
    -CAcreateserial -days 36500 -out "$tmp/keys/server.crt" \
    -extfile <(printf 'subjectAltName=DNS:pkgs.k8s.io\nextendedKeyUsage=serverAuth\n') 2>/dev/null

  for minor in "${MINORS[@]}"; do
    dir=$tmp/www/core:/stable:/v$minor
    mkdir -p "$dir/deb/amd64" "$dir/rpm/x86_64"
    cni=$(cni_version "$minor")
    pkg "$dir" kubernetes-cni "$cni" "" /opt/cni/bin/loopback '#!/bin/sh
echo "CNI loopback plugin (fleet stub)"'
    pkg "$dir" cri-tools "$minor.0" "" /usr/bin/crictl "#!/bin/sh
echo 'crictl version v$minor.0 (fleet stub)'"
    for v in $(patches "$minor"); do
      pkg "$dir" kubeadm "$v" "cri-tools >= 1.28.0" /usr/bin/kubeadm "$(kubeadm_payload "$v")"
      pkg "$dir" kubelet "$v" "kubernetes-cni >= 1.2.0, cri-tools >= 1.28.0" /usr/bin/kubelet "#!/bin/sh
echo 'Kubernetes v$v'"
      pkg "$dir" kubectl "$v" "" /usr/bin/kubectl "#!/bin/sh
echo 'Client Version: v$v'"
    done
    # rpm: signed packages, repodata by createrepo_c, the key where the .repo file's gpgkey= looks.
    rpmsign --define "__gpg $(command -v gpg)" --define "_gpg_path $gh" \
      --define '_gpg_name kupgrade fleet test repository' --addsign "$dir"/rpm/x86_64/*.rpm </dev/null >/dev/null 2>&1 ||
      die "rpmsign failed"
    createrepo_c -q "$dir/rpm"
    cp "$tmp/keys/Release.key" "$dir/rpm/repodata/repomd.xml.key"
    # The metadata's detached signature, as pkgs.k8s.io serves it: zypper verifies it.
    gpg --homedir "$gh" --batch --yes --armor --detach-sign -o "$dir/rpm/repodata/repomd.xml.asc" \
      "$dir/rpm/repodata/repomd.xml"
    dir=$dir/deb
    # A flat repository, as pkgs.k8s.io's: `deb [signed-by=...] URL/core:/stable:/vN/deb/ /`.
    (cd "$dir" && apt-ftparchive packages amd64 >Packages && gzip -9kn Packages &&
      apt-ftparchive -o "APT::FTPArchive::Release::Origin=obs://build.opensuse.org/isv:kubernetes:core:stable:v$minor/deb" \
        -o "APT::FTPArchive::Release::Label=isv:kubernetes:core:stable:v$minor" \
        -o APT::FTPArchive::Release::Architectures=amd64 release . >Release)
    gpg --homedir "$gh" --batch --yes --clearsign -o "$dir/InRelease" "$dir/Release"
    gpg --homedir "$gh" --batch --yes --armor --detach-sign -o "$dir/Release.gpg" "$dir/Release"
    cp "$tmp/keys/Release.key" "$dir/Release.key"
  done
  rm -f "$tmp/keys/server.csr"
  mv "$tmp" "$REPO"
  touch "$REPO.done"
  log "repositories built in $((SECONDS - start)) s: $REPO/www ($(find "$REPO/www" -name '*.deb' | wc -l) deb, $(find "$REPO/www" -name '*.rpm' | wc -l) rpm packages)"
}
