"""What people read: the summary table, the figures, `make bench`, the camera figure."""
