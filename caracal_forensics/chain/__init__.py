"""Chain verification: the hashes (``digest``), the verifier (``verify``) and what it
reports (``report``). Imported lazily by the CLI and the notebook API."""
