# syntax=docker/dockerfile:1
# The base is a build argument so an image can be built where no registry is reachable (any
# Debian bookworm with Node.js 20.19+ will do); the default is the official image.
ARG BASE_IMAGE=node:22-bookworm-slim
# Build stage: full dependencies, compile TypeScript to dist/.
FROM ${BASE_IMAGE} AS build
WORKDIR /app
# argon2 compiles its native addon here: its bundled linux-x64 prebuild crashes when loaded
# (seen on Debian bookworm with Node.js 20), so node-gyp needs a compiler and Python.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY plugins ./plugins
COPY routes ./routes
COPY db ./db
COPY drizzle ./drizzle
RUN npm run build && npm prune --omit=dev

# Runtime stage: compiled code, production dependencies and migrations only, as a non-root user.
FROM ${BASE_IMAGE} AS runtime
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
RUN mkdir -p uploads data/exports && chown -R node:node uploads data
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/server.js"]
