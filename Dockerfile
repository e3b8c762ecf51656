# ctfleet: one image for every role.
#   docker run IMAGE controller|worker|api|all      (default: all)
#   docker run IMAGE doctor | instances | workers | queue …   (the admin CLI)
# The base must carry Node.js 24 and npm; swap it with --build-arg BASE_IMAGE=….
# hack/image.sh builds one locally (there is no registry here) and then this file.
ARG BASE_IMAGE=node:24-bookworm-slim

# --- production dependencies only ----------------------------------------------
FROM ${BASE_IMAGE} AS deps
WORKDIR /app
# npm-extra-ca.pem, when the context has one: extra root CAs for npm, for builds
# behind a TLS-inspecting proxy (hack/image.sh puts it there). It stays in this stage.
# `npm ci`: exactly the versions package-lock.json locks, or a failed build.
COPY package.json package-lock.json npm-extra-ca.pe[m] ./
RUN if [ -f npm-extra-ca.pem ]; then export NODE_EXTRA_CA_CERTS=/app/npm-extra-ca.pem; fi \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && rm -rf npm-extra-ca.pem /root/.npm

# --- runtime ----------------------------------------------------------------
FROM ${BASE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY docs/api/openapi.json ./docs/api/openapi.json
LABEL org.opencontainers.image.title="ctfleet" \
      org.opencontainers.image.description="Kubernetes operator: one challenge container per CTF team"
# Not root. The worker needs the Docker socket: give the pod the socket's group
# (the chart's worker.dockerSocketGroup) rather than running it as root.
USER 65532:65532
# 8080: /healthz, /readyz, /metrics (CTFLEET_HTTP_PORT); 8081: the platform API and dashboard (CTFLEET_API_PORT).
EXPOSE 8080 8081
# V8 flags: src/app/node-flags.ts (the image test keeps both in step).
ENTRYPOINT ["node", "--max-semi-space-size=1", "--optimize-for-size", "/app/src/main.ts"]
CMD ["all"]
