"""The HTTP API (FastAPI) and the `ezd` command; `api.bootstrap` wires the adapters."""
