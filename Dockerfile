# Switchboard's container image: built in one stage, run from a slim one as a non-root
# user. `docker build -t switchboard .` then
# `docker run -p 8080:8080 -v switchboard-data:/data switchboard` (SQLite in /data), or see
# deploy/compose.yaml for PostgreSQL, Prometheus and Grafana.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The release binary alone, without `switchboard demo` (the simulators stay out of the
# production image); tests are not built.
RUN cargo build --release --locked -p switchboard-api --bin switchboard --no-default-features \
 && strip target/release/switchboard \
 && cp target/release/switchboard /switchboard

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home switchboard
COPY --from=build /switchboard /usr/local/bin/switchboard
USER switchboard
WORKDIR /data
ENV SWITCHBOARD_LISTEN=0.0.0.0:8080 \
    SWITCHBOARD_DATABASE_URL=sqlite:///data/switchboard.db \
    SWITCHBOARD_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=3s CMD ["switchboard", "healthcheck"]
ENTRYPOINT ["switchboard"]
CMD ["serve"]
