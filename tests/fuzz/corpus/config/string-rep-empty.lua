x = string.rep("", 1 << 30)x = string.rep("", 1 << 30)
