"""Model registry, offline class index and the embedder shared by ingest and queries."""
