"""The export: ``streams`` (each stream's rules), ``commit`` (the cursor-commit window), ``run`` (the loop),
``summary`` (what a run did)."""
