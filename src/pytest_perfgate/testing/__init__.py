"""Test doubles for perfgate's own tests and for checking a pipeline locally (never used in
production paths)."""
