"""Interactive segmentation: a session object (session.py) and its web UI (app.py)."""
