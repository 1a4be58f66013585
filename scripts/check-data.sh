#!/usr/bin/env bash
# Checks that the data files embedded in kupgrade-core are byte-for-byte equal to the project's
# reference copies in ../shared/data (the CI clone has shared/ beside the repository). Tables the
# project owns (listed in `owned`) have no reference copy: they are only checked to be there.
#
# Usage: scripts/check-data.sh [SHARED_DATA_DIR]   (default: <repo>/../shared/data)
# Exits 0 when every file matches, 1 on drift or a missing file.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${1:-$repo/../shared/data}"
embedded="$repo/crates/kupgrade-core/data"
files=(k8s-releases.json kubeadm-bundled-versions.json k8s-api-removals.json)
# Written and kept here (the readiness catalogue's facts, each row with its source).
owned=(k8s-readiness.json)

if [ ! -d "$shared" ]; then
    echo "check-data: reference directory $shared not found (expected shared/ beside the repository)" >&2
    exit 1
fi

status=0
for name in "${owned[@]}"; do
    if [ -s "$embedded/$name" ]; then
        echo "check-data: $name ok (project-owned, no reference copy)"
    else
        echo "check-data: $embedded/$name is missing or empty" >&2
        status=1
    fi
done
for name in "${files[@]}"; do
    ours="$embedded/$name"
    theirs="$shared/$name"
    if [ ! -f "$ours" ]; then
        echo "check-data: $ours is missing (copy it from $theirs)" >&2
        status=1
    elif [ ! -f "$theirs" ]; then
        echo "check-data: reference $theirs is missing" >&2
        status=1
    elif ! cmp -s "$ours" "$theirs"; then
        echo "check-data: DRIFT: crates/kupgrade-core/data/$name differs from $theirs" >&2
        echo "check-data:   to update the embedded copy: cp '$theirs' '$ours'" >&2
        status=1
    else
        echo "check-data: $name ok"
    fi
done
# Every JSON file embedded in the crate should have a reference copy.
for ours in "$embedded"/*.json; do
    name="$(basename "$ours")"
    case " ${files[*]} ${owned[*]} " in
        *" $name "*) ;;
        *)
            if [ -f "$shared/$name" ]; then
                if ! cmp -s "$ours" "$shared/$name"; then
                    echo "check-data: DRIFT: crates/kupgrade-core/data/$name differs from $shared/$name" >&2
                    status=1
                else
                    echo "check-data: $name ok"
                fi
            else
                echo "check-data: crates/kupgrade-core/data/$name has no reference copy in $shared" >&2
                status=1
            fi
            ;;
    esac
done
exit "$status"
