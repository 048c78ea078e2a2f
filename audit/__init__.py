"""Change history pages and helpers on top of django-simple-history (see changes.py)."""
