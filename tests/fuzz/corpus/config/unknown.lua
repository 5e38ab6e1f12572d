unknown_key = true
