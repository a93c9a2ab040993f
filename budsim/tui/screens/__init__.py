"""Screens of the budsim TUI: setup, run, results, history, and small modals."""
