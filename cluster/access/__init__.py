"""Data access: remote files checked before a run, copied into a cache, or downloaded."""
