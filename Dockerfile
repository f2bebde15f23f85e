# The operator image: `pip install .` into a build stage, copied onto a clean slim base, run as 65532.
FROM python:3.11-slim AS build
WORKDIR /src
# README.md* matches nothing until the README exists; pyproject.toml names it as the long description.
COPY pyproject.toml README.md* ./
COPY operator ./operator
# Only the runtime dependencies (no [test] extra), into a prefix the final stage copies whole.
RUN pip install --no-cache-dir --no-compile --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Numeric, so Kubernetes can verify runAsNonRoot without a passwd entry.
USER 65532:65532
ENTRYPOINT ["appconfig-sync"]
CMD ["run"]
