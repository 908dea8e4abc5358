# syntax=docker/dockerfile:1
# One image for every PromptCraft service and the CLI; the command picks what runs:
#   docker run promptcraft node services/content/dist/src/main.js
#   docker run promptcraft node packages/cli/dist/bin.js migrate
# Build: docker build -t promptcraft .   (docker-compose.yml and infra/k8s use it)

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: install everything, generate, compile, then drop dev dependencies -----------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CI=true TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false \
    NPM_CONFIG_UPDATE_NOTIFIER=false
# The whole context at once: listing each workspace's package.json for layer caching breaks
# `npm ci` whenever a workspace is added. --ignore-scripts: the root `prepare` (a build) runs below
# explicitly, and no dependency needs its install script (protobufjs' is a version notice).
COPY . .
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
# generate (protoc-gen-es, local plugins only) → tsc, in dependency order.
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && rm -rf .git .turbo node_modules/.cache \
 && find packages services test -name '*.tsbuildinfo' -delete

# --- runtime: compiled code + production dependencies, as an unprivileged user ---------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    LOG_LEVEL=info \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=build --chown=root:root /app /app
# Not root: the code cannot modify itself (owned by root, read-only to `node`).
USER node
# gRPC (grpc-js) on 5005x, Connect + gRPC-Web (+ /metrics, /healthz) on 5105x:
# identity 50051/51051, content 50052/51052, graph 50053/51053, search 50054/51054, analytics 50055/51055.
EXPOSE 50051 50052 50053 50054 50055 51051 51052 51053 51054 51055
CMD ["node", "packages/cli/dist/bin.js", "--help"]
