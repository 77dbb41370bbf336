"""Transactional outbox: events written with the change, handled after commit by the worker."""
