"""Policies, environment wrappers and the one lockstep runner that collection and evaluation share."""
