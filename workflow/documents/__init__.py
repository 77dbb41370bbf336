"""Documents with versions and the minimum metadata set, and the blobs that hold their content."""
