"""actdb.query"""
