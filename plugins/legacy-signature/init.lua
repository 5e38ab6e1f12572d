-- legacy-signature: adds one more signature header, in an older scheme,
-- next to the Standard Webhooks ones, for receivers that cannot check
-- webhook-signature yet.
--
-- Default: X-Signature: sha256=<hex HMAC-SHA256(secret, body)>, the scheme
-- GitHub and many others use. The body signed is the one sent (after every
-- transform), since the sign phase runs after transform.

local crypto = hookgate.crypto

local function sign(delivery, conf)
  local lower = conf.header:lower()
  if lower == "content-type" or lower:sub(1, 8) == "webhook-" then
    error("legacy-signature: refusing to set " .. conf.header ..
      ": hookgate owns Content-Type and the webhook-* headers", 0)
  end
  local mac = crypto.hmac_sha256(conf.secret, delivery.body)
  local sig = conf.encoding == "base64" and crypto.base64(mac) or crypto.hex(mac)
  -- A plain replacement of the first %s: the format is not a pattern.
  local at = conf.format:find("%s", 1, true)
  delivery.headers[conf.header] = conf.format:sub(1, at - 1) .. sig .. conf.format:sub(at + 2)
  return nil
end

return {
  name = "legacy-signature",
  version = "1.0.0",
  priority = 0,
  schema = {
    type = "object",
    required = { "secret" },
    properties = {
      secret = { type = "string", secret = true, minLength = 1, description = "the HMAC key, as bytes" },
      header = { type = "string", default = "X-Signature", pattern = "^[%w%-_]+$",
        description = "the header's name" },
      format = { type = "string", default = "sha256=%s", pattern = "%%s", maxLength = 200,
        description = "the header's value; %s is the signature" },
      encoding = { type = "string", enum = { "hex", "base64" }, default = "hex",
        description = "how the MAC is written" },
    },
  },
  sign = sign,
}
