# PLACEHOLDER — not built or tested yet. The packaging issue (#6) replaces this
# with a multi-stage Node 24 image (swappable base image, production dependencies
# only, non-root) and tests it by running ctfleet from it against the local stack.
# Until then it only records the intended shape; do not ship it.
ARG BASE_IMAGE=node:24-bookworm-slim
FROM ${BASE_IMAGE}
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev
COPY dist ./dist
USER 65534
ENTRYPOINT ["node", "dist/main.js"]
