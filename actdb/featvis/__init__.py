"""actdb.featvis"""
