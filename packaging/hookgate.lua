-- hookgate's configuration for a server: /etc/hookgate/hookgate.lua in the Debian package
-- (a conffile: your changes survive upgrades), <prefix>/share/hookgate/hookgate.lua after
-- `cmake --install` (copy it where your service manager reads it).
-- Every key is optional; unknown keys are errors. Keys: docs/configuration.md.
-- Check a change with `hookgate check -c /etc/hookgate/hookgate.lua`; `systemctl reload hookgate`
-- reloads the plugins, a restart reads everything else.

-- Plain HTTP on loopback only: put a TLS-terminating reverse proxy in front, or serve
-- HTTPS itself with tls = { listen = "0.0.0.0:8443", cert = "...", key = "..." }.
listen = { "127.0.0.1:8080" }

-- The SQLite store and, beside it, the intake log (hookgate.db-intake/). The service's
-- StateDirectory=hookgate makes /var/lib/hookgate, owned by the hookgate user, mode 0700.
store = "/var/lib/hookgate/hookgate.db"

-- No admin key here. The service reads HOOKGATE_ADMIN_KEY from /etc/hookgate/hookgate.env
-- (root only, generated at install); narrower keys for applications come from
--   sudo -u hookgate hookgate keys create -c /etc/hookgate/hookgate.lua --scopes ... --org ...

-- To standard error, that is the journal: journalctl -u hookgate
log = { level = "info", format = "logfmt", access = true }

http = {
  max_body = 1048576,   -- bytes
  header_timeout = 10,  -- seconds
  idle_timeout = 60,
  body_timeout = 30,
}

webhooks = {
  -- Receivers must be https://.
  allow_http = false,
}

-- Receivers on private networks are refused (the SSRF guard) unless listed:
-- delivery = { allow_cidrs = { "10.20.0.0/16" } }

-- lua.plugin_paths defaults to the bundled plugins (/usr/share/hookgate/plugins). Setting it
-- replaces that folder, so list it too when adding your own:
-- lua = { plugin_paths = { "/usr/share/hookgate/plugins", "/etc/hookgate/plugins" } }

-- Plugins bound to every webhook, with their settings (see /usr/share/hookgate/plugins/*/README.md):
-- plugins = { ["custom-headers"] = { headers = { ["X-Gateway"] = "eu-1" } } }
