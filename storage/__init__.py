"""Blob store adapters for the `workflow.ports.BlobStore` port: S3/MinIO through the `minio`
client (production) and a local folder (embedded mode). They know nothing about cases."""
