"""actdb.serve"""
