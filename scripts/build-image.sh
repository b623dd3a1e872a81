#!/bin/sh
# Build the tierlb and whoami images without any registry: compile static
# binaries (CGO_ENABLED=0) on the host and copy them into FROM scratch
# images whose final stages match the repository's Dockerfile.
#
#   scripts/build-image.sh [--tag tierlb:dev] [--whoami-tag tierlb-whoami:dev] [--test]
#
# --test labels both images tierlb.test=1 so test runs can find and remove
# them: docker image rm $(docker image ls -q --filter label=tierlb.test=1)
set -eu

tag=tierlb:dev
whoami_tag=tierlb-whoami:dev
label=""
while [ $# -gt 0 ]; do
	case "$1" in
	--tag) tag=$2; shift 2 ;;
	--whoami-tag) whoami_tag=$2; shift 2 ;;
	--test) label="LABEL tierlb.test=1"; shift ;;
	*) echo "usage: $0 [--tag IMAGE] [--whoami-tag IMAGE] [--test]" >&2; exit 1 ;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

version=$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo "")
(
	cd "$root"
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o "$ctx/tierlb" ./cmd/tierlb
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$ctx/whoami" ./cmd/whoami
)
mkdir -p "$ctx/run/tierlb" # the hand-over socket's directory (see the Dockerfile)

# The same final stages as the Dockerfile, minus the golang builder.
cat >"$ctx/Dockerfile.tierlb" <<DOCKERFILE
FROM scratch
COPY tierlb /tierlb
COPY --chown=65532:65532 run /run
USER 65532:65532
ENTRYPOINT ["/tierlb"]
$label
DOCKERFILE
cat >"$ctx/Dockerfile.whoami" <<DOCKERFILE
FROM scratch
COPY whoami /whoami
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/whoami"]
CMD ["--listen", ":8080"]
$label
DOCKERFILE

# The classic builder needs nothing beyond the daemon (no buildx plugin).
DOCKER_BUILDKIT=0 docker build -q -f "$ctx/Dockerfile.tierlb" -t "$tag" "$ctx" >/dev/null
DOCKER_BUILDKIT=0 docker build -q -f "$ctx/Dockerfile.whoami" -t "$whoami_tag" "$ctx" >/dev/null
echo "built $tag and $whoami_tag"
