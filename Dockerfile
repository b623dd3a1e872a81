# tierlb image: a static binary in an empty image, running as a non-root user.
#
#   docker build -t tierlb .                      # needs golang:1.26 from a registry
#   docker build --target whoami -t tierlb-whoami .
#   scripts/build-image.sh                        # same final images, no registry at all
#
# The final stages must stay in step with scripts/build-image.sh, which
# builds them from binaries compiled on the host.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
ARG COMMIT=""
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/tierlb ./cmd/tierlb && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/whoami ./cmd/whoami && \
    mkdir -p /out/run/tierlb

# The example and test backend: answers with its name (the hostname). On
# SIGTERM it serves on for 3s (--lame-duck, LAME_DUCK) before closing its
# listener, so a stop_grace_period / --stop-timeout must exceed that.
FROM scratch AS whoami
COPY --from=build /out/whoami /whoami
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/whoami"]
CMD ["--listen", ":8080"]

# tierlb itself. To read the Docker socket as user 65532, add the socket's
# group (compose: group_add: ["<gid of /var/run/docker.sock>"]) or point
# DOCKER_HOST at a read-only socket proxy; see examples/three-tier/README.md.
FROM scratch AS tierlb
COPY --from=build /out/tierlb /tierlb
# The hand-over socket's directory, the user's: a named volume mounted
# there starts out as a copy of it, writable for tierlb.
COPY --from=build --chown=65532:65532 /out/run /run
USER 65532:65532
ENTRYPOINT ["/tierlb"]
