"""actdb.ingest"""
