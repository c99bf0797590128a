"""Recorded driving: the dataset format, the collector, recording, driving yourself, Udacity and Minari interop."""
