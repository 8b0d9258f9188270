# syntax=docker/dockerfile:1
#
# dev8-agent container image: `make image` (or `docker build .`).
#
# Stage 1 builds exactly as a developer machine or CI does: the same
# hack/install-deps.sh, then `make release` (optimised, stripped).
# Stage 2 is debian:12-slim with only the shared libraries the two binaries
# link against (checked by hack/check-manifests.sh against their NEEDED
# entries), run as the unprivileged UID/GID 65532. The entrypoint is exec
# form, so nothing needs a shell at run time.
#
# The image also carries bin/azsim, the Azure emulator, for the dev overlay
# (manifests/overlays/dev runs it with `command: ["azsim"]`), and bin/dev8ctl,
# the operator's command line (`kubectl exec deploy/dev8-agent -- dev8ctl
# --server http://127.0.0.1:8080 get environments`, with DEV8_API_KEY set).

FROM debian:12 AS build
WORKDIR /src
# Dependencies first: this layer is cached until the script changes.
COPY hack/install-deps.sh hack/install-deps.sh
RUN hack/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY Makefile ./
COPY pkg pkg
COPY cmd cmd
# .git is not sent to the builder; `make image` passes the revision.
ARG GIT_REV=unknown
RUN make -j"$(nproc)" release GIT_REV="${GIT_REV}" \
 && bin/dev8-agent --version \
 && bin/azsim --version \
 && bin/dev8ctl version --client

FROM debian:12-slim
# Runtime libraries only (libssl3 also provides libcrypto.so.3).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libcurl4 libcjson1 libyaml-0-2 libssl3 libhttp-parser2.9 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/dev8 /var/lib/dev8 \
 && chown 65532:65532 /var/lib/dev8
COPY --from=build /src/bin/dev8-agent /src/bin/azsim /src/bin/dev8ctl /usr/local/bin/
ARG GIT_REV=unknown
LABEL org.opencontainers.image.title="dev8-agent" \
      org.opencontainers.image.description="Dev8 controller for Azure Container Instances and Azure Files" \
      org.opencontainers.image.revision="${GIT_REV}"
# The API (and /healthz, /readyz, /metrics): controller.listen in the config.
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["dev8-agent"]
CMD ["--config", "/etc/dev8/config.yaml"]
