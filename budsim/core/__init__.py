"""Headless core of budsim: models, hardware, engines, prediction, search, store, export.

Never import textual (or any other UI library) from here; tests/test_import_hygiene.py checks it.
"""
