#!/usr/bin/env bash
# Agent Chat UI, LangChain's chat front end for any LangGraph server, talking to pahf.
#
#   examples/agent_chat_ui.sh          # build once (cached), then serve on http://127.0.0.1:5173
#   examples/agent_chat_ui.sh build    # only install and build (what the browser test uses)
#
# The UI is the vite template of npm's create-agent-chat-app, installed from the npm registry
# into $PAHF_CHATUI_CACHE (default ~/.cache/pahf-chatui) and built there, never in the checkout.
# It connects to the pahf graph served by `make serve` (langgraph dev on 127.0.0.1:2024);
# set API_URL and UI_PORT to change either.
set -euo pipefail

PACKAGE="create-agent-chat-app@0.1.6"
CACHE="${PAHF_CHATUI_CACHE:-$HOME/.cache/pahf-chatui}"
API_URL="${API_URL:-http://127.0.0.1:2024}"
UI_PORT="${UI_PORT:-5173}"
APP="$CACHE/app"

command -v npm > /dev/null || { echo "npm is needed: apt-get install nodejs npm" >&2; exit 3; }

if [ ! -f "$APP/.built" ]; then
  mkdir -p "$CACHE"
  rm -rf "$APP" "$CACHE/package" "$CACHE"/create-agent-chat-app-*.tgz
  (cd "$CACHE" && npm pack --silent "$PACKAGE" > /dev/null && tar xzf create-agent-chat-app-*.tgz)
  cp -r "$CACHE/package/templates/vite" "$APP"
  (cd "$APP" && npm install --no-audit --no-fund --loglevel=error)
  (cd "$APP" && ./node_modules/.bin/vite build --logLevel error)
  echo "$PACKAGE" > "$APP/.built"
fi

[ "${1:-serve}" = "build" ] && exit 0
echo "Agent Chat UI: http://127.0.0.1:$UI_PORT/?apiUrl=$API_URL&assistantId=pahf"
cd "$APP"
exec ./node_modules/.bin/vite preview --host 127.0.0.1 --port "$UI_PORT" --strictPort
