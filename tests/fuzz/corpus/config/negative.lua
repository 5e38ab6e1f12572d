listen = { "127.0.0.1:8080" }
http = { max_body = -1 }
