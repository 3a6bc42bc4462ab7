# The Hodei app image: the API and the worker (one image, two commands; see docker-compose.yml).
# FROM an official Node image: the Temporal SDK needs Node >= 20.3, and Debian 12's nodejs is 18.
ARG NODE_IMAGE=node:20.19.5-bookworm-slim
FROM ${NODE_IMAGE}

WORKDIR /app
ENV NODE_ENV=production
# Dependencies first, so code changes reuse this layer. better-sqlite3 and the Temporal core
# bridge ship prebuilt binaries for linux x64/arm64 glibc; tsx runs the TypeScript as is.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY domain ./domain
COPY log-store ./log-store
COPY activities ./activities
COPY workflows ./workflows
COPY worker ./worker
COPY api ./api
COPY cli ./cli

# Data (logs database, installation id) lives in a volume.
RUN mkdir -p /data && chown node:node /data
ENV HODEI_DATA_DIR=/data
USER node
EXPOSE 8080 9464
CMD ["node", "--import", "tsx", "api/main.ts"]
