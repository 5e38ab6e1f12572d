store = 42
