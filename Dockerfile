# molten's container image: one image for the ingress and the worker replicas
# (`serve --role ingress|worker`), configured entirely by MOLTEN_* variables.
#
#   docker build -t molten .
#   docker run -p 8080:8080 -e MOLTEN_LLM_BASE_URL=... -e MOLTEN_LLM_MODEL=... molten
#
# The builder runs the repository's own scripts (scripts/image-build: the wasm toolchain from
# the package registries, the built-in skills, the release binary, the precompiled skills), so
# CI builds and checks exactly what the image holds.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN ./scripts/image-build /image

FROM debian:bookworm-slim
# ca-certificates: molten's TLS trusts the system's roots (Azure, the model, the platforms).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 molten \
    && useradd --system --uid 10001 --gid molten --home-dir /var/lib/molten --no-create-home molten
COPY --from=build /image/usr/local/bin/molten /usr/local/bin/molten
COPY --from=build /image/opt/molten /opt/molten
COPY --from=build --chown=molten:molten /image/var/lib/molten /var/lib/molten

ENV MOLTEN_DATA_DIR=/var/lib/molten \
    MOLTEN_SKILLS_DIR=/opt/molten/skills \
    MOLTEN_LISTEN=0.0.0.0:8080 \
    MOLTEN_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["molten", "health"]
# SIGTERM: the routes stop taking webhooks, in-flight turns finish (a turn cut short by the
# runtime's kill is answered by another replica once its lease expires), then molten exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["molten"]
CMD ["serve"]
