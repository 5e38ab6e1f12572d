# Empty dependencies file for hg_core.
# This may be replaced when dependencies are built.
