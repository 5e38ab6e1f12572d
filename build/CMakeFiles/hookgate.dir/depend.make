# Empty dependencies file for hookgate.
# This may be replaced when dependencies are built.
