"""Importers: other formats translated into readable .cnn specs (then checked like any spec)."""
