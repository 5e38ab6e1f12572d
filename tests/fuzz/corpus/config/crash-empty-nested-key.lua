webhooks={ [""] =# { e} }
