#!/bin/sh
# A lame-duck period for any server in a container: run the server, and on
# `docker stop` keep it serving for $LAME_DUCK seconds (default 3) before
# passing $STOP_SIGNAL (default TERM; QUIT for nginx's graceful stop) on,
# then exit with the server's status. A load balancer that drains at the
# stop event (tierlb does) has then sent its last connection long before
# the server closes its listener.
#
#   ENTRYPOINT ["/lame-duck.sh", "/docker-entrypoint.sh"]   # in front of the image's own
#   CMD ["nginx", "-g", "daemon off;"]
#
# The container's stop signal must be SIGTERM or SIGINT (compose
# stop_signal: SIGTERM; the nginx image sets SIGQUIT), and its grace period
# (stop_grace_period, --stop-timeout) longer than the lame duck plus the
# longest request.
"$@" &
pid=$!
trap 'sleep "${LAME_DUCK:-3}"; kill -"${STOP_SIGNAL:-TERM}" "$pid"' TERM INT
wait "$pid"
trap - TERM INT
wait "$pid"
