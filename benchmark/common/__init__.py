"""Shared by every package: typed configs, the CLI plumbing, file IO and provenance. Imports nothing of the project."""
