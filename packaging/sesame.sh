#!/bin/sh
# /usr/bin/sesame: runs sesame (one bundled file) on the Deno runtime this package ships,
# with exactly the permissions of deno.json's "default" set, written out as flags
# (tests/package_test.ts fails when the two differ). --no-config: a deno.json in the
# current directory is not sesame's. See sesame(8).
DENO_NO_UPDATE_CHECK=1
export DENO_NO_UPDATE_CHECK
exec /usr/lib/sesame/deno run --quiet --no-config --no-lock --no-remote --no-npm --no-prompt \
  --unstable-net --v8-flags=--max-semi-space-size=1 \
  --allow-read --allow-write --allow-net --allow-run --allow-sys=uid \
  --allow-env=LOG_TOKENS,LOG_STREAM,NO_COLOR,TERM,CI,HOME,XDG_STATE_HOME,XDG_CONFIG_HOME \
  /usr/lib/sesame/sesame.js "$@"
