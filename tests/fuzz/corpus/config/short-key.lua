admin_key = "short"
