# kvip's container image: `docker build -t <registry>/kvip:<tag> .`
#
# Two stages: the builder installs kvip and its dependencies into a venv; the
# final image is the same Python base plus that venv only (no pip cache, no
# sources, no compilers), run as an unprivileged user. Every dependency ships a
# pure-Python or manylinux wheel, so even the builder needs no compiler.
# tests/test_dockerfile.py replays the builder's steps in a clean venv.

FROM python:3.11-slim-bookworm AS builder
ENV VIRTUAL_ENV=/opt/kvip \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv "$VIRTUAL_ENV"
# Only what `pip install .` reads: a code change does not rebuild the layers above.
COPY pyproject.toml README.md ./
COPY protocol ./protocol
COPY kvip ./kvip
RUN "$VIRTUAL_ENV/bin/pip" install . \
    && "$VIRTUAL_ENV/bin/kvip" --version

FROM python:3.11-slim-bookworm
# The venv's python is a symlink to this base image's /usr/local/bin/python3.11.
COPY --from=builder /opt/kvip /opt/kvip
ENV PATH=/opt/kvip/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# 65532: "nonroot" by convention; deploy/base/deployment.yaml runs as the same.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["kvip"]
CMD ["run"]
