"""The shell's view of the settings: the class lives in the bottom layer (``records.settings``) so that
``training`` and ``service`` read it without importing the shell above them."""

from records.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
