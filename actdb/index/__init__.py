"""actdb.index"""
