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

-- DEVELOPMENT ONLY. The SSRF guard refuses receivers on loopback, private
-- and link-local addresses; this opens it to this machine (127.0.0.1, ::1),
-- so that the receiver of the README's quickstart (examples/receiver.mjs on
-- 127.0.0.1:9000) can be reached. It also lets anyone who can create a
-- webhook make the gateway POST to any service listening on this machine.
-- Production configs must not copy it (the gateway warns at every start
-- while it is set). See docs/configuration.md.
delivery = {
  allow_cidrs = { "127.0.0.1/32", "::1/128" },
}
