-- awayd push: tell awayd about every message Dovecot delivers, so it answers at once.
--
-- Dovecot's push_notification Lua driver (Dovecot 2.3.19 or later: dovecot.http) calls these
-- functions inside each mail transaction; at its end one HTTP POST carries the transaction's
-- MessageNew events to awayd's push endpoint:
--
--   POST <awayd_push_url>   Authorization: Bearer <awayd_push_token>
--   {"user": "alice@example.org",
--    "events": [{"event": "MessageNew", "folder": "INBOX", "uid": 7, "uidvalidity": 1712345678}]}
--
-- Settings (plugin section, see awayd-push.conf): awayd_push_url, awayd_push_token.
-- A failed POST is logged and delivery goes on: awayd's sweep finds the message later.

local client = nil

local function json_string(value)
  local escaped = tostring(value):gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. escaped .. '"'
end

function dovecot_lua_notify_begin_txn(user)
  return { user = user, events = {} }
end

function dovecot_lua_notify_event_message_new(ctx, event)
  table.insert(ctx.events, string.format(
    '{"event":"MessageNew","folder":%s,"uid":%d,"uidvalidity":%d}',
    json_string(event.mailbox), event.uid, event.uid_validity))
end

function dovecot_lua_notify_end_txn(ctx)
  if #ctx.events == 0 then
    return
  end
  local url = ctx.user:plugin_getenv("awayd_push_url")
  local token = ctx.user:plugin_getenv("awayd_push_token")
  if url == nil or url == "" or token == nil or token == "" then
    dovecot.i_error("awayd push: set awayd_push_url and awayd_push_token")
    return
  end
  if client == nil then
    -- one attempt, short timeouts: a delivery never waits long for awayd
    client = dovecot.http.client({
      max_attempts = 1,
      request_timeout_msecs = 2000,
      request_absolute_timeout_msecs = 3000,
      connect_timeout_msecs = 1000,
      user_agent = "dovecot-awayd-push",
    })
  end
  local body = '{"user":' .. json_string(ctx.user.username)
    .. ',"events":[' .. table.concat(ctx.events, ",") .. "]}"
  local request = client:request({ url = url, method = "POST" })
  request:add_header("Authorization", "Bearer " .. token)
  request:add_header("Content-Type", "application/json")
  request:set_payload(body)
  local response = request:submit()
  local status = response:status()
  if status ~= 202 then
    dovecot.i_warning(string.format("awayd push: %s answered %d for %s",
      url, status, ctx.user.username))
  end
end
