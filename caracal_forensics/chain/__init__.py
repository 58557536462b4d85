"""Chain verification: ``Verifier`` (``verifier.py``, exported as ``cf.Verifier``), the two
passes behind it (``clean.py``; ``stages.py`` then ``findings.py``), what they report
(``report.py``) and the hashes (``digest.py``). README "How it is built" maps the modules.
Imported lazily by the CLI and the notebook API."""
