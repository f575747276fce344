"""lxp-sync sources: one folder per vendor on one shared core (`sources.core`)."""
