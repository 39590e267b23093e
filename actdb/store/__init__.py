"""actdb.store"""
