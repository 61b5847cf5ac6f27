# One image for the worker, the producers' CLI and the offline emulator.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY common ./common
COPY worker ./worker
COPY producers ./producers
COPY emulator ./emulator
COPY triage ./triage
COPY evaluation ./evaluation
COPY intake ./intake
COPY console ./console
COPY reprocess ./reprocess
RUN pip install --no-cache-dir . && useradd --create-home triage
USER triage
CMD ["triage", "worker"]
