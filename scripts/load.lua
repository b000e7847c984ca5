-- wrk script for tagbeez: POST /classify-message with short shopper messages, count the
-- responses by status, and print one JSON line of results at the end. scripts/load.py runs it;
-- by hand:
--   wrk -t2 -c8 -d15s --timeout 2s -s scripts/load.lua http://127.0.0.1:8080
--
-- The JSON line (one line, starts with {"tool":"load.lua"):
--   requests, duration_s, requests_per_s  wrk's summary: responses completed in the run
--   latency_ms {p50,p90,p99,max,mean}     wrk's histogram: every response whatever its status
--                                         (fast 503 rejections pull these down), and only
--                                         those within --timeout (slower ones are timeouts)
--   status {"200","503","4xx","5xx","other"}
--                                         "503": overload rejections, i.e. a 503 whose body
--                                         has "code":"overloaded"; "4xx": every other 4xx;
--                                         "5xx": every other 5xx, other 503s included;
--                                         "other": 1xx/3xx/other 2xx
--   retry_after_missing                   overload 503s without a Retry-After header
--   errors {connect,read,write,timeout}   wrk's socket errors. wrk counts a timeout for a
--                                         response slower than --timeout, and again every 2 s
--                                         for each connection still waiting past it: read it
--                                         as "some requests took longer than --timeout"
--
-- LOAD_RETRY_AFTER=1 (load.py --retry-after) makes the clients polite: after an overload 503
-- the next request waits the Retry-After seconds. wrk's delay() does not say which connection
-- asks, so the waits are handed out in the order the responses came (a FIFO per thread): each
-- refusal delays one next request, about, but not always exactly, on the refused connection.
-- Without it (the default) wrk is a closed loop that retries a refusal at once.
--
-- wrk's response() callback gets no latency (and wrk 4.1, Debian's, passes no per-request
-- data to it), so the latency of 200s alone cannot be measured here with several connections
-- per thread; load.py takes it from the server's own request log lines.

local messages = {
  "is this on sale?",
  "add the blue one to my cart",
  "just browsing thanks",
  "do you have this in a size medium?",
  "how long does shipping take to Denver?",
  "can I return it if it doesn't fit?",
  "where is my order? it was supposed to arrive yesterday",
  "what's the difference between the pro and the regular model?",
  "is there a discount code for first-time customers?",
  "remove the charger from my cart please",
  "does this come in black?",
  "I want to cancel my order",
  "do you ship internationally?",
  "is the jacket waterproof?",
  "can I pay with PayPal?",
  "the item I received is damaged",
  "checkout keeps failing with my card",
  "when will the red sneakers be back in stock?",
  "compare this laptop with the one I looked at earlier",
  "ok thanks, that's all for now",
}

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- Per thread (every wrk thread has its own Lua state): the requests, formatted once.
local requests = {}
local next_index = 1

-- Per-thread counters, read by done() through thread:get (so globals, not locals).
c200, c503, c4xx, c5xx, cother, retry_after_missing = 0, 0, 0, 0, 0, 0

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  for i, text in ipairs(messages) do
    requests[i] = wrk.format("POST", "/classify-message", headers,
      '{"message":' .. json_string(text) .. "}")
  end
  -- Threads start at different messages, so that they do not send the same text in step.
  next_index = ((tonumber(thread_number) or 1) * 7) % #requests + 1
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

local honor_retry_after = os.getenv("LOAD_RETRY_AFTER") == "1"
local waits, wait_head, wait_tail = {}, 1, 0 -- FIFO of the next requests' delays, ms

local function push_wait(ms)
  wait_tail = wait_tail + 1
  waits[wait_tail] = ms
end

if honor_retry_after then
  function delay()
    if wait_head > wait_tail then return 0 end
    local ms = waits[wait_head]
    waits[wait_head] = nil
    wait_head = wait_head + 1
    return ms
  end
end

function response(status, headers, body)
  if honor_retry_after then
    local after = status == 503 and tonumber(headers["Retry-After"] or headers["retry-after"])
    push_wait(after and math.floor(after * 1000) or 0)
  end
  if status == 200 then
    c200 = c200 + 1
  elseif status == 503 and body and body:find('"code"%s*:%s*"overloaded"') then
    c503 = c503 + 1
    if not (headers["Retry-After"] or headers["retry-after"]) then
      retry_after_missing = retry_after_missing + 1
    end
  elseif status >= 400 and status < 500 then
    c4xx = c4xx + 1
  elseif status >= 500 then
    c5xx = c5xx + 1
  else
    cother = cother + 1
  end
end

function done(summary, latency, _)
  local total = { c200 = 0, c503 = 0, c4xx = 0, c5xx = 0, cother = 0, retry_after_missing = 0 }
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do
      total[name] = total[name] + (tonumber(thread:get(name)) or 0)
    end
  end
  local duration_s = summary.duration / 1e6
  local function ms(us) return us / 1000 end
  local e = summary.errors
  io.write(string.format(
    '{"tool":"load.lua","requests":%d,"duration_s":%.3f,"requests_per_s":%.2f,'
      .. '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f,"mean":%.3f},'
      .. '"status":{"200":%d,"503":%d,"4xx":%d,"5xx":%d,"other":%d},"retry_after_missing":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}}\n',
    summary.requests, duration_s, duration_s > 0 and summary.requests / duration_s or 0,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency.max), ms(latency.mean),
    total.c200, total.c503, total.c4xx, total.c5xx, total.cother, total.retry_after_missing,
    e.connect, e.read, e.write, e.timeout))
end
