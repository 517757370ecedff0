# The TaskFlow binaries, for compose.yaml. `just up` does not need it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/taskflow /src/target/release/taskflow-edge \
    /src/target/release/taskflow-identity /src/target/release/taskflow-tasks \
    /src/target/release/taskflow-audit /src/target/release/taskflow-scheduler \
    /src/target/release/taskflow-notifier /src/target/release/taskflow-projects \
    /src/target/release/taskflow-livefeed /usr/local/bin/
USER nobody
CMD ["taskflow"]
