"""Running rendered projects on this machine: one copy of what tests/ and bench/ both need.

- processes.py: free loopback ports, `make serve` in a session of its own, waiting for it to
  answer, and finding and killing whatever is left of that session
- template.py: this checkout's template as a folder, or as a tagged git snapshot
- postgres.py: a throwaway PostgreSQL server on a loopback port

Nothing here knows about pytest: a helper that cannot go on raises, and the caller decides
whether that fails a test or ends a benchmark.
"""
