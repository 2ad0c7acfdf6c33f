#!/bin/bash
# The benchmark's action, the same for sesame and knockd: append the source and a timestamp.
printf '%s %s\n' "$2" "$EPOCHREALTIME" >> "$1"
