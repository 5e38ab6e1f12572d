delivery = { schedule = { 0, 5, 300 }, jitter = 0.5 }
lua = { memory = "1M" }
