plugins = { ["slack-format"] = { channel = "#ops" } }
