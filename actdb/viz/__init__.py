"""actdb.viz"""
