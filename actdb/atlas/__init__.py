"""The channel atlas: the study's question asked of every channel of the store's layer."""
