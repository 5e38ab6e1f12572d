tls = { listen = "0.0.0.0:8443" }
