-- wrk script: POST the JSON file named by the first script argument
-- (wrk ... -s post.lua URL -- BODY_FILE; `-- GET` instead sends plain GETs),
-- and print one machine-readable line for scripts/load.sh:
-- RESULT <requests/s> <p50 us> <p99 us> <errors> <non-2xx/3xx>

function init(args)
   if args[1] == "GET" then
      return
   end
   local f = assert(io.open(args[1], "rb"))
   wrk.body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
   local e = summary.errors
   local errors = e.connect + e.read + e.write + e.timeout + e.status
   io.write(string.format("RESULT %.1f %d %d %d %d\n",
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99), errors, e.status))
end
