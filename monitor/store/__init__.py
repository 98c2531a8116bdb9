"""State that must survive a restart, behind one small interface (see base.py)."""
