# envoy-exporter: a slim, non-root image.
#   docker build -t envoy-exporter .
#   docker run -p 9433:9433 --env-file envoy.env -v envoy-state:/var/lib/envoy-exporter envoy-exporter
#     (one gateway: docker/exporter.yml with the values of envoy.env, see docker/envoy.env.example)
#   docker run -p 9433:9433 -v $PWD/exporter.yml:/etc/envoy-exporter/exporter.yml:ro \
#              -v envoy-state:/var/lib/envoy-exporter envoy-exporter
#   docker run -p 9433:9433 envoy-exporter --demo
FROM python:3.11-slim AS build
WORKDIR /src
# The image has no .git: pass the commit for enphase_exporter_build_info's revision label,
#   docker build --build-arg REVISION=$(git rev-parse HEAD) -t envoy-exporter .
ARG REVISION=
ENV ENVOY_EXPORTER_REVISION=$REVISION
COPY pyproject.toml setup.py README.md ./
COPY envoy_exporter ./envoy_exporter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/envoy-exporter --shell /usr/sbin/nologin exporter \
 && mkdir -p /etc/envoy-exporter /var/lib/envoy-exporter \
 && chown exporter /var/lib/envoy-exporter && chmod 0700 /var/lib/envoy-exporter
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# The one-gateway template: it starts with ENVOY_NAME, ENVOY_HOST and ENVOY_TOKEN set, where the
# repository's commented example would need variables for gateways the user does not have.
COPY docker/exporter.yml /etc/envoy-exporter/exporter.yml
USER exporter
# Config is read-only; the state volume keeps cached tokens and counter offsets across restarts.
VOLUME ["/etc/envoy-exporter", "/var/lib/envoy-exporter"]
EXPOSE 9433
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9433/-/healthy', timeout=4).status == 200 else 1)"
ENTRYPOINT ["envoy-exporter", "--web.listen-address=:9433"]
CMD ["--config.file=/etc/envoy-exporter/exporter.yml"]
