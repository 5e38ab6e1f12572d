-- hookgate quickstart configuration: the embedded default (SQLite).
-- Every key is optional; unknown keys are errors. See docs/configuration.md.

listen = { "127.0.0.1:8080" }
store = "./data/hookgate.db"

-- The bootstrap admin key comes from the environment (HOOKGATE_ADMIN_KEY);
-- never write a real key into a config file you commit.

log = { level = "info", format = "logfmt", access = true }

http = {
  max_body = 1048576,   -- bytes
  header_timeout = 10,  -- seconds
  idle_timeout = 60,
  body_timeout = 30,
}

webhooks = {
  -- Receivers must be https:// in production. The quickstart allows http://
  -- so that a local receiver works without a certificate.
  allow_http = true,
  -- Event types beyond the 15 built in.
  event_types = { "invoice.paid" },
}
