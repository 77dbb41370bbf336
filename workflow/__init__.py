"""The ezd core: domain models, services, unit of work, outbox and worker.

Nothing here imports a web framework, an S3 client or a search client; adapters for the ports in
`workflow.ports` live in `storage/` and `search/` and are wired by `api.bootstrap`.
"""
