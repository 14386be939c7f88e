#!/bin/sh
# test_cluster.sh — three `tailor serve` on one PostgreSQL database behind
# Debian's nginx (a real balancer, configured here in a temporary folder).
# Three clients post events with client ids and ask for recommendations
# through nginx; one server is killed with SIGKILL in the middle and later
# restarted on its port. Checked: every acknowledged event is in the
# database exactly once, a client sees an error only for a request in
# flight on the killed server (at most one each), a conversation started
# on one server continues on another, and the restarted server takes
# requests again. Needs the ctest fixture's cluster (TAILOR_TEST_PG).
set -u
. "$(dirname "$0")/lib.sh" ml-latest-small
command -v curl >/dev/null || { echo "FATAL: curl is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "FATAL: nginx is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
[ -n "${TAILOR_TEST_PG:-}" ] && [ -f "$TAILOR_TEST_PG" ] ||
    { echo "FATAL: no PostgreSQL cluster (TAILOR_TEST_PG=${TAILOR_TEST_PG:-}; tests/pg-cluster.sh start)" >&2; exit 2; }
BASE=$(cat "$TAILOR_TEST_PG")
NAME=cluster_$$
psql -q "$BASE" -c "CREATE DATABASE $NAME" || { echo "FATAL: cannot create database $NAME" >&2; exit 1; }
DB=$(echo "$BASE" | sed "s|/postgres?|/$NAME?|")
export TAILOR_FILES="$W/files"

"$T" -q --db "$DB" import movielens "$DATA/ml-latest-small" >/dev/null || { echo "FATAL: import" >&2; exit 1; }
"$T" -q --db "$DB" train pop >/dev/null || { echo "FATAL: train" >&2; exit 1; }
"$T" -q --db "$DB" train itemknn --no-activate >/dev/null || { echo "FATAL: train" >&2; exit 1; }
KEY=$("$T" -q --db "$DB" keys create --role admin --name cluster)

serve_start s1 --threads 2
S1=$URL P1=$pid
serve_start s2 --threads 2
S2=$URL P2=$pid
serve_start s3 --threads 2
S3=$URL P3=$pid

# nginx in front, on a free port: round robin, a request that could not
# reach a server (connect error) goes to the next; POSTs too, since events
# carry client ids and a retried one is stored once.
mkdir -p "$W/nginx/logs"
user=""
[ "$(id -u)" -eq 0 ] && user="user root;"
port=0
for try in 1 2 3 4 5; do
    port=$((20000 + ($$ * 7 + try * 131) % 20000))
    cat >"$W/nginx/nginx.conf" <<EOF
$user
worker_processes 1;
daemon off;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    upstream tailor {
        server ${S1#http://} max_fails=1 fail_timeout=3s;
        server ${S2#http://} max_fails=1 fail_timeout=3s;
        server ${S3#http://} max_fails=1 fail_timeout=3s;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://tailor;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_connect_timeout 2s;
            proxy_read_timeout 30s;
        }
    }
}
EOF
    "$NGINX" -p "$W/nginx" -c "$W/nginx/nginx.conf" 2>"$W/nginx.err" &
    NG=$!
    ok_port=0
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && { ok_port=1; break; }
        kill -0 "$NG" 2>/dev/null || break
        sleep 0.1
    done
    [ "$ok_port" = 1 ] && break
    kill "$NG" 2>/dev/null
    wait "$NG" 2>/dev/null
done
[ "$ok_port" = 1 ] || { echo "FATAL: nginx did not start" >&2; cat "$W/nginx.err" "$W/nginx/error.log" >&2; exit 1; }
LB="http://127.0.0.1:$port"

# A conversation started through one server continues through another.
sid=$(curl -s -H "Authorization: Bearer $KEY" -d '{"user": "1"}' "$S1/api/sessions" | sed -n 's/.*"session": *"\{0,1\}\([0-9]*\).*/\1/p')
[ -n "$sid" ] && ok || bad "no session from $S1"
curl -s -o "$W/m1" -H "Authorization: Bearer $KEY" -d '{"text": "recommend me a comedy"}' "$S2/api/sessions/$sid/messages"
curl -s -o "$W/m2" -H "Authorization: Bearer $KEY" "$S3/api/sessions/$sid"
has "$W/m2" "recommend me a comedy" "the session read on a third server"

# A model activated through one server is what the others serve at their
# next request (they hear of it by LISTEN/NOTIFY).
model_of() { curl -s -H "Authorization: Bearer $KEY" "$1/api/users/1/recommendations?k=3" | sed -n 's/.*"model": *"\([^"]*\)".*/\1/p'; }
[ "$(model_of "$S3")" = pop ] && ok || bad "server 3 does not serve pop at first"
code=$(curl -s -o "$W/act" -w '%{http_code}' -X POST -H "Authorization: Bearer $KEY" "$S1/api/models/itemknn/activate")
[ "$code" = 200 ] && ok || { bad "activation answered $code"; cat "$W/act" >&2; }
[ "$(model_of "$S3")" = itemknn ] && ok || bad "server 3 still serves $(model_of "$S3") after itemknn was activated on server 1"
[ "$(model_of "$S2")" = itemknn ] && ok || bad "server 2 still serves $(model_of "$S2")"
curl -s -o /dev/null -X POST -H "Authorization: Bearer $KEY" "$S2/api/models/pop/activate"
[ "$(model_of "$S1")" = pop ] && ok || bad "server 1 serves $(model_of "$S1") after pop was activated on server 2"

# stored_once LOG USER ID_PREFIX: every event LOG says was acknowledged
# ("N 201": client id ID_PREFIX-N) is stored, and once: the user's events
# are as many as their distinct client ids.
stored_once() {
    psql -At "$DB" -c "SELECT e.client_id FROM event_ids e JOIN users u ON u.id = e.user_id WHERE u.ext_id = '$2'" |
        sort >"$W/stored.$2"
    sed -n 's/^\([0-9]*\) 201$/'"$3"'-\1/p' "$1" | sort >"$W/acked.$2"
    missing=$(comm -23 "$W/acked.$2" "$W/stored.$2" | wc -l)
    [ "$missing" -eq 0 ] && ok || bad "$2: $missing acknowledged events are not stored"
    n_events=$(psql -At "$DB" -c "SELECT count(*) FROM events e JOIN users u ON u.id = e.user_id WHERE u.ext_id = '$2'")
    n_ids=$(wc -l <"$W/stored.$2")
    [ "$n_events" -eq "$n_ids" ] && [ "$(sort -u "$W/stored.$2" | wc -l)" -eq "$n_ids" ] && ok ||
        bad "$2: $n_events events for $n_ids client ids"
}

# The load: three clients, 40 events each (client ids) on items of the
# catalogue, a recommendation every fourth request.
psql -At "$DB" -c "SELECT ext_id FROM items ORDER BY id LIMIT 40" >"$W/items"
client() {
    c=$1
    for i in $(seq 40); do
        item=$(sed -n "${i}p" "$W/items")
        code=$(curl -s -o "$W/last.$c" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $KEY" \
            -d "{\"user\": \"load$c\", \"item\": \"$item\", \"kind\": \"view\", \"id\": \"c$c-$i\"}" "$LB/api/events")
        echo "$i $code"
        if [ $((i % 4)) -eq 0 ]; then
            code=$(curl -s -o "$W/last.$c" -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $KEY" \
                "$LB/api/users/1/recommendations?k=5")
            echo "rec $code"
            [ "$code" = 200 ] || sed 's/^/  answer: /' "$W/last.$c" >&2
        fi
    done >"$W/client.$c"
}
for c in 1 2 3; do client "$c" & done
done_events() { cat "$W"/client.* 2>/dev/null | grep -vc '^rec'; }
for _ in $(seq 600); do [ "$(done_events)" -ge 30 ] && break; sleep 0.05; done
kill -KILL "$P2"
wait "$P2" 2>/dev/null
for _ in $(seq 1200); do [ "$(done_events)" -ge 80 ] && break; sleep 0.05; done
"$T" --db "$DB" serve --port "${S2##*:}" --threads 2 >"$W/s2b.out" 2>"$W/s2b.err" &
P2=$!
for _ in $(seq 2400); do [ "$(done_events)" -ge 120 ] && break; sleep 0.05; done

acked=$(cat "$W"/client.* | grep -v '^rec' | grep -c ' 201$')
failed=$(cat "$W"/client.* | grep -vc ' 201$\| 200$')
echo "requests: $acked events acknowledged of 120, $failed requests failed (server 2 killed after 30 events, restarted after 80)"
[ "$failed" -le 3 ] && ok || bad "$failed requests failed (at most one in flight per client may)"
grep -v ' 201$\| 200$' "$W"/client.* | sed 's/^/  failed: /' >&2
cat "$W"/client.* | grep -v ' 201$\| 200$' | grep -qv ' 50[0234]$' && bad "a failed request answered something other than 5xx" || ok
for c in 1 2 3; do
    stored_once "$W/client.$c" "load$c" "c$c"
done
# The restarted server takes requests again: straight, and through nginx.
for _ in $(seq 50); do curl -s -o /dev/null "$S2/healthz" && break; sleep 0.1; done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "$S2/api/users/1/recommendations?k=5")
[ "$code" = 200 ] && ok || bad "the restarted server answered $code"
# (nginx tries a failed server again after fail_timeout, 3 s.)
got=0
for _ in $(seq 60); do
    for i in 1 2 3; do curl -s -o /dev/null -H "Authorization: Bearer $KEY" "$LB/api/users/1/recommendations?k=5"; done
    got=$(curl -s -H "Authorization: Bearer $KEY" "$S2/metrics" |
        grep '^tailor_http_requests_total{route="GET /api/users/{id}/recommendations",status="200"}' | sed 's/.* //')
    [ "${got:-0}" -ge 2 ] && break
    sleep 0.2
done
[ "${got:-0}" -ge 2 ] && ok || bad "nginx sent the restarted server ${got:-0} requests in 12 s"

# PostgreSQL itself restarted under load: meanwhile /readyz says not ready
# (503), requests fail with 5xx; then the servers connect again by
# themselves and nothing acknowledged is lost.
PGSTATE=${TAILOR_TEST_PG%.url}
pgload() {
    c=$1
    for i in $(seq 400); do
        [ -f "$W/pg.stop" ] && break
        item=$(sed -n "$((i % 40 + 1))p" "$W/items")
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $KEY" \
            -d "{\"user\": \"pg$c\", \"item\": \"$item\", \"id\": \"p$c-$i\"}" "$LB/api/events")
        echo "$i $code"
        sleep 0.02
    done >"$W/pg.$c"
}
pgload 1 &
L1=$!
pgload 2 &
L2=$!
sleep 1
sh "$TAILOR_SOURCE/tests/pg-cluster.sh" pause "$PGSTATE" || bad "PostgreSQL did not stop"
code=$(curl -s -o "$W/ready" -w '%{http_code}' -H "Authorization: Bearer $KEY" "$S1/readyz")
[ "$code" = 503 ] && ok || bad "/readyz answered $code while PostgreSQL was down"
sleep 1
sh "$TAILOR_SOURCE/tests/pg-cluster.sh" resume "$PGSTATE" || bad "PostgreSQL did not start again"
ready=0
for _ in $(seq 100); do
    ready=0
    for S in "$S1" "$S2" "$S3"; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $KEY" "$S/readyz")" = 200 ] && ready=$((ready + 1))
    done
    [ "$ready" = 3 ] && break
    sleep 0.1
done
[ "$ready" = 3 ] && ok || bad "only $ready of 3 servers ready after PostgreSQL came back"
sleep 4 # nginx tries servers it marked failed again after fail_timeout (3 s)
touch "$W/pg.stop"
wait "$L1" "$L2"
for c in 1 2; do
    total=$(wc -l <"$W/pg.$c")
    acked_pg=$(grep -c ' 201$' "$W/pg.$c")
    grep -v ' 201$' "$W/pg.$c" | grep -qv ' 5[0-9][0-9]$' && bad "pg client $c: a failure other than 5xx" || ok
    tail -n 3 "$W/pg.$c" | grep -qv ' 201$' && bad "pg client $c: still failing after PostgreSQL came back" || ok
    stored_once "$W/pg.$c" "pg$c" "p$c"
    echo "PostgreSQL restart, client $c: $acked_pg of $total events acknowledged"
done

kill -TERM "$P1" "$P2" "$P3" "$NG"
wait "$P1" "$P2" "$P3" "$NG" 2>/dev/null
finish
