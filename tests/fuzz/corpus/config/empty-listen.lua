listen = {}
