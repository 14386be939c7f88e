#!/bin/sh
# test_fleet.sh — a fleet of model servers behind the remote backend, with
# real servers: two `tailor serve --model` (stories260K) as the fleet and a
# third `tailor serve --llm-url A,B` in front. Three clients chat through
# the front while model server B is killed with SIGKILL and later restarted
# on its port: a chat fails only if it was in flight on B (at most one per
# client), the front takes B out and sends everything to A, notices B back
# (its health check) and sends it chats again; /metrics shows it all.
set -u
. "$(dirname "$0")/lib.sh" tinyllamas-stories260K
command -v curl >/dev/null || { echo "FATAL: curl is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }

DB="$W/fleet.db"
printf '{"id":"m1","title":"Heat"}\n{"id":"m2","title":"Alien"}\n' >"$W/items.jsonl"
"$T" -q --db "$DB" import items "$W/items.jsonl" >/dev/null || { echo "FATAL: import" >&2; exit 1; }
KEY=$("$T" -q --db "$DB" keys create --role admin --name fleet)
MODEL="$DATA/tinyllamas-stories260K/stories260K.gguf"

serve_start a -m "$MODEL" --chat-template chatml -c 512 --served-name tiny
A=$URL A_PID=$pid
serve_start b -m "$MODEL" --chat-template chatml -c 512 --served-name tiny
B=$URL B_PID=$pid
B_PORT=${B##*:}
TAILOR_LLM_API_KEY=$KEY serve_start front --threads 4 --llm-url "$A/v1,$B/v1" --llm-model tiny
FRONT=$URL FRONT_PID=$pid

chat() { # chat OUT: one chat through the front; prints the HTTP status
    curl -s -o "$1" -w '%{http_code}' -H "Authorization: Bearer $KEY" --max-time 60 \
        -d '{"model":"tiny","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":24}' \
        "$FRONT/v1/chat/completions"
}
metric() { # metric NAME URL: a model server's value in the front's /metrics
    curl -s -H "Authorization: Bearer $KEY" "$FRONT/metrics" | grep "^$1{url=\"$2/v1\"" | head -n 1 | sed 's/.* //'
}

# A run of chats: three clients, 12 each, one status per line.
for c in 1 2 3; do
    (for i in $(seq 12); do echo "$(chat "$W/body.$c.$i")"; done >"$W/client.$c") &
done
done_chats() { cat "$W"/client.* 2>/dev/null | wc -l; }
for _ in $(seq 600); do [ "$(done_chats)" -ge 8 ] && break; sleep 0.05; done
kill -KILL "$B_PID"
wait "$B_PID" 2>/dev/null
for _ in $(seq 600); do [ "$(done_chats)" -ge 20 ] && break; sleep 0.05; done
# B again, on its port.
"$T" --db "$DB" serve --port "$B_PORT" -m "$MODEL" --chat-template chatml -c 512 --served-name tiny \
    >"$W/b2.out" 2>"$W/b2.err" &
B_PID=$!
wait_clients() { for _ in $(seq 1200); do [ "$(done_chats)" -ge 36 ] && return; sleep 0.05; done; }
wait_clients
ok200=$(cat "$W"/client.* | grep -c '^200$')
other=$(cat "$W"/client.* | grep -vc '^200$')
echo "chats: $ok200 answered, $other failed (B killed after 8, restarted after 20)"
[ "$ok200" -ge 33 ] && ok || bad "only $ok200 of 36 chats answered (at most one in flight per client may fail)"
cat "$W"/client.* | grep -v '^200$' | grep -qv '^50[23]$' && bad "a failed chat answered something else than 502/503" || ok
grep -l '"choices"' "$W"/body.* | wc -l | grep -qx "$ok200" && ok || bad "not every answered chat holds choices"

# The front took B out: failures counted, failed over to A.
[ "$(metric tailor_llm_upstream_requests_total "$B")" != "" ] && ok || bad "no metrics for $B"
failed=$(curl -s -H "Authorization: Bearer $KEY" "$FRONT/metrics" | grep "^tailor_llm_upstream_requests_total{url=\"$B/v1\",result=\"failed\"}" | sed 's/.* //')
[ "${failed:-0}" -ge 1 ] && ok || bad "no failed requests counted for the killed server ($failed)"
[ "$(metric tailor_llm_upstream_failovers_total "$B")" -ge 1 ] && ok || bad "no failover from the killed server"
[ "$(metric tailor_llm_upstream_breaker_opens_total "$B")" -ge 1 ] && ok || bad "the killed server was never taken out"
grep -q "taken out" "$W/front.err" && ok || bad "the front did not say it took B out"

# B back: the health check (every 5 s) brings it in, and it gets chats.
back=0
for _ in $(seq 150); do [ "$(metric tailor_llm_upstream_up "$B")" = 1 ] && { back=1; break; }; sleep 0.1; done
[ "$back" = 1 ] && ok || bad "the restarted server was not taken back within 15 s"
before=$(curl -s -H "Authorization: Bearer $KEY" "$FRONT/metrics" | grep "^tailor_llm_upstream_requests_total{url=\"$B/v1\",result=\"ok\"}" | sed 's/.* //')
for i in 1 2 3 4; do [ "$(chat "$W/after.$i")" = 200 ] && ok || bad "chat $i after B came back"; done
after=$(curl -s -H "Authorization: Bearer $KEY" "$FRONT/metrics" | grep "^tailor_llm_upstream_requests_total{url=\"$B/v1\",result=\"ok\"}" | sed 's/.* //')
[ "$after" -ge $((before + 1)) ] && ok || bad "the restarted server got no chats ($before -> $after)"
[ "$(metric tailor_llm_upstream_duration_seconds_count "$A")" -ge 1 ] && ok || bad "no reply times for $A"

kill -TERM "$FRONT_PID" "$A_PID" "$B_PID"
wait "$FRONT_PID" "$A_PID" "$B_PID" 2>/dev/null
finish
