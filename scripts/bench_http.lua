-- wrk script for scripts/bench_http: POST /v1/certificates with a bearer token, rotating
-- through a file of distinct public keys (one OpenSSH public key line each).
--   wrk -t 2 -c 64 -d 10s --latency -s scripts/bench_http.lua URL -- KEYS_FILE TOKEN
-- Counts 201 and non-201 responses per thread and prints one machine-readable line at the end:
--   BENCH_HTTP requests=N created=N non201=N socket_errors=N duration_us=N p50_us=N p90_us=N p99_us=N p999_us=N max_us=N mean_us=N
-- followed by up to five of the non-201 statuses with a body, to show why.

local threads = {}
local counter = 0

function setup(thread)
    counter = counter + 1
    thread:set("id", counter)
    table.insert(threads, thread)
end

local function json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local requests = {}
local next_index = 1
created = 0
non201 = 0
samples = ""

function init(args)
    local keys_file, token = args[1], args[2]
    if not keys_file or not token then
        error("usage: wrk ... -s bench_http.lua URL -- KEYS_FILE TOKEN")
    end
    local headers = {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/json",
    }
    for line in io.lines(keys_file) do
        if line:match("%S") then
            local body = '{"publicKey": ' .. json_string(line) .. '}'
            table.insert(requests, wrk.format("POST", "/v1/certificates", headers, body))
        end
    end
    if #requests == 0 then error("no public keys in " .. keys_file) end
    -- Each thread starts at a different key, so the threads do not walk the keys in lockstep.
    next_index = ((id or 1) - 1) * math.floor(#requests / 2) % #requests + 1
end

function request()
    local r = requests[next_index]
    next_index = next_index % #requests + 1
    return r
end

function response(status, headers, body)
    if status == 201 then
        created = created + 1
    else
        non201 = non201 + 1
        if non201 <= 5 then
            samples = samples .. "  status " .. status .. ": " .. tostring(body):sub(1, 300) .. "\n"
        end
    end
end

function done(summary, latency, requests)
    local total_created, total_non201, text = 0, 0, ""
    for _, thread in ipairs(threads) do
        total_created = total_created + thread:get("created")
        total_non201 = total_non201 + thread:get("non201")
        text = text .. thread:get("samples")
    end
    local e = summary.errors
    local socket_errors = e.connect + e.read + e.write + e.timeout
    io.write(string.format(
        "BENCH_HTTP requests=%d created=%d non201=%d socket_errors=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.0f\n",
        summary.requests, total_created, total_non201, socket_errors, summary.duration,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
        latency.max, latency.mean))
    if text ~= "" then io.write("BENCH_HTTP_SAMPLES\n" .. text) end
end
