"""Widgets of the budsim TUI, one concern per module."""
