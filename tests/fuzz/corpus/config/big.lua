x = string.rep("a", 1 << 30)
